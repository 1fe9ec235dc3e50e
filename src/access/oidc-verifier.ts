// Verification of OIDC bearer tokens (JWT access or ID tokens) issued by an organisation's
// identity provider. jose (https://github.com/panva/jose) checks the JWS signature with a key
// of the issuer's JWKS and the claims `iss`, `aud`, `exp` and `nbf` (with a small clock skew).
// This file fetches and caches the JWKS itself (discovery, size and time limits, rate-limited
// refetch): jose's createRemoteJWKSet reads Date.now() for its cache, where we inject a clock.
// https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
//
// Traps this file guards against:
// - `alg` comes from the attacker: only an allow-list of asymmetric algorithms is accepted,
//   never `none`, never HMAC (a public key used as an HMAC secret forges anything); jose only
//   picks a key that fits the algorithm (kty, EC curve, the key's own `alg`).
// - Keys only ever come from the configured JWKS: `jwk`, `jku`, `x5u`, `x5c` in the header are ignored.
// - jose decodes base64url leniently and the payload only after the signature: the strict
//   parse below keeps malformed tokens from ever costing a JWKS fetch.
// - Unknown `kid`s refetch the JWKS (key rotation) at most once per minimumRefetchMs, so forged
//   kids cannot make us hammer the IdP. Concurrent verifications share one in-flight fetch.
// - A failed fetch is not cached (the next verification asks again); a JWKS already held is
//   used while it is fresh (cacheTtlMs) even when a refetch fails.
// - Messages name the issuer, the alg and the kid, never the token; jose's claim errors carry
//   the whole payload, so they are never kept as a cause.
import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { createLocalJWKSet, errors, jwtVerify, type CryptoKey, type JWK, type JWSHeaderParameters, type JWTPayload, type LocalJWKSet } from 'jose'

export interface OidcVerifierOptions {
  /** Exact `iss` expected, e.g. https://login.example.org/realms/uni */
  issuer: string
  /** Accepted `aud` values (aud may be a string or an array in the token). */
  audience: string | readonly string[]
  /** JWKS URL; default: discovered from `${issuer}/.well-known/openid-configuration` (jwks_uri). */
  jwksUrl?: string
  /** Default 60. */
  clockSkewSeconds?: number
  /**
   * How long a fetched JWKS is reused; an unknown kid refetches at most once per
   * minimumRefetchMs (default 60 s) to pick up key rotation without letting forged kids
   * hammer the IdP. Default 10 min.
   */
  cacheTtlMs?: number
  minimumRefetchMs?: number
  /** Default: the global fetch. */
  fetch?: typeof fetch
  now?: () => Date
  /** Per request (discovery or JWKS). Default 5 s. */
  timeoutMs?: number
}

export interface VerifiedToken {
  subject: string
  issuer: string
  /** The whole payload, as sent. */
  claims: Record<string, unknown>
  expiresAt: Date
}

export type TokenRejectionReason =
  'malformed' | 'unsupported_algorithm' | 'unknown_key' | 'bad_signature' | 'wrong_issuer' | 'wrong_audience' | 'expired' | 'not_yet_valid' | 'jwks_unavailable'

export class TokenRejected extends Error {
  override readonly name = 'TokenRejected'
  constructor(
    readonly reason: TokenRejectionReason,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
  }
}

export interface OidcVerifier {
  /** The token's claims once everything checks out; throws TokenRejected otherwise. */
  verify(token: string): Promise<VerifiedToken>
  /** A cheap syntactic check (three base64url parts), to tell a JWT from an API key. */
  looksLikeJwt(token: string): boolean
}

/** Far above any real ID or access token (a few KiB with many groups). */
const maxTokenLength = 16 * 1024
/** Bound on a discovery document or JWKS body. */
const maxDocumentBytes = 512 * 1024
const maxJwksKeys = 100
const minimumRsaBits = 2048

const allowedAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384']
const keyTypeOf = (alg: string): 'RSA' | 'EC' => (alg.startsWith('ES') ? 'EC' : 'RSA')

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
/** A header or claim value, quoted and cut short: it comes from the caller. */
const show = (value: string): string => JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value)
const isoTime = (seconds: unknown): string => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : String(seconds))

const base64urlSegment = /^[A-Za-z0-9_-]*$/
const jwtShape = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

const malformed = (message: string) => new TokenRejected('malformed', message)

/** Strict base64url: the alphabet only, no padding, canonical trailing bits. */
function decodeSegment(segment: string, what: string): Buffer {
  if (!base64urlSegment.test(segment) || segment.length % 4 === 1) throw malformed(`the token's ${what} is not base64url`)
  const bytes = Buffer.from(segment, 'base64url')
  if (bytes.toString('base64url') !== segment) throw malformed(`the token's ${what} is not canonical base64url`)
  return bytes
}

function jsonObject(bytes: Buffer, what: string): Json {
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(bytes))
  } catch {
    throw malformed(`the token's ${what} is not JSON in UTF-8`)
  }
  if (!isObject(value)) throw malformed(`the token's ${what} is not a JSON object`)
  return value
}

/** The header of a strictly encoded compact JWS whose header and payload are JSON objects. */
function parseHeader(token: unknown): Json {
  if (typeof token !== 'string' || token.length === 0) throw malformed('the token is empty')
  if (token.length > maxTokenLength) throw malformed(`the token is longer than ${maxTokenLength} characters`)
  const parts = token.split('.')
  if (parts.length !== 3) throw malformed(`a compact JWS has 3 parts, this token has ${parts.length}`)
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string]
  if (headerPart === '' || payloadPart === '') throw malformed('the token has an empty header or payload')
  const header = jsonObject(decodeSegment(headerPart, 'header'), 'header')
  jsonObject(decodeSegment(payloadPart, 'payload'), 'payload')
  decodeSegment(signaturePart, 'signature')
  // RFC 7515 §4.1.11: extensions we do not understand must not be ignored; we understand none.
  if (header['crit'] !== undefined) throw malformed('the token header has crit parameters, none is supported')
  if (header['kid'] !== undefined && typeof header['kid'] !== 'string') throw malformed('the token header kid is not a string')
  return header
}

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

/** jose's refusal as a TokenRejected; anything else is passed on. */
function rejectionFor(error: unknown, header: Json, issuer: string): unknown {
  if (error instanceof TokenRejected) return error
  const alg = String(header['alg'])
  if (error instanceof errors.JOSEAlgNotAllowed) {
    const why = alg === 'none' ? 'unsigned tokens are refused' : /^HS/i.test(alg) ? 'HMAC tokens are refused' : `accepted: ${allowedAlgorithms.join(', ')}`
    return new TokenRejected('unsupported_algorithm', `alg ${show(alg)}: ${why}`)
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    const kid = header['kid']
    return new TokenRejected('bad_signature', `the ${alg} signature does not verify${typeof kid === 'string' ? ` with kid ${show(kid)}` : ''}`)
  }
  if (error instanceof errors.JWTExpired) return new TokenRejected('expired', `the token expired at ${isoTime(error.payload['exp'])}`)
  if (error instanceof errors.JWTClaimValidationFailed) {
    const { claim, reason, payload } = error
    const { iss, aud } = payload
    if (claim === 'iss') {
      return new TokenRejected('wrong_issuer', typeof iss === 'string' ? `the token was issued by ${show(iss)}, not ${issuer}` : 'the token has no iss claim')
    }
    if (claim === 'aud') {
      if (reason === 'missing') return new TokenRejected('wrong_audience', 'the token has no aud claim')
      const shown = (typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : []).slice(0, 5).map((a) => show(String(a)))
      return new TokenRejected('wrong_audience', `the token is not meant for this server (aud ${shown.join(', ') || 'empty'})`)
    }
    if (claim === 'nbf' && reason === 'check_failed') return new TokenRejected('not_yet_valid', `the token is not valid before ${isoTime(payload['nbf'])}`)
    return malformed(`the token's claims: ${error.message}`)
  }
  // JWSInvalid (no alg), JWTInvalid ...
  if (error instanceof errors.JOSEError) return malformed(`the token is not a valid JWT: ${error.message}`)
  return error
}

/** What jose leaves to us: `aud` members all strings, an `iat` not in the future, a `sub`. */
function acceptedToken(payload: JWTPayload, issuer: string, nowSeconds: number, clockSkewSeconds: number): VerifiedToken {
  const { aud, iat } = payload
  if (Array.isArray(aud) && !aud.every((a: unknown) => typeof a === 'string')) throw malformed('the aud claim is not a string or a list of strings')
  // jose checks a future iat only with maxTokenAge, which would also make iat required.
  if (iat !== undefined && nowSeconds + clockSkewSeconds < iat) {
    throw new TokenRejected('not_yet_valid', `the token was issued in the future (${isoTime(iat)})`)
  }
  if (typeof payload.sub !== 'string' || payload.sub === '') throw malformed('the token has no sub claim')
  return { subject: payload.sub, issuer, claims: payload, expiresAt: new Date((payload.exp as number) * 1000) }
}

/** A discovery or JWKS fetch that did not give a usable answer. */
class FetchFailed extends Error {}

function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined
  return cause && cause !== message ? `${message} (${cause})` : message
}

async function readLimited(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  if (declared > limit) {
    await response.body?.cancel().catch(() => undefined)
    throw new FetchFailed(`the answer is larger than ${limit} bytes`)
  }
  if (!response.body) return await response.text()
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => undefined)
      throw new FetchFailed(`the answer is larger than ${limit} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function checkOptions(options: OidcVerifierOptions): void {
  if (typeof options.issuer !== 'string' || !URL.canParse(options.issuer)) throw new TypeError('OIDC verifier: issuer must be a URL')
  const audiences = typeof options.audience === 'string' ? [options.audience] : options.audience
  if (!Array.isArray(audiences) || audiences.length === 0 || !audiences.every((a) => typeof a === 'string' && a !== '')) {
    throw new TypeError('OIDC verifier: audience must be a non-empty string or a non-empty list of them')
  }
  if (options.jwksUrl !== undefined && !URL.canParse(options.jwksUrl)) throw new TypeError('OIDC verifier: jwksUrl must be a URL')
  for (const name of ['clockSkewSeconds', 'cacheTtlMs', 'minimumRefetchMs', 'timeoutMs'] as const) {
    const value = options[name]
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new TypeError(`OIDC verifier: ${name} must be a number >= 0`)
  }
}

export function createOidcVerifier(options: OidcVerifierOptions): OidcVerifier {
  checkOptions(options)
  const issuer = options.issuer
  const audiences = typeof options.audience === 'string' ? [options.audience] : [...options.audience]
  const clockSkewSeconds = options.clockSkewSeconds ?? 60
  const cacheTtlMs = options.cacheTtlMs ?? 10 * 60_000
  const minimumRefetchMs = options.minimumRefetchMs ?? 60_000
  const timeoutMs = options.timeoutMs ?? 5_000
  const fetchFn = options.fetch ?? ((input, init) => fetch(input, init))
  const now = options.now ?? (() => new Date())
  const nowMs = () => now().getTime()
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
      text = await readLimited(response, maxDocumentBytes)
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

  return {
    looksLikeJwt(token) {
      return typeof token === 'string' && token.length <= maxTokenLength && jwtShape.test(token)
    },

    async verify(token) {
      const header = parseHeader(token)
      const at = now()
      let verified: { payload: JWTPayload }
      try {
        verified = await jwtVerify(token, keyFor, {
          algorithms: allowedAlgorithms,
          issuer,
          audience: audiences,
          clockTolerance: clockSkewSeconds,
          currentDate: at,
          requiredClaims: ['exp', 'sub'],
        })
      } catch (error) {
        throw rejectionFor(error, header, issuer)
      }
      return acceptedToken(verified.payload, issuer, Math.floor(at.getTime() / 1000), clockSkewSeconds)
    },
  }
}
