// Delivery of webhook events through the durable outbox in storage. emit() only writes outbox
// rows and wakes the worker, so the MDM path never waits on a receiver; the worker POSTs each
// delivery (signed: signature.ts), retries with exponential backoff, and gives up once the
// event is older than the retry window.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { DeliveryRow, DueDelivery, WebhookOutboxStore } from './outbox-store.js'
import { createDeliveryLoop } from './delivery-loop.js'
import { SIGNATURE_HEADER, signWebhookBody } from './signature.js'
import { openSigningSecret, type WebhookEventType } from './subscriptions.js'

/** The JSON body of every delivery. */
export interface WebhookEvent<T = unknown> {
  id: string
  type: WebhookEventType
  created_at: string
  data: T
}

export interface DeliveryView {
  id: number
  webhookId: string
  eventId: string
  eventType: string
  status: 'pending' | 'delivered' | 'failed'
  attempts: number
  /** Set while pending. */
  nextAttemptAt: Date | null
  lastAttemptAt: Date | null
  lastStatusCode: number | null
  lastError: string | null
  deliveredAt: Date | null
  createdAt: Date
  payload: unknown
}

export interface DeliveryRound {
  /** Deliveries handled this round (sent, or failed without sending because the receiver was unreachable). */
  attempted: number
  delivered: number
  /** Failed attempts, those given up included. */
  failed: number
}

export interface RetryPolicy {
  baseSeconds: number
  maxSeconds: number
  giveUpAfterSeconds: number
}

export const defaultRetryPolicy: RetryPolicy = { baseSeconds: 10, maxSeconds: 15 * 60, giveUpAfterSeconds: 3 * 86_400 }

export interface WebhookOutbox {
  listDeliveries(id: string, options?: { limit?: number; beforeId?: number }): Promise<DeliveryView[]>
  /** Re-queues a failed delivery for one more attempt now. */
  retryDelivery(scope: AccessScope, id: string, deliveryId: number): Promise<DeliveryView>
  /** Records an event for its subscribers and wakes the worker. Never throws: errors are logged. */
  emit(type: WebhookEventType, data: unknown): Promise<void>
  /** emit() with the event's data built only when a webhook wants the type (every check-in and result passes here). */
  emitBuilt(type: WebhookEventType, build: () => unknown): Promise<void>
  /** One delivery round: claims due deliveries and sends them. */
  deliverDue(): Promise<DeliveryRound>
  /** Runs deliverDue every `intervalMs` and whenever emit() records deliveries, never overlapping itself. */
  start(intervalMs: number): void
  /** Stops the loop; waits for a round in progress. */
  stop(): Promise<void>
}

export interface WebhookOutboxDeps {
  store: WebhookOutboxStore
  secretBox: SecretBox | null
  logger: Logger
  /** Whether any enabled webhook wants events of `type`: without one, emit() writes nothing. */
  hasSubscriber(type: WebhookEventType): Promise<boolean>
  /** Throws not_found when there is no webhook `id`. */
  requireWebhook(id: string): Promise<unknown>
  fetch?: typeof fetch
  now?: () => Date
  retry?: Partial<RetryPolicy>
  timeoutMs?: number
}

const BATCH_SIZE = 50
/** Webhooks sent to at once; one webhook's deliveries go one after another, in event order. */
const CONCURRENCY = 4
/** Above the API's page size (500), which asks for one more row to know whether a next page exists. */
const MAX_DELIVERIES_PAGE = 1000

const deliveryView = (row: DeliveryRow): DeliveryView => ({
  id: row.id,
  webhookId: row.webhookId,
  eventId: row.eventId,
  eventType: row.eventType,
  status: row.status,
  attempts: row.attempts,
  nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt : null,
  lastAttemptAt: row.lastAttemptAt,
  lastStatusCode: row.lastStatusCode,
  lastError: row.lastError,
  deliveredAt: row.deliveredAt,
  createdAt: row.createdAt,
  payload: row.payload,
})

// --- one attempt ---

interface Outcome {
  ok: boolean
  statusCode?: number
  error?: string
  /** No HTTP answer (connection refused, timeout): the rest of the round skips this receiver. */
  unreachable?: boolean
}

function describeFetchError(error: unknown, timeoutMs: number): string {
  const err = error as Error & { cause?: { code?: string; message?: string } }
  if (err?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`
  const cause = err?.cause?.code ?? err?.cause?.message
  return cause ? `${err.message} (${cause})` : String(err?.message ?? error)
}

/** POSTs one delivery, signed with `secret` at `timestampSeconds`. */
async function send(fetchImpl: typeof fetch, delivery: DueDelivery, secret: string, timestampSeconds: number, timeoutMs: number): Promise<Outcome> {
  const body = JSON.stringify(delivery.payload)
  try {
    const response = await fetchImpl(delivery.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Orchard-Webhooks/1',
        'orchard-event-id': delivery.eventId,
        'orchard-event-type': delivery.eventType,
        'orchard-delivery-attempt': String(delivery.attempts + 1),
        [SIGNATURE_HEADER]: signWebhookBody(secret, timestampSeconds, body),
      },
      body,
      // A redirect is a failed attempt: the subscription names where events go.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    })
    await response.body?.cancel().catch(() => {})
    if (response.status >= 200 && response.status < 300) return { ok: true, statusCode: response.status }
    return { ok: false, statusCode: response.status, error: `HTTP ${response.status}` }
  } catch (error) {
    return { ok: false, error: describeFetchError(error, timeoutMs), unreachable: true }
  }
}

/** When to try again after failed attempt number `attempt` (1-based), or null to give up. */
function nextAttempt(retry: RetryPolicy, delivery: DueDelivery, attempt: number, at: Date): Date | null {
  const deadline = delivery.createdAt.getTime() + retry.giveUpAfterSeconds * 1000
  if (at.getTime() >= deadline) return null
  const delaySeconds = Math.min(retry.baseSeconds * 2 ** Math.min(attempt - 1, 40), retry.maxSeconds)
  // The last attempt falls when the window closes.
  return new Date(Math.min(at.getTime() + delaySeconds * 1000, deadline))
}

export function createWebhookOutbox(deps: WebhookOutboxDeps): WebhookOutbox {
  const { store } = deps
  const log = deps.logger.child({ service: 'webhooks' })
  const now = deps.now ?? (() => new Date())
  const fetchImpl = deps.fetch ?? fetch
  const retry: RetryPolicy = { ...defaultRetryPolicy, ...deps.retry }
  const timeoutMs = deps.timeoutMs ?? 10_000
  // Long enough for a whole round of one webhook answering slowly; a worker that dies only
  // delays its claimed deliveries by this much.
  const leaseSeconds = Math.ceil((timeoutMs * BATCH_SIZE) / 1000) + 60
  let warnedNoSecretBox = false

  async function record(delivery: DueDelivery, outcome: Outcome, round: DeliveryRound): Promise<void> {
    const at = now()
    const attempts = delivery.attempts + 1
    round.attempted++
    const fields = {
      webhook_id: delivery.webhookId,
      delivery_id: delivery.id,
      event_id: delivery.eventId,
      event_type: delivery.eventType,
      status_code: outcome.statusCode ?? null,
      attempts,
    }
    if (outcome.ok) {
      await store.markDelivered(delivery.id, outcome.statusCode!, at)
      round.delivered++
      log.info(fields, 'webhook delivered')
      return
    }
    const next = nextAttempt(retry, delivery, attempts, at)
    await store.markFailedAttempt(delivery.id, { statusCode: outcome.statusCode ?? null, error: outcome.error ?? 'failed', nextAttemptAt: next }, at)
    round.failed++
    if (next) log.info({ ...fields, error: outcome.error, next_attempt_at: next.toISOString() }, 'webhook delivery failed; will retry')
    else log.warn({ ...fields, error: outcome.error }, 'webhook delivery failed; retry window closed, giving up')
  }

  /** One webhook's claimed deliveries, in event order. */
  async function deliverToWebhook(box: SecretBox, deliveries: DueDelivery[], round: DeliveryRound): Promise<void> {
    const first = deliveries[0]!
    let secret: string
    try {
      secret = openSigningSecret(box, first.webhookId, first.secretSealed)
    } catch (error) {
      const message = `cannot open the signing secret: ${(error as Error).message}`
      for (const delivery of deliveries) await record(delivery, { ok: false, error: message }, round)
      return
    }
    let unreachable: string | undefined
    for (const delivery of deliveries) {
      // After a connection failure or timeout, the rest of this round's deliveries to the same
      // receiver fail alike without waiting on it again (they back off as if each had tried).
      const outcome: Outcome = unreachable
        ? { ok: false, error: `not sent: the receiver was unreachable earlier in this round (${unreachable})` }
        : await send(fetchImpl, delivery, secret, Math.floor(now().getTime() / 1000), timeoutMs)
      if (outcome.unreachable) unreachable = outcome.error
      await record(delivery, outcome, round)
    }
  }

  async function deliverDue(): Promise<DeliveryRound> {
    const round: DeliveryRound = { attempted: 0, delivered: 0, failed: 0 }
    const box = deps.secretBox
    if (!box) {
      // Nothing can be signed; deliveries wait (pending) until keys are configured.
      if (!warnedNoSecretBox) {
        warnedNoSecretBox = true
        log.warn('webhook deliveries wait: no ORCHARD_SECRET_KEYS to open the signing secrets')
      }
      return round
    }
    const due = await store.claimDue(now(), BATCH_SIZE, leaseSeconds)
    if (due.length === 0) return round
    const byWebhook = new Map<string, DueDelivery[]>()
    for (const delivery of due) {
      const list = byWebhook.get(delivery.webhookId) ?? []
      list.push(delivery)
      byWebhook.set(delivery.webhookId, list)
    }
    const groups = [...byWebhook.values()]
    let next = 0
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(CONCURRENCY, groups.length) }, async () => {
        while (next < groups.length) await deliverToWebhook(box, groups[next++]!, round)
      }),
    )
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failure) throw failure.reason
    return round
  }

  const loop = createDeliveryLoop(deliverDue, BATCH_SIZE, log)

  async function emitBuilt(type: WebhookEventType, build: () => unknown): Promise<void> {
    try {
      // Every check-in and result passes here: without a subscriber, no database work, and no event built.
      if (!(await deps.hasSubscriber(type))) return
      const at = now()
      const event: WebhookEvent = { id: randomUUID(), type, created_at: at.toISOString(), data: build() }
      const written = await store.enqueueEvent({ id: event.id, type, payload: event, createdAt: at })
      if (written > 0) loop.kick()
    } catch (error) {
      log.error({ err: error, event_type: type }, 'webhook event not recorded')
    }
  }

  return {
    async listDeliveries(id, options = {}) {
      const limit = options.limit ?? 50
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_DELIVERIES_PAGE) {
        throw new OrchardError('validation_failed', `limit must be an integer from 1 to ${MAX_DELIVERIES_PAGE}`)
      }
      await deps.requireWebhook(id)
      const rows = await store.listDeliveries(id, { limit, ...(options.beforeId !== undefined ? { beforeId: options.beforeId } : {}) })
      return rows.map(deliveryView)
    },

    async retryDelivery(scope, id, deliveryId) {
      const result = await store.retryDelivery(scope, id, deliveryId, now())
      if (result.outcome === 'not_found') throw new OrchardError('not_found', `webhook ${id} has no delivery ${deliveryId}`)
      if (result.outcome === 'not_failed') {
        throw new OrchardError('conflict', `delivery ${deliveryId} is ${result.delivery.status}; only a failed delivery can be retried`)
      }
      log.info({ webhook_id: id, delivery_id: deliveryId, event_id: result.delivery.eventId }, 'webhook delivery re-queued')
      loop.kick()
      return deliveryView(result.delivery)
    },

    emit: (type, data) => emitBuilt(type, () => data),
    emitBuilt,

    deliverDue,
    start: loop.start,
    stop: loop.stop,
  }
}
