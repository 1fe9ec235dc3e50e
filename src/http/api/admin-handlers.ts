// Admin API: API keys, webhook subscriptions and server settings.
import { OrchardError } from '../../errors.js'
import type { ApiKeyService, ApiKeyView } from '../../services/api-key-service.js'
import type { RetentionSettings } from '../../services/retention.js'
import type { DeliveryView, WebhookService, WebhookView } from '../../services/webhook-service.js'
import { decodeCursor, pageOf } from '../../storage/pagination.js'
import type { Role } from '../../storage/access-scope.js'
import { accessOf, type OperationHandlers } from './plugin.js'
import { iso } from './views.js'

export interface AdminHandlerDeps {
  apiKeys: ApiKeyService
  webhooks: WebhookService
  retention: RetentionSettings
}

function apiKeyJson(view: ApiKeyView) {
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

function webhookJson(view: WebhookView) {
  return {
    id: view.id,
    url: view.url,
    event_types: view.eventTypes,
    enabled: view.enabled,
    description: view.description,
    created_at: iso(view.createdAt)!,
    updated_at: iso(view.updatedAt)!,
  }
}

function deliveryJson(view: DeliveryView) {
  return {
    id: view.id,
    event_id: view.eventId,
    event_type: view.eventType,
    status: view.status,
    attempts: view.attempts,
    next_attempt_at: iso(view.nextAttemptAt ?? view.lastAttemptAt ?? view.createdAt)!,
    last_attempt_at: iso(view.lastAttemptAt),
    last_status_code: view.lastStatusCode,
    last_error: view.lastError,
    delivered_at: iso(view.deliveredAt),
    created_at: iso(view.createdAt)!,
  }
}

export function adminHandlers(deps: AdminHandlerDeps): OperationHandlers {
  return {
    async getSettings() {
      return { command_retention_days: await deps.retention.retentionDays() }
    },
    async updateSettings(request) {
      const body = request.body as { command_retention_days?: number }
      if (body.command_retention_days !== undefined) await deps.retention.setRetentionDays(accessOf(request), body.command_retention_days)
      request.log.info({ settings: body }, 'settings changed')
      return { command_retention_days: await deps.retention.retentionDays() }
    },

    async listApiKeys(request) {
      const { include_revoked: includeRevoked } = request.query as { include_revoked: boolean }
      return { items: (await deps.apiKeys.listKeys(accessOf(request), { includeRevoked })).map(apiKeyJson) }
    },
    async createApiKey(request, reply) {
      const body = request.body as { name: string; role: Role; tenant_id?: string | null; expires_at?: string }
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
      const { key_id: id } = request.params as { key_id: string }
      const view = await deps.apiKeys.getKey(accessOf(request), id)
      if (!view) throw new OrchardError('not_found', `no API key ${id}`)
      return apiKeyJson(view)
    },
    async revokeApiKey(request, reply) {
      const { key_id: id } = request.params as { key_id: string }
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

    async listWebhooks() {
      return { items: (await deps.webhooks.listWebhooks()).map(webhookJson) }
    },
    async createWebhook(request, reply) {
      const body = request.body as { url: string; event_types: string[]; description?: string; secret?: string }
      const created = await deps.webhooks.createWebhook(accessOf(request), {
        url: body.url,
        eventTypes: body.event_types,
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.secret !== undefined ? { secret: body.secret } : {}),
      })
      return reply.code(201).send({ ...webhookJson(created), secret: created.secret })
    },
    async getWebhook(request) {
      return webhookJson(await deps.webhooks.getWebhook((request.params as { webhook_id: string }).webhook_id))
    },
    async updateWebhook(request) {
      const body = request.body as { url?: string; event_types?: string[]; enabled?: boolean; description?: string | null }
      const view = await deps.webhooks.updateWebhook(accessOf(request), (request.params as { webhook_id: string }).webhook_id, {
        ...(body.url !== undefined ? { url: body.url } : {}),
        ...(body.event_types !== undefined ? { eventTypes: body.event_types } : {}),
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
      })
      return webhookJson(view)
    },
    async deleteWebhook(request, reply) {
      await deps.webhooks.deleteWebhook(accessOf(request), (request.params as { webhook_id: string }).webhook_id)
      return reply.code(204).send()
    },
    async rotateWebhookSecret(request) {
      const rotated = await deps.webhooks.rotateSecret(accessOf(request), (request.params as { webhook_id: string }).webhook_id)
      return { ...webhookJson(rotated), secret: rotated.secret }
    },
    async listWebhookDeliveries(request) {
      const { webhook_id: id } = request.params as { webhook_id: string }
      const query = request.query as { limit: number; cursor?: string }
      const sort = '-id'
      const beforeId = query.cursor ? Number(decodeCursor(query.cursor, sort).id) : undefined
      const rows = await deps.webhooks.listDeliveries(id, { limit: query.limit + 1, ...(beforeId !== undefined && Number.isSafeInteger(beforeId) ? { beforeId } : {}) })
      const page = pageOf(rows, query.limit, sort, (row) => ({ value: null, id: String(row.id) }), deliveryJson)
      return { items: page.items, next_cursor: page.nextCursor }
    },
    async retryWebhookDelivery(request, reply) {
      const { webhook_id: id, delivery_id: deliveryId } = request.params as { webhook_id: string; delivery_id: number }
      await deps.webhooks.retryDelivery(accessOf(request), id, deliveryId)
      return reply.code(202).send()
    },
  }
}
