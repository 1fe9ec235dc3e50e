// Webhook subscriptions: a URL, the event types it wants, and a signing secret sealed at rest
// (bound to its webhook, so a sealed secret cannot be moved to another row). Also answers,
// from a short cache, whether an event type has any subscriber at all.
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { WebhookRow, WebhookSubscriptionStore } from './subscription-store.js'

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
  /** A device's status report changed declarations' states (active, valid, reasons). */
  'declaration.status',
  /** A device's status report changed its software update status items (install state, pending version, failure). */
  'softwareupdate.status',
  /** A job started, or ended (succeeded, failed or cancelled); the data is the Job of the admin API. */
  'job.started',
  'job.finished',
  '*',
] as const

export type WebhookSubscription = (typeof webhookEventTypes)[number]
/** The types an event itself can have. */
export type WebhookEventType = Exclude<WebhookSubscription, '*'>

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

/** The writes take the caller's scope: its actor's audit row is written with the change. */
export interface WebhookSubscriptions {
  createWebhook(scope: AccessScope, input: NewWebhookInput): Promise<WebhookWithSecret>
  listWebhooks(): Promise<WebhookView[]>
  getWebhook(id: string): Promise<WebhookView>
  updateWebhook(scope: AccessScope, id: string, update: WebhookUpdate): Promise<WebhookView>
  deleteWebhook(scope: AccessScope, id: string): Promise<void>
  /** A new signing secret (generated when absent); the old one stops working at once. */
  rotateSecret(scope: AccessScope, id: string, secret?: string): Promise<WebhookWithSecret>
}

export interface WebhookSubscriptionsDeps {
  store: WebhookSubscriptionStore
  secretBox: SecretBox | null
  logger: Logger
  /** How long the set of subscribed event types is cached (default 5 s). */
  subscriptionCacheMs?: number
}

const MIN_SECRET_LENGTH = 16
const MAX_SECRET_LENGTH = 200
const MAX_URL_LENGTH = 2000
const MAX_DESCRIPTION_LENGTH = 500

/** The associated data a webhook's secret is sealed with. */
const sealedSecretContext = (webhookId: string) => `webhook:${webhookId}`

function sealSigningSecret(box: SecretBox, webhookId: string, secret: string): Buffer {
  return box.seal(Buffer.from(secret, 'utf8'), sealedSecretContext(webhookId))
}

/** The signing secret of a webhook, as sealed by createWebhook or rotateSecret. */
export function openSigningSecret(box: SecretBox, webhookId: string, sealed: Buffer): string {
  return box.open(sealed, sealedSecretContext(webhookId)).toString('utf8')
}

async function existingWebhook(store: WebhookSubscriptionStore, id: string): Promise<WebhookRow> {
  const row = await store.getWebhook(id)
  if (!row) throw new OrchardError('not_found', `no webhook ${id}`)
  return row
}

const view = (row: WebhookRow): WebhookView => ({
  id: row.id,
  url: row.url,
  eventTypes: row.eventTypes,
  enabled: row.enabled,
  description: row.description,
  createdAt: row.createdAt,
  updatedAt: row.updatedAt,
})

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
  if (parsed.username || parsed.password)
    throw new OrchardError('validation_failed', 'the webhook URL must not carry credentials; the signature authenticates Orchard')
  const normalized = parsed.toString()
  if (normalized.length > MAX_URL_LENGTH) throw new OrchardError('validation_failed', `the webhook URL is longer than ${MAX_URL_LENGTH} characters`)
  return normalized
}

function checkEventTypes(eventTypes: readonly string[]): string[] {
  const given: unknown = eventTypes // callers outside TypeScript may send anything
  if (!Array.isArray(given) || eventTypes.length === 0) throw new OrchardError('validation_failed', 'a webhook needs at least one event type')
  const unknown = eventTypes.filter((type) => !(webhookEventTypes as readonly string[]).includes(type))
  if (unknown.length > 0) {
    throw new OrchardError('validation_failed', `unknown event types: ${unknown.join(', ')}; known: ${webhookEventTypes.join(', ')}`)
  }
  return [...new Set(eventTypes)]
}

function checkDescription(description: string | null | undefined): string | null {
  if (description == null) return null
  if (description.length > MAX_DESCRIPTION_LENGTH)
    throw new OrchardError('validation_failed', `a webhook description is at most ${MAX_DESCRIPTION_LENGTH} characters`)
  return description
}

export function createWebhookSubscriptions(deps: WebhookSubscriptionsDeps): WebhookSubscriptions & {
  /** True when an enabled webhook subscribes to `type` (or to '*'). */
  hasSubscriber(type: WebhookEventType): Promise<boolean>
} {
  const { store } = deps
  const log = deps.logger.child({ service: 'webhooks' })

  function requireSecretBox(): SecretBox {
    if (!deps.secretBox) throw new OrchardError('conflict', 'webhooks need ORCHARD_SECRET_KEYS to seal their signing secrets')
    return deps.secretBox
  }

  // Which event types have an enabled subscriber, cached for subscriptionCacheMs. Changes
  // through this process apply at once; another instance's changes within the cache time.
  let subscribed: { types: Set<string>; loadedAtMs: number } | null = null
  let loading: Promise<Set<string>> | null = null
  const subscriptionCacheMs = deps.subscriptionCacheMs ?? 5_000

  return {
    async hasSubscriber(type) {
      let types = subscribed && Date.now() - subscribed.loadedAtMs < subscriptionCacheMs ? subscribed.types : null
      if (!types) {
        loading ??= store
          .listWebhooks()
          .then((rows) => new Set(rows.filter((row) => row.enabled).flatMap((row) => row.eventTypes)))
          .finally(() => (loading = null))
        const loadedAtMs = Date.now()
        types = await loading
        subscribed = { types, loadedAtMs }
      }
      return types.has(type) || types.has('*')
    },

    async createWebhook(scope, input) {
      subscribed = null
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
        secretSealed: sealSigningSecret(box, id, secret),
      })
      log.info({ webhook_id: id, event_types: eventTypes }, 'webhook created')
      return { ...view(row), secret }
    },

    async listWebhooks() {
      return (await store.listWebhooks()).map(view)
    },

    async getWebhook(id) {
      return view(await existingWebhook(store, id))
    },

    async updateWebhook(scope, id, update) {
      subscribed = null
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
      subscribed = null
      if (!(await store.deleteWebhook(scope, id))) throw new OrchardError('not_found', `no webhook ${id}`)
      log.info({ webhook_id: id }, 'webhook deleted')
    },

    async rotateSecret(scope, id, given) {
      const box = requireSecretBox()
      const secret = checkSecret(given)
      const row = await store.updateWebhook(scope, id, { secretSealed: sealSigningSecret(box, id, secret) })
      if (!row) throw new OrchardError('not_found', `no webhook ${id}`)
      log.info({ webhook_id: id }, 'webhook secret rotated')
      return { ...view(row), secret }
    },
  }
}
