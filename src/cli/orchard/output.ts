// Human output: aligned tables and key/value blocks. Values are shown as the API gives them,
// times without their milliseconds.

export type Cell = string | number | boolean | null | undefined

export function cell(value: Cell): string {
  if (value === null || value === undefined || value === '') return '-'
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(value)) return value.replace(/\.\d+Z$/, 'Z')
  return String(value)
}

export function table(header: readonly string[], rows: ReadonlyArray<readonly Cell[]>, empty = 'nothing found'): string {
  if (rows.length === 0) return empty
  const texts = rows.map((row) => row.map(cell))
  const widths = header.map((title, i) => Math.max(title.length, ...texts.map((row) => row[i]!.length)))
  return [header, ...texts].map((cells) => cells.map((text, i) => (i === cells.length - 1 ? text : text.padEnd(widths[i]!))).join('  ')).join('\n')
}

export function keyValues(pairs: ReadonlyArray<readonly [string, Cell]>): string {
  const width = Math.max(...pairs.map(([key]) => key.length))
  return pairs.map(([key, value]) => `${`${key}:`.padEnd(width + 1)} ${cell(value)}`).join('\n')
}

export function counts(record: Readonly<Record<string, number>>): string {
  const entries = Object.entries(record).filter(([, count]) => count > 0)
  return entries.length === 0 ? '' : entries.map(([name, count]) => `${name} ${count}`).join(', ')
}
