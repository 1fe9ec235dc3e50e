// Configuration profiles checked against Apple's profile schema (src/mdm/generated/
// profile-payload-schema.ts): the top-level Configuration dict against TopLevel, each item
// of PayloadContent against CommonPayloadKeys plus the keys of its PayloadType. Proves
// that the profiles Orchard builds are well-formed before a device sees them. Pure: no I/O.
// https://developer.apple.com/documentation/devicemanagement/toplevel
import {
  knownPayloadTypes,
  profilePayloadSchema,
  profileSchemaNames,
  type ProfileKeySchema,
  type ProfileSchemaName,
} from './generated/profile-payload-schema.js'
import { isPlistDict, type PlistDict, type PlistValue } from './plist.js'

const maxProblems = 100

/** Payload types this validator knows: every schema but the two that describe shared keys. */
const payloadTypes: ReadonlySet<string> = new Set(profileSchemaNames.filter((name) => name !== 'TopLevel' && name !== 'CommonPayloadKeys'))

class Problems {
  readonly list: string[] = []
  add(path: string, detail: string): void {
    if (this.list.length < maxProblems) this.list.push(path ? `${path}: ${detail}` : detail)
  }
  get full(): boolean {
    return this.list.length >= maxProblems
  }
}

/**
 * What is wrong with a profile (the decoded top-level dict), as lines such as
 * `PayloadContent[2].ServerURL: "http://mdm.example" does not match ^https://.*$`; empty when
 * it is valid. Payload types outside the generated schema count as problems.
 */
export interface ProfileValidationOptions {
  /**
   * Accept every PayloadType of Apple's schema, checking only the common payload keys of those
   * whose own keys are not in the digest (admins' profiles); default: only fully known types
   * (the profiles Orchard builds).
   */
  anyApplePayloadType?: boolean
}

export function validateProfile(profile: PlistValue, options: ProfileValidationOptions = {}): string[] {
  if (!isPlistDict(profile)) return [`the profile must be a dictionary, not ${describeType(profile)}`]
  const problems = new Problems()
  // TopLevel declares PayloadContent items free-form; they are checked one by one below.
  checkDictionary(profilePayloadSchema.TopLevel, profile, '', 'a top-level profile key', problems)
  const content = profile['PayloadContent']
  if (Array.isArray(content)) {
    content.forEach((payload, index) => {
      if (isPlistDict(payload)) checkPayload(payload, `PayloadContent[${index}]`, problems, options)
    })
  }
  return problems.list
}

function checkPayload(payload: PlistDict, path: string, problems: Problems, options: ProfileValidationOptions): void {
  const type = payload['PayloadType']
  const known = typeof type === 'string' && payloadTypes.has(type)
  const apple = typeof type === 'string' && options.anyApplePayloadType === true && knownPayloadTypes.has(type)
  if (typeof type === 'string' && !known && !apple) {
    if (options.anyApplePayloadType) problems.add(`${path}.PayloadType`, `${JSON.stringify(type)} is not a PayloadType of Apple's device-management schema`)
    else problems.add(`${path}.PayloadType`, `${JSON.stringify(type)} is not a payload type known here (${[...payloadTypes].join(', ')})`)
  }
  const keys = known ? [...profilePayloadSchema.CommonPayloadKeys, ...profilePayloadSchema[type as ProfileSchemaName]] : profilePayloadSchema.CommonPayloadKeys
  // Without a known type its own keys are unknown too: check the common ones only.
  checkDictionary(keys, payload, path, known ? `a key of ${type}` : undefined, problems)
}

const isFreeForm = (subkeys: readonly ProfileKeySchema[]) => subkeys.length === 0 || (subkeys.length === 1 && subkeys[0]!.key === 'ANY')

/** `unknownWhat` names the allowed keys in the unknown-key message; undefined skips that check. */
function checkDictionary(subkeys: readonly ProfileKeySchema[], dict: PlistDict, path: string, unknownWhat: string | undefined, problems: Problems): void {
  if (isFreeForm(subkeys)) {
    const any = subkeys[0]
    if (any && any.type !== 'any') for (const [key, value] of Object.entries(dict)) checkValue(any, value, join(path, key), problems)
    return
  }
  const byName = new Map(subkeys.map((subkey) => [subkey.key, subkey]))
  for (const [key, value] of Object.entries(dict)) {
    if (problems.full) return
    const schema = byName.get(key)
    if (schema) checkValue(schema, value, join(path, key), problems)
    else if (unknownWhat) problems.add(join(path, key), `is not ${unknownWhat}`)
  }
  for (const subkey of subkeys) {
    if (subkey.required && !Object.hasOwn(dict, subkey.key)) problems.add(join(path, subkey.key), 'is required')
  }
}

function checkValue(schema: ProfileKeySchema, value: PlistValue, path: string, problems: Problems): void {
  switch (schema.type) {
    case 'string':
      if (typeof value !== 'string') return problems.add(path, `must be a string, not ${describeType(value)}`)
      checkAllowed(schema, value, path, problems)
      if (schema.format !== undefined && !formatPattern(schema.format).test(value)) {
        problems.add(path, `${quote(value)} does not match ${schema.format}`)
      }
      return
    case 'integer':
      if (typeof value === 'bigint') return checkAllowed(schema, Number(value), path, problems)
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return problems.add(path, `must be an integer, not ${describeType(value)}`)
      return checkAllowed(schema, value, path, problems)
    case 'real':
      // An integral <real> decodes like an <integer>: both are numbers here.
      if (typeof value !== 'number' || !Number.isFinite(value)) return problems.add(path, `must be a number, not ${describeType(value)}`)
      return checkAllowed(schema, value, path, problems)
    case 'boolean':
      if (typeof value !== 'boolean') return problems.add(path, `must be true or false, not ${describeType(value)}`)
      return
    case 'date':
      if (!(value instanceof Date) || Number.isNaN(value.getTime())) return problems.add(path, `must be a date, not ${describeType(value)}`)
      return
    case 'data':
      if (!(value instanceof Uint8Array)) return problems.add(path, `must be data, not ${describeType(value)}`)
      return
    case 'array':
      return checkArray(schema, value, path, problems)
    case 'dictionary':
      if (!isPlistDict(value)) return problems.add(path, `must be a dictionary, not ${describeType(value)}`)
      return checkDictionary(schema.subkeys ?? [], value, path, `a key of ${schema.key}`, problems)
    case 'any':
      return
  }
}

/** An array's subkeys are placeholders for its elements; several are alternative shapes. */
function checkArray(schema: ProfileKeySchema, value: PlistValue, path: string, problems: Problems): void {
  if (!Array.isArray(value)) return problems.add(path, `must be an array, not ${describeType(value)}`)
  const shapes = schema.subkeys ?? []
  const repetition = shapes.length === 1 ? shapes[0]!.repetition : undefined
  if (repetition?.min !== undefined && value.length < repetition.min) problems.add(path, `must have at least ${repetition.min} elements, has ${value.length}`)
  if (repetition?.max !== undefined && value.length > repetition.max) problems.add(path, `must have at most ${repetition.max} elements, has ${value.length}`)
  value.forEach((element, index) => {
    const at = `${path}[${index}]`
    if (shapes.length === 1) return checkValue(shapes[0]!, element, at, problems)
    if (shapes.length === 0) return
    // Alternatives: fine when one shape fits; otherwise report against the closest one.
    let closest: Problems | undefined
    for (const shape of shapes) {
      const attempt = new Problems()
      checkValue(shape, element, at, attempt)
      if (attempt.list.length === 0) return
      if (!closest || attempt.list.length < closest.list.length) closest = attempt
    }
    for (const line of closest!.list) problems.add('', line)
  })
}

function checkAllowed(schema: ProfileKeySchema, value: string | number, path: string, problems: Problems): void {
  if (schema.allowedValues && !schema.allowedValues.includes(value)) {
    problems.add(path, `${quote(value)} is not one of ${schema.allowedValues.map(quote).join(', ')}`)
  }
  if (typeof value === 'number' && schema.range) {
    const { min, max } = schema.range
    if (min !== undefined && value < min) problems.add(path, `${value} is below the minimum ${min}`)
    if (max !== undefined && value > max) problems.add(path, `${value} is above the maximum ${max}`)
  }
}

const patterns = new Map<string, RegExp>()
function formatPattern(format: string): RegExp {
  let pattern = patterns.get(format)
  if (!pattern) patterns.set(format, (pattern = new RegExp(format)))
  return pattern
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key)

function quote(value: string | number): string {
  if (typeof value === 'number') return String(value)
  const text = JSON.stringify(value)
  return text.length > 80 ? `${text.slice(0, 77)}..."` : text
}

function describeType(value: PlistValue): string {
  if (typeof value === 'string') return `the string ${quote(value)}`
  if (typeof value === 'number' || typeof value === 'bigint') return Number.isInteger(Number(value)) ? `the integer ${value}` : `the real ${value}`
  if (typeof value === 'boolean') return `the boolean ${value}`
  if (value instanceof Date) return 'a date'
  if (value instanceof Uint8Array) return 'data'
  if (Array.isArray(value)) return 'an array'
  return 'a dictionary'
}
