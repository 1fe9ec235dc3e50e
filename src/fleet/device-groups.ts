// Device groups per tenant (static and smart) for the admin API, and what a change means for
// the blueprints and update policies targeting a group: its devices converge again at once.
// Smart groups follow inventory by themselves: targeting evaluates their filters whenever it
// runs (a device's lists, its declaration set after an inventory answer, the periodic check).
import { randomUUID } from 'node:crypto'
import { invalidField, OrchardError } from '../errors.js'
import type { SmartGroupFilter } from '../db/schema-groups.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { DeviceGroupInput, DeviceGroupRow, DeviceGroupStore, MembershipChange } from './device-group-store.js'

export type { DeviceGroupInput, DeviceGroupRow }

export interface DeviceGroups {
  list(scope: AccessScope, filter: { tenantId?: string | null }): Promise<DeviceGroupRow[]>
  get(scope: AccessScope, id: string): Promise<DeviceGroupRow & { deviceCount: number }>
  create(scope: AccessScope, tenantId: string | null | undefined, input: DeviceGroupInput): Promise<DeviceGroupRow>
  update(scope: AccessScope, id: string, input: DeviceGroupInput): Promise<DeviceGroupRow>
  remove(scope: AccessScope, id: string): Promise<void>
  changeMembers(scope: AccessScope, id: string, change: { add: readonly string[]; remove: readonly string[] }): Promise<MembershipChange>
  /**
   * An inventory answer may have moved the device into or out of smart groups: when any is
   * targeted, `deviceTargetsChanged` (its declaration set; its profiles and apps follow from
   * the lists it reports).
   */
  inventoryReported(deviceId: string, requestType: string): Promise<void>
}

export interface DeviceGroupsDeps {
  store: DeviceGroupStore
  /** A group that blueprints or update policies target changed: the devices of `tenantId` converge again (their app lists too with `withApps`). */
  targetsChanged: (scope: AccessScope, tenantId: string | null, withApps: boolean) => Promise<void>
  deviceTargetsChanged: (deviceId: string) => Promise<void>
}

/** The answers smart group filters read. */
const inventoryRequestTypes = new Set(['DeviceInformation', 'InstalledApplicationList', 'ProfileList'])

/** What the schema cannot say about a filter. */
function filterChecked(filter: SmartGroupFilter | null): SmartGroupFilter | null {
  if (filter === null) return null
  const { os_version_at_least: least, os_version_below: below } = filter
  if (least !== undefined && below !== undefined && compareVersions(least, below) >= 0) {
    throw invalidField('/filter/os_version_below', `must be above os_version_at_least (${least}): no device could match`)
  }
  if (filter.not_seen_for_days !== undefined && filter.seen_within_days !== undefined && filter.seen_within_days <= filter.not_seen_for_days) {
    throw invalidField('/filter/seen_within_days', 'must be more than not_seen_for_days: no device could match')
  }
  for (const [present, absent] of [
    ['app_installed', 'app_not_installed'],
    ['profile_installed', 'profile_not_installed'],
  ] as const) {
    if (filter[present] !== undefined && filter[present] === filter[absent]) {
      throw invalidField(`/filter/${absent}`, `is the same as ${present}: no device could match`)
    }
  }
  return filter
}

/** As orchard_version_parts compares them: numbers, padded to three parts. */
function compareVersions(a: string, b: string): number {
  const parts = (v: string) => [...v.split('.').map(Number), 0, 0].slice(0, 3)
  const [x, y] = [parts(a), parts(b)]
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return 0
}

export function createDeviceGroups(deps: DeviceGroupsDeps): DeviceGroups {
  const { store } = deps
  const noGroup = (id: string) => new OrchardError('not_found', `no device group ${id}`)
  const nameTaken = (name: string) => new OrchardError('conflict', `a device group called ${name} exists already in this tenant`)

  async function groupOf(scope: AccessScope, id: string): Promise<DeviceGroupRow> {
    const row = await store.get(scope, id)
    if (!row) throw noGroup(id)
    return row
  }

  async function followed(scope: AccessScope, group: DeviceGroupRow): Promise<void> {
    const { targeted, apps } = await store.targeting(group.id)
    if (targeted) await deps.targetsChanged(scope, group.tenant_id, apps)
  }

  return {
    list: (scope, filter) => store.list(scope, filter),
    async get(scope, id) {
      const row = await groupOf(scope, id)
      return { ...row, deviceCount: await store.count(scope, row) }
    },
    async create(scope, requestedTenant, input) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const row = await store.create(scope, randomUUID(), tenantId, { ...input, filter: filterChecked(input.filter) })
      if (row === 'name_taken') throw nameTaken(input.name)
      if (row === 'unknown_tenant') throw invalidField('/tenant_id', 'no such tenant')
      return row
    },
    async update(scope, id, input) {
      const row = await store.update(scope, id, { ...input, filter: filterChecked(input.filter) })
      if (row === undefined) throw noGroup(id)
      if (row === 'name_taken') throw nameTaken(input.name)
      if (row === 'kind_changed') {
        throw new OrchardError('conflict', 'a static group stays static and a smart group smart: create a new group instead', {
          details: { errors: [{ pointer: '/filter', detail: input.filter === null ? 'a smart group needs its filter' : 'a static group takes no filter' }] },
        })
      }
      await followed(scope, row)
      return row
    },
    async remove(scope, id) {
      const outcome = await store.remove(scope, id)
      if (outcome === undefined) throw noGroup(id)
      if ('blueprints' in outcome) {
        const names = [...outcome.blueprints.map((b) => `blueprint ${b.name}`), ...outcome.updatePolicies.map((p) => `update policy ${p.name}`)]
        throw new OrchardError('conflict', `the group is targeted by ${names.join(', ')}: remove it from them first`, {
          details: { blueprint_ids: outcome.blueprints.map((b) => b.id), update_policy_ids: outcome.updatePolicies.map((p) => p.id) },
        })
      }
    },
    async changeMembers(scope, id, change) {
      const group = await groupOf(scope, id)
      if (group.filter !== null) throw new OrchardError('conflict', `${group.name} is a smart group: its filter decides its devices`)
      const both = change.add.filter((deviceId) => change.remove.includes(deviceId))
      if (both.length > 0) throw invalidField('/remove', `names devices that /add names too: ${both.slice(0, 5).join(', ')}`)
      const result = await store.changeMembers(scope, group, change)
      if (result.added.length > 0 || result.removed.length > 0) await followed(scope, group)
      return result
    },
    async inventoryReported(deviceId, requestType) {
      if (inventoryRequestTypes.has(requestType) && (await store.smartGroupsTargeted())) await deps.deviceTargetsChanged(deviceId)
    },
  }
}
