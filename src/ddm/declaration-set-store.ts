// Each device's computed declaration set (device_declaration_sets): what its blueprints carry,
// read for many devices in one query, and the set a DDM check-in is served from (one indexed
// read by device).
import { sql, type Kysely } from 'kysely'
import { idIn } from '../db/id-list-sql.js'
import { preparedStatement } from '../db/statement-names.js'
import type { Database } from '../db/schema.js'
import type { DeclarationChannel, DeclarationKind, DeclarationSetItem } from '../db/schema-ddm.js'
import { effectiveServerToken } from '../mdm/declarations.js'
import { blueprintAppliesTo } from '../fleet/blueprint-targeting-sql.js'
import type { UpdatePolicyRow } from '../updates/update-policy-store.js'
import { governingPolicyJson } from '../updates/update-policy-sql.js'

export interface DeviceDeclarations {
  deviceId: string
  serialNumber: string | null
  deviceName: string | null
  tenantId: string | null
  productName: string | null
  /** User Enrollment (a personal device): identified by its EnrollmentID, no software update enforcement. */
  userEnrollment: boolean
  /** DeviceInformation SoftwareUpdateDeviceID, what the OS catalogue lists a Mac under (devicesIn only). */
  softwareUpdateDeviceId?: string | null
  osVersion: string | null
  /** Its blueprints' declarations, the closest tenant's first (a clash of identifiers goes to it). */
  declarationIds: string[]
  /** The update policy that governs it (update-policy-sql.ts), if any. */
  policy: UpdatePolicyRow | null
}

export interface DeclarationForSet {
  id: string
  identifier: string
  type: string
  kind: DeclarationKind
  /** 'user': for the user channels of the devices it reaches, not their device channel. */
  channel: DeclarationChannel
  serverToken: string
  payload: Record<string, unknown>
}

/** Which devices to compute: some, a tenant's (null: central IT's own), or all. */
export type SetScope = { deviceIds: readonly string[] } | { tenantId: string | null } | { all: true }

export interface StoredSet {
  token: string
  items: DeclarationSetItem[]
  changedAt: Date
  sentToken: string | null
}

export interface DeclarationSetStore {
  /** Enrolled devices (active or lost) in the scope and their blueprints' declarations. */
  devicesIn(scope: SetScope): Promise<DeviceDeclarations[]>
  declarations(ids: readonly string[]): Promise<Map<string, DeclarationForSet>>
  /** Stores the sets whose token changed; returns those devices with the token last sent to them. */
  writeSets(
    sets: ReadonlyArray<{ deviceId: string; token: string; items: DeclarationSetItem[] }>,
    at: Date,
  ): Promise<Array<{ deviceId: string; sentToken: string | null }>>
  markSent(deviceIds: readonly string[], at: Date): Promise<void>
  set(deviceId: string): Promise<StoredSet | undefined>
  /** The set's token alone (a `tokens` poll, the most frequent DDM check-in, needs no items). */
  token(deviceId: string): Promise<Pick<StoredSet, 'token' | 'changedAt'> | undefined>
  /** A declaration's stored payload and the library profile it carries, if any. */
  payload(declarationId: string): Promise<{ payload: Record<string, unknown>; profileId: string | null } | undefined>
  /**
   * The library profile of a legacy-profile declaration, when the device (or user channel: its
   * enrollment ID) is enrolled and its set carries the declaration.
   */
  servedProfile(deviceId: string, declarationId: string): Promise<Buffer | undefined>
  device(deviceId: string): Promise<Omit<DeviceDeclarations, 'declarationIds' | 'policy'> | undefined>
}

export function createDeclarationSetStore(db: Kysely<Database>): DeclarationSetStore {
  return {
    async devicesIn(scope) {
      const filter =
        'deviceIds' in scope
          ? idIn('d.id', scope.deviceIds)
          : 'tenantId' in scope
            ? scope.tenantId === null
              ? sql`d.tenant_id is null`
              : sql`(d.tenant_id = ${scope.tenantId} or d.tenant_id in (select t.id from tenants t where t.parent_id = ${scope.tenantId}))`
            : sql`true`
      // Prepared (one text per scope shape): the targeting predicate (smart groups) took ~3 ms of
      // PostgreSQL to plan, on every enrollment and every retarget.
      const { rows } = await sql<DeviceDeclarations>`${sql.raw(preparedStatement)}
        select d.id as "deviceId", d.serial_number as "serialNumber", d.device_name as "deviceName", d.tenant_id as "tenantId",
          d.product_name as "productName", d.user_enrollment as "userEnrollment", d.software_update_device_id as "softwareUpdateDeviceId", d.os_version as "osVersion",
          coalesce(array_agg(x.id order by (x.tenant_id is not distinct from d.tenant_id) desc, (x.tenant_id is not null) desc, b.updated_at desc, x.id)
            filter (where x.id is not null), '{}') as "declarationIds",
          ${governingPolicyJson} as policy
        from devices d
        join enrollments e on e.id = d.id and e.enabled
        left join (blueprints b
          join blueprint_declarations bd on bd.blueprint_id = b.id
          join declarations x on x.id = bd.declaration_id) on ${blueprintAppliesTo}
        where ${filter} and d.lifecycle_state in ('active', 'lost')
        group by d.id
        order by d.id`.execute(db)
      return rows
    },

    async declarations(ids) {
      if (ids.length === 0) return new Map()
      const rows = await db
        .selectFrom('declarations as x')
        .leftJoin('library_profiles as p', 'p.id', 'x.profile_id')
        .select(['x.id', 'x.identifier', 'x.type', 'x.kind', 'x.channel', 'x.server_token', 'x.payload', 'p.sha256 as profileSha256'])
        .where('x.id', 'in', ids)
        .execute()
      return new Map(
        rows.map((row) => [
          row.id,
          {
            id: row.id,
            identifier: row.identifier,
            type: row.type,
            kind: row.kind,
            channel: row.channel,
            serverToken: effectiveServerToken(row.server_token, row.profileSha256),
            payload: row.payload,
          },
        ]),
      )
    },

    async writeSets(sets, at) {
      if (sets.length === 0) return []
      const changed: Array<{ deviceId: string; sentToken: string | null }> = []
      for (let i = 0; i < sets.length; i += 2000) {
        const batch = sets.slice(i, i + 2000)
        const { rows } = await sql<{ deviceId: string; sentToken: string | null }>`
          insert into device_declaration_sets (device_id, declarations_token, items, changed_at)
          select x.device_id, x.token, x.items, ${at}::timestamptz
          from jsonb_to_recordset(${JSON.stringify(batch.map((set) => ({ device_id: set.deviceId, token: set.token, items: set.items })))}::text::jsonb)
            as x(device_id text, token text, items jsonb)
          on conflict (device_id) do update set declarations_token = excluded.declarations_token, items = excluded.items, changed_at = excluded.changed_at
          where device_declaration_sets.declarations_token <> excluded.declarations_token
          returning device_id as "deviceId", sent_token as "sentToken"`.execute(db)
        changed.push(...rows)
      }
      return changed
    },

    async markSent(deviceIds, at) {
      for (let i = 0; i < deviceIds.length; i += 5000)
        await db
          .updateTable('device_declaration_sets')
          .set({ sent_token: sql`declarations_token`, sent_at: at })
          .where('device_id', 'in', deviceIds.slice(i, i + 5000))
          .execute()
    },

    async set(deviceId) {
      // Every DDM check-in of every device: prepared once per connection.
      const { rows } = await sql<{ declarations_token: string; items: DeclarationSetItem[]; changed_at: Date; sent_token: string | null }>`${sql.raw(
        preparedStatement,
      )}
        select declarations_token, items, changed_at, sent_token from device_declaration_sets where device_id = ${deviceId}`.execute(db)
      const row = rows[0]
      return row && { token: row.declarations_token, items: row.items, changedAt: row.changed_at, sentToken: row.sent_token }
    },

    async token(deviceId) {
      const { rows } = await sql<{ declarations_token: string; changed_at: Date }>`${sql.raw(preparedStatement)}
        select declarations_token, changed_at from device_declaration_sets where device_id = ${deviceId}`.execute(db)
      const row = rows[0]
      return row && { token: row.declarations_token, changedAt: row.changed_at }
    },

    async payload(declarationId) {
      const row = await db.selectFrom('declarations').select(['payload', 'profile_id']).where('id', '=', declarationId).executeTakeFirst()
      return row && { payload: row.payload, profileId: row.profile_id }
    },

    async servedProfile(deviceId, declarationId) {
      const row = await db
        .selectFrom('device_declaration_sets as s')
        .innerJoin('enrollments as e', (join) => join.onRef('e.id', '=', 's.device_id').on('e.enabled', '=', true))
        .innerJoin('declarations as x', (join) => join.on('x.id', '=', declarationId))
        .innerJoin('library_profiles as p', 'p.id', 'x.profile_id')
        .select('p.content')
        .where('s.device_id', '=', deviceId)
        .where(sql<boolean>`s.items @> ${JSON.stringify([{ declaration_id: declarationId }])}::jsonb`)
        .executeTakeFirst()
      if (row) return row.content
      // A user channel's URL names the channel (its enrollment ID) in place of the device.
      const user = await db
        .selectFrom('user_channel_declaration_sets as s')
        .innerJoin('enrollments as e', (join) => join.onRef('e.id', '=', 's.enrollment_id').on('e.enabled', '=', true))
        .innerJoin('declarations as x', (join) => join.on('x.id', '=', declarationId))
        .innerJoin('library_profiles as p', 'p.id', 'x.profile_id')
        .select('p.content')
        .where('s.enrollment_id', '=', deviceId)
        .where(sql<boolean>`s.items @> ${JSON.stringify([{ declaration_id: declarationId }])}::jsonb`)
        .executeTakeFirst()
      return user?.content
    },

    async device(deviceId) {
      return db
        .selectFrom('devices as d')
        .select([
          'd.id as deviceId',
          'd.serial_number as serialNumber',
          'd.device_name as deviceName',
          'd.tenant_id as tenantId',
          'd.product_name as productName',
          'd.user_enrollment as userEnrollment',
          'd.os_version as osVersion',
        ])
        .where('d.id', '=', deviceId)
        .executeTakeFirst()
    },
  }
}
