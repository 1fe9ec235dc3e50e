// A list of ids as an SQL condition, shaped for prepared statements.
import { sql, type RawBuilder, type SqlBool } from 'kysely'

/**
 * `column = $1` for one id, `column = any($1::text[])` for several. PostgreSQL plans an array
 * parameter as ten elements, so a prepared statement with `= any($1)` has a generic plan that
 * looks dearer than its one-id custom plans and is planned anew on every call: 5 ms of planning
 * for the declaration-set read of each enrollment, whose targeting predicate is large. With
 * `= $1` (a text of its own) the generic plan is kept from the sixth call on.
 */
export function idIn(column: string, ids: readonly string[]): RawBuilder<SqlBool> {
  if (ids.length === 1) return sql<SqlBool>`${sql.ref(column)} = ${ids[0]!}`
  return sql<SqlBool>`${sql.ref(column)} = any(${[...ids]}::text[])`
}
