// Verification of OIDC bearer tokens (JWT access or ID tokens) issued by an organisation's
// identity provider. jose (https://github.com/panva/jose) checks the JWS signature with a key
// of the issuer's JWKS and the claims `iss`, `aud`, `exp` and `nbf` (with a small clock skew).
// oidc-token.ts parses the token strictly first and names every refusal; oidc-jwks.ts fetches
// and caches the JWKS (discovery, size and time limits, rate-limited refetch). Each file lists
// the traps it guards against.
import { jwtVerify, type JWTPayload } from 'jose'
import { createJwksCache } from './oidc-jwks.js'
import { acceptedToken, allowedAlgorithms, looksLikeJwt, parseHeader, rejectionFor, type VerifiedToken } from './oidc-token.js'

export { TokenRejected, type TokenRejectionReason, type VerifiedToken } from './oidc-token.js'

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

export interface OidcVerifier {
  /** The token's claims once everything checks out; throws TokenRejected otherwise. */
  verify(token: string): Promise<VerifiedToken>
  /** A cheap syntactic check (three base64url parts), to tell a JWT from an API key. */
  looksLikeJwt(token: string): boolean
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
  const now = options.now ?? (() => new Date())
  const jwks = createJwksCache({
    issuer,
    jwksUrl: options.jwksUrl,
    cacheTtlMs: options.cacheTtlMs ?? 10 * 60_000,
    minimumRefetchMs: options.minimumRefetchMs ?? 60_000,
    timeoutMs: options.timeoutMs ?? 5_000,
    fetch: options.fetch ?? ((input, init) => fetch(input, init)),
    nowMs: () => now().getTime(),
  })

  return {
    looksLikeJwt,

    async verify(token) {
      const header = parseHeader(token)
      const at = now()
      let verified: { payload: JWTPayload }
      try {
        verified = await jwtVerify(token, jwks.keyFor, {
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
