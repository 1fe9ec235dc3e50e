// Admin API keys: creation (the plaintext key is shown once), listing, revocation, and the
// bearer-token check behind every admin request. A key holds one role in one tenant (or in
// central IT, tenant null); owner keys are always central.
//
// A key is `orchard_<id>_<secret>`: id = 12 characters [a-z0-9], secret = 32 random bytes
// in base64url. Only SHA-256(key) is stored. Keys from ORCHARD_API_KEYS (bootstrap) are
// accepted too, as central owners.
//
// Lookups, successful or not, are cached by digest for `cacheTtlMs` (default 30 s), so a
// busy client does not cost a query per request. A revocation through this service takes
// effect in this process at once; other instances (replicas, a CLI run) see it when their
// cache entry expires, i.e. within cacheTtlMs. Expiry is checked on every request.
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { ApiKeyRow, ApiKeyStore } from './api-key-store.js'
import { defaultTenantOf, roles, scopeIncludes, type AccessScope, type Role } from '../model/access.js'
import type { Principal } from './access-control.js'

/** What the API and CLI show of a key: never the key or its hash. */
export interface ApiKeyView {
  id: string
  name: string
  role: Role
  tenantId: string | null
  createdAt: Date
  lastUsedAt: Date | null
  expiresAt: Date | null
  revokedAt: Date | null
}

export interface NewApiKeyInput {
  name: string
  role: Role
  /** undefined: the caller's own tenant (central IT for a central caller). */
  tenantId?: string | null
  expiresAt?: Date | null
}

export interface ApiKeyService {
  /** The plaintext key is returned only here; it cannot be recovered later. */
  createKey(scope: AccessScope, input: NewApiKeyInput): Promise<{ key: string; view: ApiKeyView }>
  listKeys(scope: AccessScope, options?: { includeRevoked?: boolean }): Promise<ApiKeyView[]>
  getKey(scope: AccessScope, id: string): Promise<ApiKeyView | undefined>
  revokeKey(scope: AccessScope, id: string): Promise<'revoked' | 'already_revoked' | 'not_found'>
  /** The principal for a presented bearer token, or undefined. Throws when the database fails. */
  authenticate(token: string): Promise<Principal | undefined>
}

export interface ApiKeyServiceDeps {
  store: ApiKeyStore
  /** ORCHARD_API_KEYS: bootstrap keys, each a central owner. */
  configKeys: readonly string[]
  logger: Logger
  now?: () => Date
  cacheTtlMs?: number
}

const keyIdPattern = /^[a-z0-9]{12}$/
// The secret is base64url, whose alphabet has `_`: split a key with this pattern, never on `_`.
const keyPattern = /^orchard_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/
const idAlphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'

/** Whether a bearer token has the shape of a database key (only those are looked up). */
export function looksLikeApiKey(token: string): boolean {
  return keyPattern.test(token)
}

/** The two parts of a key `orchard_<id>_<secret>`, or null when it has not that shape. */
export function splitApiKey(token: string): { id: string; secret: string } | null {
  const match = keyPattern.exec(token)
  return match ? { id: match[1]!, secret: match[2]! } : null
}

function generateKey(): { id: string; key: string } {
  let id = ''
  for (let i = 0; i < 12; i++) id += idAlphabet[randomInt(idAlphabet.length)]
  return { id, key: `orchard_${id}_${randomBytes(32).toString('base64url')}` }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest()

const maxCacheEntries = 10_000
const lastUsedResolutionMs = 60_000

interface CacheEntry {
  /** Service-clock time (ms) after which the entry is not used. */
  until: number
  /** Shared by concurrent requests with the same token: one query for all of them. */
  lookup: Promise<ApiKeyRow | undefined>
  /** Set once the lookup found a key, so a revocation can drop the entry. */
  keyId?: string
}

type ValidationError = { pointer: string; detail: string }

export function createApiKeyService(deps: ApiKeyServiceDeps): ApiKeyService {
  const now = deps.now ?? (() => new Date())
  const cacheTtlMs = deps.cacheTtlMs ?? 30_000
  const log = deps.logger.child({ service: 'api-keys' })
  const configDigests = deps.configKeys.map(sha256)

  // Insertion order is recency order: a hit moves its entry to the end, the oldest go first.
  const cache = new Map<string, CacheEntry>()
  // Keys revoked by this process: refused even if a lookup that started before the
  // revocation answers after it.
  const revokedHere = new Set<string>()
  // When this process last wrote last_used_at for a key.
  const touchedAt = new Map<string, number>()

  const view = (row: ApiKeyRow): ApiKeyView => ({
    id: row.id,
    name: row.name,
    role: row.role,
    tenantId: row.tenantId,
    createdAt: row.createdAt,
    lastUsedAt: row.lastUsedAt,
    expiresAt: row.expiresAt,
    revokedAt: row.revokedAt,
  })

  function validate(scope: AccessScope, input: NewApiKeyInput, at: Date): { name: string; role: Role; tenantId: string | null; expiresAt: Date | null } {
    const errors: ValidationError[] = []
    const name = typeof input.name === 'string' ? input.name.trim() : ''
    const nameLength = [...name].length // code points, as Postgres counts them
    if (typeof input.name !== 'string') errors.push({ pointer: '/name', detail: 'must be a string' })
    else if (nameLength < 1 || nameLength > 200) errors.push({ pointer: '/name', detail: 'must be 1 to 200 characters' })
    else if (/[\u0000-\u001f\u007f]/.test(name)) errors.push({ pointer: '/name', detail: 'must not contain control characters' })

    const role = input.role
    if (!(roles as readonly unknown[]).includes(role)) errors.push({ pointer: '/role', detail: `must be one of ${roles.join(', ')}` })
    const tenantId = input.tenantId === undefined ? defaultTenantOf(scope) : input.tenantId
    if (role === 'owner' && tenantId !== null) errors.push({ pointer: '/tenant_id', detail: 'owner keys belong to central IT: leave tenant_id out (or null)' })
    if (!scopeIncludes(scope, tenantId))
      errors.push({ pointer: '/tenant_id', detail: tenantId === null ? 'only central IT can create central keys' : `${tenantId} is not a tenant you manage` })

    const expiresAt = input.expiresAt ?? null
    if (expiresAt !== null) {
      if (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime())) {
        errors.push({ pointer: '/expires_at', detail: 'must be a date and time' })
      } else if (expiresAt.getTime() <= at.getTime()) {
        errors.push({ pointer: '/expires_at', detail: 'must be in the future' })
      }
    }

    if (errors.length > 0) {
      const summary = errors.map((e) => `${e.pointer.slice(1)} ${e.detail}`).join('; ')
      throw new OrchardError('validation_failed', `invalid API key: ${summary}`, { details: { errors } })
    }
    return { name, role, tenantId, expiresAt }
  }

  function configPrincipal(digest: Buffer): Principal | undefined {
    // Every configured key is compared, in constant time, whatever matched before.
    let matched = -1
    configDigests.forEach((configDigest, index) => {
      if (timingSafeEqual(configDigest, digest) && matched === -1) matched = index
    })
    if (matched === -1) return undefined
    return { id: `config:${matched}`, name: `config key ${matched + 1}`, grants: [{ tenantId: null, role: 'owner' }], source: 'config' }
  }

  function cachedLookup(digest: Buffer, at: Date): Promise<ApiKeyRow | undefined> {
    const cacheKey = digest.toString('base64')
    const atMs = at.getTime()
    const hit = cache.get(cacheKey)
    if (hit && hit.until > atMs) {
      cache.delete(cacheKey)
      cache.set(cacheKey, hit)
      return hit.lookup
    }
    if (hit) cache.delete(cacheKey)

    const entry: CacheEntry = { until: atMs + cacheTtlMs, lookup: Promise.resolve(undefined) }
    entry.lookup = deps.store.findActiveBySha256(digest, at).then(
      (row) => {
        if (row) entry.keyId = row.id
        return row
      },
      (error: unknown) => {
        // A failed query is not an answer: the next request asks again.
        if (cache.get(cacheKey) === entry) cache.delete(cacheKey)
        throw error
      },
    )
    cache.set(cacheKey, entry)
    while (cache.size > maxCacheEntries) cache.delete(cache.keys().next().value!)
    return entry.lookup
  }

  function noteUse(row: ApiKeyRow, at: Date): void {
    const atMs = at.getTime()
    const last = touchedAt.get(row.id) ?? row.lastUsedAt?.getTime() ?? Number.NEGATIVE_INFINITY
    if (atMs - last < lastUsedResolutionMs) return
    if (touchedAt.size >= maxCacheEntries) touchedAt.clear()
    touchedAt.set(row.id, atMs)
    // Not awaited: the request does not wait for this write.
    deps.store.touchLastUsed(row.id, at).catch((error: unknown) => log.warn({ err: error, key_id: row.id }, 'cannot record API key use'))
  }

  return {
    async createKey(scope, input) {
      const at = now()
      const valid = validate(scope, input, at)
      const { id, key } = generateKey()
      const digest = sha256(key)
      const row = await deps.store.insertKey(scope, {
        id,
        name: valid.name,
        role: valid.role,
        tenantId: valid.tenantId,
        keySha256: digest,
        createdAt: at,
        expiresAt: valid.expiresAt,
      })
      if (!row) {
        throw new OrchardError('validation_failed', `invalid API key: tenant_id ${valid.tenantId} does not exist`, {
          details: { errors: [{ pointer: '/tenant_id', detail: 'no such tenant' }] },
        })
      }
      cache.delete(digest.toString('base64'))
      log.info({ key_id: id, name: valid.name, role: valid.role, tenant_id: valid.tenantId, expires_at: valid.expiresAt }, 'API key created')
      return { key, view: view(row) }
    },

    async listKeys(scope, options = {}) {
      return (await deps.store.listKeys(scope, { includeRevoked: options.includeRevoked ?? false })).map(view)
    },

    async getKey(scope, id) {
      if (!keyIdPattern.test(id)) return undefined
      const row = await deps.store.getKey(scope, id)
      return row ? view(row) : undefined
    },

    async revokeKey(scope, id) {
      if (!keyIdPattern.test(id)) return 'not_found'
      const result = await deps.store.revokeKey(scope, id, now())
      if (result === 'not_found') return result
      if (revokedHere.size >= maxCacheEntries) revokedHere.delete(revokedHere.values().next().value!)
      revokedHere.add(id)
      for (const [cacheKey, entry] of cache) if (entry.keyId === id) cache.delete(cacheKey)
      if (result === 'revoked') log.info({ key_id: id }, 'API key revoked')
      return result
    },

    async authenticate(token) {
      if (typeof token !== 'string' || token.length === 0) return undefined
      const digest = sha256(token)
      const fromConfig = configPrincipal(digest)
      if (fromConfig) return fromConfig
      if (!looksLikeApiKey(token)) return undefined

      const at = now()
      const row = await cachedLookup(digest, at)
      if (!row || revokedHere.has(row.id)) return undefined
      // A cached answer may outlive the key's expiry.
      if (row.expiresAt !== null && row.expiresAt.getTime() <= at.getTime()) return undefined
      noteUse(row, at)
      return { id: row.id, name: row.name, grants: Object.freeze([Object.freeze({ tenantId: row.tenantId, role: row.role })]), source: 'database' }
    },
  }
}
