// Keyset pagination behind an opaque cursor. The cursor holds the sort key and ID of the
// last row of a page, so the next page starts strictly after it: rows inserted or deleted
// meanwhile never make a page repeat or skip a row that was there all along. Null sort
// values sort as the largest (Postgres' default: last ascending, first descending).
import { sql, type RawBuilder, type SqlBool } from 'kysely'
import { OrchardError } from '../errors.js'

export type SortDirection = 'asc' | 'desc'

export interface PageCursor {
  /** The sort this cursor belongs to, e.g. '-last_seen_at'. */
  sort: string
  /** The sort key of the last row, as text (full precision for timestamps); null for a null key. */
  value: string | null
  id: string
}

export interface Page<T> {
  items: T[]
  nextCursor: string | null
}

export function encodeCursor(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify([cursor.sort, cursor.value, cursor.id])).toString('base64url')
}

function badCursor(detail: string): OrchardError {
  return new OrchardError('validation_failed', `cursor ${detail}`, { details: { errors: [{ parameter: 'cursor', detail }] } })
}

export function decodeCursor(text: string, sort: string): PageCursor {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    throw badCursor('is not a cursor this server issued')
  }
  if (!Array.isArray(parsed) || parsed.length !== 3 || typeof parsed[0] !== 'string' || (parsed[1] !== null && typeof parsed[1] !== 'string') || typeof parsed[2] !== 'string') {
    throw badCursor('is not a cursor this server issued')
  }
  if (parsed[0] !== sort) throw badCursor(`belongs to sort ${parsed[0]}, not ${sort}: keep the sort while paging`)
  return { sort: parsed[0], value: parsed[1], id: parsed[2] }
}

/**
 * Rows after the cursor in the order `column <direction>, id <direction>`. `cast` names
 * the SQL type the text key is read back as (timestamptz, text, bigint).
 */
export function afterCursor(column: string, idColumn: string, direction: SortDirection, cursor: PageCursor, cast: 'timestamptz' | 'text' | 'bigint'): RawBuilder<SqlBool> {
  const col = sql.ref(column)
  const id = sql.ref(idColumn)
  const value = sql`${cursor.value}::${sql.raw(cast)}`
  const idValue = sql`${cursor.id}::text`
  if (direction === 'asc') {
    return cursor.value === null
      ? sql<SqlBool>`(${col} is null and ${id} > ${idValue})`
      : sql<SqlBool>`(${col} > ${value} or (${col} = ${value} and ${id} > ${idValue}) or ${col} is null)`
  }
  return cursor.value === null
    ? sql<SqlBool>`((${col} is null and ${id} < ${idValue}) or ${col} is not null)`
    : sql<SqlBool>`(${col} < ${value} or (${col} = ${value} and ${id} < ${idValue}))`
}

export function orderFor(column: string, idColumn: string, direction: SortDirection): RawBuilder<unknown> {
  return direction === 'asc'
    ? sql`${sql.ref(column)} asc nulls last, ${sql.ref(idColumn)} asc`
    : sql`${sql.ref(column)} desc nulls first, ${sql.ref(idColumn)} desc`
}

/** Splits `-field` into field and direction. */
export function parseSort(sort: string): { field: string; direction: SortDirection } {
  return sort.startsWith('-') ? { field: sort.slice(1), direction: 'desc' } : { field: sort, direction: 'asc' }
}

/** Builds a page from limit+1 fetched rows. */
export function pageOf<Row, T>(rows: Row[], limit: number, sort: string, keyOf: (row: Row) => { value: string | null; id: string }, map: (row: Row) => T): Page<T> {
  const more = rows.length > limit
  const shown = more ? rows.slice(0, limit) : rows
  const last = shown[shown.length - 1]
  return { items: shown.map(map), nextCursor: more && last ? encodeCursor({ sort, ...keyOf(last) }) : null }
}
