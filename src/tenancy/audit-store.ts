// The audit log (table audit_events) and device tenancy periods (table device_tenancy).
//
// Admin writes are recorded by the store that makes the change, inside its transaction
// (recordAdminWrite), so a change and its audit row commit or roll back together. A write
// that fails, or that changes nothing in our database (a push, a sync started), is recorded
// by the admin API after the handler (appendAdminEvent). Device-side events (enrolled,
// checked out, identity renewed, wiped) come from the check-in path (appendDeviceEvent).
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely'
import { type AccessScope, type AuditActor } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { decodeCursor, pageOf, type Page } from '../db/pagination.js'
import type { AuditEventsTable, Database } from '../db/schema.js'

type Executor = Kysely<Database> | Transaction<Database>

export type AuditEventRow = Selectable<AuditEventsTable>

export interface AdminWriteTarget {
  type: string
  id: string | null
  /** The tenant of the row changed (null: central IT). */
  tenantId: string | null
  deviceId?: string | null
  details?: Record<string, unknown>
}

/**
 * Records the admin write of `scope.actor` in the transaction `trx`, once per request.
 * A scope without an actor (enrollment, background loops) records nothing.
 */
export async function recordAdminWrite(trx: Executor, scope: AccessScope, target: AdminWriteTarget): Promise<void> {
  const actor = scope.actor
  if (!actor || actor.recorded) return
  await trx.insertInto('audit_events').values(adminWriteRow(actor, target)).execute()
  actor.recorded = true
}

/** The audit row of a successful admin write by `actor` (for stores writing several at once). */
export function adminWriteRow(actor: AuditActor, target: AdminWriteTarget) {
  return {
    category: 'admin' as const,
    tenant_id: target.tenantId,
    principal_id: actor.principalId,
    principal_name: actor.principalName,
    principal_source: actor.principalSource,
    action: actor.action,
    target_type: target.type,
    target_id: target.id,
    device_id: target.deviceId ?? null,
    request_id: actor.requestId,
    outcome: 'success' as const,
    status_code: null,
    details: target.details ? JSON.stringify(target.details) : null,
  }
}

/** Opens a tenancy period for an enrolled device unless one is open (same transaction as the change). */
export async function openTenancy(trx: Executor, deviceId: string, at: Date): Promise<void> {
  await sql`
    insert into device_tenancy (device_id, tenant_id, started_at)
    select id, tenant_id, ${at} from devices where id = ${deviceId}
    on conflict (device_id) where ended_at is null do nothing`.execute(trx)
}

/** Closes the device's open tenancy period, if any. */
export async function closeTenancy(trx: Executor, deviceIds: readonly string[], at: Date): Promise<void> {
  if (deviceIds.length === 0) return
  await trx
    .updateTable('device_tenancy')
    .set({ ended_at: sql<Date>`greatest(started_at, ${at}::timestamptz)` })
    .where('device_id', 'in', deviceIds)
    .where('ended_at', 'is', null)
    .execute()
}

export interface AuditFilter {
  tenantId?: string
  deviceId?: string
  principalId?: string
  action?: string
  category?: 'admin' | 'device'
  outcome?: 'success' | 'failure'
  since?: Date
  until?: Date
}

export interface AdminEventInput {
  tenantId: string | null
  principalId: string
  principalName: string
  principalSource: 'database' | 'config' | 'oidc'
  action: string
  requestId: string
  outcome: 'success' | 'failure'
  statusCode: number
  targetType?: string | null
  targetId?: string | null
  deviceId?: string | null
  details?: Record<string, unknown> | null
}

export interface DeviceEventInput {
  deviceId: string
  /** declaration_status and softwareupdate_status are written by the DDM status store (src/ddm/status-store.ts), in its statement. */
  action:
    | 'enrolled'
    | 'checked_out'
    | 'identity_renewed'
    | 'reenrolled'
    | 'identity_conflict'
    | 'foreign_enrollment_path'
    | 'wiped'
    | 'deleted'
    | 'declaration_status'
    | 'softwareupdate_status'
  details?: Record<string, unknown>
  /** Default success; a refused device request (identity_conflict) is a failure. */
  outcome?: 'success' | 'failure'
  at: Date
}

export interface AuditStore {
  /** A row written outside a change's transaction: failures, and writes outside our database. */
  appendAdminEvent(event: AdminEventInput): Promise<void>
  /** A device-side event in the device's timeline, in the device's current tenant. */
  appendDeviceEvent(event: DeviceEventInput): Promise<void>
  /** Enrolled: the event and the start of a tenancy period, in one transaction. */
  deviceEnrolled(deviceId: string, at: Date, details?: Record<string, unknown>): Promise<void>
  /** Checked out: the event and the end of its tenancy period, in one transaction. */
  deviceCheckedOut(deviceId: string, at: Date): Promise<void>
  /** Newest first. */
  listEvents(scope: AccessScope, filter: AuditFilter, page: { limit: number; cursor?: string }): Promise<Page<AuditEventRow>>
}

const sortName = '-id'

export function createAuditStore(db: Kysely<Database>): AuditStore {
  async function deviceEvent(trx: Executor, event: DeviceEventInput): Promise<void> {
    await sql`
      insert into audit_events (at, category, tenant_id, action, target_type, target_id, device_id, outcome, details)
      select ${event.at}, 'device', d.tenant_id, ${event.action}, 'device', ${event.deviceId}, ${event.deviceId}, ${event.outcome ?? 'success'}, ${event.details ? JSON.stringify(event.details) : null}::jsonb
      from (select ${event.deviceId}::text as id) as wanted left join devices d on d.id = wanted.id`.execute(trx)
  }

  return {
    async appendAdminEvent(event) {
      await db
        .insertInto('audit_events')
        .values({
          category: 'admin',
          tenant_id: event.tenantId,
          principal_id: event.principalId,
          principal_name: event.principalName,
          principal_source: event.principalSource,
          action: event.action,
          target_type: event.targetType ?? null,
          target_id: event.targetId ?? null,
          device_id: event.deviceId ?? null,
          request_id: event.requestId,
          outcome: event.outcome,
          status_code: event.statusCode,
          details: event.details ? JSON.stringify(event.details) : null,
        })
        .execute()
    },

    async appendDeviceEvent(event) {
      await deviceEvent(db, event)
    },

    async deviceEnrolled(deviceId, at, details) {
      await db.transaction().execute(async (trx) => {
        await openTenancy(trx, deviceId, at)
        await deviceEvent(trx, { deviceId, action: 'enrolled', at, ...(details ? { details } : {}) })
      })
    },

    async deviceCheckedOut(deviceId, at) {
      await db.transaction().execute(async (trx) => {
        await closeTenancy(trx, [deviceId], at)
        await deviceEvent(trx, { deviceId, action: 'checked_out', at })
      })
    },

    async listEvents(scope, filter, page) {
      let query = db.selectFrom('audit_events').selectAll().where(inScope(scope, 'tenant_id'))
      if (filter.tenantId !== undefined) query = query.where('tenant_id', '=', filter.tenantId)
      if (filter.deviceId !== undefined) query = query.where('device_id', '=', filter.deviceId)
      if (filter.principalId !== undefined) query = query.where('principal_id', '=', filter.principalId)
      if (filter.action !== undefined) query = query.where('action', '=', filter.action)
      if (filter.category !== undefined) query = query.where('category', '=', filter.category)
      if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome)
      if (filter.since !== undefined) query = query.where('at', '>=', filter.since)
      if (filter.until !== undefined) query = query.where('at', '<', filter.until)
      if (page.cursor) {
        const cursor = decodeCursor(page.cursor, sortName, { value: 'bigint', id: 'bigint' })
        query = query.where('id', '<', cursor.id as never)
      }
      const rows = await query
        .orderBy('id', 'desc')
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sortName,
        (row) => ({ value: String(row.id), id: String(row.id) }),
        (row) => row,
      )
    },
  }
}
