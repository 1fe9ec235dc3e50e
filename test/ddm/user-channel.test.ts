// Declarative management on user channels, end to end over the real MDM endpoints: a macOS
// user and a Shared iPad user sync the user-channel declarations their device's blueprints
// carry, with their own substitutions, status subscriptions, DeclarationsToken (changing exactly
// when their set changes) and status reports; the device channel never gets them, nor they the
// device's; removal; the types a user channel cannot take are refused.
import t from 'tap'
import { sharedIPadUserId } from '../../src/mdm/identity.js'
import { apiClient } from '../helpers/api.js'
import { DdmDevice } from '../helpers/ddm-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const echo = (text: string, channel: 'device' | 'user' = 'user') => ({
  identifier: 'com.example.user-echo',
  type: 'com.apple.configuration.management.test',
  name: 'Echo',
  channel,
  payload: { Echo: text },
})

/** The queue run to its end, without the profile list a blueprint change asks for (not DDM's business here). */
const ddmCommands = async (channel: DdmDevice) => (await channel.runQueue()).filter((requestType) => requestType !== 'ProfileList')

const subscribed = (channel: DdmDevice) =>
  (channel.declarations.get('orchard.status-subscriptions')?.payload['StatusItems'] as Array<{ Name: string }>).map((item) => item.Name)

t.test('a macOS user channel syncs its declaration; the device channel does not get it; changes and removal', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const mac = await mdm.enrolledDevice({ serialNumber: 'MACUSER00001' })
  await mdm.database.db
    .updateTable('devices')
    .set({ product_name: 'MacBookPro18,3', model: 'MacBookPro18,3', os_version: '15.1', user_email: 'alice@example.org' })
    .where('id', '=', mac.udid)
    .execute()
  const device = new DdmDevice(mac)
  const alice = new DdmDevice(mac, { userId: '5A1C3E9B-0000-4000-8000-00000000A11C', userShortName: 'alice', userLongName: 'Alice Example' })
  await alice.enrollUser()
  t.same(await ddmCommands(alice), [], 'no DeclarativeManagement before a declaration reaches the user')
  await device.sync()
  const deviceToken = device.declarationsToken

  const created = await api('POST', '/api/v1/declarations', {
    body: echo('hello {{user_short_name}} <{{user_email}}> {{user_full_name}} on {{serial_number}}'),
  })
  t.equal(created.statusCode, 201, created.body)
  t.equal(created.json.channel, 'user')
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'users', declaration_ids: [created.json.id] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)

  t.same(await ddmCommands(alice), ['DeclarativeManagement'], 'the first user declaration turns DDM on for the user channel')
  t.match(alice.declarations.get('com.example.user-echo'), {
    type: 'com.apple.configuration.management.test',
    payload: { Echo: 'hello alice <alice@example.org> Alice Example on MACUSER00001' },
  })
  t.ok(alice.active('com.example.user-echo'), 'activated by the activation Orchard adds')
  t.ok(subscribed(alice).includes('account.list.caldav'), "the user channel's status items")
  t.ok(subscribed(alice).includes('management.declarations'))
  t.notOk(subscribed(alice).includes('softwareupdate.install-state'), 'not a status item of the user channel')
  t.same(await ddmCommands(device), [], 'the device channel is not sent anything for a user declaration')
  t.equal(await device.sync(), false)
  t.equal(device.declarationsToken, deviceToken, "the device channel's set did not change")
  t.notOk(device.declarations.has('com.example.user-echo'))

  const view = await api('GET', `/api/v1/devices/${mac.udid}/declarations`)
  t.equal(view.statusCode, 200, view.body)
  t.notOk(
    view.json.items.some((item: { identifier: string }) => item.identifier === 'com.example.user-echo'),
    'not in the device set',
  )
  t.equal(view.json.user_channels.length, 1)
  t.match(view.json.user_channels[0], {
    enrollment_id: `${mac.udid}:5A1C3E9B-0000-4000-8000-00000000A11C`,
    user_short_name: 'alice',
    user_long_name: 'Alice Example',
    platform: 'macOS',
    declarations_token: alice.declarationsToken,
    sent_token: alice.declarationsToken,
  })
  t.match(
    view.json.user_channels[0].items.find((item: { identifier: string }) => item.identifier === 'com.example.user-echo'),
    { state: 'active', declaration_id: created.json.id },
  )

  // Polling again changes nothing; the same content again changes nothing.
  alice.calls.length = 0
  t.equal(await alice.sync(), false)
  t.same(alice.calls, ['tokens'])
  const same = await api('PUT', `/api/v1/declarations/${created.json.id}`, {
    body: echo('hello {{user_short_name}} <{{user_email}}> {{user_full_name}} on {{serial_number}}'),
  })
  t.equal(same.statusCode, 200, same.body)
  t.same(await ddmCommands(alice), [], 'an unchanged declaration sends nothing')

  // A device-channel declaration changes the device's set only.
  const aliceToken = alice.declarationsToken
  const forDevice = await api('POST', '/api/v1/declarations', { body: { ...echo('device', 'device'), identifier: 'com.example.device-echo' } })
  t.equal(forDevice.statusCode, 201, forDevice.body)
  t.equal(forDevice.json.channel, 'device')
  t.equal(
    (await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'users', declaration_ids: [created.json.id, forDevice.json.id] } }))
      .statusCode,
    200,
  )
  t.same(await ddmCommands(device), ['DeclarativeManagement'])
  t.ok(device.declarations.has('com.example.device-echo'))
  t.notOk(device.declarations.has('com.example.user-echo'))
  t.same(await ddmCommands(alice), [], 'the user channel is not sent anything for a device declaration')
  t.equal(await alice.sync(), false)
  t.equal(alice.declarationsToken, aliceToken)
  t.notOk(alice.declarations.has('com.example.device-echo'))

  // Changed: a new DeclarationsToken for the user channel, the new content fetched.
  const changed = await api('PUT', `/api/v1/declarations/${created.json.id}`, { body: echo('bye {{user_short_name}}') })
  t.equal(changed.statusCode, 200, changed.body)
  t.same(await ddmCommands(alice), ['DeclarativeManagement'])
  t.not(alice.declarationsToken, aliceToken)
  t.match(alice.declarations.get('com.example.user-echo'), { payload: { Echo: 'bye alice' } })
  t.same(await ddmCommands(device), [], "the device channel's set is the same")

  // Status items: kept per user channel, apart from the device's.
  alice.statusItems.set('account.list.caldav', [{ identifier: 'cal-1', 'is-enabled': true }])
  await alice.reportStatus()
  alice.statusItems.set('account.list.caldav', [{ identifier: 'cal-2', 'is-enabled': true }])
  t.equal(await alice.reportStatus(), 1, 'a partial report')
  const items = await api('GET', `/api/v1/devices/${mac.udid}/status-items`)
  t.equal(items.statusCode, 200, items.body)
  t.notOk(items.json.items.some((item: { item: string }) => item.item === 'account.list.caldav'))
  t.match(items.json.user_channels, [{ user_short_name: 'alice' }])
  t.same(
    items.json.user_channels[0].items.find((item: { item: string }) => item.item === 'account.list.caldav').value,
    [
      { identifier: 'cal-1', 'is-enabled': true },
      { identifier: 'cal-2', 'is-enabled': true },
    ],
    'list items of a partial report are merged',
  )

  // Removed: out of the blueprint, it leaves the user channel; the reported removal is applied.
  t.equal((await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'users', declaration_ids: [forDevice.json.id] } })).statusCode, 200)
  t.same(await ddmCommands(alice), ['DeclarativeManagement'], 'the last user declaration leaving is sent too')
  t.notOk(alice.declarations.has('com.example.user-echo'))
  t.ok(alice.declarations.has('orchard.status-subscriptions'), 'the status channel stays')
  const rows = await mdm.database.db.selectFrom('user_channel_declaration_status').select('identifier').execute()
  t.notOk(
    rows.some((row) => row.identifier === 'com.example.user-echo'),
    'the removal the user channel reported is applied',
  )
  t.ok(device.declarations.has('com.example.device-echo'), 'the device keeps its own')
  t.equal((await api('DELETE', `/api/v1/declarations/${created.json.id}`)).statusCode, 204)
})

t.test('a Shared iPad user syncs its declarations; types a Shared iPad user cannot take are left out', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const ipad = await mdm.enrolledDevice({ serialNumber: 'SHAREDIPAD01' })
  const pupil = new DdmDevice(ipad, { userId: sharedIPadUserId, userShortName: 'pupil1@school.example' })
  await pupil.enrollUser()
  const mac = await mdm.enrolledDevice({ serialNumber: 'MACUSER00002' })
  await mdm.database.db.updateTable('devices').set({ product_name: 'Mac14,2' }).where('id', '=', mac.udid).execute()
  const bob = new DdmDevice(mac, { userId: '0B0B0B0B-0000-4000-8000-000000000B0B', userShortName: 'bob' })
  await bob.enrollUser()

  const echoed = await api('POST', '/api/v1/declarations', { body: echo('{{user_email}} / {{user_short_name}}') })
  t.equal(echoed.statusCode, 201, echoed.body)
  // The passcode on the user channel: macOS only (Apple's schema allows no Shared iPad user scope).
  const passcode = await api('POST', '/api/v1/declarations', {
    body: {
      identifier: 'com.example.user-passcode',
      type: 'com.apple.configuration.passcode.settings',
      channel: 'user',
      payload: { RequirePasscode: true, MinimumLength: 8 },
    },
  })
  t.equal(passcode.statusCode, 201, passcode.body)
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'users', declaration_ids: [echoed.json.id, passcode.json.id] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)

  t.same(await ddmCommands(pupil), ['DeclarativeManagement'])
  t.match(pupil.declarations.get('com.example.user-echo'), { payload: { Echo: 'pupil1@school.example / pupil1@school.example' } })
  t.ok(pupil.active('com.example.user-echo'))
  t.notOk(pupil.declarations.has('com.example.user-passcode'), 'not for a Shared iPad user')
  t.ok(subscribed(pupil).includes('passcode.is-compliant'), "the Shared iPad user's status items")
  t.notOk(subscribed(pupil).includes('screensharing.connection.group.unresolved-connection'))

  t.same(await ddmCommands(bob), ['DeclarativeManagement'])
  t.match(bob.declarations.get('com.example.user-echo'), { payload: { Echo: ' / bob' } }, 'no email known for this Mac user')
  t.ok(bob.active('com.example.user-passcode'), 'the macOS user takes the passcode')

  const view = await api('GET', `/api/v1/devices/${ipad.udid}/declarations`)
  t.match(view.json.user_channels, [
    { enrollment_id: `${ipad.udid}:pupil1@school.example`, platform: 'sharedIPad', declarations_token: pupil.declarationsToken },
  ])
  t.match(
    view.json.user_channels[0].items.find((item: { identifier: string }) => item.identifier === 'com.example.user-echo'),
    { state: 'active' },
  )

  // A second user of the same iPad gets its own set (its own content, so its own token).
  const second = new DdmDevice(ipad, { userId: sharedIPadUserId, userShortName: 'pupil2@school.example' })
  await second.enrollUser()
  t.same(await ddmCommands(second), ['DeclarativeManagement'], 'a user arriving after the declaration is sent it on enrollment')
  t.match(second.declarations.get('com.example.user-echo'), { payload: { Echo: 'pupil2@school.example / pupil2@school.example' } })
  t.not(second.declarationsToken, pupil.declarationsToken)
  t.same(await ddmCommands(pupil), [], 'the first user is not sent anything again')
})

t.test('declarations the user channel does not support are refused with a pointer', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const update = await api('POST', '/api/v1/declarations', {
    body: {
      identifier: 'x.settings',
      type: 'com.apple.configuration.softwareupdate.settings',
      channel: 'user',
      payload: {},
    },
  })
  t.equal(update.statusCode, 400, update.body)
  t.match(update.json.errors, [{ pointer: '/type', detail: /device channel only/ }])
  const userValueOnDevice = await api('POST', '/api/v1/declarations', { body: echo('hi {{user_email}}', 'device') })
  t.equal(userValueOnDevice.statusCode, 400, userValueOnDevice.body)
  t.match(userValueOnDevice.json.errors, [{ pointer: '/payload/Echo', detail: /channel user/ }])
  t.equal((await api('POST', '/api/v1/declarations', { body: { ...echo('x'), channel: 'both' } })).statusCode, 400, 'only device or user')
  // A declaration moved to the device channel of a type the user channel cannot take stays valid; back to user, it is refused.
  const settings = await api('POST', '/api/v1/declarations', {
    body: { identifier: 'x.settings', type: 'com.apple.configuration.softwareupdate.settings', payload: {} },
  })
  t.equal(settings.statusCode, 201, settings.body)
  t.equal(settings.json.channel, 'device', 'the device channel by default')
  const moved = await api('PUT', `/api/v1/declarations/${settings.json.id}`, {
    body: { identifier: 'x.settings', type: 'com.apple.configuration.softwareupdate.settings', channel: 'user', payload: {} },
  })
  t.equal(moved.statusCode, 400)
  t.match(moved.json.errors, [{ pointer: '/type' }])
})
