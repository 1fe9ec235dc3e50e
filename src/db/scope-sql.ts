// The access scope (model/access.ts) as SQL: every admin store query applies it, so rows of
// tenants outside the caller's scope do not exist for it.
import { sql, type RawBuilder, type SqlBool } from 'kysely'
import type { AccessScope } from '../model/access.js'

/**
 * The SQL condition "this row's tenant is inside the scope", for a where clause:
 * `.where(inScope(scope, 'd.tenant_id'))`.
 */
export function inScope(scope: AccessScope, column: string): RawBuilder<SqlBool> {
  if (scope.kind === 'all') return sql<SqlBool>`true`
  if (scope.ids.length === 0) return sql<SqlBool>`false`
  return sql<SqlBool>`${sql.ref(column)} in (${sql.join(scope.ids.map((id) => sql`${id}`))})`
}
