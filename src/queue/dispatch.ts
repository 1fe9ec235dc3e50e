// Queueing commands from the admin API: typed JSON commands validated against Apple's
// schema, raw plists, targets by ID or by device filter, a per-target applicability check
// on what is known of each device, and a push to the targets that got the command.
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { buildCommand, readCommandPlist, type EncodedCommand } from '../mdm/command.js'
import { commandApplicability, platformFromProduct, validateTypedCommand, type NotApplicableReason } from '../mdm/command-validation.js'
import type { PlistDict } from '../mdm/plist.js'
import { scopeIncludes, type AccessScope } from '../model/access.js'
import type { DeviceDirectoryStore, DeviceFilter, TargetFacts } from '../fleet/device-directory-store.js'
import { commandTenant, type TenantTree } from '../access/access-control.js'
import { kindRefusal } from '../fleet/lifecycle-policy.js'
import { commandDigest, destructiveReason, type ConfirmationTokens } from './destructive-guard.js'
import type { CommandEnqueuer } from './enqueue.js'
import type { PushReport, PushService } from '../push/push-service.js'

export type CommandSource =
  /** `{ request_type, ...Apple keys }` as JSON; `pointer` prefixes error pointers (e.g. '/command'). */
  | { kind: 'typed'; json: unknown; pointer: string; uuid?: string }
  /** Built by the server itself (convenience actions). */
  | { kind: 'built'; requestType: string; keys: PlistDict }
  | { kind: 'plist'; payload: Buffer }

export type DispatchTargets = { enrollmentIds: readonly string[] } | { filter: DeviceFilter }

export interface DispatchRequest {
  targets: DispatchTargets
  command: CommandSource
  priority?: number
  expiresAt?: Date | null
  push?: boolean
  /**
   * Who sends it, for the guard on destructive commands to a filter or several devices: the
   * confirmation token of their dry run, and the scope where they hold the owner role.
   */
  caller?: DispatchCaller
}

export interface DispatchCaller {
  principalId: string
  confirmationToken?: string
  /** Where the caller is an owner (null: nowhere); needed above the destructive-command limit. */
  ownerScope: AccessScope | null
}

export interface DryRunResult {
  requestType: string
  /** The devices that would get the command. */
  count: number
  /** The first of them. */
  targets: TargetFacts[]
  notApplicable: number
  unknown: number
  /** Why the command is destructive, or null. */
  destructive: string | null
  /** Whether the real call must carry the confirmation token. */
  confirmationRequired: boolean
  /** Whether the real call needs the owner role (more devices than the limit). */
  ownerRequired: boolean
  confirmationToken: string
  expiresAt: Date
}

export type TargetResult =
  | { enrollmentId: string; result: 'queued' | 'unknown_enrollment' | 'enrollment_disabled' }
  | { enrollmentId: string; result: 'not_applicable'; reason: NotApplicableReason | 'not_for_personal_device'; detail: string }

export interface DispatchResult {
  commandUuid: string
  requestType: string
  stored: boolean
  targets: TargetResult[]
  push: PushReport | { error: string } | null
}

/** A dispatch resolved and checked (targets, applicability, the guard), nothing queued yet. */
export interface PreparedDispatch {
  command: EncodedCommand
  request: DispatchRequest
  /** Every target asked for, in order. */
  order: string[]
  /** Targets the command can go to. */
  candidates: string[]
  /** Why the others cannot (unknown, not applicable). */
  skipped: TargetResult[]
  /** The tenant the command is filed under. */
  tenantId: string | null
  destructive: string | null
}

export interface CommandDispatcher {
  dispatch(scope: AccessScope, request: DispatchRequest): Promise<DispatchResult>
  /** Resolves the targets and checks the guard on destructive commands; queues nothing (a job queues it). */
  prepare(scope: AccessScope, request: DispatchRequest): Promise<PreparedDispatch>
  /** Queues a prepared dispatch now and pushes its targets. */
  dispatchPrepared(scope: AccessScope, prepared: PreparedDispatch): Promise<DispatchResult>
  /** What dispatch would do, without queueing: the targets, and the confirmation token a destructive command needs. */
  dryRun(scope: AccessScope, request: DispatchRequest): Promise<DryRunResult>
  /** Pushes channels that just got commands queued with push: false; never throws. */
  pushOnly(scope: AccessScope, enrollmentIds: readonly string[]): Promise<PushReport | { error: string }>
}

/**
 * Most targets one filter may select in one call: the request holds their facts in memory
 * (~0.4 KB each) before the job takes over. Above a whole 100,000-device fleet with room to grow.
 */
export const maxFilterTargets = 250_000

/** Targets a dry run lists. */
const dryRunListed = 20

export interface CommandDispatcherDeps {
  enqueuer: CommandEnqueuer
  directory: DeviceDirectoryStore
  push: PushService
  tenants: Pick<TenantTree, 'organisationOf'>
  /** Destructive commands: the enrollment profile's identifier, the tokens, and the most devices a non-owner may target at once. */
  destructive: { mdmProfileIdentifier: string; tokens: ConfirmationTokens; ownerLimit: number }
  logger: Logger
}

export function createCommandDispatcher(deps: CommandDispatcherDeps): CommandDispatcher {
  const log = deps.logger.child({ service: 'command-dispatch' })

  function encode(source: CommandSource): EncodedCommand {
    switch (source.kind) {
      case 'plist':
        return readCommandPlist(source.payload)
      case 'built':
        return buildCommand(source.requestType, source.keys)
      case 'typed': {
        const checked = validateTypedCommand(source.json)
        if (!checked.ok) {
          const errors = checked.errors.map((error) => ({ pointer: `${source.pointer}${error.pointer}`, detail: error.detail }))
          const first = errors[0]!
          throw new OrchardError(
            'validation_failed',
            `the command does not match Apple's schema: ${first.pointer} ${first.detail}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`,
            { details: { errors } },
          )
        }
        return buildCommand(checked.requestType, checked.keys, source.uuid)
      }
    }
  }

  function applicability(
    requestType: string,
    facts: TargetFacts,
  ): { ok: true } | { ok: false; reason: NotApplicableReason | 'not_for_personal_device'; detail: string } {
    const apple = commandApplicability(requestType, {
      platform: platformFromProduct(facts.productName, facts.model),
      osVersion: facts.osVersion,
      supervised: facts.supervised,
      userEnrollment: facts.userEnrollment,
      channel: facts.channel,
    })
    if (!apple.ok) return apple
    // Orchard's own rule, even where Apple would allow it: some commands never go to a personal device.
    const refusal = kindRefusal(requestType, facts.kind)
    return refusal ? { ok: false, reason: 'not_for_personal_device', detail: refusal } : apple
  }

  // The command is stored: a failing push must not turn the answer into an error (a client
  // retrying would queue it twice). The re-push loop tries again later.
  async function pushQuietly(enrollmentIds: readonly string[]): Promise<PushReport | { error: string }> {
    try {
      return await deps.push.pushEnrollments(enrollmentIds)
    } catch (error) {
      log.error({ err: error, enrollments: enrollmentIds.length }, 'push after enqueue failed')
      return { error: `push failed: ${(error as Error).message}` }
    }
  }

  interface Resolved {
    command: EncodedCommand
    /** Every target asked for, in order. */
    order: string[]
    factsById: Map<string, TargetFacts>
    results: Map<string, TargetResult>
    /** Targets the command can go to. */
    candidates: string[]
    destructive: string | null
    /** A destructive command to a filter or several devices: two steps. */
    guarded: boolean
    ownerRequired: boolean
  }

  async function resolve(scope: AccessScope, request: DispatchRequest): Promise<Resolved> {
    const command = encode(request.command)
    const targetSpec = request.targets
    const named = 'enrollmentIds' in targetSpec ? [...new Set(targetSpec.enrollmentIds)] : undefined
    const found =
      'enrollmentIds' in targetSpec
        ? await deps.directory.targetFacts(scope, named!)
        : await deps.directory.findTargets(scope, targetSpec.filter, maxFilterTargets + 1)
    // Only a filter names a group; one the caller cannot see is not an empty one.
    if (found === 'unknown_group') throw new OrchardError('not_found', `no device group ${'filter' in targetSpec ? targetSpec.filter.groupId : ''}`)
    const facts = found
    if (!named && facts.length > maxFilterTargets) {
      throw new OrchardError('validation_failed', `the filter selects more than ${maxFilterTargets} devices; narrow it or send several requests`)
    }
    const factsById = new Map(facts.map((f) => [f.enrollmentId, f]))
    const results = new Map<string, TargetResult>()
    const candidates: string[] = []
    const order = named ?? facts.map((f) => f.enrollmentId)
    for (const id of order) {
      const target = factsById.get(id)
      if (!target) {
        results.set(id, { enrollmentId: id, result: 'unknown_enrollment' })
        continue
      }
      const verdict = applicability(command.requestType, target)
      if (!verdict.ok) results.set(id, { enrollmentId: id, result: 'not_applicable', reason: verdict.reason, detail: verdict.detail })
      else candidates.push(id)
    }
    const destructive = destructiveReason(command, deps.destructive.mdmProfileIdentifier)
    const guarded = destructive !== null && (named === undefined || named.length > 1)
    return {
      command,
      order,
      factsById,
      results,
      candidates,
      destructive,
      guarded,
      ownerRequired: destructive !== null && candidates.length > deps.destructive.ownerLimit,
    }
  }

  function bindingOf(resolved: Resolved, caller: DispatchCaller) {
    return {
      principalId: caller.principalId,
      requestType: resolved.command.requestType,
      commandDigest: commandDigest(resolved.command),
      targetIds: resolved.candidates,
    }
  }

  // The guard on destructive commands: the caller's confirmation of this very target set,
  // and the owner role for every target's tenant above the limit.
  function checkGuard(resolved: Resolved, caller: DispatchCaller | undefined): void {
    if (!resolved.guarded && !resolved.ownerRequired) return
    if (!caller) throw new OrchardError('internal', `a destructive command (${resolved.command.requestType}) to several devices needs a caller to confirm it`)
    if (resolved.ownerRequired) {
      const owner = caller.ownerScope
      const outside = resolved.candidates.filter((id) => !owner || !scopeIncludes(owner, resolved.factsById.get(id)!.tenantId))
      if (outside.length > 0) {
        throw new OrchardError(
          'forbidden',
          `${resolved.destructive}: sending it to ${resolved.candidates.length} devices (more than ${deps.destructive.ownerLimit}, ORCHARD_DESTRUCTIVE_OWNER_LIMIT) needs the owner role for every target's tenant (${outside.length} are outside it)`,
        )
      }
    }
    if (!resolved.guarded) return
    if (caller.confirmationToken === undefined) {
      throw new OrchardError(
        'confirmation_required',
        `${resolved.destructive}, and this call targets ${resolved.candidates.length} device(s) by ${resolved.order.length > 1 ? 'a list' : 'a filter'}: run it with dry_run first, check the targets, then send it again with the confirmation_token the dry run answered`,
      )
    }
    const check = deps.destructive.tokens.check(caller.confirmationToken, bindingOf(resolved, caller))
    if (!check.ok) throw new OrchardError('confirmation_invalid', check.detail, { details: { problem: check.problem } })
  }

  async function prepare(scope: AccessScope, request: DispatchRequest): Promise<PreparedDispatch> {
    const resolved = await resolve(scope, request)
    checkGuard(resolved, request.caller)
    const { command, factsById, candidates } = resolved
    const tenantId = candidates.length > 0 ? await commandTenant(new Set(candidates.map((id) => factsById.get(id)!.tenantId)), scope, deps.tenants) : null
    const skipped = [...resolved.results.values()]
    return { command, request, order: resolved.order, candidates, skipped, tenantId, destructive: resolved.destructive }
  }

  async function dispatchPrepared(scope: AccessScope, resolved: PreparedDispatch): Promise<DispatchResult> {
    const { command, candidates, request } = resolved
    const results = new Map(resolved.skipped.map((result) => [result.enrollmentId, result]))
    let stored = false
    if (candidates.length > 0) {
      const enqueued = await deps.enqueuer.enqueueCommand(candidates, command, {
        priority: request.priority,
        expiresAt: request.expiresAt ?? null,
        tenantId: resolved.tenantId,
        scope,
      })
      stored = enqueued.stored
      for (const target of enqueued.targets) results.set(target.enrollmentId, { enrollmentId: target.enrollmentId, result: target.outcome })
    }
    const targets = resolved.order.map((id) => results.get(id)!)
    const queued = targets.filter((t) => t.result === 'queued').map((t) => t.enrollmentId)
    if (resolved.destructive !== null)
      log.warn(
        { request_type: command.requestType, command_uuid: command.uuid, targets: queued.length, principal_id: request.caller?.principalId },
        `destructive command queued: ${resolved.destructive}`,
      )

    const push = request.push !== false && queued.length > 0 ? await pushQuietly(queued) : null
    return { commandUuid: command.uuid, requestType: command.requestType, stored, targets, push }
  }

  return {
    prepare,
    dispatchPrepared,
    async dispatch(scope, request) {
      return dispatchPrepared(scope, await prepare(scope, request))
    },

    async dryRun(scope, request) {
      if (!request.caller) throw new OrchardError('internal', 'a dry run needs a caller')
      const resolved = await resolve(scope, request)
      const { token, expiresAt } = deps.destructive.tokens.issue(bindingOf(resolved, request.caller))
      const values = [...resolved.results.values()]
      return {
        requestType: resolved.command.requestType,
        count: resolved.candidates.length,
        targets: resolved.candidates.slice(0, dryRunListed).map((id) => resolved.factsById.get(id)!),
        notApplicable: values.filter((r) => r.result === 'not_applicable').length,
        unknown: values.filter((r) => r.result === 'unknown_enrollment').length,
        destructive: resolved.destructive,
        confirmationRequired: resolved.guarded,
        ownerRequired: resolved.ownerRequired,
        confirmationToken: token,
        expiresAt,
      }
    },

    async pushOnly(_scope, enrollmentIds) {
      return pushQuietly(enrollmentIds)
    },
  }
}
