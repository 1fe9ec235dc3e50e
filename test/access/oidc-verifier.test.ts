// The OIDC bearer-token verifier against a loopback test issuer: valid tokens, every
// refusal reason, JWKS caching, rate-limited refetch on unknown kids, key rotation and an
// unavailable issuer. The clock is injected (no sleeps): tokens and verifier share it.
import t, { type Test } from 'tap'
import { createOidcVerifier, TokenRejected, type OidcVerifier, type OidcVerifierOptions, type TokenRejectionReason } from '../../src/access/oidc-verifier.js'
import { startTestOidcIssuer, type TestOidcIssuer } from '../helpers/test-oidc-issuer.js'

let clockMs = Date.parse('2030-06-01T12:00:00.000Z')
const now = () => new Date(clockMs)
const advance = (ms: number) => {
  clockMs += ms
}
const seconds = () => Math.floor(clockMs / 1000)

const issuer = await startTestOidcIssuer({ now })
t.teardown(() => issuer.close())

function verifierFor(idp: TestOidcIssuer, options: Partial<OidcVerifierOptions> = {}): OidcVerifier {
  return createOidcVerifier({ issuer: idp.issuer, audience: idp.audience, now, ...options })
}

/** Rejected with this reason, and the message shows no part of the token. */
async function rejects(
  t: Test,
  verifier: OidcVerifier,
  token: string,
  reason: TokenRejectionReason,
  what: string = reason,
): Promise<TokenRejected | undefined> {
  try {
    await verifier.verify(token)
    t.fail(`${what}: accepted, expected ${reason}`)
    return undefined
  } catch (error) {
    if (!(error instanceof TokenRejected)) {
      t.fail(`${what}: threw ${String(error)}, expected TokenRejected`)
      return undefined
    }
    t.equal(error.reason, reason, `${what}: ${error.message}`)
    const leaks = String(token)
      .split('.')
      .filter((part) => part.length >= 16 && error.message.includes(part))
    t.same(leaks, [], `${what}: the message holds no part of the token`)
    return error
  }
}

/** The token with its payload replaced (the signature kept). */
function withPayload(token: string, payload: Record<string, unknown>): string {
  const [header, , signature] = token.split('.')
  return `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`
}

const segment = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

t.test('valid RS256, ES256 and ES384 tokens, one discovery and one JWKS fetch', async (t) => {
  const verifier = verifierFor(issuer)
  const discoveries = issuer.discoveryFetches()
  const fetches = issuer.jwksFetches()

  const rs = await verifier.verify(issuer.sign({ sub: 'alice', groups: ['staff'] }))
  t.equal(rs.subject, 'alice')
  t.equal(rs.issuer, issuer.issuer)
  t.same(rs.claims['groups'], ['staff'])
  t.equal(rs.claims['aud'], issuer.audience)
  t.equal(rs.expiresAt.getTime(), (seconds() + 300) * 1000)

  const es = await verifier.verify(issuer.sign({ sub: 'bob' }, { key: 'ec' }))
  t.equal(es.subject, 'bob')
  const es384 = await verifier.verify(issuer.sign({ sub: 'carol' }, { key: 'ec384' }))
  t.equal(es384.subject, 'carol')

  t.equal(issuer.discoveryFetches() - discoveries, 1)
  t.equal(issuer.jwksFetches() - fetches, 1)
})

t.test('PS256, RS384 and RS512 with an RSA key that does not pin its alg', async (t) => {
  const idp = await startTestOidcIssuer({ now })
  t.teardown(() => idp.close())
  const { alg: _alg, ...jwk } = idp.publicJwk('rsa')
  idp.setJwks({ keys: [jwk] })
  const verifier = verifierFor(idp)
  for (const alg of ['PS256', 'RS384', 'RS512']) t.equal((await verifier.verify(idp.sign({}, { alg }))).subject, 'user-1', alg)
})

t.test('looksLikeJwt tells a JWT from an API key', async (t) => {
  const verifier = verifierFor(issuer)
  t.equal(verifier.looksLikeJwt(issuer.sign()), true)
  t.equal(verifier.looksLikeJwt(issuer.sign({}, { alg: 'none' })), true, 'alg none still looks like one (verify refuses it)')
  t.equal(verifier.looksLikeJwt(`orchard_abcdefghijkl_${'A'.repeat(43)}`), false)
  t.equal(verifier.looksLikeJwt('bootstrap-key-0123456789abcdef'), false)
  t.equal(verifier.looksLikeJwt('a.b'), false)
  t.equal(verifier.looksLikeJwt('a.b.c.d'), false)
  t.equal(verifier.looksLikeJwt('.b.c'), false)
  t.equal(verifier.looksLikeJwt(`${'a'.repeat(17_000)}.b.c`), false)
})

t.test('exp, nbf and iat with the clock skew', async (t) => {
  const verifier = verifierFor(issuer) // skew 60 s
  t.ok(await verifier.verify(issuer.sign({ exp: seconds() - 59 })), 'expired 59 s ago: within skew')
  await rejects(t, verifier, issuer.sign({ exp: seconds() - 60 }), 'expired', 'expired 60 s ago')
  await rejects(t, verifier, issuer.sign({ exp: seconds() - 3600 }), 'expired', 'expired an hour ago')
  t.ok(await verifier.verify(issuer.sign({ nbf: seconds() + 59 })), 'nbf in 59 s: within skew')
  await rejects(t, verifier, issuer.sign({ nbf: seconds() + 120 }), 'not_yet_valid', 'nbf in 2 min')
  await rejects(t, verifier, issuer.sign({ iat: seconds() + 120 }), 'not_yet_valid', 'issued 2 min in the future')
  await rejects(t, verifier, issuer.sign({ exp: undefined }), 'malformed', 'no exp')
  await rejects(t, verifier, issuer.sign({ exp: String(seconds() + 60) }), 'malformed', 'exp as a string')
  await rejects(t, verifier, issuer.sign({ nbf: 'soon' }), 'malformed', 'nbf as a string')

  const strict = verifierFor(issuer, { clockSkewSeconds: 0 })
  await rejects(t, strict, issuer.sign({ exp: seconds() }), 'expired', 'exp = now without skew')
  t.ok(await strict.verify(issuer.sign({ exp: seconds() + 1 })))

  // The token's own clock: a token valid now expires when the clock moves past exp + skew.
  const token = issuer.sign()
  t.ok(await verifier.verify(token))
  advance(359_000)
  t.ok(await verifier.verify(token), 'exp + 59 s')
  advance(1_000)
  await rejects(t, verifier, token, 'expired', 'exp + 60 s')
})

t.test('sub is required', async (t) => {
  const verifier = verifierFor(issuer)
  await rejects(t, verifier, issuer.sign({ sub: undefined }), 'malformed', 'no sub')
  await rejects(t, verifier, issuer.sign({ sub: 42 }), 'malformed', 'sub as a number')
  await rejects(t, verifier, issuer.sign({ sub: '' }), 'malformed', 'empty sub')
})

t.test('audience, as a string or a list, in the token and in the options', async (t) => {
  const verifier = verifierFor(issuer)
  await rejects(t, verifier, issuer.sign({ aud: 'someone-else' }), 'wrong_audience', 'aud string')
  await rejects(t, verifier, issuer.sign({ aud: ['someone-else', 'another'] }), 'wrong_audience', 'aud list')
  await rejects(t, verifier, issuer.sign({ aud: [] }), 'wrong_audience', 'empty aud list')
  await rejects(t, verifier, issuer.sign({ aud: undefined }), 'wrong_audience', 'no aud')
  await rejects(t, verifier, issuer.sign({ aud: [issuer.audience, 7] }), 'malformed', 'aud list with a number')
  t.ok(await verifier.verify(issuer.sign({ aud: ['someone-else', issuer.audience] })), 'ours among others')

  const several = verifierFor(issuer, { audience: ['orchard-cli', issuer.audience] })
  t.ok(await several.verify(issuer.sign({ aud: 'orchard-cli' })))
  t.ok(await several.verify(issuer.sign({ aud: [issuer.audience] })))
  await rejects(t, several, issuer.sign({ aud: ['orchard'] }), 'wrong_audience', 'not a prefix match')
})

t.test('issuer', async (t) => {
  const verifier = verifierFor(issuer)
  await rejects(t, verifier, issuer.sign({ iss: 'https://login.example.org/realms/other' }), 'wrong_issuer', 'another issuer')
  await rejects(t, verifier, issuer.sign({ iss: `${issuer.issuer}/` }), 'wrong_issuer', 'trailing slash')
  await rejects(t, verifier, issuer.sign({ iss: undefined }), 'wrong_issuer', 'no iss')
})

t.test('algorithms: none, HMAC and algs that do not fit the key are refused', async (t) => {
  const verifier = verifierFor(issuer)
  await verifier.verify(issuer.sign()) // JWKS loaded
  const fetches = issuer.jwksFetches()
  const kids = issuer.kids()
  await rejects(t, verifier, issuer.sign({}, { alg: 'none' }), 'unsupported_algorithm', 'none')
  await rejects(t, verifier, issuer.sign({}, { alg: 'none', kid: undefined, header: { kid: undefined } }), 'unsupported_algorithm', 'none without kid')
  await rejects(t, verifier, issuer.sign({}, { alg: 'NONE' }), 'unsupported_algorithm', 'NONE')
  await rejects(t, verifier, issuer.sign({}, { alg: 'HS256' }), 'unsupported_algorithm', 'HS256 keyed with the public key')
  await rejects(t, verifier, issuer.sign({}, { alg: 'HS512', key: 'ec' }), 'unsupported_algorithm', 'HS512')
  await rejects(t, verifier, issuer.sign({}, { alg: 'ES512', key: 'ec' }), 'unsupported_algorithm', 'ES512 is not allowed')
  await rejects(t, verifier, issuer.sign({}, { alg: 'EdDSA' }), 'unsupported_algorithm', 'EdDSA is not allowed')
  await rejects(t, verifier, issuer.sign({}, { alg: 'constructor' }), 'unsupported_algorithm', 'a prototype member as alg')
  await rejects(t, verifier, issuer.sign({}, { alg: 'ES256', key: 'rsa' }), 'unsupported_algorithm', 'ES256 with an RSA kid')
  await rejects(t, verifier, issuer.sign({}, { alg: 'RS256', key: 'ec' }), 'unsupported_algorithm', 'RS256 with an EC kid')
  await rejects(t, verifier, issuer.sign({}, { alg: 'ES384', key: 'ec' }), 'unsupported_algorithm', 'ES384 with a P-256 key')
  await rejects(t, verifier, issuer.sign({}, { alg: 'ES256', key: 'ec384' }), 'unsupported_algorithm', 'ES256 with a P-384 key')
  await rejects(t, verifier, issuer.sign({}, { alg: 'PS256', key: 'rsa' }), 'unsupported_algorithm', 'PS256 with a key pinned to RS256')
  await rejects(t, verifier, issuer.sign({}, { header: { alg: undefined } }), 'malformed', 'no alg')
  await rejects(t, verifier, issuer.sign({}, { header: { alg: 256 } }), 'malformed', 'alg as a number')
  await rejects(t, verifier, issuer.sign({}, { header: { crit: ['exp'], exp: 1 } }), 'malformed', 'crit')
  await rejects(t, verifier, issuer.sign({}, { header: { kid: 1 } }), 'malformed', 'kid as a number')
  // A key in the header is never used: the token is checked against the JWKS key of its kid.
  await rejects(t, verifier, issuer.sign({}, { key: 'unknown', kid: kids.rsa, header: { jwk: issuer.publicJwk('unknown') } }), 'bad_signature', 'embedded jwk')
  t.equal(issuer.jwksFetches(), fetches, 'no refusal fetched the JWKS again')
})

t.test('signatures', async (t) => {
  const verifier = verifierFor(issuer)
  const token = issuer.sign({ sub: 'alice' })
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
  await rejects(t, verifier, withPayload(token, { ...payload, sub: 'mallory' }), 'bad_signature', 'tampered payload')
  const ecToken = issuer.sign({ sub: 'alice' }, { key: 'ec' })
  await rejects(t, verifier, withPayload(ecToken, { ...payload, sub: 'mallory' }), 'bad_signature', 'tampered ES256 payload')

  const [h, p, s] = token.split('.') as [string, string, string]
  const flipped = Buffer.from(s, 'base64url')
  flipped[10] = flipped[10]! ^ 1
  await rejects(t, verifier, `${h}.${p}.${flipped.toString('base64url')}`, 'bad_signature', 'one bit flipped')
  await rejects(t, verifier, `${h}.${p}.`, 'bad_signature', 'no signature')
  const [eh, ep, es] = ecToken.split('.') as [string, string, string]
  await rejects(t, verifier, `${eh}.${ep}.${Buffer.from(es, 'base64url').subarray(0, 63).toString('base64url')}`, 'bad_signature', 'short ES256 signature')
  await rejects(
    t,
    verifier,
    `${eh}.${ep}.${Buffer.concat([Buffer.from([0x30, 0x44]), Buffer.from(es, 'base64url')]).toString('base64url')}`,
    'bad_signature',
    'ES256 signature as DER-ish bytes',
  )
  await rejects(t, verifier, issuer.sign({}, { key: 'unknown', kid: issuer.kids().rsa }), 'bad_signature', 'another key behind a known kid')
})

t.test('malformed tokens never reach the JWKS', async (t) => {
  const verifier = verifierFor(issuer)
  const fetches = issuer.jwksFetches()
  const good = issuer.sign()
  const [h, p, s] = good.split('.') as [string, string, string]
  await rejects(t, verifier, '', 'malformed', 'empty')
  await rejects(t, verifier, undefined as unknown as string, 'malformed', 'not a string')
  await rejects(t, verifier, `${h}.${p}`, 'malformed', '2 parts')
  await rejects(t, verifier, `${h}.${p}.${s}.${s}`, 'malformed', '4 parts')
  await rejects(t, verifier, `${h}.${p}.${s}.${s}.${s}`, 'malformed', 'a JWE (5 parts)')
  await rejects(t, verifier, `.${p}.${s}`, 'malformed', 'empty header')
  await rejects(t, verifier, `${h}..${s}`, 'malformed', 'empty payload')
  await rejects(t, verifier, `${h}!.${p}.${s}`, 'malformed', 'bad base64 in the header')
  await rejects(t, verifier, `${h}.${p}+/.${s}`, 'malformed', 'base64 (not base64url) in the payload')
  await rejects(t, verifier, `${h}.${p}=.${s}`, 'malformed', 'padding')
  await rejects(t, verifier, `${h}.${p}.A`, 'malformed', 'signature of impossible base64 length')
  await rejects(t, verifier, `${segment('hello')}.${p}.${s}`, 'malformed', 'non-JSON header')
  await rejects(t, verifier, `${h}.${segment('{"sub":')}.${s}`, 'malformed', 'non-JSON payload')
  await rejects(t, verifier, `${h}.${segment([1, 2])}.${s}`, 'malformed', 'payload is an array')
  await rejects(t, verifier, `${segment('"RS256"')}.${p}.${s}`, 'malformed', 'header is a string')
  await rejects(t, verifier, `${segment(null)}.${p}.${s}`, 'malformed', 'header is null')
  await rejects(t, verifier, `${h}.${Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url')}.${s}`, 'malformed', 'payload is not UTF-8')
  // 'e30' is '{}'; 'e31' decodes to the same bytes with other (non-zero) trailing bits.
  t.equal(Buffer.from('e30', 'base64url').toString(), '{}')
  await rejects(t, verifier, `${h}.e31.${s}`, 'malformed', 'non-canonical base64url')
  await rejects(t, verifier, issuer.sign({ padding: 'x'.repeat(17_000) }), 'malformed', 'huge token')
  t.equal(issuer.jwksFetches(), fetches)
})

t.test('an unknown kid refetches once, then is unknown_key', async (t) => {
  const verifier = verifierFor(issuer)
  await verifier.verify(issuer.sign())
  const fetches = issuer.jwksFetches()
  advance(60_000)
  const error = await rejects(t, verifier, issuer.sign({}, { key: 'unknown' }), 'unknown_key')
  t.match(error?.message, /unknown-1/)
  t.equal(issuer.jwksFetches() - fetches, 1, 'one refetch')
  await rejects(t, verifier, issuer.sign({}, { key: 'unknown' }), 'unknown_key', 'again, at once')
  t.equal(issuer.jwksFetches() - fetches, 1, 'no second refetch within minimumRefetchMs')
})

t.test('forged kids cost at most one JWKS fetch per minimumRefetchMs', async (t) => {
  const verifier = verifierFor(issuer, { minimumRefetchMs: 60_000 })
  await verifier.verify(issuer.sign())
  const base = issuer.jwksFetches()
  const forged = (count: number, from: number) => Array.from({ length: count }, (_, i) => issuer.sign({}, { key: 'unknown', kid: `forged-${from + i}` }))
  const allUnknown = async (tokens: string[]) => {
    const results = await Promise.allSettled(tokens.map((token) => verifier.verify(token)))
    return results.every((r) => r.status === 'rejected' && r.reason instanceof TokenRejected && r.reason.reason === 'unknown_key')
  }

  t.ok(await allUnknown(forged(20, 0)), 'right after the first fetch')
  t.equal(issuer.jwksFetches() - base, 0, 'no refetch within minimumRefetchMs of the first fetch')

  advance(60_000)
  t.ok(await allUnknown(forged(50, 100)), '50 concurrent forged kids')
  t.equal(issuer.jwksFetches() - base, 1, 'they shared one refetch')
  for (const token of forged(20, 200)) await rejects(t, verifier, token, 'unknown_key', 'sequential forged kid')
  advance(59_999)
  t.ok(await allUnknown(forged(20, 300)))
  t.equal(issuer.jwksFetches() - base, 1, 'still one: the window has not passed')

  advance(1)
  t.ok(await allUnknown(forged(20, 400)))
  t.equal(issuer.jwksFetches() - base, 2, 'the next window allows one more')
  t.ok(await verifier.verify(issuer.sign()), 'real tokens are unaffected')
  t.equal(issuer.jwksFetches() - base, 2)
})

t.test('key rotation is picked up', async (t) => {
  const idp = await startTestOidcIssuer({ now, lifetimeSeconds: 3600 })
  t.teardown(() => idp.close())
  const verifier = verifierFor(idp)
  const old = idp.sign({ sub: 'before' })
  t.ok(await verifier.verify(old))
  t.equal(idp.jwksFetches(), 1)

  const kids = idp.rotateKeys()
  t.same(kids, { rsa: 'rsa-2', ec: 'ec-2', ec384: 'ec384-2' })
  t.ok(await verifier.verify(old), 'the cached JWKS still verifies the old key')
  advance(10_000)
  await rejects(t, verifier, idp.sign({ sub: 'after' }), 'unknown_key', 'a new kid 10 s after the last fetch')
  t.equal(idp.jwksFetches(), 1, 'rate-limited')

  advance(50_000)
  t.equal((await verifier.verify(idp.sign({ sub: 'after' }))).subject, 'after', 'the new RSA kid, once the window passed')
  t.equal(idp.jwksFetches(), 2)
  t.equal((await verifier.verify(idp.sign({}, { key: 'ec' }))).subject, 'user-1', 'the new EC kid, from the same refetch')
  t.equal(idp.jwksFetches(), 2)
  await rejects(t, verifier, old, 'unknown_key', 'the retired key')

  // Rotation keeping the previous keys, found when the cache expires (cacheTtlMs, default 10 min).
  const second = idp.sign({ sub: 'second' })
  idp.rotateKeys({ keepPrevious: true })
  advance(10 * 60_000)
  t.equal((await verifier.verify(idp.sign({ sub: 'third' }))).subject, 'third', 'rsa-3')
  t.equal((await verifier.verify(second)).subject, 'second', 'rsa-2 is still published')
  t.equal(idp.jwksFetches(), 3, 'refetched once: the TTL had passed')
})

t.test('tokens without kid', async (t) => {
  const idp = await startTestOidcIssuer({ now })
  t.teardown(() => idp.close())
  const noKid = (key: 'rsa' | 'ec') => idp.sign({}, { key, header: { kid: undefined } })
  const jwk = (name: 'rsa' | 'ec' | 'ec384' | 'unknown', extra: Record<string, unknown> = {}) => ({ ...idp.publicJwk(name), kid: undefined, ...extra })

  idp.setJwks({ keys: [jwk('rsa'), jwk('ec')] })
  let verifier = verifierFor(idp)
  t.ok(await verifier.verify(noKid('rsa')), 'the one RSA key')
  t.ok(await verifier.verify(noKid('ec')), 'the one EC key')

  idp.setJwks({ keys: [jwk('rsa'), jwk('unknown')] })
  verifier = verifierFor(idp)
  await rejects(t, verifier, noKid('rsa'), 'unknown_key', 'two RSA keys')

  idp.setJwks({ keys: [jwk('rsa'), jwk('unknown', { use: 'enc' }), jwk('ec384', { use: 'sig' })] })
  verifier = verifierFor(idp)
  t.ok(await verifier.verify(noKid('rsa')), 'encryption keys do not count')
  await rejects(t, verifier, noKid('ec'), 'unsupported_algorithm', 'the only EC key is P-384')

  idp.setJwks({ keys: [jwk('ec')] })
  verifier = verifierFor(idp)
  await rejects(t, verifier, noKid('rsa'), 'unknown_key', 'no RSA key at all')
})

t.test('the JWKS keeps only signature keys it can use', async (t) => {
  const idp = await startTestOidcIssuer({ now })
  t.teardown(() => idp.close())
  const rsa = idp.publicJwk('rsa')
  const ec = idp.publicJwk('ec')
  idp.setJwks({
    keys: [
      { ...rsa, use: 'enc' },
      { ...ec, key_ops: ['encrypt'] },
      { ...idp.publicJwk('ec384'), alg: 'ECDH-ES' },
      { kty: 'oct', kid: 'hmac', k: Buffer.from('secret').toString('base64url') },
      { kty: 'RSA', kid: 'small', n: Buffer.alloc(128, 0xc5).toString('base64url'), e: 'AQAB' },
      { kty: 'EC', kid: 'off-curve', crv: 'P-256', x: ec['x'], y: Buffer.alloc(32, 1).toString('base64url') },
      'not a key',
      null,
    ],
  })
  const verifier = verifierFor(idp)
  await rejects(t, verifier, idp.sign(), 'unknown_key', 'use enc')
  await rejects(t, verifier, idp.sign({}, { key: 'ec' }), 'unknown_key', 'key_ops without verify')
  await rejects(t, verifier, idp.sign({}, { key: 'ec384' }), 'unknown_key', 'alg of another kind')
  await rejects(t, verifier, idp.sign({}, { alg: 'HS256', kid: 'hmac' }), 'unsupported_algorithm', 'HS256 with an oct key')
  await rejects(t, verifier, idp.sign({}, { alg: 'RS256', kid: 'hmac' }), 'unknown_key', 'RS256 naming an oct key')
  await rejects(t, verifier, idp.sign({}, { kid: 'small' }), 'unknown_key', 'a 1024-bit RSA key')
  await rejects(t, verifier, idp.sign({}, { key: 'ec', kid: 'off-curve' }), 'unknown_key', 'an EC point off the curve')

  idp.setJwks({ keys: [{ ...rsa, key_ops: ['verify'] }] })
  advance(60_000)
  t.ok(await verifier.verify(idp.sign()), 'key_ops with verify')
})

t.test('only the public members of a JWKS key reach jose', async (t) => {
  const idp = await startTestOidcIssuer({ now })
  t.teardown(() => idp.close())
  // A careless IdP: a private member, a non-boolean ext, a repeated key_ops entry.
  idp.setJwks({ keys: [{ ...idp.publicJwk('rsa'), d: 'AQAB', ext: 'yes', key_ops: ['verify', 'verify'] }] })
  t.equal((await verifierFor(idp).verify(idp.sign({ sub: 'dana' }))).subject, 'dana')
})

t.test('issuer unavailable: jwks_unavailable, a fresh cache keeps working, failures are not cached', async (t) => {
  const idp = await startTestOidcIssuer({ now })
  t.teardown(() => idp.close())

  idp.setDown(true)
  const cold = verifierFor(idp)
  const error = await rejects(t, cold, idp.sign(), 'jwks_unavailable', 'discovery answers 503')
  t.match(error?.message, /HTTP 503/)
  await rejects(t, cold, idp.sign(), 'jwks_unavailable', 'asks again')
  t.equal(idp.discoveryFetches(), 2, 'the failure was not cached')
  idp.setDown(false)
  t.ok(await cold.verify(idp.sign()), 'back up')

  const warm = verifierFor(idp)
  t.ok(await warm.verify(idp.sign()))
  idp.setDown(true)
  advance(9 * 60_000)
  t.ok(await warm.verify(idp.sign()), 'the cached JWKS within cacheTtlMs')
  await rejects(t, warm, idp.sign({}, { key: 'unknown' }), 'jwks_unavailable', 'unknown kid: the refetch fails')
  t.ok(await warm.verify(idp.sign()), 'the failed refetch did not drop the fresh cache')
  advance(60_000)
  await rejects(t, warm, idp.sign(), 'jwks_unavailable', 'cache expired, issuer down')
  idp.setDown(false)
  t.ok(await warm.verify(idp.sign()))

  idp.setJwks('not json at all')
  const garbled = verifierFor(idp)
  await rejects(t, garbled, idp.sign(), 'jwks_unavailable', 'a JWKS that is not JSON')
  idp.setJwks({ keys: 'none' })
  await rejects(t, garbled, idp.sign(), 'jwks_unavailable', 'a JWKS without a keys array')
  idp.setJwks(null)
  t.ok(await garbled.verify(idp.sign()))

  await idp.close()
  const closed = verifierFor(idp)
  await rejects(t, closed, idp.sign(), 'jwks_unavailable', 'connection refused')
})

t.test('discovery and fetch options', async (t) => {
  const direct = verifierFor(issuer, { jwksUrl: issuer.jwksUrl })
  const discoveries = issuer.discoveryFetches()
  t.ok(await direct.verify(issuer.sign()))
  t.equal(issuer.discoveryFetches(), discoveries, 'an explicit jwksUrl skips discovery')

  const requests: Array<{ url: string; signal: unknown }> = []
  const forward: typeof fetch = async (input, init) => {
    requests.push({ url: input instanceof Request ? input.url : String(input), signal: init?.signal })
    return fetch(input, init)
  }
  t.ok(await verifierFor(issuer, { fetch: forward }).verify(issuer.sign()))
  t.same(
    requests.map((r) => r.url),
    [`${issuer.url}/.well-known/openid-configuration`, issuer.jwksUrl],
  )
  t.ok(
    requests.every((r) => r.signal instanceof AbortSignal),
    'every request has a timeout signal',
  )

  const timingOut: typeof fetch = async () => {
    throw new DOMException('The operation was aborted due to timeout', 'TimeoutError')
  }
  const timeout = await rejects(t, verifierFor(issuer, { fetch: timingOut, timeoutMs: 10 }), issuer.sign(), 'jwks_unavailable', 'timeout')
  t.match(timeout?.message, /timeout/)

  const lying: typeof fetch = async (input) =>
    (input instanceof Request ? input.url : String(input)).endsWith('/openid-configuration')
      ? Response.json({ issuer: 'https://elsewhere.example', jwks_uri: issuer.jwksUrl })
      : fetch(input)
  await rejects(t, verifierFor(issuer, { fetch: lying }), issuer.sign(), 'jwks_unavailable', 'discovery names another issuer')

  const huge: typeof fetch = async () => new Response(`{"keys":[${'0,'.repeat(300_000)}0]}`, { status: 200 })
  await rejects(t, verifierFor(issuer, { fetch: huge, jwksUrl: issuer.jwksUrl }), issuer.sign(), 'jwks_unavailable', 'a JWKS over 512 KiB')

  const downgrade = createOidcVerifier({
    issuer: 'https://login.example.org/realms/uni',
    audience: 'orchard-admin',
    now,
    fetch: async () => Response.json({ issuer: 'https://login.example.org/realms/uni', jwks_uri: 'http://login.example.org/certs' }),
  })
  const token = issuer.sign({ iss: 'https://login.example.org/realms/uni' })
  await rejects(t, downgrade, token, 'jwks_unavailable', 'an https issuer with an http jwks_uri')

  t.throws(() => createOidcVerifier({ issuer: 'not a url', audience: 'x' }), TypeError)
  t.throws(() => createOidcVerifier({ issuer: issuer.issuer, audience: [] }), TypeError)
  t.throws(() => createOidcVerifier({ issuer: issuer.issuer, audience: 'x', clockSkewSeconds: -1 }), TypeError)
})

t.test('concurrent verifications share one discovery and one JWKS fetch', async (t) => {
  const idp = await startTestOidcIssuer({ now })
  t.teardown(() => idp.close())
  const verifier = verifierFor(idp)
  const tokens = Array.from({ length: 25 }, (_, i) => idp.sign({ sub: `user-${i}` }, { key: i % 2 === 0 ? 'rsa' : 'ec' }))
  const results = await Promise.all(tokens.map((token) => verifier.verify(token)))
  t.same(
    results.map((r) => r.subject),
    tokens.map((_, i) => `user-${i}`),
  )
  t.equal(idp.discoveryFetches(), 1)
  t.equal(idp.jwksFetches(), 1)

  // After the TTL, concurrent verifications share the refetch too.
  advance(10 * 60_000)
  const again = await Promise.allSettled(Array.from({ length: 10 }, () => verifier.verify(idp.sign())))
  t.ok(again.every((r) => r.status === 'fulfilled'))
  t.equal(idp.jwksFetches(), 2)
  t.equal(idp.discoveryFetches(), 1, 'the discovered jwks_uri is reused')
})
