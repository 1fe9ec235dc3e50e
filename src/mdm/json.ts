// Plist values as JSON: data as base64, dates as ISO 8601, integers beyond 2^53 as strings.
import type { PlistValue } from './plist.js'

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

export function plistToJson(value: PlistValue): JsonValue {
  if (typeof value === 'string' || typeof value === 'boolean') return value
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value)
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()
  if (value instanceof Date) return value.toISOString()
  if (Buffer.isBuffer(value)) return value.toString('base64')
  if (Array.isArray(value)) return value.map(plistToJson)
  const out: { [key: string]: JsonValue } = {}
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    // A key "__proto__" assigned would set the prototype instead: defined as a property. (Any
    // other key is an own property when assigned; defineProperty for all was 2x slower.)
    if (key === '__proto__') Object.defineProperty(out, key, { value: plistToJson(value[key]!), enumerable: true, writable: true, configurable: true })
    else out[key] = plistToJson(value[key]!)
  }
  return out
}
