// Webhook subscriptions: the `webhooks` table (URL, event types, the sealed signing secret).
// Webhooks are installation-wide (owners only): the writes below take the caller's scope
// for its audit row (tenant null), written in the transaction of the change. The audit
// details name the URL and event types, never the signing secret.
import { sql, type Kysely, type Selectable } from 'kysely'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite, type AdminWriteTarget } from '../tenancy/audit-store.js'
import type { Database, WebhooksTable } from '../db/schema.js'

export interface WebhookRow {
  id: string
  url: string
  secretSealed: Buffer
  eventTypes: string[]
  enabled: boolean
  description: string | null
  createdAt: Date
  updatedAt: Date
}

export interface NewWebhook {
  id: string
  url: string
  secretSealed: Buffer
  eventTypes: string[]
  enabled?: boolean
  description?: string | null
}

export interface WebhookPatch {
  url?: string
  enabled?: boolean
  eventTypes?: string[]
  description?: string | null
  secretSealed?: Buffer
}

export interface WebhookSubscriptionStore {
  createWebhook(scope: AccessScope, row: NewWebhook): Promise<WebhookRow>
  listWebhooks(): Promise<WebhookRow[]>
  getWebhook(id: string): Promise<WebhookRow | undefined>
  updateWebhook(scope: AccessScope, id: string, patch: WebhookPatch): Promise<WebhookRow | undefined>
  /** Its deliveries go with it (on delete cascade). */
  deleteWebhook(scope: AccessScope, id: string): Promise<boolean>
}

/** What the audit row of a change to a webhook says about it: never the secret. */
function webhookTarget(row: Pick<Selectable<WebhooksTable>, 'id' | 'url' | 'event_types'>, extra: Record<string, unknown> = {}): AdminWriteTarget {
  return { type: 'webhook', id: row.id, tenantId: null, details: { url: row.url, event_types: row.event_types, ...extra } }
}

const toWebhook = (r: Selectable<WebhooksTable>): WebhookRow => ({
  id: r.id,
  url: r.url,
  secretSealed: r.secret_sealed,
  eventTypes: r.event_types,
  enabled: r.enabled,
  description: r.description,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
})

export function createWebhookSubscriptionStore(db: Kysely<Database>): WebhookSubscriptionStore {
  return {
    async createWebhook(scope, row) {
      return db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('webhooks')
          .values({
            id: row.id,
            url: row.url,
            secret_sealed: row.secretSealed,
            event_types: row.eventTypes,
            enabled: row.enabled ?? true,
            description: row.description ?? null,
          })
          .returningAll()
          .executeTakeFirstOrThrow()
        await recordAdminWrite(trx, scope, webhookTarget(inserted, { enabled: inserted.enabled }))
        return toWebhook(inserted)
      })
    },

    async listWebhooks() {
      return (await db.selectFrom('webhooks').selectAll().orderBy('created_at').orderBy('id').execute()).map(toWebhook)
    },

    async getWebhook(id) {
      const row = await db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst()
      return row ? toWebhook(row) : undefined
    },

    async updateWebhook(scope, id, patch) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('webhooks')
          .set({
            ...(patch.url !== undefined ? { url: patch.url } : {}),
            ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
            ...(patch.eventTypes !== undefined ? { event_types: patch.eventTypes } : {}),
            ...(patch.description !== undefined ? { description: patch.description } : {}),
            ...(patch.secretSealed !== undefined ? { secret_sealed: patch.secretSealed } : {}),
            updated_at: sql`now()`,
          })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirst()
        if (!row) return undefined
        const changed = {
          ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
          ...(patch.description !== undefined ? { description: patch.description } : {}),
          ...(patch.secretSealed !== undefined ? { secret_rotated: true } : {}),
        }
        await recordAdminWrite(trx, scope, webhookTarget(row, changed))
        return toWebhook(row)
      })
    },

    async deleteWebhook(scope, id) {
      return db.transaction().execute(async (trx) => {
        const deleted = await trx.deleteFrom('webhooks').where('id', '=', id).returning(['id', 'url', 'event_types']).executeTakeFirst()
        if (!deleted) return false
        await recordAdminWrite(trx, scope, webhookTarget(deleted))
        return true
      })
    },
  }
}
