// The status channel's latest values per device: status items (device_status_items) and each
// declaration's status (device_declaration_status), applied from partial reports; the items
// that mirror inventory columns (OS version, build, model) update the device row too. What a
// report changes in declaration states and software update items is an event in the device's
// timeline (audit_events: declaration_status, softwareupdate_status), written by the same statement.
import { sql, type Kysely } from 'kysely'
import { preparedStatement } from '../db/statement-names.js'
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

/** One device's report to apply. */
export interface StatusWrite {
  deviceId: string
  report: { items: ReadonlyMap<string, unknown>; declarations: readonly DeclarationStatus[]; full: boolean }
  at: Date
}

export interface StatusStore {
  /** Stored values of these items (list items are merged with what a partial report brings). */
  items(deviceId: string, names: readonly string[]): Promise<Map<string, unknown>>
  /** Applies reports of distinct devices in one statement. */
  applyMany(reports: readonly StatusWrite[]): Promise<void>
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

    async applyMany(reports) {
      const incoming = reports.map(({ deviceId, report, at }) => {
        const column = (name: string) => {
          const value = report.items.get(name)
          return typeof value === 'string' && value !== '' ? value : null
        }
        return {
          device_id: deviceId,
          full_report: report.full,
          at,
          ...Object.fromEntries(Object.entries(inventoryColumns).map(([item, name]) => [name, column(item)])),
        }
      })
      const items = reports.flatMap(({ deviceId, report }) => [...report.items].map(([item, value]) => ({ device_id: deviceId, item, value })))
      const declarations = reports.flatMap(({ deviceId, report }) =>
        report.declarations.filter((d) => !d.removed).map((d) => ({ device_id: deviceId, ...declarationStatusJson(d) })),
      )
      const removed = reports.flatMap(({ deviceId, report }) =>
        report.declarations.filter((d) => d.removed).map((d) => ({ device_id: deviceId, identifier: d.identifier })),
      )
      // One statement, one round trip, for several devices' reports (the status channel gathers
      // the reports that arrive while one is written): a fleet reports often. Its parts see the
      // same snapshot; none touches rows another part writes (a full report deletes only what it
      // does not bring), and a device is in a batch once (an upsert cannot touch a row twice).
      // Prepared (parsed and planned once per connection): planning it cost as much as running it.
      await sql`${sql.raw(preparedStatement)}
        with reports as (
          select * from jsonb_to_recordset(${JSON.stringify(incoming)}::text::jsonb)
            as x(device_id text, full_report boolean, at timestamptz, os_version text, build_version text, product_name text)
          -- The limit tells the planner how many reports there are (a JSON function counts as 100,
          -- and 100 reports would be worth a scan of the devices): a few join through the key. A
          -- literal, rounded up to a power of two: a parameter would make PostgreSQL plan every
          -- run (its generic plan would not know the count), and few texts are prepared.
          limit ${sql.lit(2 ** Math.ceil(Math.log2(reports.length)))}
        ),
        incoming_items as (
          select * from jsonb_to_recordset(${JSON.stringify(items)}::text::jsonb) as x(device_id text, item text, value jsonb)
        ),
        incoming_declarations as (
          select * from jsonb_to_recordset(${JSON.stringify(declarations)}::text::jsonb)
            as x(device_id text, identifier text, kind text, server_token text, active boolean, valid text, reasons jsonb)
        ),
        removed_declarations as (
          select * from jsonb_to_recordset(${JSON.stringify(removed)}::text::jsonb) as x(device_id text, identifier text)
        ),
        -- Only what differs from the stored values is written: an upsert that finds an unchanged
        -- row still locks it (a WAL record and a dirty page per item), and a full report repeats
        -- most of its items.
        changed_items as (
          select i.device_id, i.item, i.value, r.at from incoming_items i join reports r on r.device_id = i.device_id
            left join device_status_items s on s.device_id = i.device_id and s.item = i.item
          where s.value is distinct from i.value
        ),
        changed_incoming_declarations as (
          select i.*, r.at from incoming_declarations i join reports r on r.device_id = i.device_id
            left join device_declaration_status s on s.device_id = i.device_id and s.identifier = i.identifier
          where (s.kind, s.server_token, s.active, s.valid, s.reasons) is distinct from (i.kind, i.server_token, i.active, i.valid, i.reasons)
        ),
        -- What a full report does not bring is gone. Each device's rows are read through the key
        -- (a lateral probe per report, kept apart by offset 0) and deleted by row address: joined
        -- to the reports, a table without statistics (no ANALYZE yet) looked cheaper to scan whole.
        -- The delete runs only when there is something to delete (the cardinality test, which
        -- reads no row, gates the whole scan): a plan made when the table was small scans it
        -- whole for the addresses, and a prepared plan is kept while the table grows.
        stale_item_addresses as (
          select array(
            select s.ctid from reports r cross join lateral (
              select s.ctid from device_status_items s where s.device_id = r.device_id
                and not exists (select from incoming_items i where i.device_id = s.device_id and i.item = s.item)
              offset 0
            ) s where r.full_report) as addresses
        ),
        stale_items as (
          delete from device_status_items where ctid = any((select addresses from stale_item_addresses)::tid[])
            and (select cardinality(addresses) from stale_item_addresses) > 0
          returning device_id, item
        ),
        stale_declaration_addresses as (
          select array(
            select s.ctid from reports r cross join lateral (
              select s.ctid from device_declaration_status s where s.device_id = r.device_id
                and ((r.full_report and not exists (select from incoming_declarations i where i.device_id = s.device_id and i.identifier = s.identifier))
                  or exists (select from removed_declarations m where m.device_id = s.device_id and m.identifier = s.identifier))
              offset 0
            ) s) as addresses
        ),
        stale_declarations as (
          delete from device_declaration_status where ctid = any((select addresses from stale_declaration_addresses)::tid[])
            and (select cardinality(addresses) from stale_declaration_addresses) > 0
          returning device_id, identifier, kind
        ),
        written_items as (
          insert into device_status_items (device_id, item, value, updated_at)
          select device_id, item, value, at from changed_items
          on conflict (device_id, item) do update set value = excluded.value, updated_at = excluded.updated_at
            -- An unchanged value is not written again (a full report repeats most of them).
            where device_status_items.value is distinct from excluded.value
          returning device_id, item, value
        ),
        written_declarations as (
          insert into device_declaration_status (device_id, identifier, kind, server_token, active, valid, reasons, updated_at)
          select device_id, identifier, kind, server_token, active, valid, reasons, at from changed_incoming_declarations
          on conflict (device_id, identifier) do update set kind = excluded.kind, server_token = excluded.server_token, active = excluded.active,
            valid = excluded.valid, reasons = excluded.reasons, updated_at = excluded.updated_at
          where (device_declaration_status.kind, device_declaration_status.server_token, device_declaration_status.active,
            device_declaration_status.valid, device_declaration_status.reasons)
            is distinct from (excluded.kind, excluded.server_token, excluded.active, excluded.valid, excluded.reasons)
          returning device_id, identifier, kind, server_token, active, valid, reasons
        ),
        -- The device's timeline (audit_events, in its current tenant): one event per report for the
        -- declaration states it changed and one for the software update items it changed, built
        -- from the rows actually written or deleted above, so a report repeating what is stored
        -- writes none.
        changed_declarations as (
          select device_id, identifier, kind, server_token, active, valid, reasons, false as removed from written_declarations
          union all
          select device_id, identifier, kind, null, null, null, null, true from stale_declarations
        ),
        changed_updates as (
          select device_id, item, value from written_items where starts_with(item, 'softwareupdate.')
          union all
          select device_id, item, 'null'::jsonb from stale_items where starts_with(item, 'softwareupdate.')
        ),
        -- One insert for both events of every report (a report's aggregates give no row when
        -- nothing changed), in report order, declarations first.
        events as (
          insert into audit_events (at, category, tenant_id, action, target_type, target_id, device_id, outcome, details)
          select r.at, 'device', d.tenant_id, e.action, 'device', d.id, d.id, 'success', e.details
          from (
            select device_id, 1 as part, 'declaration_status' as action,
              jsonb_build_object('declarations', jsonb_agg(jsonb_build_object('identifier', identifier, 'kind', kind,
                'server_token', server_token, 'active', active, 'valid', valid, 'reasons', reasons, 'removed', removed) order by identifier)) as details
            from changed_declarations group by device_id
            union all
            select device_id, 2, 'softwareupdate_status', jsonb_build_object('items', jsonb_object_agg(item, value)) from changed_updates group by device_id
          ) as e
          join reports r on r.device_id = e.device_id
          join devices d on d.id = e.device_id
          order by e.device_id, e.part
        ),
        inventory as (
          update devices d set os_version = coalesce(r.os_version, d.os_version), build_version = coalesce(r.build_version, d.build_version),
            product_name = coalesce(r.product_name, d.product_name), updated_at = r.at
          from reports r
          where d.id = r.device_id and coalesce(r.os_version, r.build_version, r.product_name) is not null
            -- The same values again write no new row version (the device row has many indexes).
            and (d.os_version, d.build_version, d.product_name)
              is distinct from (coalesce(r.os_version, d.os_version), coalesce(r.build_version, d.build_version), coalesce(r.product_name, d.product_name))
        )
        -- The parts above that write run to completion whether or not this reads them.
        select 1`.execute(db)
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
