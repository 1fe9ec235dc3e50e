// Blueprints: what they assign (library profiles, apps) and to what (a tenant, device kinds,
// enrollment groups, devices). Every write is audited in its own transaction.
import { sql, type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { BlueprintApplication, BlueprintsTable, Database } from '../db/schema.js'
import type { DeviceKind } from '../model/devices.js'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'

export type BlueprintRow = Selectable<BlueprintsTable> & { profile_ids: string[]; declaration_ids: string[] }

export interface BlueprintInput {
  name: string
  description: string | null
  kinds: DeviceKind[]
  groups: string[]
  deviceIds: string[]
  applications: BlueprintApplication[]
  profileIds: string[]
  declarationIds: string[]
}

export interface BlueprintDefinitionStore {
  listBlueprints(scope: AccessScope): Promise<BlueprintRow[]>
  getBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow | undefined>
  /** 'profile_not_usable': a profile outside the scope, or of another tenant than the blueprint's. */
  createBlueprint(
    scope: AccessScope,
    id: string,
    tenantId: string | null,
    input: BlueprintInput,
  ): Promise<BlueprintRow | 'name_taken' | 'unknown_tenant' | { profileNotUsable: string } | { declarationNotUsable: string }>
  updateBlueprint(
    scope: AccessScope,
    id: string,
    input: BlueprintInput,
  ): Promise<BlueprintRow | undefined | 'name_taken' | { profileNotUsable: string } | { declarationNotUsable: string }>
  deleteBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow | undefined>
}

/** The blueprint's own columns, as an admin gives them (its profiles are rows of blueprint_profiles). */
function columnsOf(input: BlueprintInput) {
  return {
    name: input.name,
    description: input.description,
    kinds: input.kinds,
    groups: input.groups,
    device_ids: input.deviceIds,
    applications: JSON.stringify(input.applications),
  }
}

/**
 * The first of these library profiles (or declarations) a row of `tenantId` may not carry; it may
 * carry its tenant's, its organisation's and central IT's (blueprints, and declarations naming a
 * library profile).
 */
export async function unusableProfile(
  trx: Kysely<Database>,
  scope: AccessScope,
  tenantId: string | null,
  profileIds: readonly string[],
  table: 'library_profiles' | 'declarations' = 'library_profiles',
): Promise<string | undefined> {
  if (profileIds.length === 0) return undefined
  const parent =
    tenantId === null ? null : ((await trx.selectFrom('tenants').select('parent_id').where('id', '=', tenantId).executeTakeFirst())?.parent_id ?? null)
  const usable = await trx
    .selectFrom(table)
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

export function createBlueprintDefinitionStore(db: Kysely<Database>): BlueprintDefinitionStore {
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
      .select(
        sql<
          string[]
        >`coalesce((select array_agg(bd.declaration_id order by bd.declaration_id) from blueprint_declarations bd where bd.blueprint_id = b.id), '{}')`.as(
          'declaration_ids',
        ),
      )
      .where(inScope(scope, 'b.tenant_id'))
  }

  async function writeProfiles(trx: Kysely<Database>, blueprintId: string, input: BlueprintInput) {
    await trx.deleteFrom('blueprint_profiles').where('blueprint_id', '=', blueprintId).execute()
    if (input.profileIds.length > 0)
      await trx
        .insertInto('blueprint_profiles')
        .values([...new Set(input.profileIds)].map((profileId) => ({ blueprint_id: blueprintId, profile_id: profileId })))
        .execute()
    await trx.deleteFrom('blueprint_declarations').where('blueprint_id', '=', blueprintId).execute()
    if (input.declarationIds.length > 0)
      await trx
        .insertInto('blueprint_declarations')
        .values([...new Set(input.declarationIds)].map((declarationId) => ({ blueprint_id: blueprintId, declaration_id: declarationId })))
        .execute()
  }

  /** The first profile or declaration the blueprint may not carry. */
  async function unusable(trx: Kysely<Database>, scope: AccessScope, tenantId: string | null, input: BlueprintInput) {
    const profile = await unusableProfile(trx, scope, tenantId, input.profileIds)
    if (profile) return { profileNotUsable: profile }
    const declaration = await unusableProfile(trx, scope, tenantId, input.declarationIds, 'declarations')
    if (declaration) return { declarationNotUsable: declaration }
    return undefined
  }

  return {
    async listBlueprints(scope) {
      return blueprintsQuery(scope).orderBy('b.name').orderBy('b.id').execute()
    },
    async getBlueprint(scope, id) {
      return blueprintsQuery(scope).where('b.id', '=', id).executeTakeFirst()
    },
    async createBlueprint(scope, id, tenantId, input) {
      try {
        return await db.transaction().execute(async (trx) => {
          const refused = await unusable(trx, scope, tenantId, input)
          if (refused) return refused
          await trx
            .insertInto('blueprints')
            .values({ id, tenant_id: tenantId, ...columnsOf(input) })
            .execute()
          await writeProfiles(trx, id, input)
          await recordAdminWrite(trx, scope, {
            type: 'blueprint',
            id,
            tenantId,
            details: { name: input.name, profile_ids: input.profileIds, declaration_ids: input.declarationIds },
          })
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
          const refused = await unusable(trx, scope, current.tenant_id, input)
          if (refused) return refused
          await trx
            .updateTable('blueprints')
            .set({ ...columnsOf(input), updated_at: new Date() })
            .where('id', '=', id)
            .execute()
          await writeProfiles(trx, id, input)
          await recordAdminWrite(trx, scope, {
            type: 'blueprint',
            id,
            tenantId: current.tenant_id,
            details: { name: input.name, profile_ids: input.profileIds, declaration_ids: input.declarationIds },
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
  }
}
