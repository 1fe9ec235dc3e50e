// The aggregates behind the fleet gauges of /metrics (ops/fleet-metrics.ts): a handful of
// grouped counts, each one statement, none returning a row per device. Ages are computed by
// the database (now() - min(...)), so no clock skew between replicas and database enters.
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { isOpen } from '../queue/queue-sql.js'

export interface FleetMetricsSnapshot {
  tenants: Array<{ id: string; name: string }>
  pendingCommands: Array<{ tenantId: string | null; count: number; oldestAgeSeconds: number }>
  devices: Array<{ tenantId: string | null; kind: string; lifecycleState: string; count: number }>
  repush: { due: number; oldestDueSeconds: number }
  webhookOutbox: { pending: number; oldestPendingAgeSeconds: number; failed: number }
  blueprintItemsFailed: Array<{ tenantId: string | null; itemType: string; count: number }>
  abmTokens: SyncTokenRow[]
  vppTokens: SyncTokenRow[]
  pushCertificates: Array<{ topic: string; notAfter: Date }>
  /** Jobs not finished, by type and state (queued, running). */
  jobs: Array<{ type: string; state: string; count: number }>
  /** The database's clock when the snapshot was taken (expiry days are counted from it). */
  now: Date
}

export interface SyncTokenRow {
  id: string
  name: string
  tenantId: string | null
  status: string
  lastSyncAt: Date | null
  expiresAt: Date | null
}

export interface FleetMetricsStore {
  snapshot(): Promise<FleetMetricsSnapshot>
}

const num = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value))

export function createFleetMetricsStore(db: Kysely<Database>): FleetMetricsStore {
  return {
    // One transaction on one connection, the statements one after another: a scrape holds at
    // most one pool connection, and now() is the same instant in every statement.
    snapshot: () =>
      db.transaction().execute(async (trx) => {
        const run = async <T>(query: { execute(db: Kysely<Database>): Promise<T> }): Promise<T> => query.execute(trx)
        const now = await run(sql<{ now: Date }>`select now() as now`)
        const tenants = await trx.selectFrom('tenants').select(['id', 'name']).orderBy('id').execute()
        const pending = await run(
          sql<{ tenant_id: string | null; count: number; oldest: number | string | null }>`
          select d.tenant_id, count(*)::int as count, extract(epoch from now() - min(t.created_at))::float8 as oldest
          from command_targets t
          join enrollments e on e.id = t.enrollment_id
          join devices d on d.id = e.device_id
          where ${isOpen('t')} and (t.expires_at is null or t.expires_at > now())
          group by d.tenant_id`,
        )
        const devices = await trx
          .selectFrom('devices')
          .select(['tenant_id', 'kind', 'lifecycle_state', sql<number>`count(*)::int`.as('count')])
          .groupBy(['tenant_id', 'kind', 'lifecycle_state'])
          .execute()
        const repush = await run(sql<{ due: number; oldest: number | string | null }>`
          select count(*)::int as due, extract(epoch from now() - min(next_repush_at))::float8 as oldest
          from enrollments
          where enabled and push_invalid_at is null and next_repush_at <= now()`)
        const outbox = await run(sql<{ pending: number; oldest: number | string | null; failed: number }>`
          select count(*) filter (where status = 'pending')::int as pending,
                 extract(epoch from now() - min(created_at) filter (where status = 'pending'))::float8 as oldest,
                 count(*) filter (where status = 'failed')::int as failed
          from webhook_deliveries
          where status in ('pending', 'failed')`)
        const failedItems = await run(sql<{ tenant_id: string | null; item_type: string; count: number }>`
          select d.tenant_id, s.item_type, count(*)::int as count
          from device_config_state s join devices d on d.id = s.device_id
          where s.status = 'failed'
          group by d.tenant_id, s.item_type`)
        const abm = await trx
          .selectFrom('dep_tokens')
          .select(['id', 'name', 'tenant_id', 'status', 'last_sync_at', 'access_token_expiry as expires_at'])
          .orderBy('id')
          .execute()
        const vpp = await trx.selectFrom('vpp_tokens').select(['id', 'name', 'tenant_id', 'status', 'last_sync_at', 'expires_at']).orderBy('id').execute()
        const push = await trx.selectFrom('push_certificates').select(['topic', 'not_after']).orderBy('topic').execute()
        // Served by jobs_open_idx (only unfinished jobs).
        const jobs = await trx
          .selectFrom('jobs')
          .select(['type', 'state', sql<number>`count(*)::int`.as('count')])
          .where('state', 'in', ['queued', 'running'])
          .groupBy(['type', 'state'])
          .execute()
        const token = (row: { id: string; name: string; tenant_id: string | null; status: string; last_sync_at: Date | null; expires_at: Date | null }) => ({
          id: row.id,
          name: row.name,
          tenantId: row.tenant_id,
          status: row.status,
          lastSyncAt: row.last_sync_at,
          expiresAt: row.expires_at,
        })
        const outboxRow = outbox.rows[0]
        const repushRow = repush.rows[0]
        return {
          now: new Date(now.rows[0]!.now),
          tenants,
          pendingCommands: pending.rows.map((row) => ({ tenantId: row.tenant_id, count: row.count, oldestAgeSeconds: num(row.oldest) })),
          devices: devices.map((row) => ({ tenantId: row.tenant_id, kind: row.kind, lifecycleState: row.lifecycle_state, count: num(row.count) })),
          repush: { due: num(repushRow?.due), oldestDueSeconds: num(repushRow?.oldest) },
          webhookOutbox: { pending: num(outboxRow?.pending), oldestPendingAgeSeconds: num(outboxRow?.oldest), failed: num(outboxRow?.failed) },
          blueprintItemsFailed: failedItems.rows.map((row) => ({ tenantId: row.tenant_id, itemType: row.item_type, count: row.count })),
          abmTokens: abm.map(token),
          vppTokens: vpp.map(token),
          pushCertificates: push.map((row) => ({ topic: row.topic, notAfter: row.not_after })),
          jobs,
        }
      }),
  }
}
