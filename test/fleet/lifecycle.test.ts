// Device lifecycle through the admin API, with simulated devices answering the real MDM
// endpoints: lost and found, locations, wipes by kind (erase vs selective wipe), cancel,
// retire, and the refusals that keep personal devices safe.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { PlistDict } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { commandIn, plistText, type SimulatedDevice } from '../helpers/simulated-device.js'

async function supervised(mdm: MdmFixture, device: SimulatedDevice) {
  await mdm.database.db.updateTable('devices').set({ is_supervised: true }).where('id', '=', device.udid).execute()
}

/** Polls and answers Acknowledged until the queue is empty; returns what it ran, in order. */
async function runQueue(
  device: SimulatedDevice,
  answers: Record<string, PlistDict> = {},
): Promise<Array<{ uuid: string; requestType: string; command: PlistDict }>> {
  const ran: Array<{ uuid: string; requestType: string; command: PlistDict }> = []
  let next = commandIn(await device.idle())
  while (next) {
    ran.push(next)
    next = commandIn(await device.answer(next.uuid, 'Acknowledged', answers[next.requestType] ?? {}))
  }
  return ran
}

t.test('lost and found: Lost Mode, location and sound for a supervised work iPad; its location is stored', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  await supervised(mdm, device)
  await mdm.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })

  const lost = await api('POST', `/api/v1/devices/${device.udid}/lost`, {
    body: { message: 'Lost: call the council', phone_number: '+31 20 555 0100', footnote: 'Reward' },
  })
  t.equal(lost.statusCode, 201, lost.body)
  t.match(lost.json, { action: 'lost', status: 'pending', details: { lost_mode: true } })
  t.same(
    lost.json.commands.map((c: { request_type: string }) => c.request_type),
    ['EnableLostMode', 'DeviceLocation', 'PlayLostModeSound'],
  )
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.lifecycle_state, 'lost')

  const location = {
    Latitude: 52.3731,
    Longitude: 4.8922,
    HorizontalAccuracy: 12.5,
    VerticalAccuracy: 3,
    Altitude: 2,
    Speed: 0,
    Course: -1,
    Timestamp: '2026-12-03T09:00:00Z',
  }
  const ran = await runQueue(device, { DeviceLocation: location })
  t.same(
    ran.map((c) => c.requestType),
    ['EnableLostMode', 'DeviceLocation', 'PlayLostModeSound', 'ProfileList'],
    'the lost commands go before what was queued',
  )
  t.match(ran[0]!.command, { Message: 'Lost: call the council', PhoneNumber: '+31 20 555 0100', Footnote: 'Reward' })
  const done = await api('GET', `/api/v1/devices/${device.udid}/lifecycle/${lost.json.id}`)
  t.match(done.json, { status: 'completed', commands: [{ status: 'Acknowledged' }, { status: 'Acknowledged' }, { status: 'Acknowledged' }] })

  const locations = await api('GET', `/api/v1/devices/${device.udid}/locations`)
  t.equal(locations.statusCode, 200)
  t.match(locations.json.items, [
    { latitude: 52.3731, longitude: 4.8922, horizontal_accuracy: 12.5, located_at: '2026-12-03T09:00:00.000Z', command_uuid: ran[1]!.uuid },
  ])

  const locate = await api('POST', `/api/v1/devices/${device.udid}/locate`)
  t.equal(locate.statusCode, 201)
  await runQueue(device, { DeviceLocation: { ...location, Latitude: 52.4 } })
  t.equal((await api('GET', `/api/v1/devices/${device.udid}/locations`)).json.items[0].latitude, 52.4, 'newest first')

  const found = await api('POST', `/api/v1/devices/${device.udid}/found`)
  t.equal(found.statusCode, 201)
  t.same(
    found.json.commands.map((c: { request_type: string }) => c.request_type),
    ['DisableLostMode'],
  )
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.lifecycle_state, 'lost', 'lost until the device confirms')
  await runQueue(device)
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.lifecycle_state, 'active')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/found`)).statusCode, 409, 'not lost any more')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/locate`)).statusCode, 409, 'locating needs Lost Mode')

  const timeline = await api('GET', `/api/v1/devices/${device.udid}/lifecycle`)
  t.same(
    timeline.json.items.map((a: { action: string; status: string }) => `${a.action}:${a.status}`),
    ['found:completed', 'locate:completed', 'lost:completed'],
  )
})

t.test('lost on an unsupervised device is a DeviceLock with the message; it cannot be located', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const helpdesk = (await api('POST', '/api/v1/api-keys', { body: { name: 'desk', role: 'helpdesk' } })).json.key as string
  const lost = await api('POST', `/api/v1/devices/${device.udid}/lost`, { key: helpdesk, body: { message: 'Call IT', phone_number: '112' } })
  t.equal(lost.statusCode, 201, 'helpdesk reports devices lost')
  t.match(lost.json, { details: { lost_mode: false }, commands: [{ request_type: 'DeviceLock' }] })
  const [lock] = await runQueue(device)
  t.match(lock!.command, { RequestType: 'DeviceLock', Message: 'Call IT', PhoneNumber: '112' })
  const locate = await api('POST', `/api/v1/devices/${device.udid}/locate`, { key: helpdesk })
  t.equal(locate.statusCode, 422)
  const found = await api('POST', `/api/v1/devices/${device.udid}/found`, { key: helpdesk })
  t.equal(found.statusCode, 201)
  t.match(found.json, { status: 'completed', commands: [], details: { lost_mode: false } }, 'nothing to send: the user unlocks with the passcode')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/wipe`, { key: helpdesk })).statusCode, 403, 'helpdesk never wipes')
})

t.test('a personal device is never erased, located or put in Lost Mode, whatever the path', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const userEnrollment = await mdm.enrolledDevice({ userEnrollment: true })
  t.equal((await api('GET', `/api/v1/devices/${encodeURIComponent(userEnrollment.udid)}`)).json.kind, 'personal', 'a User Enrollment is personal')
  const refusedByApple = await api('POST', `/api/v1/devices/${encodeURIComponent(userEnrollment.udid)}/erase`, { body: {} })
  t.equal(refusedByApple.statusCode, 422)
  t.equal(refusedByApple.json.reason, 'not_for_user_enrollment', 'Apple refuses it there already')

  // A personal phone enrolled with a device enrollment profile: Apple would allow an erase; Orchard does not.
  const device = await mdm.enrolledDevice()
  const id = device.udid
  t.equal((await api('PATCH', `/api/v1/devices/${id}`, { body: { kind: 'personal' } })).json.kind, 'personal')

  const erase = await api('POST', `/api/v1/devices/${encodeURIComponent(id)}/erase`, { body: {} })
  t.equal(erase.statusCode, 422)
  t.equal(erase.json.reason, 'not_for_personal_device')
  const typed = await api('POST', '/api/v1/commands', { body: { enrollment_ids: [id], command: { request_type: 'EraseDevice' }, push: false } })
  t.match(typed.json, { stored: false, targets: [{ result: 'not_applicable', reason: 'not_for_personal_device' }] })
  const raw = await mdm.enqueue([id], 'EraseDevice')
  t.match(raw.json, { stored: false, targets: [{ result: 'not_applicable', reason: 'not_for_personal_device' }] })
  const byFilter = await api('POST', '/api/v1/commands', { body: { filter: {}, command: { request_type: 'DeviceLocation' }, push: false } })
  t.equal(byFilter.json.stored, false)
  t.same(
    byFilter.json.targets.map((target: { reason: string }) => target.reason).sort(),
    ['not_for_personal_device', 'not_for_user_enrollment'],
    'a filter reaches neither',
  )
  await mdm.database.db.updateTable('devices').set({ is_supervised: true }).where('id', '=', id).execute()
  t.equal((await api('POST', `/api/v1/devices/${encodeURIComponent(id)}/locate`)).statusCode, 422)
  t.equal((await api('POST', `/api/v1/devices/${encodeURIComponent(id)}/reinstall`)).statusCode, 422)
  const lost = await api('POST', `/api/v1/devices/${encodeURIComponent(id)}/lost`, { body: { message: 'Lost?' } })
  t.equal(lost.statusCode, 422, 'never reported lost: no Lost Mode, no location, no lock as lost')
  t.equal(lost.json.reason, 'not_for_personal_device')
  t.equal(
    (await api('POST', `/api/v1/devices/${encodeURIComponent(id)}/lock`, { body: { message: 'Locked by IT at your request' } })).statusCode,
    201,
    'a plain lock is allowed (Apple allows DeviceLock)',
  )

  const toWork = await api('PATCH', `/api/v1/devices/${encodeURIComponent(userEnrollment.udid)}`, { body: { kind: 'work' } })
  t.equal(toWork.statusCode, 400, 'a User Enrollment stays personal')
  t.same(
    toWork.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/kind'],
  )
  const commands = await mdm.database.db.selectFrom('commands').select('request_type').execute()
  t.notOk(
    commands.some((row) => row.request_type === 'EraseDevice' || row.request_type === 'DeviceLocation'),
    'nothing of the kind was ever stored',
  )
})

t.test('selective wipe of a personal device: every managed app and profile, then the MDM profile; personal ones stay; no erase', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice({ userEnrollment: true })
  const id = encodeURIComponent(device.udid)
  // What the device says it has (answered faithfully to ProfileList and InstalledApplicationList).
  await mdm.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })
  await mdm.enqueue([device.udid], 'InstalledApplicationList', {}, { push: 'false' })
  const profiles = [
    {
      PayloadIdentifier: 'orchard.enrollment',
      PayloadUUID: randomUUID(),
      IsManaged: false,
      PayloadContent: [{ PayloadType: 'com.apple.security.scep' }, { PayloadType: 'com.apple.mdm' }],
    },
    { PayloadIdentifier: 'council.wifi', PayloadUUID: randomUUID(), IsManaged: true, PayloadContent: [{ PayloadType: 'com.apple.wifi.managed' }] },
    { PayloadIdentifier: 'council.mail', PayloadUUID: randomUUID(), IsManaged: true, PayloadContent: [{ PayloadType: 'com.apple.mail.managed' }] },
    { PayloadIdentifier: 'me.personal.vpn', PayloadUUID: randomUUID(), IsManaged: false, PayloadContent: [{ PayloadType: 'com.apple.vpn.managed' }] },
  ]
  const apps = [
    { Identifier: 'com.council.intranet', Name: 'Intranet', IsManaged: true },
    { Identifier: 'com.example.game', Name: 'Game', IsManaged: false },
  ]
  await runQueue(device, { ProfileList: { ProfileList: profiles }, InstalledApplicationList: { InstalledApplicationList: apps } })

  const wipe = await api('POST', `/api/v1/devices/${id}/wipe`, { body: {} })
  t.equal(wipe.statusCode, 201, wipe.body)
  t.match(wipe.json, {
    action: 'selective_wipe',
    status: 'pending',
    details: { removing: { applications: ['com.council.intranet'], profiles: ['council.mail', 'council.wifi'], mdm_profile: 'orchard.enrollment' } },
  })
  t.same(
    wipe.json.commands.map((c: { request_type: string; item: string }) => `${c.request_type} ${c.item}`),
    ['RemoveApplication com.council.intranet', 'RemoveProfile council.mail', 'RemoveProfile council.wifi', 'RemoveProfile orchard.enrollment'],
  )
  t.equal((await api('POST', `/api/v1/devices/${id}/wipe`, { body: {} })).statusCode, 409, 'one wipe at a time')

  const ran = await runQueue(device)
  t.same(
    ran.map((c) => `${c.requestType} ${plistText(c.command['Identifier'])}`),
    ['RemoveApplication com.council.intranet', 'RemoveProfile council.mail', 'RemoveProfile council.wifi', 'RemoveProfile orchard.enrollment'],
    'the MDM profile goes last',
  )
  t.notOk(
    ran.some((c) => c.requestType === 'EraseDevice'),
    'no erase',
  )
  const report = await api('GET', `/api/v1/devices/${id}/lifecycle/${wipe.json.id}`)
  t.match(
    report.json,
    { status: 'completed', commands: [{ status: 'Acknowledged' }, { status: 'Acknowledged' }, { status: 'Acknowledged' }, { status: 'Acknowledged' }] },
    'what was removed, item by item',
  )
  t.equal((await api('GET', `/api/v1/devices/${id}`)).json.lifecycle_state, 'wiped')
  t.equal((await device.checkOut()).status, 200, 'the device leaves management')
  const timeline = await api('GET', `/api/v1/audit-events?device_id=${id}&category=device`)
  t.same(
    timeline.json.items.map((e: { action: string }) => e.action),
    ['checked_out', 'wiped', 'enrolled'],
  )
})

t.test('erasing a work device: preserve data plan, first in the queue; cancel before it is fetched; wiped when acknowledged', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const first = await api('POST', `/api/v1/devices/${device.udid}/wipe`, { body: { preserve_data_plan: true } })
  t.equal(first.statusCode, 201)
  t.match(first.json, { action: 'erase', commands: [{ request_type: 'EraseDevice', status: 'Pending' }] })
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.lifecycle_state, 'wipe_pending')
  const cancelled = await api('POST', `/api/v1/devices/${device.udid}/lifecycle/${first.json.id}/cancel`)
  t.equal(cancelled.statusCode, 200)
  t.match(cancelled.json, { status: 'cancelled', commands: [{ status: 'Cancelled' }] })
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.lifecycle_state, 'active')
  t.equal(commandIn(await device.idle()), undefined, 'the device never gets it')

  await mdm.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })
  const second = await api('POST', `/api/v1/devices/${device.udid}/wipe`, { body: { preserve_data_plan: true } })
  const fetched = commandIn(await device.idle())!
  t.equal(fetched.requestType, 'EraseDevice', 'the erase goes first')
  t.equal(fetched.command['PreserveDataPlan'], true)
  const late = await api('POST', `/api/v1/devices/${device.udid}/lifecycle/${second.json.id}/cancel`)
  t.equal(late.statusCode, 409, 'fetched: it may be running')
  t.match(late.json.detail, /fetched/)
  t.equal(
    commandIn(await device.answer(fetched.uuid, 'Acknowledged')),
    undefined,
    'a device erasing itself is handed nothing more (the ProfileList stays behind)',
  )
  const wiped = await api('GET', `/api/v1/devices/${device.udid}`)
  t.match(wiped.json, { lifecycle_state: 'wiped', enrolled: false, wiped_at: String })
  t.match((await api('GET', `/api/v1/devices/${device.udid}/lifecycle/${second.json.id}`)).json, { status: 'completed' })
  const queued = await mdm.database.db
    .selectFrom('command_targets')
    .select('status')
    .where('enrollment_id', '=', device.udid)
    .where('status', '=', 'Pending')
    .execute()
  t.equal(queued.length, 0, 'nothing stays queued for a wiped device')
  const period = await mdm.database.db.selectFrom('device_tenancy').select('ended_at').where('device_id', '=', device.udid).executeTakeFirstOrThrow()
  t.ok(period.ended_at, 'billing stops')
})

t.test('reinstall needs an ADE device; retire stops management and keeps the history; kinds change', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const reinstall = await api('POST', `/api/v1/devices/${device.udid}/reinstall`, { body: {} })
  t.equal(reinstall.statusCode, 422)
  t.equal(reinstall.json.reason, 'not_ade')

  const toFunction = await api('PATCH', `/api/v1/devices/${device.udid}`, { body: { kind: 'function' } })
  t.equal(toFunction.statusCode, 200)
  t.equal(toFunction.json.kind, 'function')
  t.equal((await api('PATCH', `/api/v1/devices/${device.udid}`, { body: { kind: 'personal' } })).json.kind, 'personal')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/erase`, { body: {} })).statusCode, 422, 'now it is personal: no erase')
  t.equal((await api('PATCH', `/api/v1/devices/${device.udid}`, { body: { kind: 'sideways' } })).statusCode, 400)

  await mdm.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })
  t.equal(
    (await api('POST', `/api/v1/devices/${device.udid}/retire`, { body: { disown_from_abm: true } })).statusCode,
    422,
    'not an ABM device: nothing to disown',
  )
  const retired = await api('POST', `/api/v1/devices/${device.udid}/retire`)
  t.equal(retired.statusCode, 201)
  t.match(retired.json, { action: 'retire', status: 'completed' })
  t.match((await api('GET', `/api/v1/devices/${device.udid}`)).json, { lifecycle_state: 'retired', enrolled: false, retired_at: String })
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/retire`)).statusCode, 409)
  // A retired device that still polls is told to unenroll, the way its OS knows.
  const setOs = (productName: string, osVersion: string) =>
    mdm.database.db.updateTable('devices').set({ product_name: productName, os_version: osVersion }).where('id', '=', device.udid).execute()
  await setOs('iPhone15,2', '17.5')
  const modern = await device.idle()
  t.equal(modern.status, 403, 'iOS 17 and later: ErrorUnrecognizedDevice')
  t.same(JSON.parse(modern.body.toString()), { code: 'com.apple.unrecognized.device' })
  await setOs('iPhone12,1', '16.7.10')
  t.equal((await device.idle()).status, 401, 'before iOS 17: 401, the only unenroll signal that OS knows')
  await setOs('Mac14,2', '14.4')
  t.equal((await device.idle()).status, 403, 'macOS 14 and later: ErrorUnrecognizedDevice')
  const history = await api('GET', `/api/v1/devices/${device.udid}/lifecycle`)
  t.same(
    history.json.items.map((a: { action: string }) => a.action),
    ['retire', 'kind_changed', 'kind_changed'],
  )
  t.match(history.json.items[2].details, { from: 'work', to: 'function' })
  t.equal((await api('GET', '/api/v1/devices?lifecycle_state=retired')).json.items.length, 1)
  t.equal((await api('GET', '/api/v1/devices/nope/lifecycle')).statusCode, 404)
})

t.test("selective wipe also removes what blueprints installed when the device's last lists are older", async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice({ userEnrollment: true })
  await mdm.database.db
    .insertInto('device_config_state')
    .values([
      { device_id: device.udid, item_type: 'profile', identifier: 'council.vpn', status: 'installed' },
      { device_id: device.udid, item_type: 'app', identifier: 'com.council.mail', status: 'installing' },
    ])
    .execute()
  const wipe = await api('POST', `/api/v1/devices/${encodeURIComponent(device.udid)}/wipe`, { body: {} })
  t.equal(wipe.statusCode, 201)
  t.same(
    wipe.json.commands.map((c: { request_type: string; item: string }) => `${c.request_type} ${c.item}`),
    ['RemoveApplication com.council.mail', 'RemoveProfile council.vpn', 'RemoveProfile orchard.enrollment'],
    'no ProfileList yet: the MDM profile is known by its identifier',
  )
})

t.test('a personal device becomes erasable only through a central owner with a reason', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'council', name: 'Council' } })).statusCode, 201)
  const key = async (role: string, tenantId: string | null) =>
    (await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId}`, role, tenant_id: tenantId } })).json.key as string
  const tenantAdmin = await key('admin', 'council')
  const centralAdmin = await key('admin', null)
  const device = await mdm.enrolledDevice()
  await mdm.database.db.updateTable('devices').set({ tenant_id: 'council', kind: 'personal' }).where('id', '=', device.udid).execute()

  // The careless (or hostile) admin's path: make it a work phone, then erase it.
  for (const [who, k] of [
    ['tenant admin', tenantAdmin],
    ['central admin', centralAdmin],
  ] as const) {
    const patched = await api('PATCH', `/api/v1/devices/${device.udid}`, { key: k, body: { kind: 'work', reason: 'leaver' } })
    t.equal(patched.statusCode, 403, `${who}: refused`)
    t.match(patched.json.detail, /only an owner in central IT/)
  }
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/erase`, { key: tenantAdmin, body: {} })).statusCode, 422, 'so the erase stays refused')
  const noReason = await api('PATCH', `/api/v1/devices/${device.udid}`, { body: { kind: 'work' } })
  t.equal(noReason.statusCode, 400, 'a central owner must give a reason')
  t.same(
    noReason.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/reason'],
  )
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.kind, 'personal', 'nothing changed')

  const changed = await api('PATCH', `/api/v1/devices/${device.udid}`, { body: { kind: 'work', reason: 'the employee sold the phone to the council' } })
  t.equal(changed.statusCode, 200)
  t.equal(changed.json.kind, 'work')
  const history = (await api('GET', `/api/v1/devices/${device.udid}/lifecycle`)).json.items
  t.match(history[0], { action: 'kind_changed', details: { from: 'personal', to: 'work', reason: 'the employee sold the phone to the council' } })
  const audit = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}&action=updateDevice`)).json.items
  t.equal(audit.filter((e: { outcome: string }) => e.outcome === 'failure').length, 3, 'each refusal is audited')
  t.equal(audit.filter((e: { outcome: string }) => e.outcome === 'success').length, 1)
  // Back to personal needs no special role.
  t.equal((await api('PATCH', `/api/v1/devices/${device.udid}`, { key: tenantAdmin, body: { kind: 'personal' } })).statusCode, 200)
})
