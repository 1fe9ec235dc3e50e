// Values checked against key schemas of Apple's device-management digest (the shape of
// src/mdm/generated/profile-payload-schema.ts): profiles (plist values) and declarations (JSON,
// where data is a base64 string). Problems read like `Payload.ServerURL: is required`. Pure.
import type { ProfileKeySchema } from './generated/profile-payload-schema.js'
import { isPlistDict, type PlistDict, type PlistValue } from './plist.js'

const maxProblems = 100

export interface KeyCheckOptions {
  /** JSON values (declarations): data is a base64 string. */
  json?: boolean
}

export class Problems {
  constructor(readonly options: KeyCheckOptions = {}) {}
  readonly list: string[] = []
  add(path: string, detail: string): void {
    if (this.list.length < maxProblems) this.list.push(path ? `${path}: ${detail}` : detail)
  }
  get full(): boolean {
    return this.list.length >= maxProblems
  }
}

const isFreeForm = (subkeys: readonly ProfileKeySchema[]) => subkeys.length === 0 || (subkeys.length === 1 && subkeys[0]!.key === 'ANY')

/** `unknownWhat` names the allowed keys in the unknown-key message; undefined skips that check. */
export function checkDictionary(
  subkeys: readonly ProfileKeySchema[],
  dict: PlistDict,
  path: string,
  unknownWhat: string | undefined,
  problems: Problems,
): void {
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
      if (problems.options.json) {
        if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return problems.add(path, `must be base64 data, not ${describeType(value)}`)
        return
      }
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
      const attempt = new Problems(problems.options)
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

export function describeType(value: PlistValue | null): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return `the string ${quote(value)}`
  if (typeof value === 'number' || typeof value === 'bigint') return Number.isInteger(Number(value)) ? `the integer ${value}` : `the real ${value}`
  if (typeof value === 'boolean') return `the boolean ${value}`
  if (value instanceof Date) return 'a date'
  if (value instanceof Uint8Array) return 'data'
  if (Array.isArray(value)) return 'an array'
  return 'a dictionary'
}
