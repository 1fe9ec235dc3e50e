// The durable delivery outbox: one `webhook_deliveries` row per (event, subscribed webhook),
// written in the same statement that fans the event out, then claimed by the delivery workers
// of any number of server instances (SKIP LOCKED plus a lease).
// Times that the worker logic depends on are passed in, never SQL now(), so tests drive the clock.
import { sql, type Kysely, type Selectable } from 'kysely'
import { preparedStatement } from '../db/statement-names.js'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database, WebhookDeliveriesTable } from '../db/schema.js'

export interface WebhookEventRow {
  id: string
  type: string
  /** Stored as jsonb and sent as the request body (JSON) on every attempt. */
  payload: unknown
  /** When the event happened (default: the database's now()); first attempt due then. */
  createdAt?: Date
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed'

export interface DeliveryRow {
  id: number
  webhookId: string
  eventId: string
  eventType: string
  payload: unknown
  status: DeliveryStatus
  attempts: number
  nextAttemptAt: Date
  lastAttemptAt: Date | null
  lastStatusCode: number | null
  lastError: string | null
  deliveredAt: Date | null
  createdAt: Date
}

/** A claimed delivery with what the worker needs to send it. */
export interface DueDelivery {
  id: number
  webhookId: string
  url: string
  secretSealed: Buffer
  eventId: string
  eventType: string
  payload: unknown
  /** Attempts made before this one. */
  attempts: number
  createdAt: Date
}

export interface FailedAttempt {
  statusCode?: number | null
  error: string
  /** When to try again; null gives up (status 'failed'). */
  nextAttemptAt: Date | null
}

export type RetryDeliveryResult = { outcome: 'requeued'; delivery: DeliveryRow } | { outcome: 'not_failed'; delivery: DeliveryRow } | { outcome: 'not_found' }

export interface WebhookOutboxStore {
  /**
   * Fans an event out to every enabled webhook subscribed to its type (or to '*') in one
   * statement. Returns the number of deliveries written; a repeated event ID writes none.
   */
  enqueueEvent(event: WebhookEventRow): Promise<number>
  /**
   * Claims up to `limit` pending deliveries due at `now` of enabled webhooks, oldest due first.
   * The rows are locked with SKIP LOCKED, so concurrent claimers never take the same row, and
   * their next attempt is pushed `leaseSeconds` ahead: nobody else takes them while they are in
   * flight, and a worker that dies mid-delivery only delays them by the lease. Sorted by ID.
   */
  claimDue(now: Date, limit: number, leaseSeconds: number): Promise<DueDelivery[]>
  markDelivered(id: number, statusCode: number, now: Date): Promise<void>
  markFailedAttempt(id: number, attempt: FailedAttempt, now: Date): Promise<void>
  /** A webhook's deliveries, newest first; `beforeId` pages on. */
  listDeliveries(webhookId: string, options: { limit: number; beforeId?: number }): Promise<DeliveryRow[]>
  /** Deletes delivered and failed deliveries created before `olderThan`; returns how many. */
  pruneFinished(olderThan: Date): Promise<number>
  /**
   * Re-queues a failed delivery for an attempt at `now` (one more attempt: it is past its retry
   * window), with the caller's audit row (tenant null) in the same transaction.
   */
  retryDelivery(scope: AccessScope, webhookId: string, deliveryId: number, now: Date): Promise<RetryDeliveryResult>
}

const MAX_ERROR_LENGTH = 1000

const toDelivery = (r: Selectable<WebhookDeliveriesTable>): DeliveryRow => ({
  id: Number(r.id),
  webhookId: r.webhook_id,
  eventId: r.event_id,
  eventType: r.event_type,
  payload: r.payload,
  status: r.status,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastAttemptAt: r.last_attempt_at,
  lastStatusCode: r.last_status_code,
  lastError: r.last_error,
  deliveredAt: r.delivered_at,
  createdAt: r.created_at,
})

async function getDelivery(executor: Kysely<Database>, webhookId: string, deliveryId: number): Promise<DeliveryRow | undefined> {
  const row = await executor.selectFrom('webhook_deliveries').selectAll().where('id', '=', deliveryId).where('webhook_id', '=', webhookId).executeTakeFirst()
  return row ? toDelivery(row) : undefined
}

export function createWebhookOutboxStore(db: Kysely<Database>): WebhookOutboxStore {
  return {
    async enqueueEvent(event) {
      // Runs on every check-in and command result: one prepared statement, no round trip per webhook.
      const at = event.createdAt ?? null
      const { rows } = await sql`${sql.raw(preparedStatement)}
        insert into webhook_deliveries (webhook_id, event_id, event_type, payload, next_attempt_at, created_at)
        select w.id, ${event.id}::text, ${event.type}::text, ${JSON.stringify(event.payload)}::text::jsonb,
               coalesce(${at}::timestamptz, now()), coalesce(${at}::timestamptz, now())
        from webhooks w
        where w.enabled and (${event.type}::text = any(w.event_types) or '*' = any(w.event_types))
        on conflict (webhook_id, event_id) do nothing
        returning 1`.execute(db)
      // Counted from returned rows: PGlite reports no affected-row count for raw SQL.
      return rows.length
    },

    async claimDue(now, limit, leaseSeconds) {
      // The CTE's scan is served by webhook_deliveries_due_idx (next_attempt_at where pending).
      // Under READ COMMITTED a row another claimer updated in the meantime is re-checked after
      // the lock and dropped, since its next_attempt_at has moved past `now`.
      const { rows } = await sql<{
        id: number | string
        webhook_id: string
        url: string
        secret_sealed: Buffer
        event_id: string
        event_type: string
        payload: unknown
        attempts: number
        created_at: Date
      }>`
        with due as (
          select d.id
          from webhook_deliveries d
          join webhooks w on w.id = d.webhook_id
          where d.status = 'pending' and d.next_attempt_at <= ${now}::timestamptz and w.enabled
          order by d.next_attempt_at, d.id
          limit ${limit}::int
          for update of d skip locked
        )
        update webhook_deliveries d
        set next_attempt_at = ${now}::timestamptz + make_interval(secs => ${leaseSeconds}::int)
        from due, webhooks w
        where d.id = due.id and w.id = d.webhook_id
        returning d.id, d.webhook_id, w.url, w.secret_sealed, d.event_id, d.event_type, d.payload, d.attempts, d.created_at`.execute(db)
      return rows
        .map((r) => ({
          id: Number(r.id),
          webhookId: r.webhook_id,
          url: r.url,
          secretSealed: r.secret_sealed,
          eventId: r.event_id,
          eventType: r.event_type,
          payload: r.payload,
          attempts: r.attempts,
          createdAt: r.created_at,
        }))
        .sort((a, b) => a.id - b.id)
    },

    async markDelivered(id, statusCode, now) {
      await db
        .updateTable('webhook_deliveries')
        .set((eb) => ({
          status: 'delivered',
          attempts: eb('attempts', '+', 1),
          last_attempt_at: now,
          last_status_code: statusCode,
          last_error: null,
          delivered_at: now,
        }))
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .execute()
    },

    async markFailedAttempt(id, attempt, now) {
      await db
        .updateTable('webhook_deliveries')
        .set((eb) => ({
          status: attempt.nextAttemptAt ? 'pending' : 'failed',
          attempts: eb('attempts', '+', 1),
          last_attempt_at: now,
          last_status_code: attempt.statusCode ?? null,
          last_error: attempt.error.slice(0, MAX_ERROR_LENGTH),
          next_attempt_at: attempt.nextAttemptAt ?? now,
        }))
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .execute()
    },

    async listDeliveries(webhookId, options) {
      // Served by webhook_deliveries_webhook_idx (webhook_id, id desc).
      let query = db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId)
      if (options.beforeId !== undefined) query = query.where('id', '<', options.beforeId)
      return (await query.orderBy('id', 'desc').limit(options.limit).execute()).map(toDelivery)
    },

    async pruneFinished(olderThan) {
      // Served by webhook_deliveries_finished_idx (created_at where status <> 'pending').
      const result = await db.deleteFrom('webhook_deliveries').where('status', '<>', 'pending').where('created_at', '<', olderThan).executeTakeFirst()
      return Number(result.numDeletedRows)
    },

    async retryDelivery(scope, webhookId, deliveryId, now) {
      return db.transaction().execute(async (trx): Promise<RetryDeliveryResult> => {
        const row = await trx
          .updateTable('webhook_deliveries')
          .set({ status: 'pending', next_attempt_at: now })
          .where('id', '=', deliveryId)
          .where('webhook_id', '=', webhookId)
          .where('status', '=', 'failed')
          .returningAll()
          .executeTakeFirst()
        if (row) {
          await recordAdminWrite(trx, scope, {
            type: 'webhook_delivery',
            id: String(row.id),
            tenantId: null,
            details: { webhook_id: webhookId, event_id: row.event_id, event_type: row.event_type, attempts: row.attempts },
          })
          return { outcome: 'requeued', delivery: toDelivery(row) }
        }
        const existing = await getDelivery(trx, webhookId, deliveryId)
        return existing ? { outcome: 'not_failed', delivery: existing } : { outcome: 'not_found' }
      })
    },
  }
}
