// Reports per tenant: what the fleet looks like now (counts), and device-days in a period
// (billing per device per year), computed from device_tenancy periods.
import { sql, type Kysely } from 'kysely'
import { inScope, type AccessScope } from './access-scope.js'
import type { Database } from './schema.js'

export interface CountRow {
  tenantId: string | null
  value: string | null
  count: number
}

export interface DeviceCountFacts {
  totals: Array<{ tenantId: string | null; total: number; enrolled: number; seen1d: number; seen7d: number; seen30d: number; seenOlder: number; neverSeen: number }>
  byKind: CountRow[]
  byModel: CountRow[]
  byOsVersion: CountRow[]
}

export interface DeviceDaysQuery {
  /** First day counted (UTC, YYYY-MM-DD). */
  from: string
  /** Last day counted, inclusive (UTC, YYYY-MM-DD). */
  to: string
  /** Periods still open are counted up to this moment, never into the future. */
  now: Date
  tenantId?: string | null
}

export interface DeviceDaysRow {
  tenantId: string | null
  deviceId: string
  serialNumber: string | null
  days: number
  firstDay: string
  lastDay: string
}

export interface ReportStore {
  deviceCounts(scope: AccessScope, filter: { tenantId?: string | null }, now: Date): Promise<DeviceCountFacts>
  /** One row per device and tenant with at least one managed day in the period. */
  deviceDays(scope: AccessScope, query: DeviceDaysQuery): Promise<DeviceDaysRow[]>
}

const day = 24 * 60 * 60 * 1000

export function createReportStore(db: Kysely<Database>): ReportStore {
  function devices(scope: AccessScope, tenantId: string | null | undefined) {
    let query = db.selectFrom('devices as d').leftJoin('enrollments as e', 'e.id', 'd.id').where(inScope(scope, 'd.tenant_id'))
    if (tenantId !== undefined) query = query.where('d.tenant_id', tenantId === null ? 'is' : '=', tenantId)
    return query
  }

  async function countBy(scope: AccessScope, tenantId: string | null | undefined, expression: ReturnType<typeof sql<string | null>>): Promise<CountRow[]> {
    const rows = await devices(scope, tenantId)
      .select([sql<string | null>`d.tenant_id`.as('tenant_id'), expression.as('value'), sql<string>`count(*)`.as('count')])
      .groupBy([sql`1`, sql`2`])
      .orderBy(sql`1`)
      .orderBy(sql`3`, 'desc')
      .orderBy(sql`2`)
      .execute()
    return rows.map((row) => ({ tenantId: row.tenant_id, value: row.value, count: Number(row.count) }))
  }

  return {
    async deviceCounts(scope, filter, now) {
      const ago = (days: number) => new Date(now.getTime() - days * day)
      const totals = await devices(scope, filter.tenantId)
        .select([
          sql<string | null>`d.tenant_id`.as('tenant_id'),
          sql<string>`count(*)`.as('total'),
          sql<string>`count(*) filter (where coalesce(e.enabled, false))`.as('enrolled'),
          sql<string>`count(*) filter (where e.last_seen_at >= ${ago(1)})`.as('seen_1d'),
          sql<string>`count(*) filter (where e.last_seen_at >= ${ago(7)})`.as('seen_7d'),
          sql<string>`count(*) filter (where e.last_seen_at >= ${ago(30)})`.as('seen_30d'),
          sql<string>`count(*) filter (where e.last_seen_at < ${ago(30)})`.as('seen_older'),
          sql<string>`count(*) filter (where e.last_seen_at is null)`.as('never_seen'),
        ])
        .groupBy('d.tenant_id')
        .execute()
      return {
        totals: totals.map((row) => ({
          tenantId: row.tenant_id,
          total: Number(row.total),
          enrolled: Number(row.enrolled),
          seen1d: Number(row.seen_1d),
          seen7d: Number(row.seen_7d),
          seen30d: Number(row.seen_30d),
          seenOlder: Number(row.seen_older),
          neverSeen: Number(row.never_seen),
        })),
        byKind: await countBy(scope, filter.tenantId, sql<string | null>`d.kind`),
        // ProductName is the model identifier (iPad13,1); Model (a part number) when it is missing.
        byModel: await countBy(scope, filter.tenantId, sql<string | null>`coalesce(d.product_name, d.model)`),
        byOsVersion: await countBy(scope, filter.tenantId, sql<string | null>`d.os_version`),
      }
    },

    async deviceDays(scope, query) {
      const from = new Date(`${query.from}T00:00:00Z`)
      const end = new Date(new Date(`${query.to}T00:00:00Z`).getTime() + day)
      const until = end < query.now ? end : query.now
      if (until <= from) return []
      const tenantCondition = query.tenantId === undefined ? sql`true` : query.tenantId === null ? sql`t.tenant_id is null` : sql`t.tenant_id = ${query.tenantId}`
      // A device counts a UTC day for a tenant when it was managed there at any moment of
      // that day: periods are clipped to the report, cut into days, and days that two
      // periods share (a re-enrollment, a move there and back) count once. A device that
      // moves mid-day counts that day in both tenants.
      const { rows } = await sql<{ tenant_id: string | null; device_id: string; serial_number: string | null; days: string; first_day: string; last_day: string }>`
        with clipped as (
          select t.device_id, t.tenant_id,
            greatest(t.started_at, ${from}::timestamptz) at time zone 'UTC' as starts,
            least(coalesce(t.ended_at, ${until}::timestamptz), ${until}::timestamptz) at time zone 'UTC' as ends
          from device_tenancy t
          where t.started_at < ${until}::timestamptz
            and (t.ended_at is null or t.ended_at > ${from}::timestamptz or (t.ended_at = t.started_at and t.started_at >= ${from}::timestamptz))
            and ${inScope(scope, 't.tenant_id')} and ${tenantCondition}
        ),
        managed_days as (
          select distinct c.device_id, c.tenant_id, managed_day::date as managed_day
          from clipped c,
            generate_series(date_trunc('day', c.starts), greatest(c.starts, c.ends - interval '1 microsecond'), interval '1 day') as managed_day
        )
        select m.tenant_id, m.device_id, d.serial_number, count(*) as days,
          to_char(min(m.managed_day), 'YYYY-MM-DD') as first_day, to_char(max(m.managed_day), 'YYYY-MM-DD') as last_day
        from managed_days m left join devices d on d.id = m.device_id
        group by m.tenant_id, m.device_id, d.serial_number
        order by m.tenant_id nulls first, m.device_id`.execute(db)
      return rows.map((row) => ({
        tenantId: row.tenant_id,
        deviceId: row.device_id,
        serialNumber: row.serial_number,
        days: Number(row.days),
        firstDay: row.first_day,
        lastDay: row.last_day,
      }))
    },
  }
}
