// Desired configuration: the profile library, blueprints and what they apply to, and per
// device the state of each profile and app a blueprint put there (device_config_state).
import { sql, type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type {
  BlueprintApplication,
  BlueprintsTable,
  ConfigItemStatus,
  ConfigItemType,
  Database,
  DeviceConfigStateTable,
  LibraryProfilesTable,
} from '../db/schema.js'
import type { DeviceKind } from '../model/devices.js'
import { isOpenCommandStatus } from '../model/commands.js'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'

export type LibraryProfileRow = Omit<Selectable<LibraryProfilesTable>, 'content'>
export type BlueprintRow = Selectable<BlueprintsTable> & { profile_ids: string[] }
export type ConfigStateRow = Selectable<DeviceConfigStateTable>

export interface NewLibraryProfile {
  id: string
  tenantId: string | null
  identifier: string
  payloadUuid: string
  name: string
  payloadTypes: string[]
  content: Buffer
  sha256: string
}

export interface BlueprintInput {
  name: string
  description: string | null
  kinds: DeviceKind[]
  groups: string[]
  deviceIds: string[]
  applications: BlueprintApplication[]
  profileIds: string[]
}

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

export interface BlueprintStore {
  listProfiles(scope: AccessScope): Promise<LibraryProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<LibraryProfileRow | undefined>
  getProfileContent(scope: AccessScope, id: string): Promise<Buffer | undefined>
  /** 'unknown_tenant': the profile's tenant does not exist. */
  insertProfile(scope: AccessScope, profile: NewLibraryProfile): Promise<LibraryProfileRow | 'identifier_taken' | 'unknown_tenant'>
  /** A new version of a profile (same identifier): content, PayloadUUID, name, payload types. */
  replaceProfile(
    scope: AccessScope,
    id: string,
    profile: Omit<NewLibraryProfile, 'id' | 'tenantId'>,
  ): Promise<LibraryProfileRow | undefined | 'identifier_changed'>
  deleteProfile(scope: AccessScope, id: string): Promise<'deleted' | 'not_found' | 'in_use'>
  /** Tenants whose blueprints use the profile (to know whose devices to converge). */
  blueprintTenantsOfProfile(profileId: string): Promise<Array<string | null>>

  listBlueprints(scope: AccessScope): Promise<BlueprintRow[]>
  getBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow | undefined>
  /** 'profile_not_usable': a profile outside the scope, or of another tenant than the blueprint's. */
  createBlueprint(
    scope: AccessScope,
    id: string,
    tenantId: string | null,
    input: BlueprintInput,
  ): Promise<BlueprintRow | 'name_taken' | 'unknown_tenant' | { profileNotUsable: string }>
  updateBlueprint(scope: AccessScope, id: string, input: BlueprintInput): Promise<BlueprintRow | undefined | 'name_taken' | { profileNotUsable: string }>
  deleteBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow | undefined>

  device(scope: AccessScope, deviceId: string): Promise<ConvergenceDevice | undefined>
  /** Enrolled devices a blueprint of `tenantId` may reach: the tenant and its departments; every device for central IT. */
  enrolledDevicesOfTenant(tenantId: string | null): Promise<string[]>
  /** Without their content (up to 4 MiB each): see profileVersionContent. */
  desiredProfiles(deviceId: string): Promise<DesiredProfile[]>
  /** A profile's bytes while it is still at this version, its sha256 (undefined once replaced or deleted). */
  profileVersionContent(profileId: string, sha256: string): Promise<Buffer | undefined>
  desiredApplications(deviceId: string): Promise<BlueprintApplication[]>
  /** What the device reported last (its device channel): identifier → PayloadUUID; bundle ids. */
  installedProfiles(deviceId: string): Promise<Map<string, string | null>>
  installedApplications(deviceId: string): Promise<Set<string>>
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

const profileColumns = ['id', 'tenant_id', 'identifier', 'payload_uuid', 'name', 'payload_types', 'sha256', 'created_at', 'updated_at'] as const

export function createBlueprintStore(db: Kysely<Database>): BlueprintStore {
  function blueprintsQuery(scope: AccessScope, executor: Kysely<Database> = db) {
    return executor
      .selectFrom('blueprints as b')
      .selectAll('b')
      .select(
        sql<
          string[]
        >`coalesce((select array_agg(bp.profile_id::text order by bp.profile_id) from blueprint_profiles bp where bp.blueprint_id = b.id), '{}')`.as(
          'profile_ids',
        ),
      )
      .where(inScope(scope, 'b.tenant_id'))
  }

  /** Profiles a blueprint of `tenantId` may carry: its tenant's, its organisation's, central IT's. */
  async function unusableProfile(
    trx: Kysely<Database>,
    scope: AccessScope,
    tenantId: string | null,
    profileIds: readonly string[],
  ): Promise<string | undefined> {
    if (profileIds.length === 0) return undefined
    const parent =
      tenantId === null ? null : ((await trx.selectFrom('tenants').select('parent_id').where('id', '=', tenantId).executeTakeFirst())?.parent_id ?? null)
    const usable = await trx
      .selectFrom('library_profiles')
      .select('id')
      .where('id', 'in', profileIds)
      .where(inScope(scope, 'tenant_id'))
      .where((eb) =>
        eb.or([
          eb('tenant_id', 'is', null),
          ...(tenantId !== null ? [eb('tenant_id', '=', tenantId)] : []),
          ...(parent !== null ? [eb('tenant_id', '=', parent)] : []),
        ]),
      )
      .execute()
    const ids = new Set(usable.map((row) => row.id))
    return profileIds.find((id) => !ids.has(id))
  }

  async function writeProfiles(trx: Kysely<Database>, blueprintId: string, profileIds: readonly string[]) {
    await trx.deleteFrom('blueprint_profiles').where('blueprint_id', '=', blueprintId).execute()
    if (profileIds.length > 0)
      await trx
        .insertInto('blueprint_profiles')
        .values([...new Set(profileIds)].map((profileId) => ({ blueprint_id: blueprintId, profile_id: profileId })))
        .execute()
  }

  const appliesTo = sql<boolean>`
    (b.tenant_id is null or b.tenant_id = d.tenant_id or b.tenant_id = (select t.parent_id from tenants t where t.id = d.tenant_id))
    and ((cardinality(b.kinds) = 0 and cardinality(b.groups) = 0 and cardinality(b.device_ids) = 0)
      or ((cardinality(b.kinds) > 0 or cardinality(b.groups) > 0)
        and (cardinality(b.kinds) = 0 or d.kind = any(b.kinds))
        and (cardinality(b.groups) = 0 or d.enrollment_group = any(b.groups)))
      or d.id = any(b.device_ids))`

  return {
    async listProfiles(scope) {
      return db.selectFrom('library_profiles').select(profileColumns).where(inScope(scope, 'tenant_id')).orderBy('identifier').orderBy('id').execute()
    },
    async getProfile(scope, id) {
      return db.selectFrom('library_profiles').select(profileColumns).where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
    },
    async getProfileContent(scope, id) {
      return (await db.selectFrom('library_profiles').select('content').where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst())?.content
    },
    async insertProfile(scope, profile) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('library_profiles')
            .values({
              id: profile.id,
              tenant_id: profile.tenantId,
              identifier: profile.identifier,
              payload_uuid: profile.payloadUuid,
              name: profile.name,
              payload_types: profile.payloadTypes,
              content: profile.content,
              sha256: profile.sha256,
            })
            .returning(profileColumns)
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, {
            type: 'profile',
            id: row.id,
            tenantId: row.tenant_id,
            details: { identifier: row.identifier, payload_uuid: row.payload_uuid, sha256: row.sha256 },
          })
          return row
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'identifier_taken'
        if (isReferenceViolation(error)) return 'unknown_tenant'
        throw error
      }
    },
    async replaceProfile(scope, id, profile) {
      return db.transaction().execute(async (trx) => {
        const current = await trx
          .selectFrom('library_profiles')
          .select(['identifier', 'tenant_id'])
          .where('id', '=', id)
          .where(inScope(scope, 'tenant_id'))
          .forUpdate()
          .executeTakeFirst()
        if (!current) return undefined
        if (current.identifier !== profile.identifier) return 'identifier_changed' as const
        const row = await trx
          .updateTable('library_profiles')
          .set({
            payload_uuid: profile.payloadUuid,
            name: profile.name,
            payload_types: profile.payloadTypes,
            content: profile.content,
            sha256: profile.sha256,
            updated_at: new Date(),
          })
          .where('id', '=', id)
          .returning(profileColumns)
          .executeTakeFirstOrThrow()
        await recordAdminWrite(trx, scope, {
          type: 'profile',
          id,
          tenantId: row.tenant_id,
          details: { identifier: row.identifier, payload_uuid: row.payload_uuid, sha256: row.sha256 },
        })
        return row
      })
    },
    async deleteProfile(scope, id) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .deleteFrom('library_profiles')
            .where('id', '=', id)
            .where(inScope(scope, 'tenant_id'))
            .returning(['tenant_id', 'identifier'])
            .executeTakeFirst()
          if (!row) return 'not_found' as const
          await recordAdminWrite(trx, scope, { type: 'profile', id, tenantId: row.tenant_id, details: { identifier: row.identifier } })
          return 'deleted' as const
        })
      } catch (error) {
        if (isReferenceViolation(error)) return 'in_use'
        throw error
      }
    },
    async blueprintTenantsOfProfile(profileId) {
      const rows = await db
        .selectFrom('blueprint_profiles as bp')
        .innerJoin('blueprints as b', 'b.id', 'bp.blueprint_id')
        .select('b.tenant_id')
        .distinct()
        .where('bp.profile_id', '=', profileId)
        .execute()
      return rows.map((row) => row.tenant_id)
    },

    async listBlueprints(scope) {
      return blueprintsQuery(scope).orderBy('b.name').orderBy('b.id').execute()
    },
    async getBlueprint(scope, id) {
      return blueprintsQuery(scope).where('b.id', '=', id).executeTakeFirst()
    },
    async createBlueprint(scope, id, tenantId, input) {
      try {
        return await db.transaction().execute(async (trx) => {
          const unusable = await unusableProfile(trx, scope, tenantId, input.profileIds)
          if (unusable) return { profileNotUsable: unusable }
          await trx
            .insertInto('blueprints')
            .values({
              id,
              tenant_id: tenantId,
              name: input.name,
              description: input.description,
              kinds: input.kinds,
              groups: input.groups,
              device_ids: input.deviceIds,
              applications: JSON.stringify(input.applications),
            })
            .execute()
          await writeProfiles(trx, id, input.profileIds)
          await recordAdminWrite(trx, scope, { type: 'blueprint', id, tenantId, details: { name: input.name, profile_ids: input.profileIds } })
          return await blueprintsQuery(scope, trx).where('b.id', '=', id).executeTakeFirstOrThrow()
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken'
        // Its profiles were checked inside the transaction: what is missing is the tenant.
        if (isReferenceViolation(error)) return 'unknown_tenant'
        throw error
      }
    },
    async updateBlueprint(scope, id, input) {
      try {
        return await db.transaction().execute(async (trx) => {
          const current = await trx
            .selectFrom('blueprints')
            .select('tenant_id')
            .where('id', '=', id)
            .where(inScope(scope, 'tenant_id'))
            .forUpdate()
            .executeTakeFirst()
          if (!current) return undefined
          const unusable = await unusableProfile(trx, scope, current.tenant_id, input.profileIds)
          if (unusable) return { profileNotUsable: unusable }
          await trx
            .updateTable('blueprints')
            .set({
              name: input.name,
              description: input.description,
              kinds: input.kinds,
              groups: input.groups,
              device_ids: input.deviceIds,
              applications: JSON.stringify(input.applications),
              updated_at: new Date(),
            })
            .where('id', '=', id)
            .execute()
          await writeProfiles(trx, id, input.profileIds)
          await recordAdminWrite(trx, scope, {
            type: 'blueprint',
            id,
            tenantId: current.tenant_id,
            details: { name: input.name, profile_ids: input.profileIds },
          })
          return await blueprintsQuery(scope, trx).where('b.id', '=', id).executeTakeFirstOrThrow()
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken'
        throw error
      }
    },
    async deleteBlueprint(scope, id) {
      return db.transaction().execute(async (trx) => {
        const row = await blueprintsQuery(scope, trx).where('b.id', '=', id).executeTakeFirst()
        if (!row) return undefined
        await trx.deleteFrom('blueprints').where('id', '=', id).execute()
        await recordAdminWrite(trx, scope, { type: 'blueprint', id, tenantId: row.tenant_id, details: { name: row.name } })
        return row
      })
    },

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
      const { rows } = await sql<{ id: string; identifier: string; payload_uuid: string; sha256: string; name: string }>`
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
      const { rows } = await sql<{ app: BlueprintApplication }>`
        select distinct on (app ->> 'bundle_id') app
        from devices d
        join blueprints b on ${appliesTo}
        cross join lateral jsonb_array_elements(b.applications) as app
        where d.id = ${deviceId}
        order by app ->> 'bundle_id', (b.tenant_id is not distinct from d.tenant_id) desc, (b.tenant_id is not null) desc, b.updated_at desc`.execute(db)
      return rows.map((row) => row.app)
    },
    async installedProfiles(deviceId) {
      const rows = await db.selectFrom('installed_profiles').select(['identifier', 'uuid']).where('enrollment_id', '=', deviceId).execute()
      return new Map(rows.map((row) => [row.identifier, row.uuid]))
    },
    async installedApplications(deviceId) {
      const rows = await db.selectFrom('installed_applications').select('identifier').where('enrollment_id', '=', deviceId).execute()
      return new Set(rows.map((row) => row.identifier))
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
