// The status channel's latest values per device: status items (device_status_items) and each
// declaration's status (device_declaration_status), applied from partial reports; the items
// that mirror inventory columns (OS version, build, model) update the device row too. What a
// report changes in declaration states and software update items is an event in the device's
// timeline (audit_events: declaration_status, softwareupdate_status), written by the same statement.
import { sql, type Kysely } from 'kysely'
import { preparedStatement } from '../db/database.js'
import type { Database } from '../db/schema.js'
import { declarationStatusJson, type DeclarationStatus } from '../mdm/declarations.js'
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
  /** Whether the device exists inside the scope. */
  deviceInScope(scope: AccessScope, deviceId: string): Promise<boolean>
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
  async function deviceInScope(scope: AccessScope, deviceId: string): Promise<boolean> {
    const device = await db.selectFrom('devices').select('id').where('id', '=', deviceId).where(inScope(scope, 'tenant_id')).executeTakeFirst()
    return device !== undefined
  }

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
      const column = (name: string) => {
        const value = report.items.get(name)
        return typeof value === 'string' && value !== '' ? value : null
      }
      const columns = Object.fromEntries(Object.entries(inventoryColumns).map(([item, name]) => [name, column(item)]))
      const hasColumns = Object.values(columns).some((value) => value !== null)
      const declarations = live.map(declarationStatusJson)
      // One statement, one round trip: a fleet reports often. Its parts see the same snapshot;
      // none touches rows another part writes (a full report deletes only what it does not bring).
      // Prepared (parsed and planned once per connection): planning this statement cost as much as running it.
      await sql`${sql.raw(preparedStatement)}
        with incoming_items as (
          select x.item, x.value from jsonb_to_recordset(${JSON.stringify(items)}::text::jsonb) as x(item text, value jsonb)
        ),
        incoming_declarations as (
          select * from jsonb_to_recordset(${JSON.stringify(declarations)}::text::jsonb)
            as x(identifier text, kind text, server_token text, active boolean, valid text, reasons jsonb)
        ),
        -- Only what differs from the stored values is written: an upsert that finds an unchanged
        -- row still locks it (a WAL record and a dirty page per item), and a full report repeats
        -- most of its items.
        changed_items as (
          select i.item, i.value from incoming_items i
            left join device_status_items s on s.device_id = ${deviceId} and s.item = i.item
          where s.value is distinct from i.value
        ),
        changed_incoming_declarations as (
          select i.* from incoming_declarations i
            left join device_declaration_status s on s.device_id = ${deviceId} and s.identifier = i.identifier
          where (s.kind, s.server_token, s.active, s.valid, s.reasons) is distinct from (i.kind, i.server_token, i.active, i.valid, i.reasons)
        ),
        stale_items as (
          delete from device_status_items where ${report.full} and device_id = ${deviceId}
            and item not in (select item from incoming_items) returning item
        ),
        stale_declarations as (
          delete from device_declaration_status where device_id = ${deviceId}
            and ((${report.full} and identifier not in (select identifier from incoming_declarations)) or identifier = any(${removed}::text[]))
          returning identifier, kind
        ),
        written_items as (
          insert into device_status_items (device_id, item, value, updated_at)
          select ${deviceId}::text, item, value, ${at}::timestamptz from changed_items
          on conflict (device_id, item) do update set value = excluded.value, updated_at = excluded.updated_at
            -- An unchanged value is not written again (a full report repeats most of them).
            where device_status_items.value is distinct from excluded.value
          returning item, value
        ),
        written_declarations as (
          insert into device_declaration_status (device_id, identifier, kind, server_token, active, valid, reasons, updated_at)
          select ${deviceId}::text, identifier, kind, server_token, active, valid, reasons, ${at}::timestamptz from changed_incoming_declarations
          on conflict (device_id, identifier) do update set kind = excluded.kind, server_token = excluded.server_token, active = excluded.active,
            valid = excluded.valid, reasons = excluded.reasons, updated_at = excluded.updated_at
          where (device_declaration_status.kind, device_declaration_status.server_token, device_declaration_status.active,
            device_declaration_status.valid, device_declaration_status.reasons)
            is distinct from (excluded.kind, excluded.server_token, excluded.active, excluded.valid, excluded.reasons)
          returning identifier, kind, server_token, active, valid, reasons
        ),
        -- The device's timeline (audit_events, in its current tenant): one event per report for the
        -- declaration states it changed and one for the software update items it changed, built
        -- from the rows actually written or deleted above, so a report repeating what is stored
        -- writes none.
        changed_declarations as (
          select identifier, kind, server_token, active, valid, reasons, false as removed from written_declarations
          union all
          select identifier, kind, null, null, null, null, true from stale_declarations
        ),
        changed_updates as (
          select item, value from written_items where starts_with(item, 'softwareupdate.')
          union all
          select item, 'null'::jsonb from stale_items where starts_with(item, 'softwareupdate.')
        ),
        -- One insert for both events (each aggregate gives no row when nothing changed): planning a
        -- second insert into audit_events costs every report, changed or not.
        events as (
          insert into audit_events (at, category, tenant_id, action, target_type, target_id, device_id, outcome, details)
          select ${at}::timestamptz, 'device', d.tenant_id, e.action, 'device', d.id, d.id, 'success', e.details
          from (
            select 'declaration_status' as action,
              jsonb_build_object('declarations', jsonb_agg(jsonb_build_object('identifier', identifier, 'kind', kind,
                'server_token', server_token, 'active', active, 'valid', valid, 'reasons', reasons, 'removed', removed) order by identifier)) as details
            from changed_declarations having count(*) > 0
            union all
            select 'softwareupdate_status', jsonb_build_object('items', jsonb_object_agg(item, value)) from changed_updates having count(*) > 0
          ) as e
          cross join devices d where d.id = ${deviceId}
          returning 1
        ),
        inventory as (
          update devices set os_version = coalesce(${columns['os_version']}::text, os_version),
            build_version = coalesce(${columns['build_version']}::text, build_version),
            product_name = coalesce(${columns['product_name']}::text, product_name), updated_at = ${at}::timestamptz
          where ${hasColumns} and id = ${deviceId}
            -- The same values again write no new row version (the device row has many indexes).
            and (os_version, build_version, product_name) is distinct from (coalesce(${columns['os_version']}::text, os_version),
              coalesce(${columns['build_version']}::text, build_version), coalesce(${columns['product_name']}::text, product_name))
          returning 1
        )
        select (select count(*) from stale_items) + (select count(*) from stale_declarations) + (select count(*) from written_items)
          + (select count(*) from written_declarations) + (select count(*) from inventory) + (select count(*) from events) as n`.execute(db)
    },

    deviceInScope,

    async statusItems(scope, deviceId) {
      if (!(await deviceInScope(scope, deviceId))) return undefined
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
