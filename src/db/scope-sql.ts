// The access scope (model/access.ts) as SQL: every admin store query applies it, so rows of
// tenants outside the caller's scope do not exist for it.
import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely'
import type { AccessScope } from '../model/access.js'
import type { Database } from './schema.js'

/**
 * The SQL condition "this row's tenant is inside the scope", for a where clause:
 * `.where(inScope(scope, 'd.tenant_id'))`.
 */
export function inScope(scope: AccessScope, column: string): RawBuilder<SqlBool> {
  if (scope.kind === 'all') return sql<SqlBool>`true`
  if (scope.ids.length === 0) return sql<SqlBool>`false`
  return sql<SqlBool>`${sql.ref(column)} in (${sql.join(scope.ids.map((id) => sql`${id}`))})`
}

/**
 * The first of these rows (library profiles, declarations, device groups) a row of `tenantId` may
 * not use: it may use its tenant's, its organisation's and central IT's (blueprints and update
 * policies naming profiles, declarations and groups; declarations naming a library profile).
 */
export async function unusableForTenant(
  trx: Kysely<Database>,
  scope: AccessScope,
  tenantId: string | null,
  ids: readonly string[],
  table: 'library_profiles' | 'declarations' | 'device_groups' = 'library_profiles',
): Promise<string | undefined> {
  if (ids.length === 0) return undefined
  const parent =
    tenantId === null ? null : ((await trx.selectFrom('tenants').select('parent_id').where('id', '=', tenantId).executeTakeFirst())?.parent_id ?? null)
  const usable = await trx
    .selectFrom(table)
    .select('id')
    .where('id', 'in', ids)
    .where(inScope(scope, 'tenant_id'))
    .where((eb) =>
      eb.or([
        eb('tenant_id', 'is', null),
        ...(tenantId !== null ? [eb('tenant_id', '=', tenantId)] : []),
        ...(parent !== null ? [eb('tenant_id', '=', parent)] : []),
      ]),
    )
    .execute()
  const found = new Set(usable.map((row) => row.id))
  return ids.find((id) => !found.has(id))
}
