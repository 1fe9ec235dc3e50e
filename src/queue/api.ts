// Admin API: queueing commands (typed JSON, raw plist, by IDs or by filter), reading them
// with per-target status and results, a channel's queue and history, and cancellation.
import { OrchardError } from '../errors.js'
import { decodeBase64 } from '../mdm/command-validation.js'
import type { FastifyRequest } from 'fastify'
import { scopeForRoles, type TenantTree } from '../access/access-control.js'
import type { CommandDispatcher, CommandSource, DispatchCaller, DispatchResult, DispatchTargets, DryRunResult } from './dispatch.js'
import type { AccessScope } from '../model/access.js'
import type { CommandAdminStore } from './command-admin-store.js'
import type { DeviceDirectoryStore } from '../fleet/device-directory-store.js'
import type { CommandTargetStatus } from '../model/commands.js'
import { deviceFilterFrom } from '../fleet/devices-api.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { commandJson, commandSummaryJson, commandTargetJson, dispatchResultJson } from '../http/views.js'

export interface CommandHandlerDeps {
  dispatcher: CommandDispatcher
  commandAdmin: CommandAdminStore
  directory: DeviceDirectoryStore
  tenants: TenantTree
}

interface EnqueueBody {
  enrollment_ids?: string[]
  filter?: Record<string, unknown>
  command?: Record<string, unknown>
  plist_base64?: string
  command_uuid?: string
  priority?: number
  expires_at?: string
  push?: boolean
  dry_run?: boolean
  confirmation_token?: string
}

function exactlyOne(body: EnqueueBody, a: keyof EnqueueBody, b: keyof EnqueueBody): void {
  const count = Number(body[a] !== undefined) + Number(body[b] !== undefined)
  if (count !== 1) {
    throw new OrchardError('validation_failed', `send exactly one of ${a} and ${b}`, { details: { errors: [{ pointer: count === 0 ? `/${a}` : `/${b}`, detail: `exactly one of ${a} and ${b} is needed` }] } })
  }
}

export function dryRunJson(result: DryRunResult) {
  return {
    dry_run: true as const,
    request_type: result.requestType,
    count: result.count,
    targets: result.targets.map((t) => ({ enrollment_id: t.enrollmentId, device_id: t.deviceId, serial_number: t.serialNumber, tenant_id: t.tenantId, kind: t.kind })),
    not_applicable: result.notApplicable,
    unknown: result.unknown,
    destructive: result.destructive,
    confirmation_required: result.confirmationRequired,
    owner_required: result.ownerRequired,
    confirmation_token: result.confirmationToken,
    expires_at: result.expiresAt.toISOString(),
  }
}

export function commandHandlers(deps: CommandHandlerDeps): OperationHandlers {
  // Destructive commands to several devices are checked against the caller: its dry run's
  // token, and where it is an owner (dispatch.ts).
  async function callerOf(request: FastifyRequest, confirmationToken: string | undefined): Promise<DispatchCaller> {
    const principal = request.principal
    if (!principal) throw new OrchardError('unauthorized', 'not authenticated')
    return { principalId: principal.id, ownerScope: await scopeForRoles(principal, ['owner'], deps.tenants), ...(confirmationToken !== undefined ? { confirmationToken } : {}) }
  }

  // A stored command was audited with it; one no target could take is answered as a
  // success all the same (the targets say why), so it is audited here.
  async function auditIfUnstored(scope: AccessScope, result: DispatchResult): Promise<void> {
    if (!result.stored) await deps.commandAdmin.recordUnstoredCommand(scope, { uuid: result.commandUuid, requestType: result.requestType, targets: result.targets.length })
  }

  async function dryRun(scope: AccessScope, dispatchRequest: Parameters<CommandDispatcher['dryRun']>[1]) {
    const result = await deps.dispatcher.dryRun(scope, dispatchRequest)
    await deps.commandAdmin.recordDryRun(scope, result)
    return dryRunJson(result)
  }

  return {
    async enqueueCommand(request, reply) {
      const body = request.body as EnqueueBody
      exactlyOne(body, 'enrollment_ids', 'filter')
      exactlyOne(body, 'command', 'plist_base64')
      let command: CommandSource
      if (body.plist_base64 !== undefined) {
        const payload = decodeBase64(body.plist_base64)
        if (!payload) throw new OrchardError('validation_failed', 'plist_base64 is not base64', { details: { errors: [{ pointer: '/plist_base64', detail: 'must be base64' }] } })
        if (body.command_uuid !== undefined) throw new OrchardError('validation_failed', 'a raw plist carries its own CommandUUID', { details: { errors: [{ pointer: '/command_uuid', detail: 'only with command' }] } })
        command = { kind: 'plist', payload }
      } else {
        command = { kind: 'typed', json: body.command, pointer: '/command', ...(body.command_uuid !== undefined ? { uuid: body.command_uuid } : {}) }
      }
      const targets: DispatchTargets = body.enrollment_ids !== undefined ? { enrollmentIds: body.enrollment_ids } : { filter: deviceFilterFrom(body.filter ?? {}) }
      const scope = accessOf(request)
      const dispatchRequest = {
        targets,
        command,
        ...(body.priority !== undefined ? { priority: body.priority } : {}),
        expiresAt: body.expires_at !== undefined ? new Date(body.expires_at) : null,
        push: body.push !== false,
        caller: await callerOf(request, body.confirmation_token),
      }
      if (body.dry_run === true) return reply.code(200).send(await dryRun(scope, dispatchRequest))
      const result = await deps.dispatcher.dispatch(scope, dispatchRequest)
      await auditIfUnstored(scope, result)
      return reply.code(201).send(dispatchResultJson(result))
    },

    async enqueueRawCommand(request, reply) {
      const { ids } = request.params as { ids: string }
      const query = request.query as { priority?: number; expires_at?: string; push?: boolean; dry_run?: boolean; confirmation_token?: string }
      const enrollmentIds = ids.split(',').map((id) => id.trim()).filter((id) => id !== '')
      if (enrollmentIds.length === 0) throw new OrchardError('validation_failed', 'name at least one enrollment ID in the path')
      if (!Buffer.isBuffer(request.body) || request.body.length === 0) {
        throw new OrchardError('validation_failed', 'the body must be a command plist (Content-Type application/x-apple-plist)')
      }
      const scope = accessOf(request)
      const dispatchRequest = {
        targets: { enrollmentIds },
        command: { kind: 'plist' as const, payload: request.body },
        ...(query.priority !== undefined ? { priority: query.priority } : {}),
        expiresAt: query.expires_at !== undefined ? new Date(query.expires_at) : null,
        push: query.push !== false,
        caller: await callerOf(request, query.confirmation_token),
      }
      if (query.dry_run === true) return reply.code(200).send(await dryRun(scope, dispatchRequest))
      const result = await deps.dispatcher.dispatch(scope, dispatchRequest)
      await auditIfUnstored(scope, result)
      return reply.code(200).send(dispatchResultJson(result))
    },

    async listCommands(request) {
      const query = request.query as { request_type?: string; created_before?: string; created_after?: string; limit: number; cursor?: string }
      const page = await deps.commandAdmin.listCommands(
        accessOf(request),
        {
          ...(query.request_type !== undefined ? { requestType: query.request_type } : {}),
          ...(query.created_before !== undefined ? { createdBefore: new Date(query.created_before) } : {}),
          ...(query.created_after !== undefined ? { createdAfter: new Date(query.created_after) } : {}),
        },
        { limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) },
      )
      return { items: page.items.map(commandSummaryJson), next_cursor: page.nextCursor }
    },

    async getCommand(request) {
      const { command_uuid: uuid } = request.params as { command_uuid: string }
      const command = await deps.commandAdmin.getCommand(accessOf(request), uuid)
      if (!command) throw new OrchardError('not_found', `no command ${uuid}`)
      return commandJson(command)
    },

    async listCommandTargets(request) {
      const { command_uuid: uuid } = request.params as { command_uuid: string }
      const query = request.query as { status?: CommandTargetStatus; limit: number; cursor?: string }
      const scope = accessOf(request)
      const page = await deps.commandAdmin.listCommandTargets(scope, uuid, query.status ? { status: query.status } : {}, { limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) })
      if (page.items.length === 0 && !query.cursor && !(await deps.commandAdmin.commandExists(scope, uuid))) throw new OrchardError('not_found', `no command ${uuid}`)
      return { items: page.items.map(commandTargetJson), next_cursor: page.nextCursor }
    },

    async cancelCommand(request) {
      const { command_uuid: uuid } = request.params as { command_uuid: string }
      const body = (request.body ?? {}) as { enrollment_ids?: string[] }
      const scope = accessOf(request)
      if (!(await deps.commandAdmin.commandExists(scope, uuid))) throw new OrchardError('not_found', `no command ${uuid}`)
      const outcome = await deps.commandAdmin.cancelCommand(scope, uuid, body.enrollment_ids, `cancelled by ${request.principal?.id ?? 'unknown'}`)
      request.log.info({ command_uuid: uuid, cancelled: outcome.cancelled, in_flight: outcome.inFlight }, 'command cancelled')
      return { command_uuid: uuid, cancelled: outcome.cancelled, in_flight: outcome.inFlight, finished: outcome.finished, not_targeted: outcome.notTargeted }
    },

    async listEnrollmentCommands(request) {
      const { enrollment_id: enrollmentId } = request.params as { enrollment_id: string }
      const query = request.query as { state: 'open' | 'finished' | 'all'; limit: number; cursor?: string }
      const scope = accessOf(request)
      if (!(await deps.directory.enrollmentExists(scope, enrollmentId))) throw new OrchardError('not_found', `no enrollment ${enrollmentId}`)
      const page = await deps.commandAdmin.listEnrollmentCommands(scope, enrollmentId, query.state, { limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) })
      return { items: page.items.map(commandTargetJson), next_cursor: page.nextCursor }
    },

    async clearEnrollmentQueue(request) {
      const { enrollment_id: enrollmentId } = request.params as { enrollment_id: string }
      const scope = accessOf(request)
      if (!(await deps.directory.enrollmentExists(scope, enrollmentId))) throw new OrchardError('not_found', `no enrollment ${enrollmentId}`)
      const outcome = await deps.commandAdmin.clearQueue(scope, enrollmentId, `queue cleared by ${request.principal?.id ?? 'unknown'}`)
      request.log.info({ enrollment_id: enrollmentId, cancelled: outcome.cancelled }, 'queue cleared')
      return { cancelled: outcome.cancelled, in_flight: outcome.inFlight }
    },
  }
}
