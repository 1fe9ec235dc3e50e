// Blueprints: what they assign (library profiles, apps) and to what (a tenant, device kinds,
// enrollment groups, devices). Every write is audited in its own transaction.
import { sql, type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope, unusableForTenant } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import { randomUUID } from 'node:crypto'
import type { BlueprintApplication, BlueprintKiosk, BlueprintsTable, Database } from '../db/schema.js'
import type { DeviceKind } from '../model/devices.js'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'
import { blueprintAppliesTo } from './blueprint-targeting-sql.js'
import { kioskIdentifier, kioskIdentifierPrefix, type KioskProfile } from './kiosk-profile.js'

export type BlueprintRow = Selectable<BlueprintsTable> & { profile_ids: string[]; declaration_ids: string[] }

export interface BlueprintInput {
  name: string
  description: string | null
  kinds: DeviceKind[]
  groups: string[]
  groupIds: string[]
  deviceIds: string[]
  applications: BlueprintApplication[]
  profileIds: string[]
  declarationIds: string[]
  kiosk: BlueprintKiosk | null
  /** The kiosk's profile (built from `kiosk` by the service); null without a kiosk. */
  kioskProfile: KioskProfile | null
}

/**
 * Why a blueprint cannot be written: the first profile, declaration or device group it may not
 * carry (a kiosk profile is carried only by its own blueprint), or the devices it reaches that
 * cannot take its kiosk (not supervised, or not known to be: serial numbers or IDs, at most 10).
 */
export type NotUsable =
  | { profileNotUsable: string }
  | { declarationNotUsable: string }
  | { groupNotUsable: string }
  | { kioskProfile: string }
  | { notSupervised: string[]; count: number }

export interface BlueprintDefinitionStore {
  listBlueprints(scope: AccessScope): Promise<BlueprintRow[]>
  getBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow | undefined>
  /** 'profile_not_usable': a profile outside the scope, or of another tenant than the blueprint's. */
  createBlueprint(
    scope: AccessScope,
    id: string,
    tenantId: string | null,
    input: BlueprintInput,
  ): Promise<BlueprintRow | 'name_taken' | 'unknown_tenant' | NotUsable>
  updateBlueprint(scope: AccessScope, id: string, input: BlueprintInput): Promise<BlueprintRow | undefined | 'name_taken' | NotUsable>
  deleteBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow | undefined>
}

/** The blueprint's own columns, as an admin gives them (its profiles are rows of blueprint_profiles). */
function columnsOf(input: BlueprintInput) {
  return {
    name: input.name,
    description: input.description,
    kinds: input.kinds,
    groups: input.groups,
    group_ids: input.groupIds,
    device_ids: input.deviceIds,
    applications: JSON.stringify(input.applications),
    kiosk: input.kiosk === null ? null : JSON.stringify(input.kiosk),
  }
}

/** Rolls a blueprint's transaction back with the reason it was refused. */
class Refused extends Error {
  constructor(readonly refusal: NotUsable) {
    super('refused')
  }
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

  /** The blueprint's kiosk profile in its tenant's library: written, replaced or removed with it. */
  async function writeKiosk(trx: Kysely<Database>, blueprintId: string, tenantId: string | null, input: BlueprintInput) {
    const identifier = kioskIdentifier(blueprintId)
    const existing = await trx.selectFrom('library_profiles').select(['id', 'sha256']).where('identifier', '=', identifier).executeTakeFirst()
    const profile = input.kioskProfile
    if (profile === null) {
      if (existing) await trx.deleteFrom('library_profiles').where('id', '=', existing.id).execute()
      return
    }
    const columns = {
      payload_uuid: profile.payloadUuid,
      name: profile.name,
      payload_types: profile.payloadTypes,
      content: profile.content,
      sha256: profile.sha256,
    }
    const id = existing?.id ?? randomUUID()
    if (!existing)
      await trx
        .insertInto('library_profiles')
        .values({ id, tenant_id: tenantId, identifier, ...columns })
        .execute()
    else if (existing.sha256 !== profile.sha256)
      await trx
        .updateTable('library_profiles')
        .set({ ...columns, updated_at: new Date() })
        .where('id', '=', id)
        .execute()
    await trx.insertInto('blueprint_profiles').values({ blueprint_id: blueprintId, profile_id: id }).execute()
  }

  /** Enrolled devices the blueprint reaches that are not known to be supervised (a kiosk needs supervision). */
  async function unsupervisedTargets(trx: Kysely<Database>, blueprintId: string): Promise<NotUsable | undefined> {
    const { rows } = await sql<{ name: string; total: string }>`
      select coalesce(d.serial_number, d.id) as name, count(*) over () as total
      from blueprints b
      join devices d on ${blueprintAppliesTo}
      join enrollments e on e.id = d.id and e.enabled
      where b.id = ${blueprintId} and d.is_supervised is not true and d.lifecycle_state in ('active', 'lost')
      order by 1 limit 10`.execute(trx)
    return rows.length === 0 ? undefined : { notSupervised: rows.map((row) => row.name), count: Number(rows[0]!.total) }
  }

  /** The first profile or declaration the blueprint may not carry. */
  async function unusable(trx: Kysely<Database>, scope: AccessScope, tenantId: string | null, input: BlueprintInput) {
    const profile = await unusableForTenant(trx, scope, tenantId, input.profileIds)
    if (profile) return { profileNotUsable: profile }
    const declaration = await unusableForTenant(trx, scope, tenantId, input.declarationIds, 'declarations')
    if (declaration) return { declarationNotUsable: declaration }
    const group = await unusableForTenant(trx, scope, tenantId, input.groupIds, 'device_groups')
    if (group) return { groupNotUsable: group }
    if (input.profileIds.length > 0) {
      const kiosk = await trx
        .selectFrom('library_profiles')
        .select('id')
        .where('id', 'in', input.profileIds)
        .where('identifier', 'like', `${kioskIdentifierPrefix}%`)
        .executeTakeFirst()
      if (kiosk) return { kioskProfile: kiosk.id }
    }
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
          await writeKiosk(trx, id, tenantId, input)
          if (input.kiosk !== null) {
            const refusal = await unsupervisedTargets(trx, id)
            if (refusal) throw new Refused(refusal)
          }
          await recordAdminWrite(trx, scope, {
            type: 'blueprint',
            id,
            tenantId,
            details: { name: input.name, profile_ids: input.profileIds, declaration_ids: input.declarationIds },
          })
          return await blueprintsQuery(scope, trx).where('b.id', '=', id).executeTakeFirstOrThrow()
        })
      } catch (error) {
        if (error instanceof Refused) return error.refusal
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
          await writeKiosk(trx, id, current.tenant_id, input)
          if (input.kiosk !== null) {
            const refusal = await unsupervisedTargets(trx, id)
            if (refusal) throw new Refused(refusal)
          }
          await recordAdminWrite(trx, scope, {
            type: 'blueprint',
            id,
            tenantId: current.tenant_id,
            details: { name: input.name, profile_ids: input.profileIds, declaration_ids: input.declarationIds },
          })
          return await blueprintsQuery(scope, trx).where('b.id', '=', id).executeTakeFirstOrThrow()
        })
      } catch (error) {
        if (error instanceof Refused) return error.refusal
        if (isUniqueViolation(error)) return 'name_taken'
        throw error
      }
    },
    async deleteBlueprint(scope, id) {
      return db.transaction().execute(async (trx) => {
        const row = await blueprintsQuery(scope, trx).where('b.id', '=', id).executeTakeFirst()
        if (!row) return undefined
        await trx.deleteFrom('blueprints').where('id', '=', id).execute()
        await trx.deleteFrom('library_profiles').where('identifier', '=', kioskIdentifier(id)).execute()
        await recordAdminWrite(trx, scope, { type: 'blueprint', id, tenantId: row.tenant_id, details: { name: row.name } })
        return row
      })
    },
  }
}
