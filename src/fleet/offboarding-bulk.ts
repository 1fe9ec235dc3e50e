// The leavers action: offboard every device of a person (or a list of devices) in one call,
// each by its kind (offboarding.ts). It takes two steps, as destructive commands to several
// devices do (queue/destructive-guard.ts): a dry run answers each device's plan and a
// confirmation token bound to the caller, the options and exactly those devices with those
// plans; the real call must carry it, and is refused when anything of it changed. Above
// ORCHARD_DESTRUCTIVE_OWNER_LIMIT devices it needs the owner role for every device's tenant.
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { scopeIncludes, type AccessScope } from '../model/access.js'
import type { DeviceKind } from '../model/devices.js'
import type { ConfirmationBinding, ConfirmationTokens } from '../queue/destructive-guard.js'
import type { Offboarding } from './offboarding.js'
import type { OffboardMethod, OffboardOptions } from './offboarding-plan.js'
import { personDeviceLimit, type OffboardingStore, type PersonMatch } from './offboarding-store.js'

export interface BulkOffboardInput {
  /** Exactly one of person and deviceIds. */
  person?: string
  deviceIds?: readonly string[]
  options: OffboardOptions
}

export interface BulkCaller {
  principalId: string
  /** Where the caller is an owner (null: nowhere); needed above the owner limit. */
  ownerScope: AccessScope | null
  confirmationToken?: string
}

export interface BulkTarget {
  deviceId: string
  serialNumber: string | null
  tenantId: string | null
  kind: DeviceKind | null
  matchedBy: PersonMatch | null
  /** What would be done; skip: nothing to do; refused: it cannot be done as asked; not_found: no such device for you. */
  plan: OffboardMethod | 'skip' | 'refused' | 'not_found'
  detail: string
  /** The problem's reason or code when refused. */
  reason: string | null
}

export interface BulkDryRun {
  targets: BulkTarget[]
  /** The devices that would be offboarded. */
  count: number
  ownerRequired: boolean
  confirmationToken: string
  expiresAt: Date
}

export interface BulkOutcome extends BulkTarget {
  outcome: 'started' | 'retired' | 'skipped' | 'refused' | 'not_found'
  lifecycleActionId: string | null
}

/** A real call whose plans, owner role and confirmation were checked; nothing done yet. */
export interface PreparedOffboarding {
  input: BulkOffboardInput
  targets: BulkTarget[]
}

export interface OffboardingBulk {
  dryRun(scope: AccessScope, input: BulkOffboardInput, caller: BulkCaller): Promise<BulkDryRun>
  run(scope: AccessScope, input: BulkOffboardInput, caller: BulkCaller): Promise<BulkOutcome[]>
  /** The real call's checks (a job offboards the devices afterwards, offboardTarget by target). */
  prepare(scope: AccessScope, input: BulkOffboardInput, caller: BulkCaller): Promise<PreparedOffboarding>
  runPrepared(scope: AccessScope, prepared: PreparedOffboarding): Promise<BulkOutcome[]>
  /** One device of a checked call, audited as its own write of the scope's actor. */
  offboardTarget(scope: AccessScope, options: OffboardOptions, target: BulkTarget): Promise<BulkOutcome>
}

export interface OffboardingBulkDeps {
  offboarding: Offboarding
  store: Pick<OffboardingStore, 'personDevices' | 'recordBulk'>
  tokens: ConfirmationTokens
  /** Most devices a caller without the owner role may offboard in one call. */
  ownerLimit: number
  log: Logger
}

/** What a confirmation of a leavers call is bound to besides its targets: the options (a digest). */
const requestType = 'Offboard'

function optionsDigest(options: OffboardOptions): string {
  const { returnToService, goneForDays, reason, erase } = options
  const canonical = JSON.stringify([
    returnToService ?? null,
    goneForDays ?? null,
    reason ?? null,
    erase.pin ?? null,
    erase.preserveDataPlan ?? null,
    erase.disallowProximitySetup ?? null,
  ])
  return createHash('sha256').update(canonical).digest('hex')
}

/** The same scope with an actor of its own: each device's offboarding is audited as its own write. */
function withOwnAuditRow(scope: AccessScope): AccessScope {
  if (!scope.actor) return scope
  const actor = { ...scope.actor, recorded: false }
  return scope.kind === 'all' ? { kind: 'all', actor } : { kind: 'tenants', ids: scope.ids, actor }
}

export function createOffboardingBulk(deps: OffboardingBulkDeps): OffboardingBulk {
  const { offboarding, store, log } = deps

  async function resolve(scope: AccessScope, input: BulkOffboardInput): Promise<BulkTarget[]> {
    let ids: Array<{ deviceId: string; matchedBy: PersonMatch | null }>
    if (input.person !== undefined) {
      const found = await store.personDevices(scope, input.person)
      if (found.length > personDeviceLimit) {
        throw new OrchardError('validation_failed', `person: more than ${personDeviceLimit} devices match ${input.person}: that is not one person's`, {
          details: { errors: [{ pointer: '/person', detail: `matches more than ${personDeviceLimit} devices` }] },
        })
      }
      ids = found
    } else {
      ids = [...new Set(input.deviceIds ?? [])].map((deviceId) => ({ deviceId, matchedBy: null }))
    }
    const targets: BulkTarget[] = []
    for (const { deviceId, matchedBy } of ids) {
      const base = { deviceId, matchedBy, serialNumber: null, tenantId: null, kind: null, reason: null }
      try {
        const { device, plan } = await offboarding.plan(scope, deviceId, input.options)
        const facts = { serialNumber: device.serialNumber, tenantId: device.tenantId, kind: device.kind }
        targets.push({ ...base, ...facts, plan: plan.method ?? 'skip', detail: plan.why, reason: plan.method === null ? plan.skip : null })
      } catch (error) {
        if (!(error instanceof OrchardError) || (error.code !== 'not_found' && error.code !== 'not_applicable' && error.code !== 'conflict')) throw error
        const reason = typeof error.details?.['reason'] === 'string' ? error.details['reason'] : error.code
        targets.push({ ...base, plan: error.code === 'not_found' ? 'not_found' : 'refused', detail: error.message, reason })
      }
    }
    return targets
  }

  const acted = (targets: BulkTarget[]) => targets.filter((target) => target.plan !== 'skip' && target.plan !== 'refused' && target.plan !== 'not_found')

  function bindingOf(targets: BulkTarget[], input: BulkOffboardInput, caller: BulkCaller): ConfirmationBinding {
    return {
      principalId: caller.principalId,
      requestType,
      commandDigest: optionsDigest(input.options),
      targetIds: acted(targets).map((target) => `${target.deviceId}=${target.plan}`),
    }
  }

  const ownerRequired = (targets: BulkTarget[]) => acted(targets).length > deps.ownerLimit

  /** The tenant the call's own audit row is filed under: its devices' one tenant, else the caller's. */
  function auditTenant(scope: AccessScope, targets: BulkTarget[]): string | null {
    const tenants = new Set(targets.filter((target) => target.plan !== 'not_found').map((target) => target.tenantId))
    if (tenants.size === 1) return [...tenants][0]!
    return scope.kind === 'tenants' ? (scope.ids[0] ?? null) : null
  }

  const summary = (targets: BulkTarget[]) => targets.map((target) => ({ device_id: target.deviceId, plan: target.plan }))

  async function offboardTarget(scope: AccessScope, options: OffboardOptions, target: BulkTarget): Promise<BulkOutcome> {
    if (target.plan === 'skip' || target.plan === 'refused' || target.plan === 'not_found') {
      return { ...target, outcome: target.plan === 'skip' ? 'skipped' : target.plan, lifecycleActionId: null }
    }
    try {
      const action = await offboarding.offboard(withOwnAuditRow(scope), target.deviceId, options)
      return { ...target, outcome: action.action === 'retire' ? 'retired' : 'started', lifecycleActionId: action.id }
    } catch (error) {
      if (!(error instanceof OrchardError) || error.status >= 500) throw error
      const reason = typeof error.details?.['reason'] === 'string' ? error.details['reason'] : error.code
      return { ...target, outcome: 'refused', detail: error.message, reason, lifecycleActionId: null }
    }
  }

  async function prepare(scope: AccessScope, input: BulkOffboardInput, caller: BulkCaller): Promise<PreparedOffboarding> {
    const targets = await resolve(scope, input)
    const acting = acted(targets)
    if (ownerRequired(targets)) {
      const outside = acting.filter((target) => !caller.ownerScope || !scopeIncludes(caller.ownerScope, target.tenantId))
      if (outside.length > 0) {
        throw new OrchardError(
          'forbidden',
          `offboarding ${acting.length} devices (more than ${deps.ownerLimit}, ORCHARD_DESTRUCTIVE_OWNER_LIMIT) needs the owner role for every device's tenant (${outside.length} are outside it)`,
        )
      }
    }
    if (caller.confirmationToken === undefined) {
      throw new OrchardError(
        'confirmation_required',
        `offboarding erases or takes out of management ${acting.length} device(s): run it with dry_run first, check each device's plan, then send it again with the confirmation_token the dry run answered`,
      )
    }
    const check = deps.tokens.check(caller.confirmationToken, bindingOf(targets, input, caller))
    if (!check.ok) throw new OrchardError('confirmation_invalid', check.detail, { details: { problem: check.problem } })
    return { input, targets }
  }

  async function runPrepared(scope: AccessScope, { input, targets }: PreparedOffboarding): Promise<BulkOutcome[]> {
    const outcomes: BulkOutcome[] = []
    for (const target of targets) outcomes.push(await offboardTarget(scope, input.options, target))
    const results = outcomes.map((outcome) => ({ device_id: outcome.deviceId, outcome: outcome.outcome, lifecycle_action_id: outcome.lifecycleActionId }))
    await store.recordBulk(scope, auditTenant(scope, targets), { person: input.person ?? null, results })
    log.info({ person: input.person ?? null, started: outcomes.filter((o) => o.outcome === 'started').length, devices: outcomes.length }, 'leavers: offboarded')
    return outcomes
  }

  return {
    prepare,
    runPrepared,
    offboardTarget,
    async dryRun(scope, input, caller) {
      const targets = await resolve(scope, input)
      const { token, expiresAt } = deps.tokens.issue(bindingOf(targets, input, caller))
      await store.recordBulk(scope, auditTenant(scope, targets), { dry_run: true, person: input.person ?? null, targets: summary(targets) })
      return { targets, count: acted(targets).length, ownerRequired: ownerRequired(targets), confirmationToken: token, expiresAt }
    },

    async run(scope, input, caller) {
      return runPrepared(scope, await prepare(scope, input, caller))
    },
  }
}
