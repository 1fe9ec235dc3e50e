// Typed JSON commands checked against Apple's command catalogue (src/mdm/generated), and
// whether a command can go to a given device. Pure: no I/O.
// https://developer.apple.com/documentation/devicemanagement/commands-and-queries
import { commandCatalogue, requestTypeNames, type CommandKeySchema, type CommandSchema, type RequestType } from './generated/command-catalogue.js'
import type { PlistDict, PlistValue } from './plist.js'

export type Platform = 'iOS' | 'macOS' | 'tvOS' | 'watchOS' | 'visionOS'

/** `pointer` is an RFC 6901 JSON pointer into the JSON input, e.g. '/Settings/0/Item'. */
export interface FieldError {
  pointer: string
  detail: string
}

export const requestTypes: readonly string[] = requestTypeNames

export function isKnownRequestType(name: string): name is RequestType {
  return Object.hasOwn(commandCatalogue, name)
}

const maxErrors = 50
const maxDepth = 64

class Errors {
  readonly list: FieldError[] = []
  /** Returns undefined so that a converter can `return errors.add(...)`. */
  add(pointer: string, detail: string): undefined {
    if (this.list.length < maxErrors) this.list.push({ pointer, detail })
    return undefined
  }
  get full(): boolean {
    return this.list.length >= maxErrors
  }
}

const child = (pointer: string, token: string | number) => `${pointer}/${String(token).replace(/~/g, '~0').replace(/\//g, '~1')}`

const isJsonObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Sets an own property even for '__proto__', which plain assignment would turn into a prototype change. */
function setKey(dict: PlistDict, key: string, value: PlistValue): void {
  Object.defineProperty(dict, key, { value, enumerable: true, writable: true, configurable: true })
}

/** Validates a typed JSON command `{ request_type: 'DeviceLock', Message: '...', ... }` against the catalogue. */
/** Canonical base64 as bytes, or undefined. */
export function decodeBase64(text: string): Buffer | undefined {
  // Buffer.from(…, 'base64') skips bad characters and accepts base64url; only a string that
  // re-encodes to itself is canonical base64.
  const bytes = Buffer.from(text, 'base64')
  return bytes.toString('base64') === text ? bytes : undefined
}

export function validateTypedCommand(input: unknown): { ok: true; requestType: string; keys: PlistDict } | { ok: false; errors: FieldError[] } {
  if (!isJsonObject(input)) return { ok: false, errors: [{ pointer: '', detail: 'must be a JSON object' }] }
  const requestType = input['request_type']
  if (requestType === undefined) return { ok: false, errors: [{ pointer: '/request_type', detail: 'is required' }] }
  if (typeof requestType !== 'string' || !isKnownRequestType(requestType)) {
    return { ok: false, errors: [{ pointer: '/request_type', detail: `${JSON.stringify(requestType)} is not a known RequestType` }] }
  }
  const errors = new Errors()
  const keys: PlistDict = {}
  const fields = Object.fromEntries(Object.entries(input).filter(([key]) => key !== 'request_type'))
  if (Object.hasOwn(fields, 'RequestType')) {
    errors.add('/RequestType', 'must not be given: request_type names the command')
    delete fields['RequestType']
  }
  convertDictionary(commandCatalogue[requestType].keys, fields, '', errors, keys, `a key of ${requestType}`, 0)
  return errors.list.length > 0 ? { ok: false, errors: errors.list } : { ok: true, requestType, keys }
}

/** Checks `value` against dictionary subkeys, writing what converts into `out`. */
function convertDictionary(
  subkeys: readonly CommandKeySchema[],
  value: Record<string, unknown>,
  pointer: string,
  errors: Errors,
  out: PlistDict,
  what: string,
  depth: number,
): void {
  const byName = new Map(subkeys.map((subkey) => [subkey.key, subkey]))
  for (const [key, item] of Object.entries(value)) {
    if (errors.full) return
    const subkey = byName.get(key)
    if (!subkey) {
      errors.add(child(pointer, key), `is not ${what}`)
      continue
    }
    const converted = convertValue(subkey, item, child(pointer, key), errors, depth + 1)
    if (converted !== undefined) setKey(out, key, converted)
  }
  for (const subkey of subkeys) {
    if (subkey.required && !Object.hasOwn(value, subkey.key)) errors.add(child(pointer, subkey.key), 'is required')
  }
}

function convertValue(schema: CommandKeySchema, value: unknown, pointer: string, errors: Errors, depth: number): PlistValue | undefined {
  if (depth > maxDepth) return errors.add(pointer, `is nested more than ${maxDepth} levels deep`)
  switch (schema.type) {
    case 'string':
      // A string's subkeys (DeviceInformation Queries) list the values Apple documents; devices
      // ignore names they do not know, so others pass.
      if (typeof value !== 'string') return errors.add(pointer, 'must be a string')
      return checkAllowed(schema, value, pointer, errors)
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return errors.add(pointer, 'must be an integer')
      return checkAllowed(schema, value, pointer, errors)
    case 'real':
      // encodePlist writes an integral number as <integer>; no command key is real today.
      if (typeof value !== 'number' || !Number.isFinite(value)) return errors.add(pointer, 'must be a number')
      return checkAllowed(schema, value, pointer, errors)
    case 'boolean':
      if (typeof value !== 'boolean') return errors.add(pointer, 'must be true or false')
      return value
    case 'date': {
      const date = typeof value === 'string' ? parseIsoDate(value) : undefined
      if (!date) return errors.add(pointer, 'must be an ISO 8601 date-time such as 2024-10-21T12:00:00Z')
      return date
    }
    case 'data': {
      const bytes = typeof value === 'string' ? decodeBase64(value) : undefined
      if (!bytes) return errors.add(pointer, 'must be base64')
      return bytes
    }
    case 'array':
      return convertArray(schema, value, pointer, errors, depth)
    case 'dictionary': {
      if (!isJsonObject(value)) return errors.add(pointer, 'must be an object')
      const subkeys = schema.subkeys ?? []
      if (subkeys.length === 0 || (subkeys.length === 1 && subkeys[0]!.key === 'ANY')) return convertFree(value, pointer, errors, depth)
      const out: PlistDict = {}
      convertDictionary(subkeys, value, pointer, errors, out, `a key of ${schema.key}`, depth)
      return out
    }
    case 'any':
      return convertFree(value, pointer, errors, depth)
  }
}

function convertArray(schema: CommandKeySchema, value: unknown, pointer: string, errors: Errors, depth: number): PlistValue | undefined {
  if (!Array.isArray(value)) return errors.add(pointer, 'must be an array')
  const shapes = schema.subkeys ?? []
  const out: PlistValue[] = []
  for (let index = 0; index < value.length && !errors.full; index++) {
    const element: unknown = value[index]
    const at = child(pointer, index)
    const shape = shapes.length > 1 ? pickAlternative(shapes, element, at, errors) : shapes[0]
    if (shapes.length > 1 && !shape) continue
    const converted = shape ? convertValue(shape, element, at, errors, depth + 1) : convertFree(element, at, errors, depth + 1)
    if (converted !== undefined) out.push(converted)
  }
  return out
}

/** Several dictionary element shapes (Settings) are told apart by the element's Item value. */
function pickAlternative(shapes: readonly CommandKeySchema[], element: unknown, pointer: string, errors: Errors): CommandKeySchema | undefined {
  if (!isJsonObject(element)) return errors.add(pointer, 'must be an object')
  const items = shapes.flatMap((shape) => shape.subkeys?.find((subkey) => subkey.key === 'Item')?.allowedValues ?? [])
  const item = element['Item']
  if (item === undefined) return errors.add(child(pointer, 'Item'), 'is required')
  const shape =
    typeof item === 'string'
      ? shapes.find((candidate) => candidate.subkeys?.some((subkey) => subkey.key === 'Item' && subkey.allowedValues?.includes(item)))
      : undefined
  if (!shape) return errors.add(child(pointer, 'Item'), `must be one of ${items.map((name) => JSON.stringify(name)).join(', ')}`)
  return shape
}

function checkAllowed(schema: CommandKeySchema, value: string | number, pointer: string, errors: Errors): PlistValue | undefined {
  if (schema.allowedValues && !schema.allowedValues.includes(value)) {
    return errors.add(pointer, `must be one of ${schema.allowedValues.map((allowed) => JSON.stringify(allowed)).join(', ')}`)
  }
  if (typeof value === 'number' && schema.range) {
    const { min, max } = schema.range
    if (min !== undefined && value < min) return errors.add(pointer, `must be at least ${min}`)
    if (max !== undefined && value > max) return errors.add(pointer, `must be at most ${max}`)
  }
  return value
}

/** Free-form values (ANY dictionaries, `any` keys): JSON types map onto their plist forms. */
function convertFree(value: unknown, pointer: string, errors: Errors, depth: number): PlistValue | undefined {
  if (depth > maxDepth) return errors.add(pointer, `is nested more than ${maxDepth} levels deep`)
  if (typeof value === 'string' || typeof value === 'boolean') return value
  if (typeof value === 'number') return Number.isFinite(value) ? value : errors.add(pointer, 'must be a finite number')
  if (Array.isArray(value)) {
    const out: PlistValue[] = []
    for (let index = 0; index < value.length && !errors.full; index++) {
      const converted = convertFree(value[index], child(pointer, index), errors, depth + 1)
      if (converted !== undefined) out.push(converted)
    }
    return out
  }
  if (isJsonObject(value)) {
    const out: PlistDict = {}
    for (const [key, item] of Object.entries(value)) {
      if (errors.full) break
      const converted = convertFree(item, child(pointer, key), errors, depth + 1)
      if (converted !== undefined) setKey(out, key, converted)
    }
    return out
  }
  return errors.add(pointer, 'null has no property-list form')
}

const isoDatePattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$/

/** A strict ISO 8601 date-time with a zone; Date.parse alone would roll 2024-02-30 into March. */
function parseIsoDate(text: string): Date | undefined {
  const match = isoDatePattern.exec(text)
  if (!match) return undefined
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const calendar = new Date(Date.UTC(year, month - 1, day, hour, minute, second))
  if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day || calendar.getUTCHours() !== hour || calendar.getUTCMinutes() !== minute) {
    return undefined
  }
  const date = new Date(text)
  return Number.isNaN(date.getTime()) ? undefined : date
}

export interface CommandTargetFacts {
  platform?: Platform
  osVersion?: string | null
  supervised?: boolean | null
  userEnrollment?: boolean
  channel: 'device' | 'user'
}

export type NotApplicableReason =
  'unsupported_platform' | 'os_too_old' | 'requires_supervision' | 'not_for_user_enrollment' | 'not_for_user_channel' | 'not_for_device_channel'

/**
 * Whether a command can go to a target, judged only on facts that are known (unknown facts never
 * refuse). A RequestType outside the catalogue (a raw command) is never refused either.
 */
export function commandApplicability(
  requestType: string,
  facts: CommandTargetFacts,
): { ok: true } | { ok: false; reason: NotApplicableReason; detail: string } {
  const { platform } = facts
  if (!platform || !isKnownRequestType(requestType)) return { ok: true }
  const command: CommandSchema = commandCatalogue[requestType]
  const refuse = (reason: NotApplicableReason, detail: string) => ({ ok: false as const, reason, detail })
  if (!command.platforms.includes(platform)) {
    return refuse('unsupported_platform', `${requestType} is not available on ${platform} (only ${command.platforms.join(', ')})`)
  }
  const introduced = command.introduced[platform]
  const running = facts.osVersion ? parseVersion(facts.osVersion) : undefined
  if (introduced && running && compareVersions(running, parseVersion(introduced) ?? []) < 0) {
    return refuse('os_too_old', `${requestType} needs ${platform} ${introduced} or later; the device runs ${facts.osVersion}`)
  }
  if (facts.supervised === false && command.supervised.includes(platform)) {
    return refuse('requires_supervision', `${requestType} needs a supervised device on ${platform}`)
  }
  if (facts.userEnrollment === true && command.userEnrollment[platform] === 'forbidden') {
    return refuse('not_for_user_enrollment', `${requestType} is not available under User Enrollment on ${platform}`)
  }
  if (facts.channel === 'user') {
    // Apple lists iOS's user channel as 'iOS-SharedIPad': iOS has one only on Shared iPad.
    const userChannel = command.userChannel.includes(platform) || (platform === 'iOS' && command.userChannel.includes('iOS-SharedIPad'))
    if (!userChannel) return refuse('not_for_user_channel', `${requestType} cannot be sent on the user channel on ${platform}`)
  } else if (!command.deviceChannel.includes(platform)) {
    return refuse('not_for_device_channel', `${requestType} cannot be sent on the device channel on ${platform}`)
  }
  return { ok: true }
}

/** Leading dotted numbers of a version ('17.0.1', '15.1 (24B83)'); undefined when there are none. */
function parseVersion(version: string): number[] | undefined {
  const match = /^\d+(?:\.\d+)*/.exec(version.trim())
  return match ? match[0].split('.').map(Number) : undefined
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let index = 0; index < Math.max(a.length, b.length); index++) {
    const difference = (a[index] ?? 0) - (b[index] ?? 0)
    if (difference !== 0) return difference
  }
  return 0
}

const productPatterns: readonly [RegExp, Platform][] = [
  [/^(?:iPhone|iPad|iPod)\d/, 'iOS'],
  // Mac14,2 MacBookPro18,1 MacBookAir10,1 Macmini9,1 MacPro7,1 iMac21,1 iMacPro1,1 VirtualMac2,1
  [/^(?:i?Mac[A-Za-z]*|VirtualMac|Xserve)\d/, 'macOS'],
  [/^AppleTV\d/, 'tvOS'],
  [/^Watch\d/, 'watchOS'],
  [/^RealityDevice\d/, 'visionOS'],
]

/** Platform from DeviceInformation-ish facts (ProductName, else Model, e.g. 'iPhone15,2'); undefined when unknown. */
export function platformFromProduct(productName: string | null | undefined, model?: string | null): Platform | undefined {
  for (const candidate of [productName, model]) {
    if (!candidate) continue
    const found = productPatterns.find(([pattern]) => pattern.test(candidate))
    if (found) return found[1]
  }
  return undefined
}
