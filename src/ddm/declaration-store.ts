// Declarations per tenant (declarations table). Every write is audited in its own transaction.
import type { Kysely, Selectable } from 'kysely'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'
import type { Database } from '../db/schema.js'
import type { DeclarationChannel, DeclarationKind, DeclarationsTable } from '../db/schema-ddm.js'
import { inScope, unusableForTenant } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'

/** profile_sha256: the version of the library profile a legacy-profile declaration carries. */
export type DeclarationRow = Selectable<DeclarationsTable> & { blueprint_count: number; profile_sha256: string | null }

export interface DeclarationContent {
  identifier: string
  type: string
  kind: DeclarationKind
  name: string | null
  payload: Record<string, unknown>
  serverToken: string
  /** A library profile the declaration carries (legacy-profile types only). */
  profileId: string | null
  channel: DeclarationChannel
}

export interface DeclarationStore {
  list(scope: AccessScope, filter: { tenantId?: string | null; kind?: DeclarationKind }): Promise<DeclarationRow[]>
  get(scope: AccessScope, id: string): Promise<DeclarationRow | undefined>
  /** 'profile_not_usable': the profile is outside the scope, or not its tenant's, its organisation's or central IT's. */
  create(
    scope: AccessScope,
    id: string,
    tenantId: string | null,
    content: DeclarationContent,
  ): Promise<DeclarationRow | 'identifier_taken' | 'unknown_tenant' | 'profile_not_usable'>
  update(scope: AccessScope, id: string, content: DeclarationContent): Promise<DeclarationRow | undefined | 'identifier_taken' | 'profile_not_usable'>
  /** 'in_use': a blueprint carries it. */
  remove(scope: AccessScope, id: string): Promise<DeclarationRow | undefined | 'in_use'>
  /** The tenants of the declarations that carry this library profile. */
  tenantsOfProfile(profileId: string): Promise<Array<string | null>>
}

export function createDeclarationStore(db: Kysely<Database>): DeclarationStore {
  const query = (scope: AccessScope, executor: Kysely<Database> = db) =>
    executor
      .selectFrom('declarations as x')
      .leftJoin('library_profiles as p', 'p.id', 'x.profile_id')
      .selectAll('x')
      .select('p.sha256 as profile_sha256')
      .select((eb) =>
        eb.selectFrom('blueprint_declarations as bd').select(eb.fn.countAll<number>().as('n')).whereRef('bd.declaration_id', '=', 'x.id').as('blueprint_count'),
      )
      .where(inScope(scope, 'x.tenant_id'))
  const columns = (content: DeclarationContent) => ({
    identifier: content.identifier,
    type: content.type,
    kind: content.kind,
    name: content.name,
    payload: JSON.stringify(content.payload),
    server_token: content.serverToken,
    profile_id: content.profileId,
    channel: content.channel,
  })
  /** A declaration carries a library profile of its tenant, its organisation or central IT (as blueprints do). */
  const profileUsable = async (trx: Kysely<Database>, scope: AccessScope, tenantId: string | null, profileId: string | null) =>
    profileId === null || (await unusableForTenant(trx, scope, tenantId, [profileId])) === undefined
  const counted = (row: Omit<DeclarationRow, 'blueprint_count'> & { blueprint_count: number | string | null }): DeclarationRow => ({
    ...row,
    blueprint_count: Number(row.blueprint_count ?? 0),
  })

  return {
    async list(scope, filter) {
      let q = query(scope)
      if (filter.tenantId !== undefined) q = q.where('x.tenant_id', filter.tenantId === null ? 'is' : '=', filter.tenantId)
      if (filter.kind !== undefined) q = q.where('x.kind', '=', filter.kind)
      return (await q.orderBy('x.identifier').orderBy('x.id').execute()).map(counted)
    },
    async get(scope, id) {
      const row = await query(scope).where('x.id', '=', id).executeTakeFirst()
      return row && counted(row)
    },
    async create(scope, id, tenantId, content) {
      try {
        return await db.transaction().execute(async (trx) => {
          if (!(await profileUsable(trx, scope, tenantId, content.profileId))) return 'profile_not_usable' as const
          await trx
            .insertInto('declarations')
            .values({ id, tenant_id: tenantId, ...columns(content) })
            .execute()
          await recordAdminWrite(trx, scope, {
            type: 'declaration',
            id,
            tenantId,
            details: { identifier: content.identifier, type: content.type, channel: content.channel },
          })
          return counted(await query(scope, trx).where('x.id', '=', id).executeTakeFirstOrThrow())
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'identifier_taken'
        if (isReferenceViolation(error)) return 'unknown_tenant'
        throw error
      }
    },
    async update(scope, id, content) {
      try {
        return await db.transaction().execute(async (trx) => {
          const current = await trx
            .selectFrom('declarations')
            .select('tenant_id')
            .where('id', '=', id)
            .where(inScope(scope, 'tenant_id'))
            .forUpdate()
            .executeTakeFirst()
          if (!current) return undefined
          if (!(await profileUsable(trx, scope, current.tenant_id, content.profileId))) return 'profile_not_usable' as const
          await trx
            .updateTable('declarations')
            .set({ ...columns(content), updated_at: new Date() })
            .where('id', '=', id)
            .execute()
          await recordAdminWrite(trx, scope, {
            type: 'declaration',
            id,
            tenantId: current.tenant_id,
            details: { identifier: content.identifier, server_token: content.serverToken, channel: content.channel },
          })
          return counted(await query(scope, trx).where('x.id', '=', id).executeTakeFirstOrThrow())
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'identifier_taken'
        throw error
      }
    },
    async remove(scope, id) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await query(scope, trx).where('x.id', '=', id).executeTakeFirst()
          if (!row) return undefined
          await trx.deleteFrom('declarations').where('id', '=', id).execute()
          await recordAdminWrite(trx, scope, { type: 'declaration', id, tenantId: row.tenant_id, details: { identifier: row.identifier } })
          return counted(row)
        })
      } catch (error) {
        if (isReferenceViolation(error)) return 'in_use'
        throw error
      }
    },
    async tenantsOfProfile(profileId) {
      const rows = await db.selectFrom('declarations').select('tenant_id').distinct().where('profile_id', '=', profileId).execute()
      return rows.map((row) => row.tenant_id)
    },
  }
}
