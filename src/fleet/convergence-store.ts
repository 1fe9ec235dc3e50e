// Per device: what its blueprints want (profiles and apps), what it reported having, and the
// state of each item a blueprint put there (device_config_state).
import { preparedStatement } from '../db/statement-names.js'
import { sql, type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import type { BlueprintApplication, ConfigItemStatus, ConfigItemType, Database, DeviceConfigStateTable } from '../db/schema.js'
import { isOpenCommandStatus } from '../model/commands.js'
import { blueprintAppliesTo } from './blueprint-targeting-sql.js'

export type ConfigStateRow = Selectable<DeviceConfigStateTable>

export interface DesiredProfile {
  profileId: string
  identifier: string
  payloadUuid: string
  /** The version: the sha256 of the uploaded (unsigned) bytes, which change exactly when what is installed does. */
  sha256: string
  name: string
}

export interface ConvergenceDevice {
  id: string
  tenantId: string | null
  enrolled: boolean
}

export interface ConvergenceStore {
  device(scope: AccessScope, deviceId: string): Promise<ConvergenceDevice | undefined>
  /** Enrolled devices a blueprint of `tenantId` may reach: the tenant and its departments; every device for central IT. */
  enrolledDevicesOfTenant(tenantId: string | null): Promise<string[]>
  /** Without their content (up to 4 MiB each): see profileVersionContent. */
  desiredProfiles(deviceId: string): Promise<DesiredProfile[]>
  /** A profile's bytes while it is still at this version, its sha256 (undefined once replaced or deleted). */
  profileVersionContent(profileId: string, sha256: string): Promise<Buffer | undefined>
  desiredApplications(deviceId: string): Promise<BlueprintApplication[]>
  /** Whether anything is to converge on the device (a blueprint profile or app, or an item put there), and whether apps are involved. */
  configurationOf(deviceId: string): Promise<{ any: boolean; apps: boolean }>
  /** What the device reported last (its device channel): identifier → PayloadUUID; bundle id → version (ShortVersion, else Version). */
  installedProfiles(deviceId: string): Promise<Map<string, string | null>>
  installedApplications(deviceId: string): Promise<Map<string, string | null>>
  /**
   * Per item: its version is the content hash being installed, acknowledged as installed, or
   * failed (for profiles; null for apps). Rows written before versions were hashes hold a
   * PayloadUUID, which matches no hash: their profile is installed once more.
   */
  states(deviceId: string): Promise<ConfigStateRow[]>
  putState(
    deviceId: string,
    type: ConfigItemType,
    identifier: string,
    state: { profileId: string | null; version: string | null; status: ConfigItemStatus; commandUuid: string | null; detail: string | null },
  ): Promise<void>
  deleteState(deviceId: string, type: ConfigItemType, identifier: string): Promise<void>
  stateOfCommand(deviceId: string, commandUuid: string): Promise<ConfigStateRow | undefined>
  /** Whether the command is still queued for the device (Pending or NotNow). */
  commandOpen(deviceId: string, commandUuid: string): Promise<boolean>
}

export function createConvergenceStore(db: Kysely<Database>): ConvergenceStore {
  const appliesTo = blueprintAppliesTo

  return {
    async device(scope, deviceId) {
      const row = await db
        .selectFrom('devices as d')
        .leftJoin('enrollments as e', 'e.id', 'd.id')
        .select(['d.id', 'd.tenant_id', sql<boolean>`coalesce(e.enabled, false)`.as('enrolled')])
        .where('d.id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      return row ? { id: row.id, tenantId: row.tenant_id, enrolled: row.enrolled } : undefined
    },
    async enrolledDevicesOfTenant(tenantId) {
      let query = db.selectFrom('devices as d').innerJoin('enrollments as e', 'e.id', 'd.id').select('d.id').where('e.enabled', '=', true)
      if (tenantId !== null) {
        query = query.where((eb) =>
          eb.or([eb('d.tenant_id', '=', tenantId), eb('d.tenant_id', 'in', eb.selectFrom('tenants').select('id').where('parent_id', '=', tenantId))]),
        )
      }
      return (await query.orderBy('d.id').execute()).map((row) => row.id)
    },
    async desiredProfiles(deviceId) {
      // One profile per identifier: the device's own tenant's first, then its organisation's, then central IT's.
      // Prepared, as desiredApplications: the targeting predicate (smart groups) took ~2.5 ms of PostgreSQL to plan, on every enrollment.
      const { rows } = await sql<{ id: string; identifier: string; payload_uuid: string; sha256: string; name: string }>`${sql.raw(preparedStatement)}
        select distinct on (p.identifier) p.id, p.identifier, p.payload_uuid, p.sha256, p.name
        from devices d
        join blueprints b on ${appliesTo}
        join blueprint_profiles bp on bp.blueprint_id = b.id
        join library_profiles p on p.id = bp.profile_id
        where d.id = ${deviceId}
        order by p.identifier, (p.tenant_id is not distinct from d.tenant_id) desc, (p.tenant_id is not null) desc, p.updated_at desc`.execute(db)
      return rows.map((row) => ({ profileId: row.id, identifier: row.identifier, payloadUuid: row.payload_uuid, sha256: row.sha256, name: row.name }))
    },
    async profileVersionContent(profileId, sha256) {
      return (await db.selectFrom('library_profiles').select('content').where('id', '=', profileId).where('sha256', '=', sha256).executeTakeFirst())?.content
    },
    async desiredApplications(deviceId) {
      const { rows } = await sql<{ app: BlueprintApplication }>`${sql.raw(preparedStatement)}
        select distinct on (app ->> 'bundle_id') app
        from devices d
        join blueprints b on ${appliesTo}
        cross join lateral jsonb_array_elements(b.applications) as app
        where d.id = ${deviceId}
        order by app ->> 'bundle_id', (b.tenant_id is not distinct from d.tenant_id) desc, (b.tenant_id is not null) desc, b.updated_at desc`.execute(db)
      return rows.map((row) => row.app)
    },
    async configurationOf(deviceId) {
      // Every enrollment asks: one round trip that stops at the first row of each kind, where
      // the desired lists (above) sort every candidate.
      const { rows } = await sql<{ profiles: boolean; apps: boolean; states: boolean; app_states: boolean }>`${sql.raw(preparedStatement)}
        select
          exists (select 1 from devices d join blueprints b on ${appliesTo} join blueprint_profiles bp on bp.blueprint_id = b.id
            join library_profiles p on p.id = bp.profile_id where d.id = ${deviceId}) as profiles,
          exists (select 1 from devices d join blueprints b on ${appliesTo}
            where d.id = ${deviceId} and jsonb_array_length(b.applications) > 0) as apps,
          exists (select 1 from device_config_state where device_id = ${deviceId}) as states,
          exists (select 1 from device_config_state where device_id = ${deviceId} and item_type = 'app') as app_states`.execute(db)
      const row = rows[0]!
      return { any: row.profiles || row.apps || row.states, apps: row.apps || row.app_states }
    },
    async installedProfiles(deviceId) {
      const rows = await db.selectFrom('installed_profiles').select(['identifier', 'uuid']).where('enrollment_id', '=', deviceId).execute()
      return new Map(rows.map((row) => [row.identifier, row.uuid]))
    },
    async installedApplications(deviceId) {
      const rows = await db
        .selectFrom('installed_applications')
        .select(['identifier', sql<string | null>`coalesce(short_version, version)`.as('version')])
        .where('enrollment_id', '=', deviceId)
        .execute()
      return new Map(rows.map((row) => [row.identifier, row.version]))
    },
    async states(deviceId) {
      return db.selectFrom('device_config_state').selectAll().where('device_id', '=', deviceId).orderBy('item_type').orderBy('identifier').execute()
    },
    async putState(deviceId, type, identifier, state) {
      const values = {
        profile_id: state.profileId,
        version: state.version,
        status: state.status,
        command_uuid: state.commandUuid,
        detail: state.detail?.slice(0, 2000) ?? null,
        updated_at: new Date(),
      }
      await db
        .insertInto('device_config_state')
        .values({ device_id: deviceId, item_type: type, identifier, ...values })
        .onConflict((oc) => oc.columns(['device_id', 'item_type', 'identifier']).doUpdateSet(values))
        .execute()
    },
    async deleteState(deviceId, type, identifier) {
      await db.deleteFrom('device_config_state').where('device_id', '=', deviceId).where('item_type', '=', type).where('identifier', '=', identifier).execute()
    },
    async stateOfCommand(deviceId, commandUuid) {
      return db.selectFrom('device_config_state').selectAll().where('device_id', '=', deviceId).where('command_uuid', '=', commandUuid).executeTakeFirst()
    },
    async commandOpen(deviceId, commandUuid) {
      const row = await db
        .selectFrom('command_targets')
        .select('status')
        .where('enrollment_id', '=', deviceId)
        .where('command_uuid', '=', commandUuid)
        .executeTakeFirst()
      return isOpenCommandStatus(row?.status)
    },
  }
}
