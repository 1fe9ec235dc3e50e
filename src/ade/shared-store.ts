// What the ADE stores share: the row types of the three tables and the SQL every one of
// them needs (PreStages with their is_default flag, the tokens of a scope, a row's tenant).
import { sql, type Kysely, type Selectable } from 'kysely'
import { fullAccess, type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import type { Database, DepDevicesTable, DepProfilesTable, DepTokensTable } from '../db/schema.js'

export type DepTokenRow = Selectable<DepTokensTable>
export type DepProfileRow = Selectable<DepProfilesTable> & {
  /** The PreStage is its token's default for new devices. */
  is_default: boolean
}
export type DepDeviceRow = Selectable<DepDevicesTable>

/** PreStages inside `scope`, each with whether it is its token's default. */
export function profilesInScope(db: Kysely<Database>, scope: AccessScope = fullAccess) {
  return db
    .selectFrom('dep_profiles as p')
    .innerJoin('dep_tokens as t', 't.id', 'p.token_id')
    .selectAll('p')
    .select(sql<boolean>`coalesce(t.default_profile_id = p.id, false)`.as('is_default'))
    .where(inScope(scope, 't.tenant_id'))
}

/** The ids of the tokens inside `scope`, as a subquery: `.where('token_id', 'in', tokenIdsInScope(db, scope))`. */
export function tokenIdsInScope(db: Kysely<Database>, scope: AccessScope) {
  return db.selectFrom('dep_tokens as t').select('t.id').where(inScope(scope, 't.tenant_id'))
}

// The tenant of a token (profiles and devices are its), for audit rows.
export async function tenantOfToken(trx: Kysely<Database>, tokenId: string): Promise<string | null> {
  return (await trx.selectFrom('dep_tokens').select('tenant_id').where('id', '=', tokenId).executeTakeFirst())?.tenant_id ?? null
}

export async function tenantOfProfile(trx: Kysely<Database>, profileId: string): Promise<string | null> {
  const row = await trx
    .selectFrom('dep_profiles as p')
    .innerJoin('dep_tokens as t', 't.id', 'p.token_id')
    .select('t.tenant_id')
    .where('p.id', '=', profileId)
    .executeTakeFirst()
  return row?.tenant_id ?? null
}
