// Admin API: webhook subscriptions and their deliveries.
import type { DeliveryView, WebhookService, WebhookView } from './webhook-service.js'
import { decodeCursor, pageOf } from '../db/pagination.js'
import type { Webhook, WebhookDelivery } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { iso } from '../http/views.js'

function webhookJson(view: WebhookView): Webhook {
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

function deliveryJson(view: DeliveryView): WebhookDelivery {
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

export function webhookHandlers(deps: { webhooks: WebhookService }): OperationHandlers {
  return {
    async listWebhooks() {
      return { items: (await deps.webhooks.listWebhooks()).map(webhookJson) }
    },
    async createWebhook(request, reply) {
      const { body } = request
      const created = await deps.webhooks.createWebhook(accessOf(request), {
        url: body.url,
        eventTypes: body.event_types,
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.secret !== undefined ? { secret: body.secret } : {}),
      })
      return reply.code(201).send({ ...webhookJson(created), secret: created.secret })
    },
    async getWebhook(request) {
      return webhookJson(await deps.webhooks.getWebhook(request.params.webhook_id))
    },
    async updateWebhook(request) {
      const { body } = request
      const view = await deps.webhooks.updateWebhook(accessOf(request), request.params.webhook_id, {
        ...(body.url !== undefined ? { url: body.url } : {}),
        ...(body.event_types !== undefined ? { eventTypes: body.event_types } : {}),
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
      })
      return webhookJson(view)
    },
    async deleteWebhook(request, reply) {
      await deps.webhooks.deleteWebhook(accessOf(request), request.params.webhook_id)
      return reply.code(204).send()
    },
    async rotateWebhookSecret(request) {
      const rotated = await deps.webhooks.rotateSecret(accessOf(request), request.params.webhook_id)
      return { ...webhookJson(rotated), secret: rotated.secret }
    },
    async listWebhookDeliveries(request) {
      const id = request.params.webhook_id
      const { query } = request
      const sort = '-id'
      const beforeId = query.cursor ? Number(decodeCursor(query.cursor, sort).id) : undefined
      const rows = await deps.webhooks.listDeliveries(id, {
        limit: query.limit + 1,
        ...(beforeId !== undefined && Number.isSafeInteger(beforeId) ? { beforeId } : {}),
      })
      const page = pageOf(rows, query.limit, sort, (row) => ({ value: null, id: String(row.id) }), deliveryJson)
      return { items: page.items, next_cursor: page.nextCursor }
    },
    async retryWebhookDelivery(request, reply) {
      const { webhook_id: id, delivery_id: deliveryId } = request.params
      await deps.webhooks.retryDelivery(accessOf(request), id, deliveryId)
      return reply.code(202).send()
    },
  }
}
