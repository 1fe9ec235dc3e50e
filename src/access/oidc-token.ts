// The bearer token itself (JWT access or ID token, RFC 7519 over a compact JWS): a strict
// parse before any key is looked up, what jose leaves to us after it verified, and the
// refusal, named, that every failure becomes.
//
// Traps this file guards against:
// - `alg` comes from the attacker: only an allow-list of asymmetric algorithms is accepted,
//   never `none`, never HMAC (a public key used as an HMAC secret forges anything).
// - jose decodes base64url leniently and the payload only after the signature: the strict
//   parse below keeps malformed tokens from ever costing a JWKS fetch.
// - Messages name the issuer, the alg and the kid, never the token; jose's claim errors carry
//   the whole payload, so they are never kept as a cause.
import { errors, type JWTPayload } from 'jose'

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

/** Far above any real ID or access token (a few KiB with many groups). */
const maxTokenLength = 16 * 1024

export const allowedAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384']
export const keyTypeOf = (alg: string): 'RSA' | 'EC' => (alg.startsWith('ES') ? 'EC' : 'RSA')

export type Json = Record<string, unknown>

export const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
/** A header or claim value, quoted and cut short: it comes from the caller. */
export const show = (value: string): string => JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value)
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
export function parseHeader(token: unknown): Json {
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

/** A cheap syntactic check (three base64url parts), to tell a JWT from an API key. */
export function looksLikeJwt(token: string): boolean {
  return typeof token === 'string' && token.length <= maxTokenLength && jwtShape.test(token)
}

/** jose's refusal as a TokenRejected; anything else is passed on. */
export function rejectionFor(error: unknown, header: Json, issuer: string): unknown {
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
export function acceptedToken(payload: JWTPayload, issuer: string, nowSeconds: number, clockSkewSeconds: number): VerifiedToken {
  const { aud, iat } = payload
  if (Array.isArray(aud) && !aud.every((a: unknown) => typeof a === 'string')) throw malformed('the aud claim is not a string or a list of strings')
  // jose checks a future iat only with maxTokenAge, which would also make iat required.
  if (iat !== undefined && nowSeconds + clockSkewSeconds < iat) {
    throw new TokenRejected('not_yet_valid', `the token was issued in the future (${isoTime(iat)})`)
  }
  if (typeof payload.sub !== 'string' || payload.sub === '') throw malformed('the token has no sub claim')
  return { subject: payload.sub, issuer, claims: payload, expiresAt: new Date((payload.exp as number) * 1000) }
}
