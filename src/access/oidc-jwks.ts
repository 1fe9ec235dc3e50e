// The issuer's signing keys: the JWKS, found by discovery or configured, fetched with size
// and time limits, cached, and refetched for key rotation; and the key a token names.
// This is ours rather than jose's createRemoteJWKSet, which reads Date.now() for its cache,
// where we inject a clock.
// https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
//
// Traps this file guards against:
// - Keys only ever come from the configured JWKS: `jwk`, `jku`, `x5u`, `x5c` in the header are
//   ignored; jose only picks a key that fits the algorithm (kty, EC curve, the key's own `alg`).
// - Unknown `kid`s refetch the JWKS (key rotation) at most once per minimumRefetchMs, so forged
//   kids cannot make us hammer the IdP. Concurrent verifications share one in-flight fetch.
// - A failed fetch is not cached (the next verification asks again); a JWKS already held is
//   used while it is fresh (cacheTtlMs) even when a refetch fails.
import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { createLocalJWKSet, errors, type CryptoKey, type JWK, type JWSHeaderParameters, type LocalJWKSet } from 'jose'
import { allowedAlgorithms, isObject, keyTypeOf, show, TokenRejected } from './oidc-token.js'
import { readLimited } from '../read-limited.js'

/** Bound on a discovery document or JWKS body. */
const maxDocumentBytes = 512 * 1024
const maxJwksKeys = 100
const minimumRsaBits = 2048

/**
 * The JWK's public members when it can verify one of the allowed algorithms, else undefined:
 * issuers publish encryption keys too, so other keys are skipped, not refused.
 */
function publicSigningKey(jwk: unknown): JWK | undefined {
  if (!isObject(jwk)) return undefined
  const { kty, kid, alg, use, key_ops: ops, crv } = jwk
  if (use !== undefined && use !== 'sig') return undefined
  if (ops !== undefined && !(Array.isArray(ops) && ops.includes('verify'))) return undefined
  if (kid !== undefined && typeof kid !== 'string') return undefined
  if (alg !== undefined && !allowedAlgorithms.includes(alg as string)) return undefined
  // Only the public members go on: never `d` or an `oct` secret.
  const members =
    kty === 'RSA'
      ? { kty, n: jwk['n'], e: jwk['e'] }
      : kty === 'EC' && (crv === 'P-256' || crv === 'P-384')
        ? { kty, crv, x: jwk['x'], y: jwk['y'] }
        : undefined
  if (!members) return undefined
  try {
    // jose would only refuse these while verifying; here they count as absent.
    const key = createPublicKey({ key: members as JsonWebKey, format: 'jwk' }) // throws for a point off the curve
    if (kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < minimumRsaBits) return undefined
  } catch {
    return undefined
  }
  return { ...members, ...(kid === undefined ? {} : { kid }), ...(alg === undefined ? {} : { alg }) } as JWK
}

interface KeySet {
  keys: JWK[]
  select: LocalJWKSet
}

function keySetFrom(body: unknown): KeySet {
  if (!isObject(body) || !Array.isArray(body['keys'])) throw new Error('the JWKS is not a JSON object with a keys array')
  const keys = body['keys']
    .slice(0, maxJwksKeys)
    .map(publicSigningKey)
    .filter((key): key is JWK => key !== undefined)
  return { keys, select: createLocalJWKSet({ keys }) }
}

const describeKey = (key: JWK): string => `${key.kty}${key.crv ? ` ${key.crv}` : ''}${key.alg ? ` for ${key.alg}` : ''}`

/** A key, or a refusal; `refetchMayHelp` when the key is missing (it may have been rotated in). */
type Selection = { key: CryptoKey } | { rejected: TokenRejected; refetchMayHelp: boolean }

/** `alg` is one of allowedAlgorithms: jose checks it before asking for a key. */
async function selectKey(set: KeySet, header: JWSHeaderParameters, issuer: string): Promise<Selection> {
  const { alg = '', kid } = header
  const named = kid === undefined ? 'the token names no kid and ' : `kid ${show(kid)}: `
  try {
    return { key: await set.select(header) }
  } catch (error) {
    if (error instanceof errors.JWKSMultipleMatchingKeys) {
      return { rejected: new TokenRejected('unknown_key', `${named}the JWKS of ${issuer} has several keys for ${alg}`), refetchMayHelp: false }
    }
    if (!(error instanceof errors.JWKSNoMatchingKey)) throw error
  }
  // Nothing fits: either the key the token names (without kid: every key of the alg's type)
  // is for another algorithm, or there is no such key.
  const kty = keyTypeOf(alg)
  const candidates = set.keys.filter((key) => (kid === undefined ? key.kty === kty : key.kid === kid))
  if (candidates.length > 0) {
    const which = kid === undefined ? `the ${kty} keys of ${issuer}` : `the key with kid ${show(kid)}`
    return {
      rejected: new TokenRejected('unsupported_algorithm', `${which} (${candidates.map(describeKey).join(', ')}) cannot verify ${alg}`),
      refetchMayHelp: false,
    }
  }
  const missing =
    kid === undefined ? `${named}the JWKS of ${issuer} has no ${kty} signing key` : `the JWKS of ${issuer} has no signing key with kid ${show(kid)}`
  return { rejected: new TokenRejected('unknown_key', missing), refetchMayHelp: true }
}

/** A discovery or JWKS fetch that did not give a usable answer. */
class FetchFailed extends Error {}

function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined
  return cause && cause !== message ? `${message} (${cause})` : message
}

export interface JwksCacheOptions {
  issuer: string
  /** Configured JWKS URL; undefined: discovered from the issuer. */
  jwksUrl: string | undefined
  cacheTtlMs: number
  minimumRefetchMs: number
  /** Per request (discovery or JWKS). */
  timeoutMs: number
  fetch: typeof fetch
  nowMs: () => number
}

export interface JwksCache {
  /** For jose: the key of the token's kid and alg. Throws TokenRejected, which jose passes on. */
  keyFor(header: JWSHeaderParameters): Promise<CryptoKey>
}

export function createJwksCache(options: JwksCacheOptions): JwksCache {
  const { issuer, cacheTtlMs, minimumRefetchMs, timeoutMs, nowMs, fetch: fetchFn } = options
  // Discovery §4: the document is at the issuer with any trailing slash removed.
  const discoveryUrl = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`

  let cached: { keys: KeySet; fetchedAt: number } | undefined
  let inFlight: Promise<KeySet> | undefined
  let lastFetchStartedAt = Number.NEGATIVE_INFINITY
  /** From discovery; forgotten when a fetch with it fails, so the next fetch rediscovers. */
  let discoveredJwksUrl: string | undefined

  async function getJson(url: string, what: string): Promise<unknown> {
    let response: Response
    try {
      response = await fetchFn(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) })
    } catch (error) {
      throw new FetchFailed(`GET ${url} (${what}) failed: ${describeError(error)}`, { cause: error })
    }
    let text: string
    try {
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined)
        throw new FetchFailed(`answered HTTP ${response.status}`)
      }
      text = (await readLimited(response, maxDocumentBytes, () => new FetchFailed(`the answer is larger than ${maxDocumentBytes} bytes`))).toString('utf8')
    } catch (error) {
      throw new FetchFailed(`GET ${url} (${what}) ${error instanceof FetchFailed ? error.message : `failed: ${describeError(error)}`}`, { cause: error })
    }
    try {
      return JSON.parse(text)
    } catch (error) {
      throw new FetchFailed(`GET ${url} (${what}): the answer is not JSON`, { cause: error })
    }
  }

  async function jwksUrl(): Promise<string> {
    if (options.jwksUrl !== undefined) return options.jwksUrl
    if (discoveredJwksUrl !== undefined) return discoveredJwksUrl
    const document = await getJson(discoveryUrl, 'OIDC discovery')
    if (!isObject(document)) throw new FetchFailed(`${discoveryUrl}: the discovery document is not a JSON object`)
    // Discovery §4.3: the document must name the issuer it was fetched for.
    if (document['issuer'] !== issuer) {
      throw new FetchFailed(`${discoveryUrl}: the discovery document names issuer ${JSON.stringify(document['issuer'])}, expected ${JSON.stringify(issuer)}`)
    }
    const uri = document['jwks_uri']
    if (typeof uri !== 'string' || !URL.canParse(uri)) throw new FetchFailed(`${discoveryUrl}: the discovery document has no valid jwks_uri`)
    const protocol = new URL(uri).protocol
    // No downgrade: an https issuer's keys come over https (http only for an http issuer, as in tests).
    if (protocol !== 'https:' && !(protocol === 'http:' && new URL(issuer).protocol === 'http:')) {
      throw new FetchFailed(`${discoveryUrl}: jwks_uri ${JSON.stringify(uri)} is not https`)
    }
    discoveredJwksUrl = uri
    return uri
  }

  async function fetchJwks(): Promise<KeySet> {
    const url = await jwksUrl()
    let body: unknown
    try {
      body = await getJson(url, 'JWKS')
    } catch (error) {
      discoveredJwksUrl = undefined
      throw error
    }
    try {
      return keySetFrom(body)
    } catch (error) {
      discoveredJwksUrl = undefined
      throw new FetchFailed(`GET ${url} (JWKS): ${(error as Error).message}`)
    }
  }

  /** One fetch at a time, shared by everyone who asks while it runs. */
  function refetch(): Promise<KeySet> {
    if (inFlight) return inFlight
    const startedAt = nowMs()
    lastFetchStartedAt = startedAt
    const fetching = fetchJwks().then((keys) => {
      cached = { keys, fetchedAt: startedAt }
      return keys
    })
    inFlight = fetching
    const clear = () => {
      if (inFlight === fetching) inFlight = undefined
    }
    fetching.then(clear, clear)
    return fetching
  }

  async function refetchOrReject(): Promise<KeySet> {
    try {
      return await refetch()
    } catch (error) {
      throw new TokenRejected('jwks_unavailable', `cannot get the signing keys of ${issuer}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      })
    }
  }

  /** The fresh cached JWKS, else a fetched one; `fetched` says which. */
  async function currentKeys(): Promise<{ keys: KeySet; fetched: boolean }> {
    if (cached && nowMs() - cached.fetchedAt < cacheTtlMs) return { keys: cached.keys, fetched: false }
    return { keys: await refetchOrReject(), fetched: true }
  }

  /** For jose: the key of the token's kid and alg. Throws TokenRejected, which jose passes on. */
  async function keyFor(header: JWSHeaderParameters): Promise<CryptoKey> {
    const current = await currentKeys()
    let selection = await selectKey(current.keys, header, issuer)
    // Key rotation: a missing key refetches, once, and not more often than minimumRefetchMs
    // (joining a fetch already running costs nothing).
    const mayRefetch = !current.fetched && (inFlight !== undefined || nowMs() - lastFetchStartedAt >= minimumRefetchMs)
    if ('rejected' in selection && selection.refetchMayHelp && mayRefetch) {
      selection = await selectKey(await refetchOrReject(), header, issuer)
    }
    if ('rejected' in selection) throw selection.rejected
    return selection.key
  }

  return { keyFor }
}
