// Device identity and certificate binding: every bad request gets a 4xx (never 401, never
// 500) and changes nothing in the database.
import t from 'tap'
import { encodePlist } from '../../src/mdm/plist.js'
import { createDeviceCa, SimulatedDevice, injectTransport } from '../helpers/simulated-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { apiClient } from '../helpers/api.js'

t.test('rejected requests: right status, nothing changed', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_MDM_BODY_LIMIT: '4096' })
  const alice = await mdm.enrolledDevice()
  const bob = await mdm.enrolledDevice()
  await mdm.enqueue([alice.udid], 'ProfileList')
  const otherCa = await createDeviceCa('Someone else')
  const stranger = await SimulatedDevice.create(otherCa, injectTransport(mdm.app))
  const expired = await mdm.newDevice({ validDays: 0 })
  const idleBody = encodePlist({ UDID: alice.udid, Status: 'Idle' })

  const before = await mdm.snapshot()
  const cases: Array<[string, () => Promise<{ status: number; body: Buffer }>, number, RegExp]> = [
    ['no signature at all', () => alice.report('Idle', {}, null), 400, /^identity_missing/],
    ['signature header is garbage', () => alice.report('Idle', {}, 'not base64 !!'), 400, /^identity_rejected/],
    [
      'body signed by another device, sent as Alice',
      () => alice.send('/mdm/connect', idleBody, 'application/x-apple-aspen-mdm', bob.sign(idleBody)),
      400,
      /^identity_rejected: .*not the one bound/,
    ],
    [
      'Alice body replayed with a signature over another body',
      () => alice.send('/mdm/connect', idleBody, 'application/x-apple-aspen-mdm', alice.sign(Buffer.from(`${idleBody.toString()} `))),
      400,
      /^identity_rejected/,
    ],
    ['certificate from a CA we do not trust', () => stranger.authenticate(), 400, /^identity_rejected: certificate_untrusted/],
    ['expired certificate', () => expired.authenticate(), 400, /^identity_rejected: certificate_expired/],
    // Never 401: a real device that got it would unenroll itself.
    [
      'Bob re-authenticating as Alice',
      () =>
        bob.send(
          '/mdm/checkin',
          encodePlist({ MessageType: 'Authenticate', UDID: alice.udid, Topic: alice.topic, SerialNumber: alice.serialNumber }),
          'application/x-apple-aspen-mdm-checkin',
        ),
      403,
      /^reenrollment_refused: device .* is enrolled with another identity certificate/,
    ],
    [
      'Bob sending a TokenUpdate for Alice',
      () =>
        bob.send(
          '/mdm/checkin',
          encodePlist({ MessageType: 'TokenUpdate', UDID: alice.udid, Topic: alice.topic, Token: Buffer.alloc(32), PushMagic: 'x' }),
          'application/x-apple-aspen-mdm-checkin',
        ),
      400,
      /^identity_rejected/,
    ],
    ['device that never enrolled', async () => (await mdm.newDevice()).idle(), 400, /^unknown_enrollment/],
    ['TokenUpdate before any Authenticate', async () => (await mdm.newDevice()).tokenUpdate(), 400, /^unknown_enrollment/],
    [
      'malformed plist',
      () => alice.send('/mdm/connect', Buffer.from('<plist><dict><key>Status</key>'), 'application/x-apple-aspen-mdm'),
      400,
      /^malformed_message: not a valid plist/,
    ],
    [
      'not a plist at all',
      () => alice.send('/mdm/checkin', Buffer.from('{"MessageType":"Authenticate"}'), 'application/x-apple-aspen-mdm-checkin'),
      400,
      /^malformed_message/,
    ],
    ['unknown MessageType', () => alice.checkin({ MessageType: 'Launch' }), 400, /^malformed_message: unknown MessageType "Launch"/],
    [
      'wrong key type',
      () => alice.checkin({ MessageType: 'TokenUpdate', Topic: alice.topic, Token: 'not data', PushMagic: 'x' }),
      400,
      /^malformed_message: TokenUpdate: Token must be data, got string/,
    ],
    ['unknown Status', () => alice.report('Bored'), 400, /^malformed_message: unknown Status/],
    ['result without CommandUUID', () => alice.report('Acknowledged'), 400, /^malformed_message: Status Acknowledged needs a CommandUUID/],
    ['empty body', () => alice.send('/mdm/connect', Buffer.alloc(0), 'application/x-apple-aspen-mdm'), 400, /^malformed_message: the request body is empty/],
    [
      'oversized body',
      () => alice.send('/mdm/connect', encodePlist({ UDID: alice.udid, Status: 'Idle', Padding: 'x'.repeat(5000) }), 'application/x-apple-aspen-mdm'),
      413,
      /^payload_too_large/,
    ],
    [
      'GetToken for an unknown service',
      () => alice.checkin({ MessageType: 'GetToken', TokenServiceType: 'com.example.nope' }),
      400,
      /^malformed_message: GetToken: no token service/,
    ],
  ]
  for (const [name, request, status, reason] of cases) {
    const response = await request()
    t.equal(response.status, status, `${name}: ${status}`)
    t.match(response.body.toString(), reason, `${name}: says why`)
  }
  t.same(await mdm.snapshot(), before, 'no rejected request changed the database')
})

t.test('a new identity from a trusted CA takes over an enrolled device only once an admin allows it; then the old one no longer works', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const oldSign = device.sign
  const idleBody = encodePlist({ UDID: device.udid, Status: 'Idle' })
  const before = await mdm.snapshot()
  await device.renewIdentity(mdm.ca)
  t.equal((await device.idle()).status, 400, 'the new certificate is not bound before Authenticate')
  const refused = await device.authenticate()
  t.equal(refused.status, 403, 'an unbound certificate of a trusted CA is not an enrollment path: refused, never 401')
  t.match(refused.body.toString(), /^reenrollment_refused: .*\(external\).*allow-reenrollment/)
  t.same(await mdm.snapshot(), before, 'the refusal changed nothing')
  t.equal((await device.send('/mdm/connect', idleBody, 'application/x-apple-aspen-mdm', oldSign(idleBody))).status, 200, 'the enrolled certificate still works')

  const allowed = await api('POST', `/api/v1/devices/${device.udid}/allow-reenrollment`, {
    body: { minutes: 30, reason: 'new certificate from the customer CA' },
  })
  t.equal(allowed.statusCode, 200)
  t.match(allowed.json, { device_id: device.udid, reenrollment_allowed_until: String })
  t.match((await api('GET', `/api/v1/devices/${device.udid}`)).json.identity, { reenrollment_allowed_until: allowed.json.reenrollment_allowed_until })
  await device.enroll()
  t.equal((await device.idle()).status, 200, 'bound after Authenticate')
  t.equal((await device.send('/mdm/connect', idleBody, 'application/x-apple-aspen-mdm', oldSign(idleBody))).status, 400, 'the replaced certificate is refused')
  t.match((await api('GET', `/api/v1/devices/${device.udid}`)).json.identity, { reenrollment_allowed_until: null }, 'the permission is used up')

  const timeline = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}`)).json.items.map(
    (e: { action: string; outcome: string }) => `${e.action}:${e.outcome}`,
  )
  t.same(
    timeline,
    ['enrolled:success', 'reenrolled:success', 'allowDeviceReenrollment:success', 'identity_conflict:failure', 'enrolled:success'],
    'the timeline, newest first',
  )
})

t.test('signatures of every shape real devices send are accepted', async (t) => {
  const mdm = await setupMdm(t)
  const shapes = [
    { keyAlgorithm: 'rsa-2048' as const, signer: { digest: 'sha1' as const } },
    { keyAlgorithm: 'rsa-2048' as const, signer: { digest: 'sha256' as const } },
    { keyAlgorithm: 'ec-p256' as const, signer: { digest: 'sha1' as const } },
    { keyAlgorithm: 'ec-p256' as const, signer: { digest: 'sha256' as const, signedAttributes: false } },
  ]
  for (const shape of shapes) {
    const device = await mdm.newDevice(shape)
    t.equal((await device.authenticate()).status, 200, JSON.stringify(shape))
    t.equal((await device.tokenUpdate()).status, 200)
    t.equal((await device.idle()).status, 200)
  }
})

t.test('a forwarded client certificate identifies the device when the proxy header is configured', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_CLIENT_CERT_HEADER: 'X-Client-Cert' })
  const device = await mdm.newDevice()
  const body = encodePlist({ MessageType: 'Authenticate', UDID: device.udid, Topic: device.topic })
  const pem = `-----BEGIN CERTIFICATE-----\n${device.certificateDer.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`
  const viaNginx = await mdm.app.inject({
    method: 'PUT',
    url: '/mdm/checkin',
    payload: body,
    headers: { 'content-type': 'application/x-apple-aspen-mdm-checkin', 'x-client-cert': encodeURIComponent(pem) },
  })
  t.equal(viaNginx.statusCode, 200, 'URL-escaped PEM (nginx)')
  const viaRfc9440 = await mdm.app.inject({
    method: 'PUT',
    url: '/mdm/checkin',
    payload: body,
    headers: { 'content-type': 'application/x-apple-aspen-mdm-checkin', 'x-client-cert': `:${device.certificateDer.toString('base64')}:` },
  })
  t.equal(viaRfc9440.statusCode, 200, 'RFC 9440 byte sequence')
})
