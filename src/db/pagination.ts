// Keyset pagination behind an opaque cursor. The cursor holds the sort key and ID of the
// last row of a page, so the next page starts strictly after it: rows inserted or deleted
// meanwhile never make a page repeat or skip a row that was there all along. Null sort
// values sort as the largest (Postgres' default: last ascending, first descending).
import { sql, type RawBuilder, type SqlBool } from 'kysely'
import { OrchardError } from '../errors.js'
import { unstorableDetail } from '../model/storable-text.js'

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

/** The SQL type a cursor's sort key or id is compared as. */
export type CursorKeyType = 'timestamptz' | 'text' | 'bigint'

/** What a sort's cursor holds: the sort key's type (null: the cursor carries no key) and the id's. */
export interface CursorShape {
  value: CursorKeyType | null
  id: CursorKeyType
}

function badCursor(detail: string): OrchardError {
  return new OrchardError('invalid_cursor', `cursor ${detail}`, { details: { errors: [{ parameter: 'cursor', detail }] } })
}

const notIssued = 'is not a cursor this server issued'

/**
 * Decodes a cursor and checks that its key and id parse as the sort's column types: a
 * tampered cursor is the caller's error (400 invalid_cursor), never a database error.
 */
export function decodeCursor(text: string, sort: string, shape: CursorShape = { value: 'text', id: 'text' }): PageCursor {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    throw badCursor(notIssued)
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 3 ||
    typeof parsed[0] !== 'string' ||
    (parsed[1] !== null && typeof parsed[1] !== 'string') ||
    typeof parsed[2] !== 'string'
  ) {
    throw badCursor(notIssued)
  }
  const [cursorSort, value, id] = parsed as [string, string | null, string]
  if (cursorSort !== sort) throw badCursor(`belongs to sort ${JSON.stringify(cursorSort.slice(0, 64))}, not ${sort}: keep the sort while paging`)
  if (value !== null && shape.value === null) throw badCursor(notIssued)
  if (value !== null && shape.value !== null && !parsesAs(value, shape.value)) throw badCursor(`${notIssued} (its sort key is not a valid ${shape.value})`)
  if (!parsesAs(id, shape.id)) throw badCursor(`${notIssued} (its id is not a valid ${shape.id})`)
  return { sort: cursorSort, value, id }
}

// What `column::text` gives for timestamptz (DateStyle ISO), e.g. 2026-01-31 12:00:00.123456+00.
const timestampText = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?(?:Z|[+-](\d{2})(?::?(\d{2}))?(?::(\d{2}))?)?$/
const int64Text = /^-?[0-9]{1,19}$/

function parsesAs(text: string, type: CursorKeyType): boolean {
  if (unstorableDetail(text) !== undefined) return false
  switch (type) {
    case 'text':
      return true
    case 'bigint':
      return int64Text.test(text) && BigInt(text) >= -(2n ** 63n) && BigInt(text) < 2n ** 63n
    case 'timestamptz': {
      const match = timestampText.exec(text)
      if (!match) return false
      type Fields = [number, number, number, number, number, number, number, number, number]
      const [year, month, day, hour, minute, second, offsetHours, offsetMinutes, offsetSeconds] = match.slice(1).map((part) => Number(part ?? 0)) as Fields
      const date = new Date(0)
      date.setUTCFullYear(year, month - 1, day) // a real day: not 2023-02-29, not 2024-13-45
      const validDay = year > 0 && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
      // PostgreSQL takes zone displacements up to 15:59:59.
      return validDay && hour < 24 && minute < 60 && second < 60 && offsetHours < 16 && offsetMinutes < 60 && offsetSeconds < 60
    }
  }
}

/**
 * Rows after the cursor in the order `column <direction>, id <direction>`. `cast` names
 * the SQL type the text key is read back as (timestamptz, text, bigint).
 */
export function afterCursor(
  column: string,
  idColumn: string,
  direction: SortDirection,
  cursor: PageCursor,
  cast: 'timestamptz' | 'text' | 'bigint',
): RawBuilder<SqlBool> {
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
export function pageOf<Row, T>(
  rows: Row[],
  limit: number,
  sort: string,
  keyOf: (row: Row) => { value: string | null; id: string },
  map: (row: Row) => T,
): Page<T> {
  const more = rows.length > limit
  const shown = more ? rows.slice(0, limit) : rows
  const last = shown[shown.length - 1]
  return { items: shown.map(map), nextCursor: more && last ? encodeCursor({ sort, ...keyOf(last) }) : null }
}
