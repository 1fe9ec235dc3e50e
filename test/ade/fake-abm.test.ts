// Self-test of the fake ABM/ASM DEP server, with raw fetch and an OAuth 1.0a signer of its own.
import { createHmac, randomBytes } from 'node:crypto'
import t from 'tap'
import { startFakeAbm, type FakeAbm, type FakeAbmCredentials, type FakeAbmOptions } from '../helpers/fake-abm.js'

const pct = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

interface SignOptions {
  nonce?: string
  timestamp?: number
  consumerKey?: string
  consumerSecret?: string
  method?: string
}

/** OAuth 1.0a HMAC-SHA1 Authorization header for a GET of `url` (RFC 5849 §3.4, §3.5.1). */
function oauthHeader(
  creds: Pick<FakeAbmCredentials, 'consumer_key' | 'consumer_secret' | 'access_token' | 'access_secret'>,
  url: string,
  o: SignOptions = {},
): string {
  const target = new URL(url)
  const oauth: Record<string, string> = {
    oauth_consumer_key: o.consumerKey ?? creds.consumer_key,
    oauth_token: creds.access_token,
    oauth_signature_method: 'HMAC-SHA1',
    oauth_timestamp: String(o.timestamp ?? Math.floor(Date.now() / 1000)),
    oauth_nonce: o.nonce ?? randomBytes(12).toString('hex'),
    oauth_version: '1.0',
  }
  const normalized = [...Object.entries(oauth), ...target.searchParams]
    .map(([k, v]) => [pct(k), pct(v)])
    .sort(([ak = '', av = ''], [bk = '', bv = '']) => (ak === bk ? (av < bv ? -1 : 1) : ak < bk ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const base = `${o.method ?? 'GET'}&${pct(`${target.protocol}//${target.host}${target.pathname}`)}&${pct(normalized)}`
  const key = `${pct(o.consumerSecret ?? creds.consumer_secret)}&${pct(creds.access_secret)}`
  oauth['oauth_signature'] = createHmac('sha1', key).update(base).digest('base64')
  return `OAuth realm="ADM", ${Object.entries(oauth)
    .map(([k, v]) => `${pct(k)}="${pct(v)}"`)
    .join(', ')}`
}

const protocol = { 'X-Server-Protocol-Version': '7' }

async function getSession(fake: FakeAbm, o: SignOptions = {}): Promise<Response> {
  return fetch(`${fake.url}/session`, { headers: { ...protocol, Authorization: oauthHeader(fake.credentials, `${fake.url}/session`, o) } })
}

async function login(fake: FakeAbm): Promise<string> {
  const res = await getSession(fake)
  const json = (await res.json()) as { auth_session_token: string }
  return json.auth_session_token
}

interface Answer {
  status: number
  text: string
  json: any
  headers: Headers
}

async function call(fake: FakeAbm, method: string, path: string, session: string | undefined, body?: unknown, raw?: string): Promise<Answer> {
  const headers: Record<string, string> = { ...protocol, 'Content-Type': 'application/json;charset=UTF8' }
  if (session !== undefined) headers['X-ADM-Auth-Session'] = session
  const res = await fetch(`${fake.url}${path}`, {
    method,
    headers,
    ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, text, json, headers: res.headers }
}

async function start(t: { teardown(fn: () => unknown): void }, options?: FakeAbmOptions): Promise<FakeAbm> {
  const fake = await startFakeAbm(options)
  t.teardown(() => fake.close())
  return fake
}

t.test('the test signer reproduces the OAuth Core 1.0 Appendix A.5 example signature', async (t) => {
  const header = oauthHeader(
    { consumer_key: 'dpf43f3p2l4k3l03', consumer_secret: 'kd94hf93k423kf44', access_token: 'nnch734d00sl2jdk', access_secret: 'pfkkdhi9sl3r4s00' },
    'http://photos.example.net/photos?file=vacation.jpg&size=original',
    { nonce: 'kllo9940pd9333jh', timestamp: 1191242096 },
  )
  t.match(header, /oauth_signature="tR3%2BTy81lMeYAr%2FFid0kMTYa%2FWM%3D"/)
})

t.test('GET /session with a correct signature', async (t) => {
  const fake = await start(t)
  const res = await getSession(fake)
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'application/json;charset=UTF8')
  const { auth_session_token: token } = (await res.json()) as { auth_session_token: string }
  t.ok(token.length > 10)
  t.equal(fake.sessionsIssued(), 1)
  const account = await call(fake, 'GET', '/account', token)
  t.equal(account.status, 200)
  t.match(account.json, { server_name: 'Orchard Test MDM', org_name: 'Example Org', org_type: 'org', urls: Array })
  t.ok(account.json.urls.some((u: { uri: string }) => u.uri === '/server/devices'))
  t.match(
    fake.requests.map((r) => [r.method, r.path, r.status]),
    [
      ['GET', '/session', 200],
      ['GET', '/account', 200],
    ],
  )
  t.equal(fake.requests[1]?.session, token)
})

t.test('GET /session refusals', async (t) => {
  const fake = await start(t, { credentials: { consumer_key: 'CK_fixed' } })
  t.equal(fake.credentials.consumer_key, 'CK_fixed')
  const bad = await getSession(fake, { consumerSecret: 'wrong' })
  t.equal(bad.status, 401, 'bad signature')
  t.equal(await bad.text(), '{"error":"unauthorized"}')
  t.equal((await getSession(fake, { consumerKey: 'CK_other' })).status, 401, 'wrong consumer key')
  t.equal((await getSession(fake, { timestamp: Math.floor(Date.now() / 1000) - 600 })).status, 401, 'stale timestamp')
  t.equal((await getSession(fake, { nonce: 'once' })).status, 200)
  t.equal((await getSession(fake, { nonce: 'once' })).status, 401, 'replayed nonce')
  t.equal((await fetch(`${fake.url}/session`, { headers: protocol })).status, 401, 'no Authorization')
  const noVersion = await fetch(`${fake.url}/session`, { headers: { Authorization: oauthHeader(fake.credentials, `${fake.url}/session`) } })
  t.equal(noVersion.status, 400)
  t.equal(await noVersion.text(), 'PROTOCOL_VERSION_REQUIRED')
  fake.rejectToken = true
  const rejected = await getSession(fake)
  t.equal(rejected.status, 401)
  t.equal(await rejected.text(), 'UNAUTHORIZED')
  t.equal(fake.sessionsIssued(), 1)
})

t.test('session checks and rotation', async (t) => {
  const fake = await start(t)
  t.equal((await call(fake, 'GET', '/account', undefined)).text, 'UNAUTHORIZED')
  t.equal((await call(fake, 'GET', '/account', 'made-up')).status, 401)
  const token = await login(fake)
  fake.expireSessions()
  const stale = await call(fake, 'GET', '/account', token)
  t.equal(stale.status, 401)
  t.equal(stale.headers.get('content-type'), 'text/plain;charset=UTF8')
  t.equal((await call(fake, 'GET', '/nope', await login(fake))).text, 'NOT_FOUND')

  const rotating = await start(t, { rotateSessions: true })
  const first = await login(rotating)
  const answer = await call(rotating, 'GET', '/account', first)
  const second = answer.headers.get('x-adm-auth-session')
  t.ok(second && second !== first, 'a new session header')
  t.equal((await call(rotating, 'GET', '/account', first)).status, 401, 'old session gone')
  t.equal((await call(rotating, 'GET', '/account', second!)).status, 200)
})

t.test('fetch pages through every device, then the final cursor is exhausted', async (t) => {
  const fake = await start(t)
  const added = fake.addDevices(2500)
  t.equal(added[0]?.serial_number, 'FAKE00000001')
  t.match(added[0], { device_family: 'iPad', os: 'iOS', profile_status: 'empty' })
  const token = await login(fake)
  const seen: string[] = []
  const more: boolean[] = []
  let cursor: string | undefined
  do {
    const page = await call(fake, 'POST', '/server/devices', token, { limit: 1000, ...(cursor ? { cursor } : {}) })
    t.equal(page.status, 200)
    seen.push(...page.json.devices.map((d: { serial_number: string }) => d.serial_number))
    more.push(page.json.more_to_follow)
    t.ok(!Number.isNaN(Date.parse(page.json.fetched_until)))
    cursor = page.json.cursor
  } while (more.at(-1))
  t.same(more, [true, true, false])
  t.equal(seen.length, 2500)
  t.equal(new Set(seen).size, 2500)
  t.same(seen, [...seen].sort())
  const exhausted = await call(fake, 'POST', '/server/devices', token, { cursor })
  t.equal(exhausted.status, 400)
  t.equal(exhausted.text, 'EXHAUSTED_CURSOR')
  t.equal((await call(fake, 'POST', '/server/devices', token, { cursor: 'garbage!' })).text, 'INVALID_CURSOR')
  t.equal((await call(fake, 'POST', '/server/devices', token, { limit: 5000 })).json.devices.length, 1000, 'limit clamped')
  t.equal((await call(fake, 'POST', '/server/devices', token, {})).json.devices.length, 100, 'default limit')
  t.equal((await call(fake, 'POST', '/server/devices', token, undefined, '{nope')).text, 'MALFORMED_REQUEST_BODY')
})

t.test('sync returns the changes after the cursor, and cursors expire', async (t) => {
  let clock = Date.now()
  const fake = await start(t, { now: () => new Date(clock) })
  fake.addDevices(3)
  const token = await login(fake)
  const fetched = await call(fake, 'POST', '/server/devices', token, {})
  t.equal(fetched.json.more_to_follow, false)
  t.equal((await call(fake, 'POST', '/devices/sync', token, {})).text, 'CURSOR_REQUIRED')
  fake.modifyDevice('FAKE00000001', { asset_tag: 'A-1' })
  fake.removeDevice('FAKE00000002')
  fake.addDevices([{ serial_number: 'C02XYZ', os: 'OSX', device_family: 'Mac', model: 'MacBook Air' }])
  const first = await call(fake, 'POST', '/devices/sync', token, { cursor: fetched.json.cursor, limit: 2 })
  t.equal(first.status, 200)
  t.match(first.json.devices, [
    { serial_number: 'FAKE00000001', op_type: 'modified', asset_tag: 'A-1' },
    { serial_number: 'FAKE00000002', op_type: 'deleted' },
  ])
  t.ok(!Number.isNaN(Date.parse(first.json.devices[0].op_date)))
  t.equal(first.json.more_to_follow, true)
  const second = await call(fake, 'POST', '/devices/sync', token, { cursor: first.json.cursor })
  t.match(second.json, { devices: [{ serial_number: 'C02XYZ', op_type: 'added', device_family: 'Mac' }], more_to_follow: false })
  const empty = await call(fake, 'POST', '/devices/sync', token, { cursor: second.json.cursor })
  t.match(empty.json, { devices: [], more_to_follow: false })

  fake.expireCursors()
  t.equal((await call(fake, 'POST', '/devices/sync', token, { cursor: empty.json.cursor })).text, 'EXPIRED_CURSOR')
  const fresh = await call(fake, 'POST', '/devices/sync', token, { cursor: (await call(fake, 'POST', '/server/devices', token, {})).json.cursor })
  t.equal(fresh.status, 200, 'cursors issued after expireCursors work')
  clock += 8 * 24 * 3600 * 1000
  const old = await call(fake, 'POST', '/devices/sync', token, { cursor: fresh.json.cursor })
  t.equal(old.status, 400)
  t.equal(old.text, 'EXPIRED_CURSOR', 'older than 7 days')
})

t.test('terms and conditions not signed', async (t) => {
  const fake = await start(t)
  fake.termsNotSigned = true
  const token = await login(fake)
  const res = await call(fake, 'GET', '/account', token)
  t.equal(res.status, 403)
  t.equal(res.text, 'T_C_NOT_SIGNED')
  t.equal((await call(fake, 'POST', '/server/devices', token, {})).text, 'T_C_NOT_SIGNED')
})

t.test('profiles: define, get, assign, remove', async (t) => {
  const fake = await start(t)
  fake.addDevices(3)
  const token = await login(fake)
  t.equal((await call(fake, 'POST', '/profile', token, { url: 'https://mdm.example/enroll' })).text, 'CONFIG_NAME_REQUIRED')
  t.equal((await call(fake, 'POST', '/profile', token, { profile_name: 'P' })).text, 'CONFIG_URL_REQUIRED')
  const defined = await call(fake, 'POST', '/profile', token, {
    profile_name: 'Orchard',
    url: 'https://mdm.example/enroll',
    is_supervised: true,
    devices: ['FAKE00000001'],
  })
  t.equal(defined.status, 200)
  const uuid: string = defined.json.profile_uuid
  t.match(uuid, /^[0-9A-F]{32}$/)
  t.same(defined.json.devices, { FAKE00000001: 'SUCCESS' })
  const got = await call(fake, 'GET', `/profile?profile_uuid=${uuid}`, token)
  t.same(got.json, { profile_name: 'Orchard', url: 'https://mdm.example/enroll', is_supervised: true, profile_uuid: uuid })
  t.equal((await call(fake, 'GET', '/profile?profile_uuid=NOPE', token)).text, 'PROFILE_NOT_FOUND')

  fake.throttleSerials.add('FAKE00000002')
  fake.failSerials.add('FAKE00000003')
  const assigned = await call(fake, 'PUT', '/profile/devices', token, {
    profile_uuid: uuid,
    devices: ['FAKE00000001', 'FAKE00000002', 'FAKE00000003', 'UNKNOWN1'],
  })
  t.same(assigned.json, {
    profile_uuid: uuid,
    devices: { FAKE00000001: 'SUCCESS', FAKE00000002: 'THROTTLED', FAKE00000003: 'FAILED', UNKNOWN1: 'NOT_ACCESSIBLE' },
    retry_after_seconds: 60,
  })
  fake.throttleSerials.clear()
  const retried = await call(fake, 'POST', '/profile/devices', token, { profile_uuid: uuid, devices: ['FAKE00000002'] })
  t.same(retried.json, { profile_uuid: uuid, devices: { FAKE00000002: 'SUCCESS' } })
  t.match(fake.devices.get('FAKE00000002'), { profile_uuid: uuid, profile_status: 'assigned', profile_assign_time: String })

  const removed = await call(fake, 'DELETE', '/profile/devices', token, { devices: ['FAKE00000002', 'UNKNOWN1'] })
  t.same(removed.json, { devices: { FAKE00000002: 'SUCCESS', UNKNOWN1: 'NOT_ACCESSIBLE' } })
  t.equal(fake.devices.get('FAKE00000002')?.profile_status, 'removed')
  t.equal(fake.devices.get('FAKE00000002')?.profile_uuid, undefined)
})

t.test('device details and disown', async (t) => {
  const fake = await start(t)
  fake.addDevices(2)
  const token = await login(fake)
  const cursor = (await call(fake, 'POST', '/server/devices', token, {})).json.cursor
  const details = await call(fake, 'POST', '/devices', token, { devices: ['FAKE00000001', 'NOPE'] })
  t.match(details.json.devices, {
    FAKE00000001: { serial_number: 'FAKE00000001', model: String },
    NOPE: { serial_number: 'NOPE', response_status: 'NOT_FOUND' },
  })
  t.equal((await call(fake, 'POST', '/devices', token, { devices: [] })).text, 'DEVICE_ID_REQUIRED')
  const disowned = await call(fake, 'POST', '/devices/disown', token, { devices: ['FAKE00000001', 'NOPE'] })
  t.same(disowned.json, { devices: { FAKE00000001: 'SUCCESS', NOPE: 'NOT_ACCESSIBLE' } })
  t.notOk(fake.devices.has('FAKE00000001'))
  const sync = await call(fake, 'POST', '/devices/sync', token, { cursor })
  t.match(sync.json.devices, [{ serial_number: 'FAKE00000001', op_type: 'deleted' }])
})

t.test('failNext queues one-shot failures per path, in order', async (t) => {
  const fake = await start(t)
  const token = await login(fake)
  fake.failNext('/account', { status: 429, body: 'TOO_MANY_REQUESTS', headers: { 'Retry-After': '2' } })
  fake.failNext('/account', { status: 503, body: 'SERVICE_UNAVAILABLE' })
  fake.failNext('/server/devices', { status: 400, body: 'EXPIRED_CURSOR' })
  const throttled = await call(fake, 'GET', '/account', token)
  t.equal(throttled.status, 429)
  t.equal(throttled.headers.get('retry-after'), '2')
  t.equal(throttled.text, 'TOO_MANY_REQUESTS')
  t.equal((await call(fake, 'GET', '/account', token)).status, 503)
  t.equal((await call(fake, 'GET', '/account', token)).status, 200)
  t.equal((await call(fake, 'POST', '/server/devices', token, {})).text, 'EXPIRED_CURSOR')
  t.equal((await call(fake, 'POST', '/server/devices', token, {})).status, 200)
  t.same(
    fake.requests.slice(1).map((r) => r.status),
    [429, 503, 200, 400, 200],
  )
})
