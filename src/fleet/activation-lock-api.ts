// Admin API: a device's Activation Lock bypass code, read (audited, GET included) and deleted;
// its Activation Lock status (no codes), and turning the lock off at Apple with a held code.
import type { FastifyRequest } from 'fastify'
import type { AccessScope } from '../model/access.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import type { ActivationLock } from './activation-lock.js'
import type { ActivationLockClearing, ClearReport } from './activation-lock-clear.js'
import type { ActivationLockStatus } from './activation-lock-status.js'
import type { ActivationLockClear, ActivationLockStatus as ActivationLockStatusJson } from '../http/generated/operations.js'

/**
 * The caller's scope with an audit actor: a GET has none (reads are not audited), but reading
 * a secret is, in the store's transaction like a write.
 */
function auditedRead(request: FastifyRequest, action: string): AccessScope {
  const scope = accessOf(request)
  const principal = request.principal
  if (!principal || scope.actor) return scope
  const actor = { principalId: principal.id, principalName: principal.name, principalSource: principal.source, requestId: request.id, action, recorded: false }
  return scope.kind === 'all' ? { kind: 'all', actor } : { kind: 'tenants', ids: scope.ids, actor }
}

const iso = (date: Date | null) => (date ? date.toISOString() : null)

function statusJson(status: ActivationLockStatus): ActivationLockStatusJson {
  const { deviceCode, organizationLock: lock, lastUnlock, deviceClear } = status
  return {
    device_id: status.deviceId,
    device_code: {
      held: deviceCode.held,
      received_at: iso(deviceCode.receivedAt),
      request_state: deviceCode.requestState,
      detail: deviceCode.detail,
    },
    organization_lock: {
      state: lock.state,
      detail: lock.detail,
      attempts: lock.attempts,
      attempted_at: iso(lock.attemptedAt),
      next_attempt_at: iso(lock.nextAttemptAt),
      escrowed_at: iso(lock.escrowedAt),
      server_code_held: lock.serverCodeHeld,
    },
    last_unlock: { unlocked_at: iso(lastUnlock.unlockedAt), code_used: lastUnlock.codeUsed, detail: lastUnlock.detail },
    device_clear: { state: deviceClear.state, command_uuid: deviceClear.commandUuid, detail: deviceClear.detail },
  }
}

function clearJson(report: ClearReport): ActivationLockClear {
  return {
    device_id: report.deviceId,
    unlocked: true,
    code_used: report.codeUsed,
    attempts: report.attempts.map((attempt) => ({ code: attempt.code, http_status: attempt.httpStatus, detail: attempt.detail })),
    device_command: report.deviceCommand && {
      result: report.deviceCommand.result,
      command_uuid: report.deviceCommand.commandUuid,
      detail: report.deviceCommand.detail,
    },
  }
}

export function activationLockHandlers(deps: {
  activationLock: Pick<ActivationLock, 'reveal' | 'forget'> &
    Pick<ActivationLockClearing, 'clear'> & { lockStatus(scope: AccessScope, deviceId: string): Promise<ActivationLockStatus> }
}): OperationHandlers {
  return {
    async getActivationLockStatus(request) {
      return statusJson(await deps.activationLock.lockStatus(accessOf(request), request.params.device_id))
    },

    async clearActivationLock(request) {
      const report = await deps.activationLock.clear(accessOf(request), request.params.device_id, { clearDeviceCode: request.body.clear_device_code === true })
      return clearJson(report)
    },

    async getActivationLockBypassCode(request) {
      const deviceId = request.params.device_id
      const { code, receivedAt } = await deps.activationLock.reveal(auditedRead(request, 'getActivationLockBypassCode'), deviceId)
      return { device_id: deviceId, bypass_code: code, received_at: receivedAt ? receivedAt.toISOString() : null }
    },

    async deleteActivationLockBypassCode(request, reply) {
      const deviceId = request.params.device_id
      const deleted = await deps.activationLock.forget(accessOf(request), deviceId)
      request.log.info({ device_id: deviceId, deleted }, 'Activation Lock bypass code record deleted')
      return reply.code(204).send()
    },
  }
}
