// The OpenID Connect client of account-driven enrollment: authorization code flow with PKCE
// (RFC 7636, S256) against ORCHARD_OIDC_ISSUER with its own client ID. The ID token is checked
// by the same verifier as the admin API's bearer tokens (oidc-verifier.ts: jose, the issuer's
// JWKS, iss/aud/exp), with this client ID as audience, and its nonce must be the login's.
//
// Why not openid-client: the flow is three plain steps (discovery, a redirect, one token
// request) and the hard part, verifying the ID token, is already done and tested by
// oidc-verifier.ts over jose; openid-client would add a second discovery and JWKS cache.
//
// Traps:
// - PKCE and state are both needed: state binds the callback to a login Orchard started,
//   the verifier binds the code to it (a code stolen from the redirect is useless without it).
// - The token endpoint's answer is the only place the ID token comes from: never take one from
//   the redirect's query (no implicit or hybrid flow).
// - The redirect URI sent in the token request must equal the authorization request's.
import { createHash, randomBytes } from 'node:crypto'
import { OrchardError } from '../errors.js'
import { createOidcVerifier, TokenRejected, type OidcVerifier } from '../access/oidc-verifier.js'

export interface AccountLoginOptions {
  issuer: string
  clientId: string
  clientSecret: string | null
  /** Where the identity provider sends the browser back: <public URL>/enroll/account/callback. */
  redirectUri: string
  jwksUrl?: string | null
  fetch?: typeof fetch
  now?: () => Date
  timeoutMs?: number
}

export interface LoginStart {
  /** The identity provider's authorization URL to redirect the browser to. */
  url: string
  state: string
  codeVerifier: string
  nonce: string
}

export interface SignedInPerson {
  subject: string
  claims: Record<string, unknown>
}

export interface AccountLogin {
  start(options: { loginHint?: string }): Promise<LoginStart>
  /** Exchanges the code (PKCE verifier included) and verifies the ID token; throws OrchardError('forbidden') on any refusal. */
  finish(code: string, login: { codeVerifier: string; nonce: string }): Promise<SignedInPerson>
}

export const pkceChallengeOf = (verifier: string): string => createHash('sha256').update(verifier).digest('base64url')

interface ProviderMetadata {
  authorization_endpoint: string
  token_endpoint: string
}

export function createAccountLogin(options: AccountLoginOptions): AccountLogin {
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init))
  const timeoutMs = options.timeoutMs ?? 5_000
  const verifier: OidcVerifier = createOidcVerifier({
    issuer: options.issuer,
    audience: options.clientId,
    ...(options.jwksUrl ? { jwksUrl: options.jwksUrl } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.now ? { now: options.now } : {}),
  })
  let metadata: ProviderMetadata | undefined

  async function provider(): Promise<ProviderMetadata> {
    if (metadata) return metadata
    const url = `${options.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
    let document: unknown
    try {
      const response = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      document = await response.json()
    } catch (error) {
      throw new OrchardError('upstream_failed', `the identity provider's discovery document (${url}) could not be read: ${(error as Error).message}`, {
        cause: error,
      })
    }
    const record = (document ?? {}) as Record<string, unknown>
    const authorization = record['authorization_endpoint']
    const token = record['token_endpoint']
    if (typeof authorization !== 'string' || !URL.canParse(authorization) || typeof token !== 'string' || !URL.canParse(token)) {
      throw new OrchardError('upstream_failed', `the identity provider's discovery document (${url}) has no authorization_endpoint and token_endpoint`)
    }
    metadata = { authorization_endpoint: authorization, token_endpoint: token }
    return metadata
  }

  return {
    async start(startOptions) {
      const { authorization_endpoint } = await provider()
      const state = randomBytes(32).toString('base64url')
      const codeVerifier = randomBytes(32).toString('base64url')
      const nonce = randomBytes(16).toString('base64url')
      const url = new URL(authorization_endpoint)
      url.searchParams.set('response_type', 'code')
      url.searchParams.set('client_id', options.clientId)
      url.searchParams.set('redirect_uri', options.redirectUri)
      url.searchParams.set('scope', 'openid email profile')
      url.searchParams.set('state', state)
      url.searchParams.set('nonce', nonce)
      url.searchParams.set('code_challenge', pkceChallengeOf(codeVerifier))
      url.searchParams.set('code_challenge_method', 'S256')
      if (startOptions.loginHint) url.searchParams.set('login_hint', startOptions.loginHint)
      return { url: url.toString(), state, codeVerifier, nonce }
    },

    async finish(code, login) {
      const { token_endpoint } = await provider()
      const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: options.redirectUri, code_verifier: login.codeVerifier })
      const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
      if (options.clientSecret !== null) {
        // client_secret_basic: both parts form-encoded first (RFC 6749 §2.3.1).
        const basic = `${encodeURIComponent(options.clientId)}:${encodeURIComponent(options.clientSecret)}`
        headers['authorization'] = `Basic ${Buffer.from(basic).toString('base64')}`
      } else {
        body.set('client_id', options.clientId)
      }
      let answer: Record<string, unknown>
      let status: number
      try {
        const response = await doFetch(token_endpoint, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) })
        status = response.status
        answer = ((await response.json().catch(() => ({}))) ?? {}) as Record<string, unknown>
      } catch (error) {
        throw new OrchardError('upstream_failed', `the identity provider's token endpoint could not be reached: ${(error as Error).message}`, { cause: error })
      }
      if (status !== 200) {
        const reason = typeof answer['error'] === 'string' ? answer['error'] : `HTTP ${status}`
        throw new OrchardError('forbidden', `the identity provider refused the sign-in code (${reason})`)
      }
      const idToken = answer['id_token']
      if (typeof idToken !== 'string') throw new OrchardError('forbidden', 'the identity provider answered without an id_token')
      let verified
      try {
        verified = await verifier.verify(idToken)
      } catch (error) {
        if (error instanceof TokenRejected) throw new OrchardError('forbidden', `the ID token was refused: ${error.message}`)
        throw error
      }
      if (verified.claims['nonce'] !== login.nonce) throw new OrchardError('forbidden', 'the ID token does not carry the nonce of this sign-in')
      return { subject: verified.subject, claims: verified.claims }
    },
  }
}
