// Verification of OIDC bearer tokens (JWT access or ID tokens) issued by an organisation's
// identity provider: the compact JWS is parsed strictly, its signature checked against the
// issuer's JWKS, then `iss`, `aud`, `exp`, `nbf` and `iat` (with a small clock skew).
// https://www.rfc-editor.org/rfc/rfc7515 (JWS), rfc7517 (JWK), rfc7518 (algorithms), rfc7519 (JWT)
// https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
//
// Traps this file guards against:
// - `alg` comes from the attacker: only an allow-list of asymmetric algorithms is accepted,
//   never `none`, never HMAC (a public key used as an HMAC secret forges anything), and
//   the algorithm must fit the key it names (kty, EC curve, the key's own `alg`).
// - Keys only ever come from the configured JWKS: `jwk`, `jku`, `x5u`, `x5c` in the header are ignored.
// - Unknown `kid`s refetch the JWKS (key rotation) at most once per minimumRefetchMs, so forged
//   kids cannot make us hammer the IdP. Concurrent verifications share one in-flight fetch.
// - A failed fetch is not cached (the next verification asks again); a JWKS already held is
//   used while it is fresh (cacheTtlMs) even when a refetch fails.
// - Messages name the issuer, the alg and the kid, never the token.
import { constants, createPublicKey, verify as verifySignature, type JsonWebKey, type KeyObject } from 'node:crypto'

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
  | 'malformed'
  | 'unsupported_algorithm'
  | 'unknown_key'
  | 'bad_signature'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'jwks_unavailable'

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

const algorithms = {
  RS256: { kty: 'RSA', hash: 'sha256' },
  RS384: { kty: 'RSA', hash: 'sha384' },
  RS512: { kty: 'RSA', hash: 'sha512' },
  PS256: { kty: 'RSA', hash: 'sha256', pss: true },
  ES256: { kty: 'EC', hash: 'sha256', crv: 'P-256', signatureBytes: 64 },
  ES384: { kty: 'EC', hash: 'sha384', crv: 'P-384', signatureBytes: 96 },
} as const satisfies Record<string, { kty: 'RSA' | 'EC'; hash: string; pss?: true; crv?: string; signatureBytes?: number }>

type Algorithm = keyof typeof algorithms
type AlgorithmSpec = { kty: 'RSA' | 'EC'; hash: string; pss?: true; crv?: string; signatureBytes?: number }

const isAlgorithm = (alg: string): alg is Algorithm => Object.hasOwn(algorithms, alg)

interface VerificationKey {
  kid: string | undefined
  kty: 'RSA' | 'EC'
  crv: 'P-256' | 'P-384' | undefined
  /** The JWK's own `alg`, when it pins one. */
  alg: Algorithm | undefined
  key: KeyObject
}

interface KeySet {
  keys: VerificationKey[]
  byKid: Map<string, VerificationKey[]>
}

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const isNumericDate = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)
/** A header value, quoted and cut short: it comes from the caller. */
const show = (value: string): string => JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value)

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

interface ParsedToken {
  header: Json
  claims: Json
  signature: Buffer
  signingInput: Buffer
}

function parseCompactJws(token: unknown): ParsedToken {
  if (typeof token !== 'string' || token.length === 0) throw malformed('the token is empty')
  if (token.length > maxTokenLength) throw malformed(`the token is longer than ${maxTokenLength} characters`)
  const parts = token.split('.')
  if (parts.length !== 3) throw malformed(`a compact JWS has 3 parts, this token has ${parts.length}`)
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string]
  if (headerPart === '' || payloadPart === '') throw malformed('the token has an empty header or payload')
  return {
    header: jsonObject(decodeSegment(headerPart, 'header'), 'header'),
    claims: jsonObject(decodeSegment(payloadPart, 'payload'), 'payload'),
    signature: decodeSegment(signaturePart, 'signature'),
    signingInput: Buffer.from(`${headerPart}.${payloadPart}`, 'ascii'),
  }
}

/** The JWK as a verification key, or undefined when it cannot verify any allowed algorithm. */
function importJwk(jwk: unknown): VerificationKey | undefined {
  if (!isObject(jwk)) return undefined
  if (jwk['use'] !== undefined && jwk['use'] !== 'sig') return undefined
  const ops = jwk['key_ops']
  if (ops !== undefined && !(Array.isArray(ops) && ops.includes('verify'))) return undefined
  const kid = jwk['kid']
  if (kid !== undefined && typeof kid !== 'string') return undefined
  const alg = jwk['alg']
  if (alg !== undefined && (typeof alg !== 'string' || !isAlgorithm(alg))) return undefined
  // Only the public members go to createPublicKey: never `d` or an `oct` secret.
  try {
    if (jwk['kty'] === 'RSA' && typeof jwk['n'] === 'string' && typeof jwk['e'] === 'string') {
      const key = createPublicKey({ key: { kty: 'RSA', n: jwk['n'], e: jwk['e'] } satisfies JsonWebKey, format: 'jwk' })
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < minimumRsaBits) return undefined
      if (alg !== undefined && algorithms[alg].kty !== 'RSA') return undefined
      return { kid, kty: 'RSA', crv: undefined, alg, key }
    }
    const crv = jwk['crv']
    if (jwk['kty'] === 'EC' && (crv === 'P-256' || crv === 'P-384') && typeof jwk['x'] === 'string' && typeof jwk['y'] === 'string') {
      const key = createPublicKey({ key: { kty: 'EC', crv, x: jwk['x'], y: jwk['y'] } satisfies JsonWebKey, format: 'jwk' })
      if (alg !== undefined && (algorithms[alg] as AlgorithmSpec).crv !== crv) return undefined
      return { kid, kty: 'EC', crv, alg, key }
    }
  } catch {
    return undefined // not a valid key (bad modulus, point not on the curve ...)
  }
  return undefined
}

function parseJwks(body: unknown): KeySet {
  if (!isObject(body) || !Array.isArray(body['keys'])) throw new Error('the JWKS is not a JSON object with a keys array')
  const keys: VerificationKey[] = []
  for (const jwk of body['keys'].slice(0, maxJwksKeys)) {
    const key = importJwk(jwk)
    if (key) keys.push(key)
  }
  const byKid = new Map<string, VerificationKey[]>()
  for (const key of keys) {
    if (key.kid === undefined) continue
    const same = byKid.get(key.kid)
    if (same) same.push(key)
    else byKid.set(key.kid, [key])
  }
  return { keys, byKid }
}

const fits = (key: VerificationKey, alg: Algorithm): boolean => {
  const spec: AlgorithmSpec = algorithms[alg]
  return key.kty === spec.kty && (spec.crv === undefined || key.crv === spec.crv) && (key.alg === undefined || key.alg === alg)
}

const describeKey = (key: VerificationKey): string => `${key.kty}${key.crv ? ` ${key.crv}` : ''}${key.alg ? ` for ${key.alg}` : ''}`

/** A key, or `missing` (a refetch may find it), or a refusal no refetch can change. */
type Selection = { key: VerificationKey } | { missing: string } | { refused: TokenRejected }

function selectKey(set: KeySet, kid: string | undefined, alg: Algorithm, issuer: string): Selection {
  const spec: AlgorithmSpec = algorithms[alg]
  if (kid !== undefined) {
    const candidates = set.byKid.get(kid)
    if (!candidates) return { missing: `the JWKS of ${issuer} has no signing key with kid ${show(kid)}` }
    const key = candidates.find((candidate) => fits(candidate, alg))
    if (!key) return { refused: new TokenRejected('unsupported_algorithm', `the key with kid ${show(kid)} (${describeKey(candidates[0]!)}) cannot verify ${alg}`) }
    return { key }
  }
  const sameType = set.keys.filter((candidate) => candidate.kty === spec.kty)
  if (sameType.length === 0) return { missing: `the token names no kid and the JWKS of ${issuer} has no ${spec.kty} signing key` }
  if (sameType.length > 1) return { refused: new TokenRejected('unknown_key', `the token names no kid and the JWKS of ${issuer} has ${sameType.length} ${spec.kty} signing keys`) }
  const key = sameType[0]!
  if (!fits(key, alg)) return { refused: new TokenRejected('unsupported_algorithm', `the only ${spec.kty} key of ${issuer} (${describeKey(key)}) cannot verify ${alg}`) }
  return { key }
}

function signatureMatches(parsed: ParsedToken, alg: Algorithm, key: KeyObject): boolean {
  const spec: AlgorithmSpec = algorithms[alg]
  if (parsed.signature.length === 0) return false
  // JWS ECDSA signatures are raw r||s of fixed length (RFC 7518 §3.4), not DER.
  if (spec.signatureBytes !== undefined && parsed.signature.length !== spec.signatureBytes) return false
  try {
    return verifySignature(
      spec.hash,
      parsed.signingInput,
      spec.kty === 'EC'
        ? { key, dsaEncoding: 'ieee-p1363' }
        : spec.pss
          ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
          : { key, padding: constants.RSA_PKCS1_PADDING },
      parsed.signature,
    )
  } catch {
    return false
  }
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
  const audiences: ReadonlySet<string> = new Set(typeof options.audience === 'string' ? [options.audience] : options.audience)
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
      return parseJwks(body)
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
      throw new TokenRejected('jwks_unavailable', `cannot get the signing keys of ${issuer}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
  }

  /** The fresh cached JWKS, else a fetched one; `fetched` says which. */
  async function currentKeys(): Promise<{ keys: KeySet; fetched: boolean }> {
    if (cached && nowMs() - cached.fetchedAt < cacheTtlMs) return { keys: cached.keys, fetched: false }
    return { keys: await refetchOrReject(), fetched: true }
  }

  async function resolveKey(kid: string | undefined, alg: Algorithm): Promise<KeyObject> {
    const current = await currentKeys()
    let selection = selectKey(current.keys, kid, alg, issuer)
    // Key rotation: an unknown kid refetches, once, and not more often than minimumRefetchMs
    // (joining a fetch already running costs nothing).
    if ('missing' in selection && !current.fetched && (inFlight !== undefined || nowMs() - lastFetchStartedAt >= minimumRefetchMs)) {
      selection = selectKey(await refetchOrReject(), kid, alg, issuer)
    }
    if ('refused' in selection) throw selection.refused
    if ('missing' in selection) throw new TokenRejected('unknown_key', selection.missing)
    return selection.key.key
  }

  function checkClaims(claims: Json): VerifiedToken {
    if (claims['iss'] !== issuer) {
      throw new TokenRejected('wrong_issuer', typeof claims['iss'] === 'string' ? `the token was issued by ${show(claims['iss'])}, not ${issuer}` : 'the token has no iss claim')
    }
    const aud = claims['aud']
    if (aud === undefined) throw new TokenRejected('wrong_audience', 'the token has no aud claim')
    const tokenAudiences = typeof aud === 'string' ? [aud] : aud
    if (!Array.isArray(tokenAudiences) || !tokenAudiences.every((a): a is string => typeof a === 'string')) throw malformed('the aud claim is not a string or a list of strings')
    if (!tokenAudiences.some((a) => audiences.has(a))) throw new TokenRejected('wrong_audience', `the token is not meant for this server (aud ${tokenAudiences.slice(0, 5).map(show).join(', ') || 'empty'})`)

    const exp = claims['exp']
    if (exp === undefined) throw malformed('the token has no exp claim')
    for (const name of ['exp', 'nbf', 'iat'] as const) {
      if (claims[name] !== undefined && !isNumericDate(claims[name])) throw malformed(`the ${name} claim is not a number of seconds`)
    }
    const nowSeconds = nowMs() / 1000
    if (nowSeconds >= (exp as number) + clockSkewSeconds) throw new TokenRejected('expired', `the token expired at ${new Date((exp as number) * 1000).toISOString()}`)
    const nbf = claims['nbf'] as number | undefined
    if (nbf !== undefined && nowSeconds + clockSkewSeconds < nbf) throw new TokenRejected('not_yet_valid', `the token is not valid before ${new Date(nbf * 1000).toISOString()}`)
    const iat = claims['iat'] as number | undefined
    if (iat !== undefined && nowSeconds + clockSkewSeconds < iat) throw new TokenRejected('not_yet_valid', `the token was issued in the future (${new Date(iat * 1000).toISOString()})`)

    const sub = claims['sub']
    if (typeof sub !== 'string' || sub === '') throw malformed('the token has no sub claim')
    return { subject: sub, issuer, claims, expiresAt: new Date((exp as number) * 1000) }
  }

  return {
    looksLikeJwt(token) {
      return typeof token === 'string' && token.length <= maxTokenLength && jwtShape.test(token)
    },

    async verify(token) {
      const parsed = parseCompactJws(token)
      const { header } = parsed
      const alg = header['alg']
      if (typeof alg !== 'string') throw malformed('the token header has no alg')
      if (!isAlgorithm(alg)) {
        const why = alg === 'none' ? 'unsigned tokens are refused' : /^HS/i.test(alg) ? 'HMAC tokens are refused' : `accepted: ${Object.keys(algorithms).join(', ')}`
        throw new TokenRejected('unsupported_algorithm', `alg ${show(alg)}: ${why}`)
      }
      // RFC 7515 §4.1.11: extensions we do not understand must not be ignored; we understand none.
      if (header['crit'] !== undefined) throw malformed('the token header has crit parameters, none is supported')
      const kid = header['kid']
      if (kid !== undefined && typeof kid !== 'string') throw malformed('the token header kid is not a string')

      const key = await resolveKey(kid, alg)
      if (!signatureMatches(parsed, alg, key)) throw new TokenRejected('bad_signature', `the ${alg} signature does not verify${kid !== undefined ? ` with kid ${show(kid)}` : ''}`)
      return checkClaims(parsed.claims)
    },
  }
}
