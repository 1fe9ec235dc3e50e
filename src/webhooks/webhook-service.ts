// Webhooks: subscriptions (subscriptions.ts: URL, event types, a signing secret sealed at
// rest) and delivery of events through the durable outbox (outbox.ts), signed as
// signature.ts describes. This facade composes the two over one store.
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import { createWebhookOutbox, type RetryPolicy, type WebhookOutbox } from './outbox.js'
import { createWebhookSubscriptions, type WebhookSubscriptions } from './subscriptions.js'
import type { WebhookStore } from './webhook-store.js'

export { defaultRetryPolicy, type DeliveryRound, type DeliveryView, type RetryPolicy, type WebhookEvent } from './outbox.js'
export { signWebhookBody, verifyWebhookSignature } from './signature.js'
export {
  webhookEventTypes,
  type NewWebhookInput,
  type WebhookEventType,
  type WebhookSubscription,
  type WebhookUpdate,
  type WebhookView,
  type WebhookWithSecret,
} from './subscriptions.js'

/** The writes take the caller's scope: its actor's audit row is written with the change. */
export interface WebhookService extends WebhookSubscriptions, WebhookOutbox {}

export interface WebhookServiceDeps {
  store: WebhookStore
  secretBox: SecretBox | null
  logger: Logger
  fetch?: typeof fetch
  now?: () => Date
  retry?: Partial<RetryPolicy>
  timeoutMs?: number
  /** How long the set of subscribed event types is cached (default 5 s). */
  subscriptionCacheMs?: number
}

export function createWebhookService(deps: WebhookServiceDeps): WebhookService {
  const { hasSubscriber, ...subscriptions } = createWebhookSubscriptions(deps)
  const outbox = createWebhookOutbox({ ...deps, hasSubscriber, requireWebhook: (id) => subscriptions.getWebhook(id) })
  return { ...subscriptions, ...outbox }
}
