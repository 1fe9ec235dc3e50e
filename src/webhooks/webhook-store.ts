// The webhook storage: subscriptions (subscription-store.ts) and their durable delivery
// outbox (outbox-store.ts), over one database. A consumer that needs only one of them
// takes the narrower interface.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { createWebhookOutboxStore, type WebhookOutboxStore } from './outbox-store.js'
import { createWebhookSubscriptionStore, type WebhookSubscriptionStore } from './subscription-store.js'

export type { DeliveryRow, DeliveryStatus, DueDelivery, FailedAttempt, RetryDeliveryResult, WebhookEventRow, WebhookOutboxStore } from './outbox-store.js'
export type { NewWebhook, WebhookPatch, WebhookRow, WebhookSubscriptionStore } from './subscription-store.js'

export interface WebhookStore extends WebhookSubscriptionStore, WebhookOutboxStore {}

export function createWebhookStore(db: Kysely<Database>): WebhookStore {
  return { ...createWebhookSubscriptionStore(db), ...createWebhookOutboxStore(db) }
}
