export { webhookHandlers } from './api.js'
export { webhookDeviceListeners } from './webhook-events.js'
export { createWebhookService, type WebhookService } from './webhook-service.js'
export { createWebhookStore } from './webhook-store.js'
