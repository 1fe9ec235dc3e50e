// The building blocks of the option table (config-options.ts): how one option is declared,
// and the parsers that turn the text of a variable or flag into a value, or fail with the problem.
import { accessSync, constants as fsConstants } from 'node:fs'
import { resolve } from 'node:path'
import type { Role } from './model/access.js'

/** Ends parsing with one problem; the loader names the variable or flag and shows the value. */
export type Fail = (problem: string) => never
export type Parse<T> = (value: string, fail: Fail) => T

export interface ConfigOption<T> {
  readonly env: string
  readonly flag: string
  /** Shown in --help and the README: the default value, or what leaving the option unset means. */
  readonly defaultText: string
  readonly description: string
  /** Values never echoed back in errors or logs. */
  readonly secret: boolean
  /** Key of another option this one is meaningless without; two options requiring each other are a pair (set both or neither). */
  readonly requires: string | undefined
  /** The option's value from its text, undefined when neither its flag nor its variable is set. */
  readonly read: (value: string | undefined, fail: Fail) => T
}

interface Declared {
  env: string
  flag: string
  description: string
  secret?: boolean
  requires?: string
}

/** An option with a default value: parsed like a given value, and shown as the default. */
export function option<T>(spec: Declared & { default: string; parse: Parse<T> }): ConfigOption<T>
/** An option without one: `defaultText` says what unset means; `parse` gets undefined then. */
export function option<T>(spec: Declared & { defaultText: string; parse: (value: string | undefined, fail: Fail) => T }): ConfigOption<T>
export function option<T>(spec: Declared & { default?: string; defaultText?: string; parse: Parse<T> }): ConfigOption<T> {
  const { default: fallback, defaultText, parse, secret, requires, ...documented } = spec
  return Object.freeze({
    ...documented,
    defaultText: defaultText ?? fallback!,
    secret: secret ?? false,
    requires,
    // Undefined reaches only the parsers of options without a default, which take it (second overload).
    read: (value: string | undefined, fail: Fail) => parse((value ?? fallback) as string, fail),
  })
}

/** An unset option is null. */
export const optional =
  <T>(parse: Parse<T>) =>
  (value: string | undefined, fail: Fail): T | null =>
    value === undefined ? null : parse(value, fail)

export const integer =
  (min: number, max: number): Parse<number> =>
  (value, fail) => {
    const text = value.trim()
    if (!/^\d+$/.test(text)) fail(`must be a whole number from ${min} to ${max}`)
    const n = Number(text)
    if (n < min || n > max) fail(`must be a whole number from ${min} to ${max}`)
    return n
  }

/** Case-insensitive; the problem reads "must be a, b or c" unless given. */
export const oneOf =
  <const V extends readonly string[]>(values: V, problem = `must be ${values.slice(0, -1).join(', ')} or ${values.at(-1)}`): Parse<V[number]> =>
  (value, fail) => {
    const chosen = value.trim().toLowerCase()
    if (!values.includes(chosen)) fail(problem)
    return chosen
  }

const trueOrFalse = oneOf(['true', 'false'])
export const boolean: Parse<boolean> = (value, fail) => trueOrFalse(value, fail) === 'true'

/** Trimmed text that passes a check. */
export const text =
  (check: (text: string) => boolean, problem: string): Parse<string> =>
  (value, fail) => {
    const trimmed = value.trim()
    if (!check(trimmed)) fail(problem)
    return trimmed
  }

export const hostName = text((host) => host !== '' && !/\s|\//.test(host), 'must be an IP address or host name')

export const reverseDnsIdentifier = text(
  (id) => /^[A-Za-z0-9][A-Za-z0-9.-]{0,150}$/.test(id),
  'must be a reverse-DNS style identifier (letters, digits, dots, hyphens)',
)

export const headerName: Parse<string> = (value, fail) => {
  const name = value.trim().toLowerCase()
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) fail('must be an HTTP header name such as Client-Cert')
  return name
}

function url(value: string, fail: Fail, problem: string): URL {
  try {
    return new URL(value)
  } catch {
    return fail(problem)
  }
}

/** An http(s) base URL without query, fragment or trailing slash. */
export const httpBaseUrl =
  (problem: string, refuseCredentials = false): Parse<string> =>
  (value, fail) => {
    const parsed = url(value.trim(), fail, problem)
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') fail(problem)
    if (parsed.search !== '' || parsed.hash !== '') fail('must not have a query string or fragment')
    if (refuseCredentials && (parsed.username !== '' || parsed.password !== '')) fail('must not contain credentials')
    return parsed.toString().replace(/\/+$/, '')
  }

export const postgresUrl: Parse<string> = (value, fail) => {
  const problem = 'must be a postgres:// or postgresql:// URL'
  const { protocol } = url(value.trim(), fail, problem)
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') fail(problem)
  return value.trim()
}

const apnsAliases: Record<string, string> = {
  production: 'https://api.push.apple.com',
  development: 'https://api.sandbox.push.apple.com',
}

export const apnsUrl: Parse<string> = (value, fail) => {
  const trimmed = value.trim()
  const alias = apnsAliases[trimmed.toLowerCase()]
  if (alias !== undefined) return alias
  const parsed = url(trimmed, fail, 'must be production, development or an https:// URL')
  if (parsed.protocol !== 'https:') fail('must be production, development or an https:// URL (APNs speaks HTTP/2 over TLS)')
  if (parsed.pathname !== '/' || parsed.search !== '') fail('must be a bare origin such as https://host:port, without a path')
  return parsed.origin
}

/** Keeps the text as given (an OIDC issuer is compared with `iss` exactly, a trailing slash matters). */
export const httpUrlText: Parse<string> = (value, fail) => {
  const { protocol } = url(value.trim(), fail, 'must be an https:// URL')
  if (protocol !== 'https:' && protocol !== 'http:') fail('must be an https:// URL')
  return value.trim()
}

/** Any absolute URL, normalised (the problem names the scheme expected in practice). */
export const anyUrl: Parse<string> = (value, fail) => url(value.trim(), fail, 'must be an https:// URL').toString()

export const path: Parse<string> = (value) => resolve(value.trim())

function readable(file: string): boolean {
  try {
    accessSync(file, fsConstants.R_OK)
    return true
  } catch {
    return false
  }
}

export const readableFile: Parse<string> = (value, fail) => {
  const file = resolve(value.trim())
  if (!readable(file)) fail('file does not exist or is not readable')
  return file
}

/** Comma-separated, blanks skipped; unset is an empty list. */
const items = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')

export const list = (value: string | undefined): readonly string[] => Object.freeze(items(value))

export const fileList = (value: string | undefined, fail: Fail): readonly string[] =>
  Object.freeze(
    items(value).map((item) => {
      const file = resolve(item)
      if (!readable(file)) fail(`file ${file} does not exist or is not readable`)
      return file
    }),
  )

export const minimumApiKeyLength = 24

export const apiKeys = (value: string | undefined, fail: Fail): readonly string[] => {
  if (value === undefined) return Object.freeze([])
  const keys = value.split(',').map((key) => key.trim())
  keys.forEach((key, index) => {
    if (key.length < minimumApiKeyLength) {
      const problem = key.length === 0 ? 'empty' : 'too short'
      fail(`key #${index + 1} is ${problem}: each key needs at least ${minimumApiKeyLength} characters`)
    }
    if (/\s/.test(key)) fail(`key #${index + 1} contains white space`)
  })
  return Object.freeze([...new Set(keys)])
}

export const secretKeys = (value: string | undefined, fail: Fail): readonly Buffer[] => {
  if (value === undefined) return Object.freeze([])
  const keys = value.split(',').map((item, index): Buffer => {
    const key = item.trim()
    if (/^[0-9a-fA-F]{64}$/.test(key)) return Buffer.from(key, 'hex')
    if (/^[A-Za-z0-9+/]{43}=$/.test(key)) return Buffer.from(key, 'base64')
    return fail(`key #${index + 1} must be 64 hex characters or base64 of 32 bytes (openssl rand -hex 32)`)
  })
  return Object.freeze(keys)
}

export const scepChallenge: Parse<string> = (value, fail) => {
  if (value.length < 16) fail('must have at least 16 characters')
  if (value.length > 255) fail('must have at most 255 characters')
  return value
}

export interface GroupGrant {
  readonly role: Role
  /** null: central IT. */
  readonly tenantId: string | null
}

/** `group=role` or `group=role@tenant` pairs: group name -> the grant it gives. */
export const groupRoles = (value: string | undefined, fail: Fail): ReadonlyMap<string, GroupGrant> => {
  const grants = new Map<string, GroupGrant>()
  for (const pair of items(value)) {
    const match = /^(.+)=(owner|admin|helpdesk|auditor)(?:@([a-z0-9][a-z0-9-]{0,62}))?$/.exec(pair)
    if (!match || match[1]!.trim() === '') {
      fail(`"${pair}" is not group=role or group=role@tenant (roles owner, admin, helpdesk, auditor)`)
    }
    const [, group, role, tenantId] = match
    if (role === 'owner' && tenantId !== undefined) fail(`"${pair}": owner is a central IT role, without @tenant`)
    grants.set(group!.trim(), Object.freeze({ role: role as Role, tenantId: tenantId ?? null }))
  }
  return grants
}

/** An ISO 4217 currency code Node knows (three letters, upper-cased). */
export const currencyCode: Parse<string> = (value, fail) => {
  const code = value.trim().toUpperCase()
  if (!/^[A-Z]{3}$/.test(code) || !Intl.supportedValuesOf('currency').includes(code)) fail('must be an ISO 4217 currency code such as EUR, USD or CHF')
  return code
}
