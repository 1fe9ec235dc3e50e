// Admin API: API keys.
import { OrchardError } from '../errors.js'
import type { ApiKeyService, ApiKeyView } from './api-key-service.js'
import type { ApiKey } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { iso } from '../http/views.js'

function apiKeyJson(view: ApiKeyView): ApiKey {
  return {
    id: view.id,
    name: view.name,
    role: view.role,
    tenant_id: view.tenantId,
    created_at: iso(view.createdAt)!,
    last_used_at: iso(view.lastUsedAt),
    expires_at: iso(view.expiresAt),
    revoked_at: iso(view.revokedAt),
  }
}

export function apiKeyHandlers(deps: { apiKeys: ApiKeyService }): OperationHandlers {
  return {
    async listApiKeys(request) {
      const { include_revoked: includeRevoked } = request.query
      return { items: (await deps.apiKeys.listKeys(accessOf(request), { includeRevoked })).map(apiKeyJson) }
    },
    async createApiKey(request, reply) {
      const { body } = request
      // No one hands out more than they hold: only owners create owner keys.
      if (body.role === 'owner' && !request.principal?.grants.some((grant) => grant.role === 'owner')) {
        throw new OrchardError('forbidden', 'only an owner can create an owner key')
      }
      const created = await deps.apiKeys.createKey(accessOf(request), {
        name: body.name,
        role: body.role,
        ...(body.tenant_id !== undefined ? { tenantId: body.tenant_id } : {}),
        expiresAt: body.expires_at !== undefined ? new Date(body.expires_at) : null,
      })
      request.log.info({ key_id: created.view.id, role: created.view.role, tenant_id: created.view.tenantId }, 'API key created')
      return reply.code(201).send({ ...apiKeyJson(created.view), key: created.key })
    },
    async getApiKey(request) {
      const id = request.params.key_id
      const view = await deps.apiKeys.getKey(accessOf(request), id)
      if (!view) throw new OrchardError('not_found', `no API key ${id}`)
      return apiKeyJson(view)
    },
    async revokeApiKey(request, reply) {
      const id = request.params.key_id
      const scope = accessOf(request)
      const view = await deps.apiKeys.getKey(scope, id)
      if (!view) throw new OrchardError('not_found', `no API key ${id}`)
      if (view.role === 'owner' && !request.principal?.grants.some((grant) => grant.role === 'owner')) {
        throw new OrchardError('forbidden', 'only an owner can revoke an owner key')
      }
      const outcome = await deps.apiKeys.revokeKey(scope, id)
      if (outcome === 'not_found') throw new OrchardError('not_found', `no API key ${id}`)
      request.log.info({ key_id: id, outcome }, 'API key revoked')
      return reply.code(204).send()
    },
  }
}
