// Devices as the admin API sees them: filtered, sorted, paged lists; one device with its
// channels, push state and inventory; forgetting a device; and the facts that decide
// whether a command suits a target.
import { sql, type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { closeTenancy, recordAdminWrite } from '../tenancy/audit-store.js'
import { afterCursor, decodeCursor, orderFor, pageOf, parseSort, type Page } from '../db/pagination.js'
import type { Database, DevicesTable } from '../db/schema.js'
import type { DeviceKind, LifecycleState } from '../model/devices.js'

export interface DeviceFilter {
  serialNumber?: string
  udid?: string
  model?: string
  osVersion?: string
  enrolled?: boolean
  userEnrollment?: boolean
  supervised?: boolean
  lastSeenBefore?: Date
  lastSeenAfter?: Date
  /** null: central IT's own devices (no tenant). */
  tenantId?: string | null
  kind?: DeviceKind
  lifecycleState?: LifecycleState
}

export const deviceSorts = ['created_at', '-created_at', 'last_seen_at', '-last_seen_at', 'serial_number', '-serial_number'] as const
export type DeviceSort = (typeof deviceSorts)[number]

/** A device as listed: its own columns and its device channel's enrollment state. */
export type DeviceRow = Pick<
  Selectable<DevicesTable>,
  | 'id'
  | 'udid'
  | 'enrollment_id'
  | 'user_enrollment'
  | 'serial_number'
  | 'imei'
  | 'meid'
  | 'model'
  | 'model_name'
  | 'product_name'
  | 'device_name'
  | 'os_version'
  | 'build_version'
  | 'is_supervised'
  | 'identity_sha256'
  | 'identity_not_after'
  | 'authenticated_at'
  | 'created_at'
  | 'updated_at'
  | 'tenant_id'
  | 'kind'
  | 'lifecycle_state'
  | 'wiped_at'
  | 'retired_at'
> & { enrolled: boolean; last_seen_at: Date | null }

export interface DeviceDetail {
  device: DeviceRow & {
    device_information: unknown
    device_information_at: Date | null
    security_info: unknown
    security_info_at: Date | null
    reenrollment_allowed_until: Date | null
    unlock_token_escrowed: boolean
    bootstrap_token_escrowed: boolean
  }
  enrollments: Array<{
    id: string
    channel: 'device' | 'user'
    user_id: string | null
    user_short_name: string | null
    user_long_name: string | null
    enabled: boolean
    awaiting_configuration: boolean
    last_seen_at: Date | null
    checked_out_at: Date | null
    created_at: Date
    topic: string | null
    has_token: boolean
    token_updated_at: Date | null
    push_invalid_at: Date | null
    push_invalid_reason: string | null
    last_push_at: Date | null
    last_push_result: string | null
    next_repush_at: Date | null
  }>
  applications: Array<{
    enrollment_id: string
    identifier: string
    name: string | null
    version: string | null
    short_version: string | null
    bundle_size: number | null
    is_managed: boolean | null
  }>
  profiles: Array<{ enrollment_id: string; identifier: string; uuid: string | null; display_name: string | null; is_managed: boolean | null }>
  certificates: Array<{ enrollment_id: string; sha256: string; common_name: string | null; is_identity: boolean | null }>
}

/** What is known about a command target, for the applicability check. */
export interface TargetFacts {
  enrollmentId: string
  deviceId: string
  channel: 'device' | 'user'
  enabled: boolean
  productName: string | null
  model: string | null
  osVersion: string | null
  supervised: boolean | null
  userEnrollment: boolean
  tenantId: string | null
  kind: DeviceKind
  serialNumber: string | null
}

export interface DeviceDirectoryStore {
  listDevices(scope: AccessScope, filter: DeviceFilter, page: { sort: DeviceSort; limit: number; cursor?: string }): Promise<Page<DeviceRow>>
  getDevice(scope: AccessScope, deviceId: string): Promise<DeviceDetail | undefined>
  /** Deletes the device and everything under it; false when there was none. */
  deleteDevice(scope: AccessScope, deviceId: string): Promise<boolean>
  enrollmentExists(scope: AccessScope, enrollmentId: string): Promise<boolean>
  /** Facts of the named channels that exist (missing ones are absent from the result). */
  targetFacts(scope: AccessScope, enrollmentIds: readonly string[]): Promise<TargetFacts[]>
  /** Enrolled device channels matching the filter, at most `limit`. */
  findTargets(scope: AccessScope, filter: DeviceFilter, limit: number): Promise<TargetFacts[]>
}

const sortColumns: Record<string, { column: string; cast: 'timestamptz' | 'text' }> = {
  created_at: { column: 'd.created_at', cast: 'timestamptz' },
  last_seen_at: { column: 'e.last_seen_at', cast: 'timestamptz' },
  serial_number: { column: 'd.serial_number', cast: 'text' },
}

export function createDeviceDirectoryStore(db: Kysely<Database>): DeviceDirectoryStore {
  // Devices with their device channel (absent until the first TokenUpdate).
  function devicesQuery(scope: AccessScope, filter: DeviceFilter) {
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
        'e.last_seen_at',
        'd.tenant_id',
        'd.kind',
        'd.lifecycle_state',
        'd.wiped_at',
        'd.retired_at',
        sql<boolean>`coalesce(e.enabled, false)`.as('enrolled'),
      ])
      .where(inScope(scope, 'd.tenant_id'))
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
    if (filter.lastSeenBefore !== undefined) query = query.where('e.last_seen_at', '<', filter.lastSeenBefore)
    if (filter.lastSeenAfter !== undefined) query = query.where('e.last_seen_at', '>', filter.lastSeenAfter)
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
      let query = devicesQuery(scope, filter).select(sql<string | null>`${sql.ref(column)}::text`.as('sort_key'))
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
      const [enrollments, applications, profiles, certificates] = await Promise.all([
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
      ])
      return { device: device, enrollments, applications, profiles, certificates }
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

    async findTargets(scope, filter, limit) {
      const rows = await devicesQuery(scope, { ...filter, enrolled: true })
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
