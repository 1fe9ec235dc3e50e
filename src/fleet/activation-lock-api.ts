// Admin API: a device's Activation Lock bypass code, read (audited, GET included) and deleted.
import type { FastifyRequest } from 'fastify'
import type { AccessScope } from '../model/access.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import type { ActivationLock } from './activation-lock.js'

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

export function activationLockHandlers(deps: { activationLock: Pick<ActivationLock, 'reveal' | 'forget'> }): OperationHandlers {
  return {
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
