// Queueing commands from the admin API: typed JSON commands validated against Apple's
// schema, raw plists, targets by ID or by device filter, a per-target applicability check
// on what is known of each device, and a push to the targets that got the command.
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { buildCommand, readCommandPlist, type EncodedCommand } from '../mdm/command.js'
import { commandApplicability, platformFromProduct, validateTypedCommand, type NotApplicableReason } from '../mdm/command-validation.js'
import type { PlistDict } from '../mdm/plist.js'
import type { AccessScope } from '../storage/access-scope.js'
import type { DeviceDirectoryStore, DeviceFilter, TargetFacts } from '../storage/device-directory-store.js'
import { commandTenant, type TenantTree } from './access-control.js'
import { kindRefusal } from './lifecycle-policy.js'
import type { CommandService } from './command-service.js'
import type { PushReport, PushService } from './push-service.js'

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

export interface CommandDispatcher {
  dispatch(scope: AccessScope, request: DispatchRequest): Promise<DispatchResult>
  /** Pushes channels that just got commands queued with push: false; never throws. */
  pushOnly(scope: AccessScope, enrollmentIds: readonly string[]): Promise<PushReport | { error: string }>
}

/** Most targets one filter may select in one call. */
export const maxFilterTargets = 100_000

export function createCommandDispatcher(deps: { commands: CommandService; directory: DeviceDirectoryStore; push: PushService; tenants: Pick<TenantTree, 'organisationOf'>; logger: Logger }): CommandDispatcher {
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
          throw new OrchardError('validation_failed', `the command does not match Apple's schema: ${first.pointer} ${first.detail}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, { details: { errors } })
        }
        return buildCommand(checked.requestType, checked.keys, source.uuid)
      }
    }
  }

  function applicability(requestType: string, facts: TargetFacts): { ok: true } | { ok: false; reason: NotApplicableReason | 'not_for_personal_device'; detail: string } {
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

  return {
    async dispatch(scope, request) {
      const command = encode(request.command)
      const targetSpec = request.targets
      const named = 'enrollmentIds' in targetSpec ? [...new Set(targetSpec.enrollmentIds)] : undefined
      const facts = 'enrollmentIds' in targetSpec ? await deps.directory.targetFacts(scope, named!) : await deps.directory.findTargets(scope, targetSpec.filter, maxFilterTargets + 1)
      if (!named && facts.length > maxFilterTargets) {
        throw new OrchardError('validation_failed', `the filter selects more than ${maxFilterTargets} devices; narrow it or send several requests`)
      }
      const factsById = new Map(facts.map((f) => [f.enrollmentId, f]))
      const results = new Map<string, TargetResult>()
      const candidates: string[] = []
      for (const id of named ?? facts.map((f) => f.enrollmentId)) {
        const target = factsById.get(id)
        if (!target) {
          results.set(id, { enrollmentId: id, result: 'unknown_enrollment' })
          continue
        }
        const verdict = applicability(command.requestType, target)
        if (!verdict.ok) results.set(id, { enrollmentId: id, result: 'not_applicable', reason: verdict.reason, detail: verdict.detail })
        else candidates.push(id)
      }

      let stored = false
      if (candidates.length > 0) {
        const tenantId = await commandTenant(new Set(candidates.map((id) => factsById.get(id)!.tenantId)), scope, deps.tenants)
        const enqueued = await deps.commands.enqueueCommand(candidates, command, { priority: request.priority, expiresAt: request.expiresAt ?? null, tenantId, scope })
        stored = enqueued.stored
        for (const target of enqueued.targets) results.set(target.enrollmentId, { enrollmentId: target.enrollmentId, result: target.outcome })
      }
      const targets = (named ?? facts.map((f) => f.enrollmentId)).map((id) => results.get(id)!)
      const queued = targets.filter((t) => t.result === 'queued').map((t) => t.enrollmentId)

      const push = request.push !== false && queued.length > 0 ? await pushQuietly(queued) : null
      return { commandUuid: command.uuid, requestType: command.requestType, stored, targets, push }
    },

    async pushOnly(_scope, enrollmentIds) {
      return pushQuietly(enrollmentIds)
    },
  }
}
