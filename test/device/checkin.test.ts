// The eight check-in messages through the real HTTP surface, for every enrollment kind.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { decodePlist } from '../../src/mdm/plist.js'
import { sharedIPadUserId } from '../../src/mdm/identity.js'
import { commandIn } from '../helpers/simulated-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { createSecretBox } from '../../src/crypto/secret-box.js'

const secretKey = randomBytes(32).toString('hex')

t.test('Authenticate records the device but does not enroll it; TokenUpdate does', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: secretKey })
  const device = await mdm.newDevice()
  const auth = await device.authenticate()
  t.equal(auth.status, 200)
  t.equal(auth.body.length, 0)
  const db = mdm.database.db
  const row = await db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(row, {
    udid: device.udid,
    serial_number: device.serialNumber,
    model: 'iPad13,1',
    os_version: '18.1',
    build_version: '22B83',
    topic: device.topic,
    user_enrollment: false,
  })
  t.match(row.identity_sha256, /^[0-9a-f]{64}$/)
  t.ok(row.authenticate_raw?.toString().includes('<string>Authenticate</string>'), 'the plist as received is kept')
  t.equal(await db.selectFrom('enrollments').select('id').where('device_id', '=', device.udid).executeTakeFirst(), undefined, 'no enabled channel yet')

  t.equal((await device.tokenUpdate()).status, 200)
  const enrollment = await db.selectFrom('enrollments').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(enrollment, {
    device_id: device.udid,
    channel: 'device',
    enabled: true,
    topic: device.topic,
    push_magic: device.pushMagic,
    token_update_count: 1,
    awaiting_configuration: false,
  })
  t.same(enrollment.push_token, device.token)
  t.equal(enrollment.unlock_token, null, 'the UnlockToken is not stored in clear')
  t.notOk(enrollment.unlock_token_sealed!.includes(device.unlockToken), 'nor inside its sealed form')
  t.same(
    createSecretBox([Buffer.from(secretKey, 'hex')]).open(enrollment.unlock_token_sealed!, `unlock-token:${device.udid}`),
    device.unlockToken,
    'it is sealed for this channel',
  )

  t.equal((await device.tokenUpdate({ PushMagic: 'rotated' })).status, 200)
  t.match(await db.selectFrom('enrollments').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow(), {
    push_magic: 'rotated',
    token_update_count: 2,
  })
})

t.test('user channels: macOS user, Shared iPad user, User Enrollment', async (t) => {
  const mdm = await setupMdm(t)
  const db = mdm.database.db
  const mac = await mdm.enrolledDevice()
  t.equal(
    (
      await mac.checkin({
        MessageType: 'TokenUpdate',
        UserID: 'A1B2C3D4-0000-0000-0000-000000000001',
        UserShortName: 'jdoe',
        UserLongName: 'Jane Doe',
        Topic: mac.topic,
        Token: Buffer.alloc(32, 1),
        PushMagic: 'user-magic',
      })
    ).status,
    200,
  )
  const macUser = `${mac.udid}:A1B2C3D4-0000-0000-0000-000000000001`
  t.match(await db.selectFrom('enrollments').selectAll().where('id', '=', macUser).executeTakeFirstOrThrow(), {
    device_id: mac.udid,
    channel: 'user',
    user_short_name: 'jdoe',
    user_long_name: 'Jane Doe',
    enabled: true,
  })

  const ipad = await mdm.enrolledDevice()
  for (const name of ['pupil1@school.example', 'pupil2@school.example']) {
    t.equal(
      (
        await ipad.checkin({
          MessageType: 'TokenUpdate',
          UserID: sharedIPadUserId,
          UserShortName: name,
          Topic: ipad.topic,
          Token: Buffer.alloc(32, 2),
          PushMagic: 'm',
        })
      ).status,
      200,
    )
  }
  const shared = await db.selectFrom('enrollments').select(['id', 'channel']).where('device_id', '=', ipad.udid).orderBy('id').execute()
  t.same(
    shared.map((e) => e.id),
    [ipad.udid, `${ipad.udid}:pupil1@school.example`, `${ipad.udid}:pupil2@school.example`],
    'Shared iPad users keyed on UserShortName',
  )

  // A user channel gets its own queue.
  const forPupil = await mdm.enqueue([`${ipad.udid}:pupil1@school.example`], 'ProfileList')
  const userIdle = await ipad.report('Idle', {}, undefined, { userId: sharedIPadUserId, userShortName: 'pupil1@school.example' })
  t.equal(commandIn(userIdle)?.uuid, forPupil.uuid)
  t.equal((await ipad.idle()).body.length, 0, 'the device channel queue is separate')

  const byod = await mdm.newDevice({ userEnrollment: true })
  await byod.enroll()
  t.match(await db.selectFrom('devices').selectAll().where('id', '=', byod.udid).executeTakeFirstOrThrow(), {
    udid: null,
    enrollment_id: byod.udid,
    user_enrollment: true,
    serial_number: null,
  })
  t.equal(
    (await byod.checkin({ MessageType: 'TokenUpdate', EnrollmentUserID: 'managed-user-1', Topic: byod.topic, Token: Buffer.alloc(32, 3), PushMagic: 'p' }))
      .status,
    200,
  )
  t.match(await db.selectFrom('enrollments').selectAll().where('id', '=', 'managed-user-1').executeTakeFirstOrThrow(), {
    device_id: byod.udid,
    channel: 'user',
  })

  t.equal((await mac.checkOut()).status, 200)
  const afterCheckout = await db.selectFrom('enrollments').select(['id', 'enabled']).where('device_id', '=', mac.udid).execute()
  t.ok(
    afterCheckout.every((e) => !e.enabled),
    'CheckOut disables the user channels too',
  )
})

t.test('UserAuthenticate: empty DigestChallenge, AuthToken on the second request, or 410 when declined', async (t) => {
  const mdm = await setupMdm(t)
  const mac = await mdm.enrolledDevice()
  const first = await mac.checkin({ MessageType: 'UserAuthenticate', UserID: 'U1', UserShortName: 'jdoe' })
  t.equal(first.status, 200)
  t.same(decodePlist(first.body), { DigestChallenge: '' })
  const second = await mac.checkin({ MessageType: 'UserAuthenticate', UserID: 'U1', UserShortName: 'jdoe', DigestResponse: 'abc' })
  t.match(decodePlist(second.body), { AuthToken: /^[A-Za-z0-9_-]{32}$/ })

  const declining = await setupMdm(t, { ORCHARD_USER_AUTHENTICATE: 'decline' })
  const other = await declining.enrolledDevice()
  t.equal((await other.checkin({ MessageType: 'UserAuthenticate', UserID: 'U1' })).status, 410)
})

t.test('bootstrap token: set, get, delete with empty data; sealed at rest', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: secretKey })
  const mac = await mdm.enrolledDevice()
  const none = await mac.checkin({ MessageType: 'GetBootstrapToken' })
  t.same(decodePlist(none.body), {}, 'none stored: the key is omitted')
  t.equal((await mac.checkin({ MessageType: 'SetBootstrapToken', BootstrapToken: Buffer.from('secret-token') })).status, 200)
  const row = await mdm.database.db.selectFrom('bootstrap_tokens').selectAll().executeTakeFirstOrThrow()
  t.equal(row.token, null, 'not stored in clear')
  t.notOk(row.token_sealed!.includes(Buffer.from('secret-token')), 'nor inside its sealed form')
  t.same(decodePlist((await mac.checkin({ MessageType: 'GetBootstrapToken', AwaitingConfiguration: false })).body), {
    BootstrapToken: Buffer.from('secret-token'),
  })
  t.equal((await mac.checkin({ MessageType: 'SetBootstrapToken', BootstrapToken: Buffer.alloc(0) })).status, 200)
  t.same(decodePlist((await mac.checkin({ MessageType: 'GetBootstrapToken' })).body), {})
})

t.test('without a master key (ORCHARD_SECRET_KEYS) device secrets are not kept at all', async (t) => {
  const mdm = await setupMdm(t)
  const mac = await mdm.enrolledDevice()
  const enrollment = await mdm.database.db.selectFrom('enrollments').selectAll().where('id', '=', mac.udid).executeTakeFirstOrThrow()
  t.match(enrollment, { enabled: true, unlock_token: null, unlock_token_sealed: null }, 'enrolled, with no UnlockToken kept')
  t.equal((await mac.checkin({ MessageType: 'SetBootstrapToken', BootstrapToken: Buffer.from('secret-token') })).status, 200, 'the device is not refused')
  t.equal((await mdm.database.db.selectFrom('bootstrap_tokens').selectAll().execute()).length, 0, 'nothing stored')
  t.same(decodePlist((await mac.checkin({ MessageType: 'GetBootstrapToken' })).body), {}, 'so none is given back')
})

t.test('DeclarativeManagement: a device without declarations gets the status channel only; 404 for others; status reports kept', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const tokens = await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'tokens' })
  t.equal(tokens.status, 200)
  t.match(tokens.contentType, /^application\/json/)
  const parsed = JSON.parse(tokens.body.toString())
  t.match(parsed, { SyncTokens: { DeclarationsToken: /^[0-9a-f]{32}$/, Timestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/ } })
  const again = JSON.parse((await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'tokens' })).body.toString())
  t.same(again, parsed, 'stable: a token that changed on every poll would make the device sync forever')
  const items = JSON.parse((await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'declaration-items' })).body.toString())
  t.match(items, {
    Declarations: {
      Activations: [{ Identifier: 'orchard.activation.default' }],
      Configurations: [{ Identifier: 'orchard.status-subscriptions' }],
      Assets: [],
      Management: [],
    },
    DeclarationsToken: parsed.SyncTokens.DeclarationsToken,
  })
  const subscriptions = await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'declaration/configuration/orchard.status-subscriptions' })
  t.match(JSON.parse(subscriptions.body.toString()), {
    Type: 'com.apple.configuration.management.status-subscriptions',
    Payload: { StatusItems: [{ Name: 'device.identifier.serial-number' }] },
  })
  t.equal((await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'declaration/configuration/com.example.gone' })).status, 404)

  const report = { StatusItems: { device: { identifier: { udid: device.udid } } }, Errors: [] }
  const status = await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'status', Data: Buffer.from(JSON.stringify(report)) })
  t.equal(status.status, 200)
  t.equal(status.body.length, 0)
  const stored = await mdm.database.db.selectFrom('device_status_items').selectAll().execute()
  t.match(stored, [{ device_id: device.udid, item: 'device.identifier.udid', value: device.udid }])
  t.equal((await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'status', Data: Buffer.from('not json') })).status, 400)
  t.equal((await device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'nonsense' })).status, 400)
})

t.test('check-in metrics count messages by type and outcome', async (t) => {
  const mdm = await setupMdm(t)
  await mdm.enrolledDevice()
  const metrics = (await mdm.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, 'orchard_mdm_checkins_total{message_type="Authenticate",outcome="ok"} 1')
  t.match(metrics, 'orchard_mdm_checkins_total{message_type="TokenUpdate",outcome="ok"} 1')
})
