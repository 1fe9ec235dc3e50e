// Devices as the admin API sees them: filtered, sorted, paged lists; one device with its
// channels, push state and inventory; forgetting a device; and the facts that decide
// whether a command suits a target.
import { sql, type Kysely } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { closeTenancy, recordAdminWrite } from '../tenancy/audit-store.js'
import { afterCursor, decodeCursor, orderFor, pageOf, parseSort, type Page } from '../db/pagination.js'
import type { Database } from '../db/schema.js'
import type { DeviceGroupRow } from './device-group-store.js'
import { deviceInGroup } from './device-group-store.js'
import { groupContains } from './device-group-sql.js'
import type { DeviceDetail, DeviceFilter, DeviceRow, DeviceSort, TargetFacts } from './device-directory-types.js'
import { searchPredicate } from './device-search-sql.js'

export { deviceSorts, type DeviceDetail, type DeviceFilter, type DeviceRow, type DeviceSort, type TargetFacts } from './device-directory-types.js'

export interface DeviceDirectoryStore {
  /** 'unknown_group': the filter names a device group the caller cannot see. */
  listDevices(scope: AccessScope, filter: DeviceFilter, page: { sort: DeviceSort; limit: number; cursor?: string }): Promise<Page<DeviceRow> | 'unknown_group'>
  getDevice(scope: AccessScope, deviceId: string): Promise<DeviceDetail | undefined>
  /** Deletes the device and everything under it; false when there was none. */
  deleteDevice(scope: AccessScope, deviceId: string): Promise<boolean>
  enrollmentExists(scope: AccessScope, enrollmentId: string): Promise<boolean>
  /** Facts of the named channels that exist (missing ones are absent from the result). */
  targetFacts(scope: AccessScope, enrollmentIds: readonly string[]): Promise<TargetFacts[]>
  /** Enrolled device channels matching the filter, at most `limit`; 'unknown_group' as listDevices. */
  findTargets(scope: AccessScope, filter: DeviceFilter, limit: number): Promise<TargetFacts[] | 'unknown_group'>
  /** Sets the person the device belongs to (audited); false when the caller cannot see the device. */
  setUserEmail(scope: AccessScope, deviceId: string, email: string | null): Promise<boolean>
}

const sortColumns: Record<string, { column: string; cast: 'timestamptz' | 'text' }> = {
  created_at: { column: 'd.created_at', cast: 'timestamptz' },
  // The device row's copy of its channel's last contact: indexed (devices_last_seen_idx).
  last_seen_at: { column: 'd.last_seen_at', cast: 'timestamptz' },
  serial_number: { column: 'd.serial_number', cast: 'text' },
}

export function createDeviceDirectoryStore(db: Kysely<Database>): DeviceDirectoryStore {
  // Devices with their device channel (absent until the first TokenUpdate).
  /** The group a filter names: its row, null when the caller cannot see it, undefined when the filter names none. */
  async function groupOf(scope: AccessScope, filter: DeviceFilter): Promise<DeviceGroupRow | null | undefined> {
    if (filter.groupId === undefined) return undefined
    return (await db.selectFrom('device_groups').selectAll().where('id', '=', filter.groupId).where(inScope(scope, 'tenant_id')).executeTakeFirst()) ?? null
  }

  function devicesQuery(scope: AccessScope, filter: DeviceFilter, group?: DeviceGroupRow | null) {
    let query = db
      .selectFrom('devices as d')
      .leftJoin('enrollments as e', 'e.id', 'd.id')
      .select([
        'd.id',
        'd.udid',
        'd.enrollment_id',
        'd.user_enrollment',
        'd.serial_number',
        'd.imei',
        'd.meid',
        'd.model',
        'd.model_name',
        'd.product_name',
        'd.device_name',
        'd.os_version',
        'd.build_version',
        'd.is_supervised',
        'd.identity_sha256',
        'd.identity_not_after',
        'd.authenticated_at',
        'd.created_at',
        'd.updated_at',
        'd.last_seen_at',
        'd.tenant_id',
        'd.kind',
        'd.lifecycle_state',
        'd.wiped_at',
        'd.retired_at',
        'd.enrollment_group',
        'd.user_email',
        sql<boolean>`coalesce(e.enabled, false)`.as('enrolled'),
      ])
      .where(inScope(scope, 'd.tenant_id'))
    if (group !== undefined) query = query.where(group === null ? sql<boolean>`false` : deviceInGroup(group))
    if (filter.enrollmentGroup !== undefined) query = query.where('d.enrollment_group', '=', filter.enrollmentGroup)
    if (filter.search !== undefined) query = query.where(searchPredicate(filter.search))
    if (filter.tenantId !== undefined) query = query.where('d.tenant_id', filter.tenantId === null ? 'is' : '=', filter.tenantId)
    if (filter.kind !== undefined) query = query.where('d.kind', '=', filter.kind)
    if (filter.lifecycleState !== undefined) query = query.where('d.lifecycle_state', '=', filter.lifecycleState)
    if (filter.serialNumber !== undefined) query = query.where('d.serial_number', '=', filter.serialNumber)
    if (filter.udid !== undefined) query = query.where('d.udid', '=', filter.udid)
    // ProductName is the model identifier (iPad13,1); Model is the part number (MK2K3LL/A).
    if (filter.model !== undefined) query = query.where((eb) => eb.or([eb('d.product_name', '=', filter.model!), eb('d.model', '=', filter.model!)]))
    if (filter.osVersion !== undefined) query = query.where('d.os_version', '=', filter.osVersion)
    if (filter.enrolled !== undefined) query = query.where(sql<boolean>`coalesce(e.enabled, false)`, '=', filter.enrolled)
    if (filter.userEnrollment !== undefined) query = query.where('d.user_enrollment', '=', filter.userEnrollment)
    if (filter.supervised !== undefined) query = query.where(sql<boolean>`coalesce(d.is_supervised, false)`, '=', filter.supervised)
    if (filter.lastSeenBefore !== undefined) query = query.where('d.last_seen_at', '<', filter.lastSeenBefore)
    if (filter.lastSeenAfter !== undefined) query = query.where('d.last_seen_at', '>', filter.lastSeenAfter)
    return query
  }

  const factsColumns = [
    'e.id as enrollmentId',
    'e.device_id as deviceId',
    'e.channel',
    'e.enabled',
    'd.product_name as productName',
    'd.model',
    'd.os_version as osVersion',
    'd.is_supervised as supervised',
    'd.user_enrollment as userEnrollment',
    'd.tenant_id as tenantId',
    'd.kind',
    'd.serial_number as serialNumber',
  ] as const

  return {
    async listDevices(scope, filter, page) {
      const { field, direction } = parseSort(page.sort)
      const { column, cast } = sortColumns[field]!
      const group = await groupOf(scope, filter)
      if (group === null) return 'unknown_group'
      let query = devicesQuery(scope, filter, group).select(sql<string | null>`${sql.ref(column)}::text`.as('sort_key'))
      if (page.cursor !== undefined) {
        const cursor = decodeCursor(page.cursor, page.sort, { value: cast, id: 'text' })
        query = query.where(afterCursor(column, 'd.id', direction, cursor, cast))
      }
      const rows = await query
        .orderBy(orderFor(column, 'd.id', direction))
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        page.sort,
        (row) => ({ value: row.sort_key, id: row.id }),
        ({ sort_key: _key, ...row }) => row as DeviceRow,
      )
    },

    async getDevice(scope, deviceId) {
      const device = await devicesQuery(scope, {})
        .select(['d.device_information', 'd.device_information_at', 'd.security_info', 'd.security_info_at', 'd.reenrollment_allowed_until'])
        .select(sql<boolean>`coalesce(e.unlock_token_sealed is not null, false)`.as('unlock_token_escrowed'))
        .select(sql<boolean>`exists (select 1 from bootstrap_tokens b where b.device_id = d.id and b.token_sealed is not null)`.as('bootstrap_token_escrowed'))
        .where('d.id', '=', deviceId)
        .executeTakeFirst()
      if (!device) return undefined
      const [enrollments, applications, profiles, certificates, groups] = await Promise.all([
        db
          .selectFrom('enrollments')
          .select([
            'id',
            'channel',
            'user_id',
            'user_short_name',
            'user_long_name',
            'enabled',
            'awaiting_configuration',
            'last_seen_at',
            'checked_out_at',
            'created_at',
            'topic',
            sql<boolean>`push_token is not null`.as('has_token'),
            'token_updated_at',
            'push_invalid_at',
            'push_invalid_reason',
            'last_push_at',
            'last_push_result',
            'next_repush_at',
          ])
          .where('device_id', '=', deviceId)
          .orderBy(sql`channel = 'device' desc, id`)
          .execute(),
        db
          .selectFrom('installed_applications as a')
          .innerJoin('enrollments as e', 'e.id', 'a.enrollment_id')
          .select(['a.enrollment_id', 'a.identifier', 'a.name', 'a.version', 'a.short_version', 'a.bundle_size', 'a.is_managed'])
          .where('e.device_id', '=', deviceId)
          .orderBy('a.enrollment_id')
          .orderBy('a.identifier')
          .execute(),
        db
          .selectFrom('installed_profiles as p')
          .innerJoin('enrollments as e', 'e.id', 'p.enrollment_id')
          .select(['p.enrollment_id', 'p.identifier', 'p.uuid', 'p.display_name', 'p.is_managed'])
          .where('e.device_id', '=', deviceId)
          .orderBy('p.enrollment_id')
          .orderBy('p.identifier')
          .execute(),
        db
          .selectFrom('installed_certificates as c')
          .innerJoin('enrollments as e', 'e.id', 'c.enrollment_id')
          .select(['c.enrollment_id', 'c.sha256', 'c.common_name', 'c.is_identity'])
          .where('e.device_id', '=', deviceId)
          .orderBy('c.enrollment_id')
          .orderBy('c.common_name')
          .orderBy('c.sha256')
          .execute(),
        sql<{ id: string; name: string; smart: boolean }>`
          select g.id, g.name, g.filter is not null as smart
          from devices d cross join device_groups g
          where d.id = ${deviceId} and ${inScope(scope, 'g.tenant_id')} and ${groupContains}
          order by lower(g.name), g.id`
          .execute(db)
          .then((result) => result.rows),
      ])
      return { device: device, enrollments, applications, profiles, certificates, groups }
    },

    async deleteDevice(scope, deviceId) {
      return db.transaction().execute(async (trx) => {
        const deleted = await trx
          .deleteFrom('devices')
          .where('id', '=', deviceId)
          .where(inScope(scope, 'tenant_id'))
          .returning(['id', 'tenant_id', 'serial_number'])
          .executeTakeFirst()
        if (!deleted) return false
        await closeTenancy(trx, [deviceId], new Date())
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: deviceId,
          tenantId: deleted.tenant_id,
          deviceId,
          details: { serial_number: deleted.serial_number },
        })
        return true
      })
    },

    async enrollmentExists(scope, enrollmentId) {
      const row = await db
        .selectFrom('enrollments as e')
        .innerJoin('devices as d', 'd.id', 'e.device_id')
        .select('e.id')
        .where('e.id', '=', enrollmentId)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      return row !== undefined
    },

    async targetFacts(scope, enrollmentIds) {
      const unique = [...new Set(enrollmentIds)]
      const out: TargetFacts[] = []
      for (let i = 0; i < unique.length; i += 5000) {
        const rows = await db
          .selectFrom('enrollments as e')
          .innerJoin('devices as d', 'd.id', 'e.device_id')
          .select(factsColumns)
          .where('e.id', 'in', unique.slice(i, i + 5000))
          .where(inScope(scope, 'd.tenant_id'))
          .execute()
        out.push(...rows)
      }
      return out
    },

    async setUserEmail(scope, deviceId, email) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('devices')
          .set({ user_email: email, updated_at: new Date() })
          .where('id', '=', deviceId)
          .where(inScope(scope, 'tenant_id'))
          .returning(['tenant_id'])
          .executeTakeFirst()
        if (!row) return false
        await recordAdminWrite(trx, scope, { type: 'device', id: deviceId, tenantId: row.tenant_id, deviceId, details: { user_email: email } })
        return true
      })
    },

    async findTargets(scope, filter, limit) {
      const group = await groupOf(scope, filter)
      if (group === null) return 'unknown_group'
      const rows = await devicesQuery(scope, { ...filter, enrolled: true }, group)
        .innerJoin('enrollments as t', 't.id', 'd.id')
        .clearSelect()
        .select([
          't.id as enrollmentId',
          't.device_id as deviceId',
          't.channel',
          't.enabled',
          'd.product_name as productName',
          'd.model',
          'd.os_version as osVersion',
          'd.is_supervised as supervised',
          'd.user_enrollment as userEnrollment',
          'd.tenant_id as tenantId',
          'd.kind',
          'd.serial_number as serialNumber',
        ])
        .orderBy('d.id')
        .limit(limit)
        .execute()
      return rows
    },
  }
}
