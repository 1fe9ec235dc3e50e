// OS update policies: an exact version by a local date and time, or the latest release for the
// device's model within N days of its release; targeted like blueprints (tenant, organisation,
// kinds, groups, devices). Devices on iOS/iPadOS 17 and macOS 14 or later take the declarative
// path (the enforcement declaration in their DDM set, ddm/declaration-sets.ts); older ones the
// MDM commands ScheduleOSUpdate and OSUpdateStatus. The compliance view says where each device
// stands. https://developer.apple.com/documentation/devicemanagement/scheduleosupdatecommand
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { invalidField, OrchardError } from '../errors.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import {
  catalogueModel,
  complianceState,
  latestReleasesFor,
  policyTarget,
  updatePath,
  type ComplianceState,
  type LatestReleaseLookup,
  type PolicyTarget,
  type UpdatePath,
} from '../model/os-update.js'
import { fullAccess } from '../model/access.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { ComplianceRow, UpdatePolicyInput, UpdatePolicyRow, UpdatePolicyStore } from './update-policy-store.js'

export interface ComplianceItem {
  policyId: string
  policyName: string
  deviceId: string
  tenantId: string | null
  serialNumber: string | null
  model: string | null
  path: UpdatePath
  currentVersion: string | null
  target: PolicyTarget | null
  state: ComplianceState
  detail: string | null
}

export interface ComplianceReport {
  items: ComplianceItem[]
  /** Per policy: devices per state. */
  policies: Array<{ policyId: string; name: string; counts: Record<ComplianceState, number> }>
}

export interface UpdatePolicies {
  list(scope: AccessScope): Promise<UpdatePolicyRow[]>
  get(scope: AccessScope, id: string): Promise<UpdatePolicyRow>
  create(scope: AccessScope, tenantId: string | null | undefined, input: UpdatePolicyInput): Promise<UpdatePolicyRow>
  update(scope: AccessScope, id: string, input: UpdatePolicyInput): Promise<UpdatePolicyRow>
  remove(scope: AccessScope, id: string): Promise<void>
  compliance(scope: AccessScope, filter: { policyId?: string; tenantId?: string | null }): Promise<ComplianceReport>
  /** Devices on the MDM path that are not at their target: ScheduleOSUpdate and OSUpdateStatus (the periodic check). */
  scheduleLegacy(): Promise<number>
}

const states: ComplianceState[] = ['compliant', 'pending', 'downloading', 'installing', 'failed', 'overdue', 'unsupported']
/** ScheduleOSUpdate and OSUpdateStatus statuses that are failures. */
const mdmFailures = /Failed|Insufficient|RequiresComputer|PhoneCallInProgress/

function checked(input: UpdatePolicyInput): UpdatePolicyInput {
  if (input.mode === 'specific') {
    if (!input.targetOsVersion) throw invalidField('/target_os_version', 'a specific policy needs the version')
    if (!input.targetLocalDateTime) throw invalidField('/target_local_datetime', 'a specific policy needs the local date and time to install by')
    if (input.latestWithinDays !== null) throw invalidField('/latest_within_days', 'only for a latest policy')
  } else {
    if (input.latestWithinDays === null) throw invalidField('/latest_within_days', 'a latest policy needs the days after a release to install it within')
    for (const [pointer, value] of [
      ['/target_os_version', input.targetOsVersion],
      ['/target_build_version', input.targetBuildVersion],
      ['/target_local_datetime', input.targetLocalDateTime],
    ] as const)
      if (value !== null) throw invalidField(pointer, 'only for a specific policy (a latest policy takes the version from the catalogue)')
  }
  return input
}

/** The update facts the device reported: DDM status items, or the MDM commands' answers. */
function deviceFacts(row: ComplianceRow): { installState: string | null; failure: string | null } {
  const items = row.items
  const ddmState = items['softwareupdate.install-state']
  const failure = items['softwareupdate.failure-reason'] as { count?: number; reason?: string } | undefined
  const mdm = Array.isArray(items['mdm.os-update-status']) ? (items['mdm.os-update-status'] as Array<{ Status?: string }>) : []
  const mdmStatus = mdm.find((update) => typeof update.Status === 'string')?.Status ?? null
  const failed =
    typeof failure?.count === 'number' && failure.count > 0
      ? `the device reports ${failure.count} failed attempt(s)${failure.reason ? `: ${failure.reason}` : ''}`
      : mdmStatus && mdmFailures.test(mdmStatus)
        ? `the device reports ${mdmStatus}`
        : null
  return { installState: typeof ddmState === 'string' ? ddmState : mdmStatus, failure: failed }
}

export function createUpdatePolicies(deps: {
  store: UpdatePolicyStore
  latestRelease: LatestReleaseLookup
  /** A policy changed for the devices a tenant's policies may reach: their DDM sets are computed again. */
  policiesChanged: (tenantId: string | null) => Promise<void>
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  log: Logger
  now: () => Date
}): UpdatePolicies {
  const { store, log } = deps
  const outcome = <T>(result: T | 'name_taken' | 'unknown_tenant' | { groupNotUsable: string }, name: string): T => {
    if (result === 'name_taken') throw new OrchardError('conflict', `an update policy called ${name} exists already in this tenant`)
    if (result === 'unknown_tenant') throw invalidField('/tenant_id', 'no such tenant')
    if (result && typeof result === 'object' && 'groupNotUsable' in result) {
      throw invalidField(
        '/group_ids',
        `device group ${result.groupNotUsable} is not one this policy can target (its tenant's, its organisation's or central IT's)`,
      )
    }
    return result
  }

  async function targets(rows: readonly ComplianceRow[]): Promise<Map<string, PolicyTarget | undefined>> {
    const latest = await latestReleasesFor(rows, deps.latestRelease)
    return new Map(rows.map((row) => [row.deviceId, policyTarget(row.policy, catalogueModel(row), latest)]))
  }

  async function compliance(scope: AccessScope, filter: { policyId?: string; tenantId?: string | null }): Promise<ComplianceReport> {
    const rows = await store.complianceRows(scope, filter)
    const targetOf = await targets(rows)
    const now = deps.now()
    const items = rows.map((row): ComplianceItem => {
      const path = updatePath(row.productName, row.osVersion)
      const target = targetOf.get(row.deviceId)
      const facts = deviceFacts(row)
      const state = complianceState(target, path, { osVersion: row.osVersion, ...facts }, now)
      const detail =
        state === 'unsupported'
          ? target
            ? 'Orchard does not know how to update this model'
            : 'no release in the catalogue for this model'
          : state === 'failed'
            ? facts.failure
            : state === 'pending' || state === 'overdue'
              ? `to install by ${target!.deadline} (device local time)`
              : null
      return {
        policyId: row.policy.id,
        policyName: row.policy.name,
        deviceId: row.deviceId,
        tenantId: row.tenantId,
        serialNumber: row.serialNumber,
        model: row.productName,
        path,
        currentVersion: row.osVersion,
        target: target ?? null,
        state,
        detail,
      }
    })
    const policies = new Map<string, { policyId: string; name: string; counts: Record<ComplianceState, number> }>()
    for (const item of items) {
      let entry = policies.get(item.policyId)
      if (!entry) {
        entry = { policyId: item.policyId, name: item.policyName, counts: Object.fromEntries(states.map((s) => [s, 0])) as Record<ComplianceState, number> }
        policies.set(item.policyId, entry)
      }
      entry.counts[item.state]++
    }
    return { items, policies: [...policies.values()] }
  }

  return {
    list: (scope) => store.list(scope),
    async get(scope, id) {
      const row = await store.get(scope, id)
      if (!row) throw new OrchardError('not_found', `no update policy ${id}`)
      return row
    },
    async create(scope, requestedTenant, input) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const row = outcome(await store.create(scope, randomUUID(), tenantId, checked(input)), input.name)
      await deps.policiesChanged(tenantId)
      await scheduleLegacy()
      return row
    },
    async update(scope, id, input) {
      const row = outcome(await store.update(scope, id, checked(input)), input.name)
      if (!row) throw new OrchardError('not_found', `no update policy ${id}`)
      await deps.policiesChanged(row.tenant_id)
      await scheduleLegacy()
      return row
    },
    async remove(scope, id) {
      const row = await store.remove(scope, id)
      if (!row) throw new OrchardError('not_found', `no update policy ${id}`)
      await deps.policiesChanged(row.tenant_id)
    },
    compliance,
    scheduleLegacy,
  }

  async function scheduleLegacy(): Promise<number> {
    const report = await compliance(fullAccess, {})
    const groups = new Map<string, { version: string; action: string; deviceIds: string[] }>()
    for (const item of report.items) {
      if (item.path !== 'mdm' || !item.target || !['pending', 'overdue', 'failed'].includes(item.state)) continue
      // Before the deadline the device downloads and asks its user; after it, it installs.
      const action = item.state === 'overdue' ? 'InstallASAP' : 'Default'
      const key = `${item.target.version}\u0000${action}`
      const group = groups.get(key) ?? { version: item.target.version, action, deviceIds: [] }
      group.deviceIds.push(item.deviceId)
      groups.set(key, group)
    }
    let scheduled = 0
    for (const group of groups.values()) {
      const result = await deps.dispatcher.dispatch(fullAccess, {
        targets: { enrollmentIds: group.deviceIds },
        command: { kind: 'built', requestType: 'ScheduleOSUpdate', keys: { Updates: [{ ProductVersion: group.version, InstallAction: group.action }] } },
      })
      const queued = result.targets.filter((target) => target.result === 'queued').map((target) => target.enrollmentId)
      scheduled += queued.length
      if (queued.length > 0)
        await deps.dispatcher.dispatch(fullAccess, {
          targets: { enrollmentIds: queued },
          command: { kind: 'built', requestType: 'OSUpdateStatus', keys: {} },
        })
    }
    if (scheduled > 0) log.info({ devices: scheduled }, 'OS updates scheduled with MDM commands')
    return scheduled
  }
}
