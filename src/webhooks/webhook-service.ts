// Webhooks: subscriptions (URL, event types, a signing secret sealed at rest) and delivery of
// events through the durable outbox in storage. emit() only writes outbox rows and wakes the
// worker, so the MDM path never waits on a receiver; the worker POSTs each delivery, retries
// with exponential backoff, and gives up once the event is older than the retry window.
//
// Signature scheme (what a receiver checks):
//   orchard-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, `${t}.${body}`)>
// where `key` is the UTF-8 bytes of the whole secret as shown at creation (`whsec_...`
// included) and `body` the exact request body bytes. A receiver recomputes the HMAC,
// compares in constant time, and rejects a `t` too far from its clock (replays). It may
// see several `v1=` entries and accepts the request when any one matches.
// `verifyWebhookSignature` below does all of that.
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { DeliveryRow, DueDelivery, WebhookRow, WebhookStore } from './webhook-store.js'

/** What a webhook can subscribe to; '*' is every event type. */
export const webhookEventTypes = [
  'checkin.authenticate',
  'checkin.token_update',
  'checkin.checkout',
  /** Any other check-in message (DeclarativeManagement, GetBootstrapToken, UserAuthenticate...). */
  'checkin.other',
  /** A device answered a command: Acknowledged, Error, CommandFormatError or NotNow. */
  'command.result',
  /** A new identity claimed an enrolled device bound to another certificate and was refused. */
  'device.identity_conflict',
  /** A new identity took over an enrolled device (wiped, checked out, allowed by an admin...). */
  'device.reenrolled',
  '*',
] as const

export type WebhookSubscription = (typeof webhookEventTypes)[number]
/** The types an event itself can have. */
export type WebhookEventType = Exclude<WebhookSubscription, '*'>

/** The JSON body of every delivery. */
export interface WebhookEvent<T = unknown> {
  id: string
  type: WebhookEventType
  created_at: string
  data: T
}

export interface WebhookView {
  id: string
  url: string
  eventTypes: string[]
  enabled: boolean
  description: string | null
  createdAt: Date
  updatedAt: Date
}

/** Only creation and rotation ever return the secret. */
export type WebhookWithSecret = WebhookView & { secret: string }

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

export interface NewWebhookInput {
  url: string
  eventTypes: readonly string[]
  description?: string | null
  enabled?: boolean
  /** At least 16 characters; generated when absent. */
  secret?: string
}

export interface WebhookUpdate {
  url?: string
  eventTypes?: readonly string[]
  enabled?: boolean
  /** null clears it. */
  description?: string | null
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

/** The writes take the caller's scope: its actor's audit row is written with the change. */
export interface WebhookService {
  createWebhook(scope: AccessScope, input: NewWebhookInput): Promise<WebhookWithSecret>
  listWebhooks(): Promise<WebhookView[]>
  getWebhook(id: string): Promise<WebhookView>
  updateWebhook(scope: AccessScope, id: string, update: WebhookUpdate): Promise<WebhookView>
  deleteWebhook(scope: AccessScope, id: string): Promise<void>
  /** A new signing secret (generated when absent); the old one stops working at once. */
  rotateSecret(scope: AccessScope, id: string, secret?: string): Promise<WebhookWithSecret>
  listDeliveries(id: string, options?: { limit?: number; beforeId?: number }): Promise<DeliveryView[]>
  /** Re-queues a failed delivery for one more attempt now. */
  retryDelivery(scope: AccessScope, id: string, deliveryId: number): Promise<DeliveryView>
  /** Records an event for its subscribers and wakes the worker. Never throws: errors are logged. */
  emit(type: WebhookEventType, data: unknown): Promise<void>
  /** One delivery round: claims due deliveries and sends them. */
  deliverDue(): Promise<DeliveryRound>
  /** Runs deliverDue every `intervalMs` and whenever emit() records deliveries, never overlapping itself. */
  start(intervalMs: number): void
  /** Stops the loop; waits for a round in progress. */
  stop(): Promise<void>
}

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

export const defaultRetryPolicy: RetryPolicy = { baseSeconds: 10, maxSeconds: 15 * 60, giveUpAfterSeconds: 3 * 86_400 }

const BATCH_SIZE = 50
/** Webhooks sent to at once; one webhook's deliveries go one after another, in event order. */
const CONCURRENCY = 4
const MIN_SECRET_LENGTH = 16
const MAX_SECRET_LENGTH = 200
const MAX_URL_LENGTH = 2000
const MAX_DESCRIPTION_LENGTH = 500
/** Above the API's page size (500), which asks for one more row to know whether a next page exists. */
const MAX_DELIVERIES_PAGE = 1000
const SIGNATURE_HEADER = 'orchard-signature'

/** The `orchard-signature` header value for `body` sent at `timestampSeconds`. */
export function signWebhookBody(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return `t=${timestampSeconds},v1=${hmacHex(secret, timestampSeconds, body)}`
}

/**
 * For receivers: true when `header` (the `orchard-signature` value) carries a v1 signature of
 * `body` made with `secret`, at a time within `toleranceSeconds` of `nowSeconds`.
 */
export function verifyWebhookSignature(secret: string, header: string | undefined, body: string | Buffer, toleranceSeconds: number, nowSeconds: number): boolean {
  if (!header) return false
  let timestamp: number | undefined
  const signatures: Buffer[] = []
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2)
    if (key === 't' && value && /^\d{1,12}$/.test(value)) timestamp = Number(value)
    else if (key === 'v1' && value && /^[0-9a-f]{64}$/i.test(value)) signatures.push(Buffer.from(value, 'hex'))
  }
  if (timestamp === undefined || signatures.length === 0) return false
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false
  const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex')
  return signatures.some((signature) => timingSafeEqual(signature, expected))
}

function hmacHex(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${timestampSeconds}.`).update(body).digest('hex')
}

export function createWebhookService(deps: WebhookServiceDeps): WebhookService {
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

  const view = (row: WebhookRow): WebhookView => ({
    id: row.id,
    url: row.url,
    eventTypes: row.eventTypes,
    enabled: row.enabled,
    description: row.description,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  })

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

  const sealedSecret = (id: string) => `webhook:${id}`

  function requireSecretBox(): SecretBox {
    if (!deps.secretBox) throw new OrchardError('conflict', 'webhooks need ORCHARD_SECRET_KEYS to seal their signing secrets')
    return deps.secretBox
  }

  function checkSecret(secret: string | undefined): string {
    if (secret === undefined) return `whsec_${randomBytes(32).toString('base64url')}`
    if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH || secret.length > MAX_SECRET_LENGTH || /\s/.test(secret)) {
      throw new OrchardError('validation_failed', `a webhook secret must be ${MIN_SECRET_LENGTH} to ${MAX_SECRET_LENGTH} characters without spaces`)
    }
    return secret
  }

  function checkUrl(url: string): string {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new OrchardError('validation_failed', 'the webhook URL is not a valid URL')
    }
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || !parsed.hostname) {
      throw new OrchardError('validation_failed', 'the webhook URL must be http:// or https:// with a host')
    }
    if (parsed.username || parsed.password) throw new OrchardError('validation_failed', 'the webhook URL must not carry credentials; the signature authenticates Orchard')
    const normalized = parsed.toString()
    if (normalized.length > MAX_URL_LENGTH) throw new OrchardError('validation_failed', `the webhook URL is longer than ${MAX_URL_LENGTH} characters`)
    return normalized
  }

  function checkEventTypes(eventTypes: readonly string[]): string[] {
    if (!Array.isArray(eventTypes) || eventTypes.length === 0) throw new OrchardError('validation_failed', 'a webhook needs at least one event type')
    const unknown = eventTypes.filter((type) => !(webhookEventTypes as readonly string[]).includes(type))
    if (unknown.length > 0) {
      throw new OrchardError('validation_failed', `unknown event types: ${unknown.join(', ')}; known: ${webhookEventTypes.join(', ')}`)
    }
    return [...new Set(eventTypes)]
  }

  function checkDescription(description: string | null | undefined): string | null {
    if (description == null) return null
    if (description.length > MAX_DESCRIPTION_LENGTH) throw new OrchardError('validation_failed', `a webhook description is at most ${MAX_DESCRIPTION_LENGTH} characters`)
    return description
  }

  async function existing(id: string): Promise<WebhookRow> {
    const row = await store.getWebhook(id)
    if (!row) throw new OrchardError('not_found', `no webhook ${id}`)
    return row
  }

  // --- delivery ---

  interface Outcome {
    ok: boolean
    statusCode?: number
    error?: string
    /** No HTTP answer (connection refused, timeout): the rest of the round skips this receiver. */
    unreachable?: boolean
  }

  function describeFetchError(error: unknown): string {
    const err = error as Error & { cause?: { code?: string; message?: string } }
    if (err?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`
    const cause = err?.cause?.code ?? err?.cause?.message
    return cause ? `${err.message} (${cause})` : String(err?.message ?? error)
  }

  async function send(delivery: DueDelivery, secret: string): Promise<Outcome> {
    const body = JSON.stringify(delivery.payload)
    const timestamp = Math.floor(now().getTime() / 1000)
    try {
      const response = await fetchImpl(delivery.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Orchard-Webhooks/1',
          'orchard-event-id': delivery.eventId,
          'orchard-event-type': delivery.eventType,
          'orchard-delivery-attempt': String(delivery.attempts + 1),
          [SIGNATURE_HEADER]: signWebhookBody(secret, timestamp, body),
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
      return { ok: false, error: describeFetchError(error), unreachable: true }
    }
  }

  /** When to try again after failed attempt number `attempt` (1-based), or null to give up. */
  function nextAttempt(delivery: DueDelivery, attempt: number, at: Date): Date | null {
    const deadline = delivery.createdAt.getTime() + retry.giveUpAfterSeconds * 1000
    if (at.getTime() >= deadline) return null
    const delaySeconds = Math.min(retry.baseSeconds * 2 ** Math.min(attempt - 1, 40), retry.maxSeconds)
    // The last attempt falls when the window closes.
    return new Date(Math.min(at.getTime() + delaySeconds * 1000, deadline))
  }

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
    const next = nextAttempt(delivery, attempts, at)
    await store.markFailedAttempt(delivery.id, { statusCode: outcome.statusCode ?? null, error: outcome.error ?? 'failed', nextAttemptAt: next }, at)
    round.failed++
    if (next) log.info({ ...fields, error: outcome.error, next_attempt_at: next.toISOString() }, 'webhook delivery failed; will retry')
    else log.warn({ ...fields, error: outcome.error }, 'webhook delivery failed; retry window closed, giving up')
  }

  /** One webhook's claimed deliveries, in event order. */
  async function deliverToWebhook(deliveries: DueDelivery[], round: DeliveryRound): Promise<void> {
    const first = deliveries[0]!
    let secret: string
    try {
      secret = deps.secretBox!.open(first.secretSealed, sealedSecret(first.webhookId)).toString('utf8')
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
        : await send(delivery, secret)
      if (outcome.unreachable) unreachable = outcome.error
      await record(delivery, outcome, round)
    }
  }

  async function deliverDue(): Promise<DeliveryRound> {
    const round: DeliveryRound = { attempted: 0, delivered: 0, failed: 0 }
    if (!deps.secretBox) {
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
        while (next < groups.length) await deliverToWebhook(groups[next++]!, round)
      }),
    )
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failure) throw failure.reason
    return round
  }

  // --- the loop ---

  interface Loop {
    stopped: boolean
    timer: NodeJS.Timeout | null
    running: Promise<void> | null
    /** Run another round as soon as this one ends (kicked, or the batch was full). */
    again: boolean
    intervalMs: number
  }
  let loop: Loop | null = null

  function schedule(state: Loop, delayMs: number): void {
    if (state.stopped) return
    if (state.timer) clearTimeout(state.timer)
    state.timer = setTimeout(() => runRounds(state), delayMs)
    state.timer.unref() // the loop must not keep a stopping process alive
  }

  function runRounds(state: Loop): void {
    state.timer = null
    if (state.stopped || state.running) return
    state.running = (async () => {
      do {
        state.again = false
        const round = await deliverDue()
        if (round.attempted >= BATCH_SIZE) state.again = true
      } while (state.again && !state.stopped)
    })()
      .catch((error: unknown) => log.error({ err: error }, 'webhook delivery round failed'))
      .finally(() => {
        state.running = null
        schedule(state, state.again ? 0 : state.intervalMs)
      })
  }

  /** Wakes the loop without waiting for it: at once when idle, right after the current round otherwise. */
  function kick(): void {
    if (!loop || loop.stopped) return
    if (loop.running) loop.again = true
    else schedule(loop, 0)
  }

  // Which event types have an enabled subscriber, cached for subscriptionCacheMs. Changes
  // through this process apply at once; another instance's changes within the cache time.
  let subscriptions: { types: Set<string>; loadedAtMs: number } | null = null
  let loading: Promise<Set<string>> | null = null
  const subscriptionCacheMs = deps.subscriptionCacheMs ?? 5_000
  async function subscribed(type: WebhookEventType): Promise<boolean> {
    let types = subscriptions && Date.now() - subscriptions.loadedAtMs < subscriptionCacheMs ? subscriptions.types : null
    if (!types) {
      loading ??= store
        .listWebhooks()
        .then((rows) => new Set(rows.filter((row) => row.enabled).flatMap((row) => row.eventTypes)))
        .finally(() => (loading = null))
      const loadedAtMs = Date.now()
      types = await loading
      subscriptions = { types, loadedAtMs }
    }
    return types.has(type) || types.has('*')
  }

  return {
    async createWebhook(scope, input) {
      subscriptions = null
      const box = requireSecretBox()
      const url = checkUrl(input.url)
      const eventTypes = checkEventTypes(input.eventTypes)
      const description = checkDescription(input.description)
      const secret = checkSecret(input.secret)
      const id = `wh_${randomBytes(12).toString('hex')}`
      const row = await store.createWebhook(scope, {
        id,
        url,
        eventTypes,
        description,
        enabled: input.enabled ?? true,
        // Bound to the webhook: a sealed secret cannot be moved to another row.
        secretSealed: box.seal(Buffer.from(secret, 'utf8'), sealedSecret(id)),
      })
      log.info({ webhook_id: id, event_types: eventTypes }, 'webhook created')
      return { ...view(row), secret }
    },

    async listWebhooks() {
      return (await store.listWebhooks()).map(view)
    },

    async getWebhook(id) {
      return view(await existing(id))
    },

    async updateWebhook(scope, id, update) {
      subscriptions = null
      const row = await store.updateWebhook(scope, id, {
        ...(update.url !== undefined ? { url: checkUrl(update.url) } : {}),
        ...(update.eventTypes !== undefined ? { eventTypes: checkEventTypes(update.eventTypes) } : {}),
        ...(update.enabled !== undefined ? { enabled: update.enabled } : {}),
        ...(update.description !== undefined ? { description: checkDescription(update.description) } : {}),
      })
      if (!row) throw new OrchardError('not_found', `no webhook ${id}`)
      log.info({ webhook_id: id, enabled: row.enabled, event_types: row.eventTypes }, 'webhook updated')
      return view(row)
    },

    async deleteWebhook(scope, id) {
      subscriptions = null
      if (!(await store.deleteWebhook(scope, id))) throw new OrchardError('not_found', `no webhook ${id}`)
      log.info({ webhook_id: id }, 'webhook deleted')
    },

    async rotateSecret(scope, id, given) {
      const box = requireSecretBox()
      const secret = checkSecret(given)
      const row = await store.updateWebhook(scope, id, { secretSealed: box.seal(Buffer.from(secret, 'utf8'), sealedSecret(id)) })
      if (!row) throw new OrchardError('not_found', `no webhook ${id}`)
      log.info({ webhook_id: id }, 'webhook secret rotated')
      return { ...view(row), secret }
    },

    async listDeliveries(id, options = {}) {
      const limit = options.limit ?? 50
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_DELIVERIES_PAGE) {
        throw new OrchardError('validation_failed', `limit must be an integer from 1 to ${MAX_DELIVERIES_PAGE}`)
      }
      await existing(id)
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
      kick()
      return deliveryView(result.delivery)
    },

    async emit(type, data) {
      try {
        // Every check-in and result passes here: without a subscriber, no database work.
        if (!(await subscribed(type))) return
        const at = now()
        const event: WebhookEvent = { id: randomUUID(), type, created_at: at.toISOString(), data }
        const written = await store.enqueueEvent({ id: event.id, type, payload: event, createdAt: at })
        if (written > 0) kick()
      } catch (error) {
        log.error({ err: error, event_type: type }, 'webhook event not recorded')
      }
    },

    deliverDue,

    start(intervalMs) {
      if (loop && !loop.stopped) return
      loop = { stopped: false, timer: null, running: null, again: false, intervalMs }
      schedule(loop, intervalMs)
    },

    async stop() {
      const state = loop
      if (!state) return
      state.stopped = true
      if (state.timer) clearTimeout(state.timer)
      state.timer = null
      if (state.running) await state.running
    },
  }
}
