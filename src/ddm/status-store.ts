// The status channel's latest values per device: status items (device_status_items) and each
// declaration's status (device_declaration_status), applied from partial reports; the items
// that mirror inventory columns (OS version, build, model) update the device row too.
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { DeclarationStatus } from '../mdm/declarations.js'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'

export interface StatusItemRow {
  item: string
  value: unknown
  updatedAt: Date
}

export interface DeclarationStatusRow {
  identifier: string
  kind: string
  serverToken: string | null
  active: boolean
  valid: 'valid' | 'invalid' | 'unknown'
  reasons: unknown
  updatedAt: Date
}

export interface StatusStore {
  /** Stored values of these items (list items are merged with what a partial report brings). */
  items(deviceId: string, names: readonly string[]): Promise<Map<string, unknown>>
  apply(deviceId: string, report: { items: ReadonlyMap<string, unknown>; declarations: readonly DeclarationStatus[]; full: boolean }, at: Date): Promise<void>
  statusItems(scope: AccessScope, deviceId: string): Promise<StatusItemRow[] | undefined>
  declarationStatuses(deviceId: string): Promise<DeclarationStatusRow[]>
}

/** Status items that are inventory columns: kept on the device row as soon as they are reported. */
const inventoryColumns: Record<string, 'os_version' | 'build_version' | 'product_name'> = {
  'device.operating-system.version': 'os_version',
  'device.operating-system.build-version': 'build_version',
  'device.model.identifier': 'product_name',
}

export function createStatusStore(db: Kysely<Database>): StatusStore {
  return {
    async items(deviceId, names) {
      if (names.length === 0) return new Map()
      const rows = await db.selectFrom('device_status_items').select(['item', 'value']).where('device_id', '=', deviceId).where('item', 'in', names).execute()
      return new Map(rows.map((row) => [row.item, row.value]))
    },

    async apply(deviceId, report, at) {
      const items = [...report.items].map(([item, value]) => ({ item, value }))
      const live = report.declarations.filter((d) => !d.removed)
      const removed = report.declarations.filter((d) => d.removed).map((d) => d.identifier)
      const columns = Object.fromEntries(
        Object.entries(inventoryColumns).flatMap(([item, column]) => {
          const value = report.items.get(item)
          return typeof value === 'string' && value !== '' ? [[column, value]] : []
        }),
      )
      await db.transaction().execute(async (trx) => {
        if (report.full) {
          await trx
            .deleteFrom('device_status_items')
            .where('device_id', '=', deviceId)
            .where('item', 'not in', items.length > 0 ? items.map((i) => i.item) : [''])
            .execute()
          await trx
            .deleteFrom('device_declaration_status')
            .where('device_id', '=', deviceId)
            .where('identifier', 'not in', live.length > 0 ? live.map((d) => d.identifier) : [''])
            .execute()
        }
        if (items.length > 0)
          await sql`
            insert into device_status_items (device_id, item, value, updated_at)
            select ${deviceId}::text, x.item, x.value, ${at}::timestamptz
            from jsonb_to_recordset(${JSON.stringify(items)}::text::jsonb) as x(item text, value jsonb)
            on conflict (device_id, item) do update set value = excluded.value, updated_at = excluded.updated_at`.execute(trx)
        if (live.length > 0)
          await sql`
            insert into device_declaration_status (device_id, identifier, kind, server_token, active, valid, reasons, updated_at)
            select ${deviceId}::text, x.identifier, x.kind, x.server_token, x.active, x.valid, x.reasons, ${at}::timestamptz
            from jsonb_to_recordset(${JSON.stringify(
              live.map((d) => ({ identifier: d.identifier, kind: d.kind, server_token: d.serverToken, active: d.active, valid: d.valid, reasons: d.reasons })),
            )}::text::jsonb) as x(identifier text, kind text, server_token text, active boolean, valid text, reasons jsonb)
            on conflict (device_id, identifier) do update set kind = excluded.kind, server_token = excluded.server_token, active = excluded.active,
              valid = excluded.valid, reasons = excluded.reasons, updated_at = excluded.updated_at`.execute(trx)
        if (removed.length > 0) await trx.deleteFrom('device_declaration_status').where('device_id', '=', deviceId).where('identifier', 'in', removed).execute()
        if (Object.keys(columns).length > 0)
          await trx
            .updateTable('devices')
            .set({ ...columns, updated_at: at })
            .where('id', '=', deviceId)
            .execute()
      })
    },

    async statusItems(scope, deviceId) {
      const device = await db.selectFrom('devices').select('id').where('id', '=', deviceId).where(inScope(scope, 'tenant_id')).executeTakeFirst()
      if (!device) return undefined
      const rows = await db
        .selectFrom('device_status_items')
        .select(['item', 'value', 'updated_at'])
        .where('device_id', '=', deviceId)
        .orderBy('item')
        .execute()
      return rows.map((row) => ({ item: row.item, value: row.value, updatedAt: row.updated_at }))
    },

    async declarationStatuses(deviceId) {
      const rows = await db.selectFrom('device_declaration_status').selectAll().where('device_id', '=', deviceId).orderBy('identifier').execute()
      return rows.map((row) => ({
        identifier: row.identifier,
        kind: row.kind,
        serverToken: row.server_token,
        active: row.active,
        valid: row.valid,
        reasons: row.reasons,
        updatedAt: row.updated_at,
      }))
    },
  }
}
