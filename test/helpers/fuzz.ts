// Building blocks of the fuzz tests (test/http/api-fuzz.test.ts, test/device/device-fuzz.test.ts):
// hostile strings and values, and in-place mutations of plist and JSON trees. Everything draws
// from a seeded PRNG (./random.ts), so a run can be repeated exactly.
import type { PlistDict, PlistValue } from '../../src/mdm/plist.js'

export type Random = () => number

/** How many inputs a fuzz test tries: ORCHARD_FUZZ_COUNT, else the file's default. */
export function fuzzCount(fallback: number): number {
  const value = Number(process.env['ORCHARD_FUZZ_COUNT'])
  return Number.isSafeInteger(value) && value > 0 ? value : fallback
}

/** ORCHARD_FUZZ_SEED, else the file's seed. */
export function fuzzSeed(fallback: number): number {
  const value = Number(process.env['ORCHARD_FUZZ_SEED'])
  return Number.isSafeInteger(value) ? value : fallback
}

export const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!

export const oddStrings: readonly string[] = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\u0000'.repeat(40),
  'ünïcødé ✓',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  '\u202eevil\u202c',
  'e\u0301\u0301\u0301',
  '\ufeff\ufffe\uffff',
  '\ud800',
  'x\udfffy',
  '<plist>&amp;',
  "'; drop table devices; --",
  '%00%ff',
  '\\u0000',
  '../../etc/passwd',
  '9'.repeat(40),
  '-1',
  'null',
]

/** `original` with a NUL at a random place. */
export function withNul(random: Random, original: string): string {
  const at = Math.floor(random() * (original.length + 1))
  return `${original.slice(0, at)}\u0000${original.slice(at)}`
}

/** A replacement string: NUL most often (the bug these tests were written for), else odd or huge. */
export function mutantString(random: Random, original: string): string {
  const roll = random()
  if (roll < 0.4) return withNul(random, original)
  if (roll < 0.55) return pick(random, ['x', 'é', '€', '😀', '\u0000']).repeat(pick(random, [300, 5_000, 70_000]))
  return pick(random, oddStrings)
}

// ---------------------------------------------------------------------------------------
// Property lists

const isDict = (value: unknown): value is PlistDict =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date) && !Buffer.isBuffer(value)

function mutantPlistValue(random: Random): PlistValue {
  switch (Math.floor(random() * 10)) {
    case 0:
      return Math.floor(random() * 2 ** 31) - 2 ** 30
    case 1:
      return pick(random, [2n ** 63n - 1n, -(2n ** 63n), 18446744073709551615n, 0, -1])
    case 2:
      return pick(random, [Number.NaN, Number.POSITIVE_INFINITY, 1e308, -0.5])
    case 3:
      return random() < 0.5
    case 4:
      return pick(random, [new Date(0), new Date(Date.UTC(9999, 11, 31)), new Date(Date.UTC(1, 0, 1)), new Date(8.64e15)])
    case 5:
      return Buffer.from(pick(random, ['', '\u0000', 'not json', '{"a":"\\u0000"}', '[1,2', '\u0000'.repeat(64)]))
    case 6:
      return []
    case 7:
      return {}
    case 8:
      return [mutantString(random, 'item'), { Key: mutantString(random, 'value') }]
    default:
      return mutantString(random, 'value')
  }
}

type Slot = [PlistDict | PlistValue[], string | number]

/** Every place in a tree: [parent, key] pairs, depth first. */
function slots(value: unknown, out: Slot[] = []): Slot[] {
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      out.push([value, index])
      slots(item, out)
    })
  } else if (isDict(value)) {
    for (const [key, item] of Object.entries(value)) {
      out.push([value, key])
      slots(item, out)
    }
  }
  return out
}

const get = (parent: Slot[0], key: Slot[1]): unknown => (parent as Record<string | number, unknown>)[key]

function set(parent: Slot[0], key: Slot[1], value: unknown): void {
  if (Array.isArray(parent)) (parent as unknown[])[key as number] = value
  // defineProperty: a key such as "__proto__" must stay an own property.
  else Object.defineProperty(parent, key, { value, writable: true, enumerable: true, configurable: true })
}

function renameKey(dict: PlistDict, from: string, to: string): void {
  const entries = Object.entries(dict).map(([key, value]): [string, unknown] => [key === from ? to : key, value])
  for (const key of Object.keys(dict)) delete dict[key]
  for (const [key, value] of entries) set(dict, key, value)
}

/**
 * Mutates a tree in place (a plist dict, or a JSON object with `leaf` making JSON values) and
 * returns what it did: a string gets a NUL or becomes odd or huge, a key too, a value changes
 * type, a key is dropped or added, or a deeply nested value appears.
 */
export function mutateTree(random: Random, root: PlistDict, leaf: (random: Random) => unknown = mutantPlistValue): string {
  const all = slots(root)
  const strings = all.filter(([parent, key]) => typeof get(parent, key) === 'string')
  const keyed = all.filter((slot): slot is [PlistDict, string] => !Array.isArray(slot[0]))
  const roll = random()
  if (roll < 0.35 && strings.length > 0) {
    const [parent, key] = pick(random, strings)
    set(parent, key, mutantString(random, get(parent, key) as string))
    return `string ${String(key)}`
  }
  if (roll < 0.5 && keyed.length > 0) {
    const [parent, key] = pick(random, keyed)
    renameKey(parent, key, mutantString(random, key))
    return `key ${key}`
  }
  if (roll < 0.65 && all.length > 0) {
    const [parent, key] = pick(random, all)
    set(parent, key, leaf(random))
    return `type ${String(key)}`
  }
  if (roll < 0.78 && keyed.length > 0) {
    const [parent, key] = pick(random, keyed)
    delete parent[key]
    return `drop ${key}`
  }
  if (roll < 0.9) {
    const dicts = [root, ...all.map(([parent, key]) => get(parent, key)).filter(isDict)]
    set(pick(random, dicts), mutantString(random, pick(random, ['Extra', 'UDID', 'CommandUUID', 'Status', 'UserID', 'apps', 'name', 'id'])), leaf(random))
    return 'add key'
  }
  let nested: unknown = mutantString(random, 'deep')
  const depth = pick(random, [10, 60, 70, 500])
  for (let i = 0; i < depth; i++) nested = random() < 0.5 ? [nested] : { Deep: nested }
  const targets = [root, ...all.map(([parent, key]) => get(parent, key)).filter(isDict)]
  set(pick(random, targets), pick(random, ['QueryResponses', 'Extra', 'ErrorChain', 'settings', 'filter']), nested)
  return `nesting ${depth}`
}

// ---------------------------------------------------------------------------------------
// JSON

export function mutantJsonValue(random: Random): unknown {
  switch (Math.floor(random() * 10)) {
    case 0:
      return pick(random, [0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, 9007199254740993])
    case 1:
      return random() < 0.5
    case 2:
      return null
    case 3:
      return []
    case 4:
      return {}
    case 5:
      return [mutantString(random, 'item')]
    case 6:
      return { [mutantString(random, 'key')]: mutantString(random, 'value') }
    case 7:
      return pick(random, ['1970-01-01T00:00:00Z', '0000-00-00T00:00:00Z', '9999-12-31T23:59:59Z', '2024-02-30T00:00:00Z', '+275760-09-13T00:00:00Z'])
    default:
      return mutantString(random, 'value')
  }
}

/** A whole body that is not what the schema wants. */
export function mutantJsonBody(random: Random): unknown {
  const roll = random()
  if (roll < 0.2) return mutantJsonValue(random)
  if (roll < 0.4) return { '\u0000': '\u0000' }
  if (roll < 0.6) {
    let nested: unknown = 1
    for (let i = 0, depth = pick(random, [100, 1_000]); i < depth; i++) nested = random() < 0.5 ? [nested] : { a: nested }
    return nested
  }
  if (roll < 0.8) return Object.fromEntries(Array.from({ length: pick(random, [50, 1_000]) }, (_, i) => [`k${i}`, i]))
  return mutantString(random, 'body')
}

/** JSON text nested deeper than JSON.stringify (or a recursive parser) can go. */
export function deepJsonText(random: Random): string {
  const depth = pick(random, [10_000, 100_000])
  return random() < 0.5 ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
}
