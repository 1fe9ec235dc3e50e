// A loopback OIDC issuer for tests: plain HTTP on 127.0.0.1 (port 0) serving
// /.well-known/openid-configuration and /jwks, holding an RSA 2048, an EC P-256 and an
// EC P-384 signing key (kids `rsa-1`, `ec-1`, `ec384-1`, numbered up on each rotation), and
// signing tokens with them. Deterministic: no timers; `iat`/`exp` come from the injected clock.
// RSA key generation is slow, so keys are made once per process and shared by issuers (kid
// `rsa-2` is the same key in every issuer that rotated once) unless `freshKeys` is set.
//
// sign() can also produce what a real issuer never would, for the verifier's refusals:
// - key 'unknown': an RSA key that is not in the JWKS (kid `unknown-1`);
// - alg 'none' (empty signature), HS256/384/512 (HMAC keyed with the PEM of the chosen public
//   key: the classic algorithm-confusion forgery), or an alg that does not fit the key (the
//   signature is then made with the key's own scheme);
// - header overrides, applied last; a value of undefined removes the member (e.g. kid).
// A claim given as undefined is left out (e.g. `{ exp: undefined }`).
//
// With `client`, it also plays the identity provider of an authorization code flow with PKCE
// (account-driven enrollment): GET /authorize signs in `user()` at once (no login page) and
// redirects to the registered redirect_uri with a one-time code and the state; POST /token
// checks grant_type, the client (secret by Basic or client_id for a public client), the
// redirect_uri, and the PKCE verifier against the S256 challenge, then answers an ID token for
// the client (aud), with the nonce, the user's sub, email and groups. Refusals are RFC 6749
// errors (400 invalid_request, invalid_client, invalid_grant).
import { constants, createHash, createHmac, generateKeyPairSync, randomBytes, sign as signData, type KeyObject } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export type TestKeyName = 'rsa' | 'ec' | 'ec384' | 'unknown'

export interface TestSignOptions {
  /** Default 'rsa'. */
  key?: TestKeyName
  /** Default: RS256 for RSA keys, ES256 for 'ec', ES384 for 'ec384'. */
  alg?: string
  /** Default: the key's kid. */
  kid?: string
  /** Merged into the header last; undefined removes a member. */
  header?: Record<string, unknown>
}

export interface TestOidcIssuerOptions {
  audience?: string
  /** Default 'user-1'. */
  subject?: string
  /** Clock for the default iat/exp. */
  now?: () => Date
  /** Lifetime of signed tokens, default 300 s. */
  lifetimeSeconds?: number
  /** Generate this issuer's own keys instead of the process-wide ones. */
  freshKeys?: boolean
  /** The client of the authorization code flow (PKCE S256 always required). */
  client?: { clientId: string; clientSecret?: string; redirectUri: string }
}

/** Who signs in at /authorize. */
export interface TestOidcUser {
  sub: string
  email: string
  groups?: string[]
}

export interface TestOidcIssuer {
  /** 'http://127.0.0.1:<port>' (no trailing slash). */
  url: string
  /** The `iss` of every token: the same as url. */
  issuer: string
  jwksUrl: string
  audience: string
  sign(claims?: Record<string, unknown>, options?: TestSignOptions): string
  /** New keys (and kids) for rsa, ec and ec384; the old ones leave the JWKS unless keepPrevious. Returns the new kids. */
  rotateKeys(options?: { keepPrevious?: boolean }): { rsa: string; ec: string; ec384: string }
  kids(): { rsa: string; ec: string; ec384: string; unknown: string }
  /** The public JWK of a key as published (kid, use 'sig', alg), for hand-made JWKS documents. */
  publicJwk(key: TestKeyName): Record<string, unknown>
  /** Serve this document at /jwks instead of the issuer's keys (null: back to the keys). */
  setJwks(document: unknown): void
  /** While down, every request is answered 503. */
  setDown(down: boolean): void
  jwksFetches(): number
  discoveryFetches(): number
  /** Who the next /authorize signs in (default sub 'user-1', email user-1@example.test, no groups). */
  setUser(user: TestOidcUser): void
  /** The token requests and how each was answered (status, error). */
  tokenRequests(): Array<{ status: number; error?: string }>
  close(): Promise<void>
}

interface HeldKey {
  kid: string
  privateKey: KeyObject
  publicKey: KeyObject
  alg: 'RS256' | 'ES256' | 'ES384'
}

const hashOf = (alg: string): string => {
  const bits = /(256|384|512)$/.exec(alg)?.[1] ?? '256'
  return `sha${bits}`
}

const sharedKeys = new Map<string, HeldKey>()

function generate(name: 'rsa' | 'ec' | 'ec384' | 'unknown', kid: string, fresh = false): HeldKey {
  if (!fresh) {
    const shared = sharedKeys.get(kid) ?? generate(name, kid, true)
    sharedKeys.set(kid, shared)
    return shared
  }
  if (name === 'ec' || name === 'ec384') {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: name === 'ec' ? 'P-256' : 'P-384' })
    return { kid, privateKey, publicKey, alg: name === 'ec' ? 'ES256' : 'ES384' }
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { kid, privateKey, publicKey, alg: 'RS256' }
}

const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

export async function startTestOidcIssuer(options: TestOidcIssuerOptions = {}): Promise<TestOidcIssuer> {
  const now = options.now ?? (() => new Date())
  const audience = options.audience ?? 'orchard-admin'
  const subject = options.subject ?? 'user-1'
  const lifetimeSeconds = options.lifetimeSeconds ?? 300
  const fresh = options.freshKeys ?? false
  let generation = 1
  let current = {
    rsa: generate('rsa', 'rsa-1', fresh),
    ec: generate('ec', 'ec-1', fresh),
    ec384: generate('ec384', 'ec384-1', fresh),
  }
  const unknown = generate('unknown', 'unknown-1', fresh)
  let published: HeldKey[] = Object.values(current)
  let jwksOverride: unknown = null
  let down = false
  let jwksCount = 0
  let discoveryCount = 0

  const jwk = (held: HeldKey): Record<string, unknown> => ({ ...held.publicKey.export({ format: 'jwk' }), kid: held.kid, use: 'sig', alg: held.alg })

  let user: TestOidcUser = { sub: subject, email: `${subject}@example.test` }
  const codes = new Map<string, { challenge: string; nonce: string | null; redirectUri: string; user: TestOidcUser }>()
  const tokenLog: Array<{ status: number; error?: string }> = []

  const authorize = (query: URLSearchParams, res: import('node:http').ServerResponse) => {
    const client = options.client
    const fail = (error: string) => {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error }))
    }
    if (!client || query.get('client_id') !== client.clientId) return fail('unauthorized_client')
    if (query.get('redirect_uri') !== client.redirectUri) return fail('invalid_request')
    if (query.get('response_type') !== 'code') return fail('unsupported_response_type')
    const challenge = query.get('code_challenge')
    if (query.get('code_challenge_method') !== 'S256' || !challenge) return fail('invalid_request')
    const code = randomBytes(16).toString('base64url')
    codes.set(code, { challenge, nonce: query.get('nonce'), redirectUri: client.redirectUri, user })
    const location = new URL(client.redirectUri)
    location.searchParams.set('code', code)
    const state = query.get('state')
    if (state !== null) location.searchParams.set('state', state)
    res.writeHead(302, { location: location.toString() })
    res.end()
  }

  const token = (body: URLSearchParams, authorization: string | undefined, reply: (status: number, body: unknown) => void) => {
    const client = options.client
    const fail = (status: number, error: string) => {
      tokenLog.push({ status, error })
      reply(status, { error })
    }
    if (!client) return fail(400, 'unauthorized_client')
    if (client.clientSecret !== undefined) {
      const expected = `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64')}`
      if (authorization !== expected) return fail(401, 'invalid_client')
    } else if (body.get('client_id') !== client.clientId) return fail(401, 'invalid_client')
    if (body.get('grant_type') !== 'authorization_code') return fail(400, 'unsupported_grant_type')
    const code = body.get('code') ?? ''
    const grant = codes.get(code)
    codes.delete(code)
    if (!grant) return fail(400, 'invalid_grant')
    if (body.get('redirect_uri') !== grant.redirectUri) return fail(400, 'invalid_grant')
    const verifier = body.get('code_verifier') ?? ''
    if (createHash('sha256').update(verifier).digest('base64url') !== grant.challenge) return fail(400, 'invalid_grant')
    const claims: Record<string, unknown> = { aud: client.clientId, sub: grant.user.sub, email: grant.user.email, groups: grant.user.groups ?? [] }
    if (grant.nonce !== null) claims['nonce'] = grant.nonce
    tokenLog.push({ status: 200 })
    reply(200, { token_type: 'Bearer', access_token: randomBytes(16).toString('base64url'), expires_in: 300, id_token: issuer.sign(claims) })
  }

  const server = createServer((req, res) => {
    const [rawPath, rawQuery] = (req.url ?? '/').split('?')
    const path = rawPath
    const reply = (status: number, body: unknown) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body)
      res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' })
      res.end(text)
    }
    if (path === '/.well-known/openid-configuration') discoveryCount++
    if (path === '/jwks') jwksCount++
    if (down) return reply(503, 'down')
    if (path === '/token' && req.method === 'POST' && options.client) {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => token(new URLSearchParams(Buffer.concat(chunks).toString('utf8')), req.headers.authorization, reply))
      return
    }
    if (req.method !== 'GET') return reply(405, 'method not allowed')
    if (path === '/authorize' && options.client) return authorize(new URLSearchParams(rawQuery ?? ''), res)
    if (path === '/.well-known/openid-configuration') {
      return reply(200, {
        issuer: url,
        jwks_uri: `${url}/jwks`,
        authorization_endpoint: `${url}/authorize`,
        token_endpoint: `${url}/token`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256', 'ES256', 'ES384'],
      })
    }
    if (path === '/jwks') return reply(200, jwksOverride ?? { keys: published.map(jwk) })
    return reply(404, 'not found')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const heldKey = (name: TestKeyName): HeldKey => (name === 'unknown' ? unknown : current[name])

  const issuer: TestOidcIssuer = {
    url,
    issuer: url,
    jwksUrl: `${url}/jwks`,
    audience,

    sign(claims = {}, signOptions = {}) {
      const held = heldKey(signOptions.key ?? 'rsa')
      const alg = signOptions.alg ?? held.alg
      const header: Record<string, unknown> = { alg, typ: 'JWT', kid: signOptions.kid ?? held.kid, ...signOptions.header }
      const iat = Math.floor(now().getTime() / 1000)
      const payload: Record<string, unknown> = { iss: url, aud: audience, sub: subject, iat, exp: iat + lifetimeSeconds, ...claims }
      const drop = (object: Record<string, unknown>) => Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined))
      const input = `${encode(drop(header))}.${encode(drop(payload))}`
      let signature: Buffer
      if (alg === 'none') {
        signature = Buffer.alloc(0)
      } else if (/^HS/.test(alg)) {
        const secret = held.publicKey.export({ format: 'pem', type: 'spki' })
        signature = createHmac(hashOf(alg), secret).update(input).digest()
      } else if (held.alg.startsWith('ES')) {
        signature = signData(hashOf(alg), Buffer.from(input), { key: held.privateKey, dsaEncoding: 'ieee-p1363' })
      } else if (alg.startsWith('PS')) {
        signature = signData(hashOf(alg), Buffer.from(input), {
          key: held.privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
        })
      } else {
        signature = signData(hashOf(alg), Buffer.from(input), held.privateKey)
      }
      return `${input}.${signature.toString('base64url')}`
    },

    rotateKeys(rotateOptions = {}) {
      generation++
      const previous = published
      current = {
        rsa: generate('rsa', `rsa-${generation}`, fresh),
        ec: generate('ec', `ec-${generation}`, fresh),
        ec384: generate('ec384', `ec384-${generation}`, fresh),
      }
      published = [...Object.values(current), ...(rotateOptions.keepPrevious ? previous : [])]
      return { rsa: current.rsa.kid, ec: current.ec.kid, ec384: current.ec384.kid }
    },

    publicJwk: (name) => jwk(heldKey(name)),
    kids: () => ({ rsa: current.rsa.kid, ec: current.ec.kid, ec384: current.ec384.kid, unknown: unknown.kid }),
    setJwks(document) {
      jwksOverride = document
    },
    setDown(value) {
      down = value
    },
    jwksFetches: () => jwksCount,
    discoveryFetches: () => discoveryCount,
    setUser(next) {
      user = next
    },
    tokenRequests: () => [...tokenLog],

    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  return issuer
}
