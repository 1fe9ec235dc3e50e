// Admin API: queueing commands (typed JSON, raw plist, by IDs or by filter), reading them
// with per-target status and results, a channel's queue and history, and cancellation.
import { OrchardError } from '../errors.js'
import { decodeBase64 } from '../mdm/command-validation.js'
import { scopeForRoles, type Principal, type TenantTree } from '../access/access-control.js'
import type { CommandDispatcher, CommandSource, DispatchCaller, DispatchRequest, DispatchResult, DispatchTargets, PreparedDispatch } from './dispatch.js'
import type { BulkCommandJobs } from './bulk-command-job.js'
import { jobLocation } from '../jobs/job-json.js'
import type { AccessScope } from '../model/access.js'
import type { CommandAdmin } from './command-admin.js'
import { deviceFilterFrom } from '../fleet/device-json.js'
import type { Body } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { commandJson, commandSummaryJson, commandTargetJson, dispatchResultJson, dryRunJson } from './command-json.js'

export interface CommandHandlerDeps {
  dispatcher: CommandDispatcher
  commands: CommandAdmin
  tenants: TenantTree
  /** Above ORCHARD_JOB_THRESHOLD targets, POST /api/v1/commands answers 202 with a job. */
  bulkJobs?: BulkCommandJobs
}

type EnqueueBody = Body<'enqueueCommand'>

function exactlyOne(body: EnqueueBody, a: keyof EnqueueBody, b: keyof EnqueueBody): void {
  const count = Number(body[a] !== undefined) + Number(body[b] !== undefined)
  if (count !== 1) {
    throw new OrchardError('validation_failed', `send exactly one of ${a} and ${b}`, {
      details: { errors: [{ pointer: count === 0 ? `/${a}` : `/${b}`, detail: `exactly one of ${a} and ${b} is needed` }] },
    })
  }
}

export function commandHandlers(deps: CommandHandlerDeps): OperationHandlers {
  // Destructive commands to several devices are checked against the caller: its dry run's
  // token, and where it is an owner (dispatch.ts).
  async function callerOf(principal: Principal | undefined, confirmationToken: string | undefined): Promise<DispatchCaller> {
    if (!principal) throw new OrchardError('unauthorized', 'not authenticated')
    return {
      principalId: principal.id,
      ownerScope: await scopeForRoles(principal, ['owner'], deps.tenants),
      ...(confirmationToken !== undefined ? { confirmationToken } : {}),
    }
  }

  // A stored command was audited with it; one no target could take is answered as a
  // success all the same (the targets say why), so it is audited here.
  async function dispatch(scope: AccessScope, dispatchRequest: DispatchRequest | PreparedDispatch): Promise<DispatchResult> {
    const result =
      'candidates' in dispatchRequest ? await deps.dispatcher.dispatchPrepared(scope, dispatchRequest) : await deps.dispatcher.dispatch(scope, dispatchRequest)
    if (!result.stored)
      await deps.commands.recordUnstoredCommand(scope, { uuid: result.commandUuid, requestType: result.requestType, targets: result.targets.length })
    return result
  }

  async function dryRun(scope: AccessScope, dispatchRequest: DispatchRequest) {
    const result = await deps.dispatcher.dryRun(scope, dispatchRequest)
    await deps.commands.recordDryRun(scope, result)
    return dryRunJson(result)
  }

  const page = (query: { limit: number; cursor?: string }) => ({ limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) })

  return {
    async enqueueCommand(request, reply) {
      const { body } = request
      exactlyOne(body, 'enrollment_ids', 'filter')
      exactlyOne(body, 'command', 'plist_base64')
      let command: CommandSource
      if (body.plist_base64 !== undefined) {
        const payload = decodeBase64(body.plist_base64)
        if (!payload)
          throw new OrchardError('validation_failed', 'plist_base64 is not base64', {
            details: { errors: [{ pointer: '/plist_base64', detail: 'must be base64' }] },
          })
        if (body.command_uuid !== undefined)
          throw new OrchardError('validation_failed', 'a raw plist carries its own CommandUUID', {
            details: { errors: [{ pointer: '/command_uuid', detail: 'only with command' }] },
          })
        command = { kind: 'plist', payload }
      } else {
        command = { kind: 'typed', json: body.command, pointer: '/command', ...(body.command_uuid !== undefined ? { uuid: body.command_uuid } : {}) }
      }
      const targets: DispatchTargets =
        body.enrollment_ids !== undefined ? { enrollmentIds: body.enrollment_ids } : { filter: deviceFilterFrom(body.filter ?? {}) }
      const scope = accessOf(request)
      const dispatchRequest = {
        targets,
        command,
        ...(body.priority !== undefined ? { priority: body.priority } : {}),
        expiresAt: body.expires_at !== undefined ? new Date(body.expires_at) : null,
        push: body.push !== false,
        caller: await callerOf(request.principal, body.confirmation_token),
      }
      if (body.dry_run === true) return reply.code(200).send(await dryRun(scope, dispatchRequest))
      // The guard on destructive commands is checked here, before any job exists.
      const prepared = await deps.dispatcher.prepare(scope, dispatchRequest)
      const job = deps.bulkJobs ? await deps.bulkJobs.startIfLarge(scope, prepared) : null
      if (job) return reply.header('location', jobLocation(job.id)).code(202).send(job)
      return reply.code(201).send(dispatchResultJson(await dispatch(scope, prepared)))
    },

    async enqueueRawCommand(request, reply) {
      const { query } = request
      const enrollmentIds = request.params.ids
        .split(',')
        .map((id) => id.trim())
        .filter((id) => id !== '')
      if (enrollmentIds.length === 0) throw new OrchardError('validation_failed', 'name at least one enrollment ID in the path')
      // A body in another content type still reaches the handler: it is refused here.
      const payload: unknown = request.body
      if (!Buffer.isBuffer(payload) || payload.length === 0) {
        throw new OrchardError('validation_failed', 'the body must be a command plist (Content-Type application/x-apple-plist)')
      }
      const scope = accessOf(request)
      const dispatchRequest = {
        targets: { enrollmentIds },
        command: { kind: 'plist' as const, payload },
        ...(query.priority !== undefined ? { priority: query.priority } : {}),
        expiresAt: query.expires_at !== undefined ? new Date(query.expires_at) : null,
        push: query.push !== false,
        caller: await callerOf(request.principal, query.confirmation_token),
      }
      if (query.dry_run === true) return reply.code(200).send(await dryRun(scope, dispatchRequest))
      return reply.code(200).send(dispatchResultJson(await dispatch(scope, dispatchRequest)))
    },

    async listCommands(request) {
      const { query } = request
      const commands = await deps.commands.listCommands(
        accessOf(request),
        {
          ...(query.request_type !== undefined ? { requestType: query.request_type } : {}),
          ...(query.created_before !== undefined ? { createdBefore: new Date(query.created_before) } : {}),
          ...(query.created_after !== undefined ? { createdAfter: new Date(query.created_after) } : {}),
        },
        page(query),
      )
      return { items: commands.items.map(commandSummaryJson), next_cursor: commands.nextCursor }
    },

    async getCommand(request) {
      return commandJson(await deps.commands.getCommand(accessOf(request), request.params.command_uuid))
    },

    async listCommandTargets(request) {
      const { query } = request
      const targets = await deps.commands.listCommandTargets(
        accessOf(request),
        request.params.command_uuid,
        query.status ? { status: query.status } : {},
        page(query),
      )
      return { items: targets.items.map(commandTargetJson), next_cursor: targets.nextCursor }
    },

    async cancelCommand(request) {
      const uuid = request.params.command_uuid
      const outcome = await deps.commands.cancelCommand(
        accessOf(request),
        uuid,
        request.body.enrollment_ids,
        `cancelled by ${request.principal?.id ?? 'unknown'}`,
      )
      request.log.info({ command_uuid: uuid, cancelled: outcome.cancelled, in_flight: outcome.inFlight }, 'command cancelled')
      return { command_uuid: uuid, cancelled: outcome.cancelled, in_flight: outcome.inFlight, finished: outcome.finished, not_targeted: outcome.notTargeted }
    },

    async listEnrollmentCommands(request) {
      const { query } = request
      const commands = await deps.commands.listEnrollmentCommands(accessOf(request), request.params.enrollment_id, query.state, page(query))
      return { items: commands.items.map(commandTargetJson), next_cursor: commands.nextCursor }
    },

    async clearEnrollmentQueue(request) {
      const enrollmentId = request.params.enrollment_id
      const outcome = await deps.commands.clearQueue(accessOf(request), enrollmentId, `queue cleared by ${request.principal?.id ?? 'unknown'}`)
      request.log.info({ enrollment_id: enrollmentId, cancelled: outcome.cancelled }, 'queue cleared')
      return { cancelled: outcome.cancelled, in_flight: outcome.inFlight }
    },
  }
}
