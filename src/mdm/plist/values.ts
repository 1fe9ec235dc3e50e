// The property-list values, limits and errors shared by the decoders (xml.ts, binary.ts) and
// the encoder (encode.ts), with the small helpers more than one of them needs.

export type PlistValue = string | number | bigint | boolean | Date | Buffer | PlistValue[] | PlistDict

export interface PlistDict {
  [key: string]: PlistValue
}

export interface PlistLimits {
  /** Deepest nesting of dicts and arrays; a root dict is depth 1. */
  maxDepth: number
  /** Most values (dicts, arrays and leaves; keys are not counted) one document may hold. */
  maxElements: number
  /** Largest input; also caps the <data> bytes a binary plist may expand to by sharing objects. */
  maxBytes: number
}

export const defaultPlistLimits: PlistLimits = Object.freeze({
  maxDepth: 64,
  maxElements: 200_000,
  maxBytes: 16 * 1024 * 1024,
})

export type PlistErrorCode = 'plist_malformed' | 'plist_limit_exceeded' | 'plist_unsupported'

export class PlistError extends Error {
  override readonly name = 'PlistError'
  readonly code: PlistErrorCode
  /** Byte offset in the decoded input where the problem is; undefined when encoding. */
  readonly offset: number | undefined

  constructor(code: PlistErrorCode, message: string, offset?: number) {
    super(offset === undefined ? message : `${message} at byte ${offset}`)
    this.code = code
    this.offset = offset
  }
}

/** A plain object (the shape decodePlist gives dicts): not an array, Date, Buffer or class instance. */
export function isPlistDict(value: unknown): value is PlistDict {
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** The limits `limits` asks for, the defaults for the rest. */
export function resolveLimits(limits: Partial<PlistLimits> | undefined): PlistLimits {
  if (limits === undefined) return defaultPlistLimits
  return {
    maxDepth: limits.maxDepth ?? defaultPlistLimits.maxDepth,
    maxElements: limits.maxElements ?? defaultPlistLimits.maxElements,
    maxBytes: limits.maxBytes ?? defaultPlistLimits.maxBytes,
  }
}

// Keys that Object.prototype has ("__proto__", "constructor", "toString"...) are defined,
// not assigned: assigning "__proto__" goes through a setter and replaces the prototype.
// Plain assignment is kept for all other keys because it is several times faster.
const objectPrototype: object = Object.prototype

export function setEntry(dict: PlistDict, key: string, value: PlistValue): void {
  if (key in objectPrototype) Object.defineProperty(dict, key, { value, writable: true, enumerable: true, configurable: true })
  else dict[key] = value
}

/** A short, quoted excerpt of untrusted text for an error message. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)
}

/** A key path for messages: $, $.Command.Message, $.ErrorChain[0], $["odd key"]. */
export function formatPath(segments: readonly (string | number)[]): string {
  let path = '$'
  for (const segment of segments) {
    if (typeof segment === 'number') path += `[${segment}]`
    else path += /^[A-Za-z_][A-Za-z0-9_]*$/.test(segment) ? `.${segment}` : `[${quote(segment)}]`
  }
  return path
}

export const NUL = '\u0000'

export function textMessage(what: 'key' | 'string', path: string, value: string, problem: string): string {
  return what === 'key' ? `key ${quote(value)} in ${path} ${problem}` : `string at ${path} ${problem}`
}

export function nulMessage(what: 'key' | 'string', path: string, value: string): string {
  return textMessage(what, path, value, 'contains U+0000 (NUL), which Orchard does not accept')
}

/** A character XML 1.0 allows (its Char production): what a character reference may name and what encodePlist can write. */
export function isXmlChar(cp: number): boolean {
  return (cp >= 0x20 && cp <= 0xd7ff) || cp === 0x09 || cp === 0x0a || cp === 0x0d || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff)
}

export const INT64_MIN = -(2n ** 63n)
export const UINT64_MAX = 2n ** 64n - 1n

/** A number when safe, else the bigint. */
export function normalizeInteger(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value
}
