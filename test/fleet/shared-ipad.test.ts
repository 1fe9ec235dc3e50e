// Shared iPad (src/fleet/shared-ipad-*.ts): the users view (UserList at enrollment, after
// DeviceInformation says IsMultiUser, on demand, after LogOutUser/DeleteUser), with the user
// channels under their device; logging out, deleting (refused while data has not synced, a
// forced deletion in two steps), the SharedDeviceConfiguration through Settings; typed commands
// to a user channel. A simulated Shared iPad answers over the real MDM surface.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import t from 'tap'
import { openapiDocument } from '../../src/http/generated/openapi-document.js'
import { sharedDeviceConfigurationKeys } from '../../src/fleet/shared-device-configuration.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { drainSharedIpad, sharedIpadState, userIdle, userLogsIn, type SharedIpadState } from '../helpers/shared-ipad-device.js'
import { commandIn, type SimulatedDevice } from '../helpers/simulated-device.js'

const day = 86_400_000
const pupil = (n: number) => `pupil${n}@school.example`
const types = (seen: Array<{ requestType: string }>) => seen.map((c) => c.requestType)

/** The device's open commands of this type. */
async function open(mdm: MdmFixture, deviceId: string, requestType: string) {
  const rows = await mdm.database.db
    .selectFrom('command_targets as ct')
    .innerJoin('commands as c', 'c.uuid', 'ct.command_uuid')
    .select('ct.priority')
    .where('ct.enrollment_id', '=', deviceId)
    .where('ct.status', 'in', ['Pending', 'NotNow'])
    .where('c.request_type', '=', requestType)
    .execute()
  return rows
}

/** An enrolled device that DeviceInformation showed to be a Shared iPad (its users not asked yet). */
async function sharedIpad(mdm: MdmFixture, state: SharedIpadState): Promise<SimulatedDevice> {
  const device = await mdm.enrolledDevice()
  await mdm.enqueue([device.udid], 'DeviceInformation', { Queries: ['IsMultiUser'] })
  // DeviceInformation, then the UserList its answer made Orchard queue, in the same exchange.
  const seen = await drainSharedIpad(device, state)
  if (types(seen).join() !== 'DeviceInformation,UserList') throw new Error(`unexpected commands: ${types(seen).join()}`)
  return device
}

t.test('a Shared iPad from a multi-user PreStage is asked for its users at enrollment; they show with their user channels', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const device = await mdm.enrolledDevice()
  t.same(await open(mdm, device.udid, 'UserList'), [], 'a device not known to be a Shared iPad is not asked')

  // Its PreStage set is_multi_user (as ABM assigned it); it enrolls again.
  const tokenId = randomUUID()
  await db
    .insertInto('dep_tokens')
    .values({ id: tokenId, name: 'School', exchange_certificate_der: Buffer.from('x'), exchange_private_key_sealed: Buffer.from('x') })
    .execute()
  const profileId = randomUUID()
  await db
    .insertInto('dep_profiles')
    .values({ id: profileId, token_id: tokenId, name: 'Classroom iPads', profile: JSON.stringify({ profile_name: 'Classroom', is_multi_user: true }) })
    .execute()
  await db.updateTable('devices').set({ dep_profile_id: profileId }).where('id', '=', device.udid).execute()
  await device.enroll()
  t.equal((await open(mdm, device.udid, 'UserList')).length, 1, 'UserList queued by the enrollment')

  const before = await api('GET', `/api/v1/devices/${device.udid}/users`)
  t.equal(before.statusCode, 200)
  t.match(before.json, { device_id: device.udid, shared_ipad: true, shared_ipad_detail: null, reported_at: null, refresh_pending: true, users: [] })

  // Two Managed Apple IDs logged in at some point; a third whose channel the list will not show.
  for (const n of [1, 3]) await userLogsIn(device, pupil(n))
  const state = sharedIpadState([
    { name: pupil(1), loggedIn: true, hasDataToSync: true, used: 1_500_000_000 },
    { name: pupil(2), quota: 3_000_000_000 },
  ])
  t.same(types(await drainSharedIpad(device, state)), ['UserList'])

  const view = await api('GET', `/api/v1/devices/${device.udid}/users`)
  t.equal(view.statusCode, 200)
  t.match(view.json, { shared_ipad: true, refresh_pending: false, detail: null, shared_device_configuration: null })
  t.ok(view.json.reported_at, 'when the device answered')
  t.same(
    view.json.users.map((u: any) => [u.user_name, u.is_logged_in, u.has_data_to_sync, u.data_quota, u.data_used, u.full_name]),
    [
      [pupil(1), true, true, 2_000_000_000, 1_500_000_000, null],
      [pupil(2), false, false, 3_000_000_000, 0, null],
    ],
  )
  t.match(view.json.users[0].channel, { enrollment_id: `${device.udid}:${pupil(1)}`, user_short_name: pupil(1), enrolled: true })
  t.equal(view.json.users[1].channel, null, 'no channel known for the second user')
  t.same(
    view.json.other_channels.map((c: any) => c.enrollment_id),
    [`${device.udid}:${pupil(3)}`],
    'a channel whose user the list does not show is listed apart, under the device all the same',
  )
  const detail = (await api('GET', `/api/v1/devices/${device.udid}`)).json
  t.same(
    detail.enrollments.map((e: any) => e.id).sort(),
    [device.udid, `${device.udid}:${pupil(1)}`, `${device.udid}:${pupil(3)}`].sort(),
    'GET /devices/{id} lists the user channels too',
  )

  // A failed UserList keeps the users of the last good answer and says why.
  state.failUserList = 'The device is busy.'
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/users/refresh`)).statusCode, 201)
  t.same(types(await drainSharedIpad(device, state)), ['UserList'])
  const failed = (await api('GET', `/api/v1/devices/${device.udid}/users`)).json
  t.match(failed.detail, /UserList answered Error: The device is busy/)
  t.equal(failed.users.length, 2, 'the users of the last good answer stay')
})

t.test('DeviceInformation saying IsMultiUser makes a Shared iPad: UserList follows it, also after the scheduled inventory refresh', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const device = await mdm.enrolledDevice()
  const state = sharedIpadState([{ name: pupil(1) }])

  const unknown = (await api('GET', `/api/v1/devices/${device.udid}/users`)).json
  t.match(unknown, { shared_ipad: false, users: [], reported_at: null })
  t.match(unknown.shared_ipad_detail, /not known to be a Shared iPad/)
  const refused = await api('POST', `/api/v1/devices/${device.udid}/users/refresh`)
  t.equal(refused.statusCode, 422)
  t.match(refused.json, { code: 'not_applicable', reason: 'not_shared_ipad' })

  // The inventory (asked on demand here) says IsMultiUser: UserList goes out in the same exchange, once.
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/refresh-inventory`)).statusCode, 201)
  const seen = types(await drainSharedIpad(device, state))
  t.ok(seen.indexOf('UserList') > seen.indexOf('DeviceInformation'), `after DeviceInformation: ${seen.join(', ')}`)
  t.equal(seen.filter((type) => type === 'UserList').length, 1)
  t.match((await api('GET', `/api/v1/devices/${device.udid}/users`)).json, { shared_ipad: true, users: [{ user_name: pupil(1) }] })

  // A day later the scheduled inventory refresh asks DeviceInformation again; the users follow.
  const twoDaysAgo = new Date(Date.now() - 2 * day)
  await db.updateTable('devices').set({ device_information_at: twoDaysAgo }).where('id', '=', device.udid).execute()
  await sql`update command_targets set created_at = ${twoDaysAgo} where enrollment_id = ${device.udid}`.execute(db)
  t.equal(await mdm.orchard.inventory.refreshStale(new Date(Date.now() - day)), 1)
  state.users.push({ name: pupil(2), loggedIn: true, hasDataToSync: false, quota: 1, used: 0 })
  t.ok(types(await drainSharedIpad(device, state)).includes('UserList'))
  t.same(
    (await api('GET', `/api/v1/devices/${device.udid}/users`)).json.users.map((u: any) => u.user_name),
    [pupil(1), pupil(2)],
  )

  // A device that says it is not a Shared iPad is not asked.
  const single = await mdm.enrolledDevice()
  await mdm.enqueue([single.udid], 'DeviceInformation', { Queries: ['IsMultiUser'] })
  t.same(types(await drainSharedIpad(single, { ...sharedIpadState(), multiUser: false })), ['DeviceInformation'])
  t.match((await api('GET', `/api/v1/devices/${single.udid}/users`)).json.shared_ipad_detail, /IsMultiUser false/)
})

t.test('log out and delete: refused while data has not synced, a forced deletion takes two steps, the view follows', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const state = sharedIpadState([
    { name: pupil(1), loggedIn: true, hasDataToSync: true },
    { name: pupil(2), hasDataToSync: false },
  ])
  const device = await sharedIpad(mdm, state)
  const users = async () => (await api('GET', `/api/v1/devices/${device.udid}/users`)).json.users.map((u: any) => [u.user_name, u.is_logged_in])
  t.same(await users(), [
    [pupil(1), true],
    [pupil(2), false],
  ])

  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'school', name: 'School' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/devices/move', { body: { device_ids: [device.udid], tenant_id: 'school' } })).statusCode, 200)
  const helpdesk = (await api('POST', '/api/v1/api-keys', { body: { name: 'desk', role: 'helpdesk', tenant_id: 'school' } })).json.key as string

  // Log out (the helpdesk may): LogOutUser, then UserList, in one exchange.
  const loggedOut = await api('POST', `/api/v1/devices/${device.udid}/users/log-out`, { key: helpdesk })
  t.equal(loggedOut.statusCode, 201)
  t.match(loggedOut.json, { request_type: 'LogOutUser', targets: [{ enrollment_id: device.udid, result: 'queued' }] })
  t.same(types(await drainSharedIpad(device, state)), ['LogOutUser', 'UserList'])
  t.same(await users(), [
    [pupil(1), false],
    [pupil(2), false],
  ])

  const url = (name: string, query = '') => `/api/v1/devices/${device.udid}/users/${encodeURIComponent(name)}${query}`
  t.equal((await api('DELETE', url(pupil(2)), { key: helpdesk })).statusCode, 403, 'the helpdesk does not delete')
  const unsynced = await api('DELETE', url(pupil(1)))
  t.equal(unsynced.statusCode, 409)
  t.match(unsynced.json, { code: 'conflict', reason: 'has_data_to_sync' })
  t.match(unsynced.json.detail, /has data that has not synced/)
  t.equal((await api('DELETE', url('nobody@school.example'))).statusCode, 404)
  t.same(await open(mdm, device.udid, 'DeleteUser'), [], 'nothing queued by the refusals')

  // A synced user: one call.
  const deleted = await api('DELETE', url(pupil(2)))
  t.equal(deleted.statusCode, 201)
  const seen = await drainSharedIpad(device, state)
  t.same(types(seen), ['DeleteUser', 'UserList'])
  t.match(seen[0]!.command, { UserName: pupil(2), ForceDeletion: false })
  t.same(await users(), [[pupil(1), false]])

  // Forced: 428 without a dry run, the dry run's token, refused for another user or a forged token.
  t.match((await api('DELETE', url(pupil(1), '?force=true'))).json, { status: 428, code: 'confirmation_required' })
  const dry = await api('DELETE', url(pupil(1), '?force=true&dry_run=true'))
  t.equal(dry.statusCode, 200)
  t.match(dry.json, { dry_run: true, request_type: 'DeleteUser', count: 1, confirmation_required: true, destructive: /DeleteUser/ })
  t.same(await open(mdm, device.udid, 'DeleteUser'), [], 'the dry run queues nothing')
  const token = encodeURIComponent(dry.json.confirmation_token)
  t.match((await api('DELETE', url(pupil(3), `?force=true&confirmation_token=${token}`))).json, { status: 409, code: 'confirmation_invalid' })
  t.match((await api('DELETE', url(pupil(1), '?force=true&confirmation_token=forged.token'))).json, { status: 409, code: 'confirmation_invalid' })
  const forced = await api('DELETE', url(pupil(1), `?force=true&confirmation_token=${token}`))
  t.equal(forced.statusCode, 201)
  const forcedSeen = await drainSharedIpad(device, state)
  t.same(types(forcedSeen), ['DeleteUser', 'UserList'])
  t.match(forcedSeen[0]!.command, { UserName: pupil(1), ForceDeletion: true })
  t.same(await users(), [], 'the device has no users left')

  const audit = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}&action=deleteDeviceUser`)).json.items
  t.ok(audit.filter((row: any) => row.outcome === 'success').length >= 2, 'deletions (and the dry run) are audited')
  t.ok(
    audit.some((row: any) => row.outcome === 'failure' && row.details?.code === 'conflict'),
    'the refusal is audited with its reason',
  )
})

t.test('SharedDeviceConfiguration: Apple keys checked, sent through Settings, refused on other devices, its answer shown', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const state = sharedIpadState([{ name: pupil(1) }])
  const device = await sharedIpad(mdm, state)
  const url = `/api/v1/devices/${device.udid}/shared-device-configuration`

  const ordinary = await mdm.enrolledDevice()
  const notShared = await api('PUT', `/api/v1/devices/${ordinary.udid}/shared-device-configuration`, { body: { QuotaSize: 1024 } })
  t.equal(notShared.statusCode, 422)
  t.match(notShared.json, { code: 'not_applicable', reason: 'not_shared_ipad', detail: /is not a Shared iPad/ })
  t.equal((await api('PUT', '/api/v1/devices/nope/shared-device-configuration', { body: { QuotaSize: 1 } })).statusCode, 404)

  for (const [body, pointer] of [
    [{ Quota: 1 }, '/Quota'],
    [{ QuotaSize: 'big' }, '/QuotaSize'],
    [{ PasscodePolicy: { PasscodeLockGracePeriod: 61 } }, '/PasscodePolicy/PasscodeLockGracePeriod'],
    [{ AwaitUserConfiguration: {} }, '/AwaitUserConfiguration/Enabled'],
  ] as const) {
    const bad = await api('PUT', url, { body })
    t.equal(bad.statusCode, 400, JSON.stringify(body))
    t.match(bad.json, { code: 'validation_failed', errors: [{ pointer }] })
  }
  t.equal((await api('PUT', url, { body: {} })).statusCode, 400, 'at least one key')

  const settings = { QuotaSize: 4096, ResidentUsers: 8, TemporarySessionOnly: false, TemporarySessionTimeout: 600, UserSessionTimeout: 3600 }
  const sent = await api('PUT', url, { body: settings })
  t.equal(sent.statusCode, 201)
  t.match(sent.json, { request_type: 'Settings', targets: [{ result: 'queued' }] })
  t.match((await api('GET', `/api/v1/devices/${device.udid}/users`)).json.shared_device_configuration, {
    settings,
    command_uuid: sent.json.command_uuid,
    status: 'pending',
    answered_at: null,
  })
  const seen = await drainSharedIpad(device, state)
  t.same(types(seen), ['Settings'])
  t.same(seen[0]!.command['Settings'], [{ Item: 'SharedDeviceConfiguration', ...settings }], "the item with Apple's keys")
  t.same(state.configurations, [{ Item: 'SharedDeviceConfiguration', ...settings }])
  const acknowledged = (await api('GET', `/api/v1/devices/${device.udid}/users`)).json.shared_device_configuration
  t.match(acknowledged, { status: 'acknowledged', detail: null })
  t.ok(acknowledged.answered_at)

  // The command acknowledged, the item refused: shown as an error.
  state.refuseConfiguration = 'The quota is too small.'
  t.equal((await api('PUT', url, { body: { QuotaSize: 1 } })).statusCode, 201)
  await drainSharedIpad(device, state)
  t.match((await api('GET', `/api/v1/devices/${device.udid}/users`)).json.shared_device_configuration, {
    settings: { QuotaSize: 1 },
    status: 'error',
    detail: /refused the SharedDeviceConfiguration item: The quota is too small/,
  })

  // Keys newer than the iPad's iOS are refused; older ones go.
  await db.updateTable('devices').set({ os_version: '14.0' }).where('id', '=', device.udid).execute()
  const tooNew = await api('PUT', url, { body: { QuotaSize: 2048, UserSessionTimeout: 60 } })
  t.equal(tooNew.statusCode, 422)
  t.match(tooNew.json, { code: 'not_applicable', reason: 'os_too_old', detail: /UserSessionTimeout needs iOS 14\.5/ })
  t.equal((await api('PUT', url, { body: { QuotaSize: 2048 } })).statusCode, 201)

  const auditor = (await api('POST', '/api/v1/api-keys', { body: { name: 'audit', role: 'auditor', tenant_id: null } })).json.key as string
  t.equal((await api('PUT', url, { key: auditor, body: { QuotaSize: 1 } })).statusCode, 403)
  t.equal((await api('GET', `/api/v1/devices/${device.udid}/users`, { key: auditor })).statusCode, 200)
})

t.test("the body's keys are exactly the schema's SharedDeviceConfiguration keys", async (t) => {
  const document = openapiDocument as any
  const properties = Object.keys(document.components.schemas.SharedDeviceConfigurationSettings.properties)
  t.same(properties.sort(), [...sharedDeviceConfigurationKeys].sort())
})

t.test('typed commands reach a Shared iPad user channel: POST /enrollments/{id}/commands and POST /commands', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await sharedIpad(mdm, sharedIpadState([{ name: pupil(1), loggedIn: true }]))
  await userLogsIn(device, pupil(1))
  const channel = `${device.udid}:${pupil(1)}`
  const channelUrl = `/api/v1/enrollments/${encodeURIComponent(channel)}/commands`

  const one = await api('POST', channelUrl, { body: { request_type: 'ProfileList' } })
  t.equal(one.statusCode, 201)
  t.match(one.json, { request_type: 'ProfileList', targets: [{ enrollment_id: channel, result: 'queued' }] })
  const many = await api('POST', '/api/v1/commands', {
    body: { enrollment_ids: [channel], command: { request_type: 'DeviceInformation', Queries: ['DeviceName'] } },
  })
  t.equal(many.statusCode, 201)
  t.match(many.json, { targets: [{ enrollment_id: channel, result: 'queued' }] })

  // The user's session polls its own queue; the device channel's is apart.
  const first = commandIn(await userIdle(device, pupil(1)))
  t.equal(first?.uuid, one.json.command_uuid)
  const second = commandIn(
    await device.report('Acknowledged', { CommandUUID: first!.uuid, ProfileList: [] }, undefined, {
      userId: 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
      userShortName: pupil(1),
    }),
  )
  t.equal(second?.uuid, many.json.command_uuid)
  t.equal((await device.idle()).body.length, 0, 'nothing for the device channel')
  const history = (await api('GET', `${channelUrl}?state=finished`)).json.items
  t.match(history, [{ command_uuid: one.json.command_uuid, status: 'Acknowledged' }])

  // What Apple allows only on the device channel is refused for the user channel.
  const refused = await api('POST', channelUrl, { body: { request_type: 'LogOutUser' } })
  t.equal(refused.statusCode, 422)
  t.match(refused.json, { code: 'not_applicable', reason: 'not_for_user_channel' })
  t.match((await api('POST', channelUrl, { body: { request_type: 'NoSuchCommand' } })).json, { status: 400, code: 'validation_failed' })
  t.equal((await api('POST', '/api/v1/enrollments/nope/commands', { body: { request_type: 'ProfileList' } })).statusCode, 404)
})
