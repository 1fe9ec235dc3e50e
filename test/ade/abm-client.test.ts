// The production DEP client against the fake ABM server: every call, session reuse and
// rotation, and Apple's error strings mapped to codes.
import t from 'tap'
import { AbmError, createAbmClient } from '../../src/ade/abm-client.js'
import { startFakeAbm, type FakeAbm } from '../helpers/fake-abm.js'

function clientFor(abm: FakeAbm) {
  const c = abm.credentials
  return createAbmClient({
    baseUrl: `${abm.url}/`,
    credentials: async () => ({ consumerKey: c.consumer_key, consumerSecret: c.consumer_secret, accessToken: c.access_token, accessSecret: c.access_secret }),
  })
}

t.test('every call, one session', async (t) => {
  const abm = await startFakeAbm({ serverName: 'Orchard test server' })
  t.teardown(() => abm.close())
  const serials = abm.addDevices(3).map((d) => d.serial_number)
  const client = clientFor(abm)
  t.match(await client.account(), { server_name: 'Orchard test server' })
  const page = await client.fetchDevices(null, 2)
  t.equal(page.devices.length, 2)
  t.equal(page.moreToFollow, true)
  const rest = await client.fetchDevices(page.cursor, 2)
  t.same(
    rest.devices.map((d) => d.serial_number),
    [serials[2]],
  )
  t.equal(rest.moreToFollow, false)
  abm.modifyDevice(serials[0]!, { color: 'blue' })
  const delta = await client.syncDevices(rest.cursor, 100)
  t.match(delta.devices, [{ serial_number: serials[0], op_type: 'modified', color: 'blue' }])
  t.match(await client.deviceDetails([serials[1]!]), { [serials[1]!]: { serial_number: serials[1] } })

  const defined = await client.defineProfile({ profile_name: 'P', url: 'https://mdm.test/enroll/ade' })
  t.match(await client.getProfile(defined.profileUuid), { profile_name: 'P', url: 'https://mdm.test/enroll/ade' })
  t.match(await client.assignProfile(defined.profileUuid, [serials[0]!, 'NOPE']), {
    profileUuid: defined.profileUuid,
    devices: { [serials[0]!]: 'SUCCESS', NOPE: 'NOT_ACCESSIBLE' },
    retryAfterSeconds: null,
  })
  t.same(await client.removeProfile([serials[0]!]), { [serials[0]!]: 'SUCCESS' })
  t.same(await client.disownDevices([serials[2]!]), { [serials[2]!]: 'SUCCESS' })
  t.equal(client.sessionsStarted(), 1)
  t.ok(
    abm.requests.every((r) => r.path === '/session' || r.session !== undefined),
    'every call carried X-ADM-Auth-Session',
  )
})

t.test('a rotated session is used from the next call on', async (t) => {
  const abm = await startFakeAbm({ rotateSessions: true })
  t.teardown(() => abm.close())
  const client = clientFor(abm)
  for (let i = 0; i < 4; i++) await client.account()
  t.equal(client.sessionsStarted(), 1, 'no new /session: the rotated one was taken up')
})

t.test("Apple's error strings become codes", async (t) => {
  const abm = await startFakeAbm()
  t.teardown(() => abm.close())
  const client = clientFor(abm)
  const failing = async (status: number, body: string, headers: Record<string, string> = {}) => {
    abm.failNext('/account', { status, body, headers })
    try {
      await client.account()
    } catch (error) {
      return error as AbmError
    }
    throw new Error('no error')
  }
  t.match(await failing(403, 'T_C_NOT_SIGNED'), { code: 'terms_not_signed', details: { status: 403, appleCode: 'T_C_NOT_SIGNED' } })
  t.match(await failing(400, '"EXPIRED_CURSOR"'), { code: 'expired_cursor' }, 'quoted bodies too')
  t.match(await failing(400, 'INVALID_CURSOR'), { code: 'invalid_cursor' })
  t.match(await failing(400, 'EXHAUSTED_CURSOR'), { code: 'exhausted_cursor' })
  t.match(await failing(429, 'TOO_MANY_REQUESTS', { 'retry-after': '30' }), { code: 'throttled', details: { retryAfterSeconds: 30 } })
  t.match(await failing(503, 'SERVICE_UNAVAILABLE'), { code: 'throttled' })
  t.match(await failing(500, 'oops'), { code: 'server_error' })
  t.match(await failing(400, 'MALFORMED_REQUEST_BODY'), { code: 'bad_request', message: /MALFORMED_REQUEST_BODY/ })
  abm.rejectToken = true
  abm.expireSessions()
  t.match(await failing(401, 'UNAUTHORIZED'), { code: 'token_rejected' }, 'a 401, then /session refused: the token does not work')

  const dead = createAbmClient({
    baseUrl: 'http://127.0.0.1:9',
    credentials: async () => ({ consumerKey: 'k', consumerSecret: 's', accessToken: 't', accessSecret: 'a' }),
    timeoutMs: 2_000,
  })
  await t.rejects(dead.account(), { code: 'unreachable' })
})
