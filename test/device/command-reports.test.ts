// The command queue through the real HTTP surface: enroll -> commands -> NotNow -> results.
import t from 'tap'
import type { PlistDict } from '../../src/mdm/plist.js'
import { commandIn } from '../helpers/simulated-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

t.test('an enrolled device drains its queue: priority, then FIFO; results stored; zero-byte body at the end', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()

  const idleEmpty = await device.idle()
  t.equal(idleEmpty.status, 200)
  t.equal(idleEmpty.body.length, 0, 'nothing queued: 200 with a zero-byte body')

  const first = await mdm.enqueue([device.udid], 'ProfileList')
  t.equal(first.statusCode, 200)
  t.match(first.json, { command_uuid: first.uuid, request_type: 'ProfileList', stored: true, targets: [{ enrollment_id: device.udid, result: 'queued' }] })
  t.same(Object.keys(first.json).sort(), ['command_uuid', 'push', 'request_type', 'stored', 'targets'])
  t.match(
    first.json.push,
    { results: [{ enrollment_id: device.udid, status: 'failed', reason: /no push certificate for topic/ }] },
    'no push certificate uploaded: the push fails, the command stays queued',
  )
  const second = await mdm.enqueue([device.udid], 'SecurityInfo')
  const urgent = await mdm.enqueue([device.udid], 'DeviceLock', { Message: 'Lost' }, { priority: '10' })

  const sent1 = commandIn(await device.idle())
  t.equal(sent1?.uuid, urgent.uuid, 'highest priority first')
  t.equal(sent1?.command['Message'], 'Lost')
  const sent2 = commandIn(await device.answer(urgent.uuid, 'Acknowledged'))
  t.equal(sent2?.uuid, first.uuid, 'then the oldest')
  const sent3 = commandIn(
    await device.answer(first.uuid, 'Acknowledged', {
      ProfileList: [{ PayloadIdentifier: 'com.example.wifi', PayloadUUID: 'P1', PayloadDisplayName: 'Wi-Fi', IsManaged: true }],
    }),
  )
  t.equal(sent3?.uuid, second.uuid)
  const done = await device.answer(second.uuid, 'Error', {
    ErrorChain: [{ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'Nope', USEnglishDescription: 'Nope' }],
  })
  t.equal(done.status, 200)
  t.equal(done.body.length, 0, 'queue drained')

  t.match(await mdm.targetStatus(device.udid, urgent.uuid), { status: 'Acknowledged', delivery_count: 1 })
  const errored = await mdm.targetStatus(device.udid, second.uuid)
  t.equal(errored?.['status'], 'Error')
  t.same(errored?.['error_chain'], [{ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'Nope', USEnglishDescription: 'Nope' }])
  t.match(errored?.['result_raw']?.toString(), /MCMDMErrorDomain/, 'the raw result is kept')
  const profiles = await mdm.database.db.selectFrom('installed_profiles').selectAll().where('enrollment_id', '=', device.udid).execute()
  t.match(profiles, [{ identifier: 'com.example.wifi', uuid: 'P1', display_name: 'Wi-Fi', is_managed: true }], 'ProfileList parsed into inventory')
})

t.test('NotNow keeps the command queued; the rest of the connection offers only never-answered commands', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const a = await mdm.enqueue([device.udid], 'InstalledApplicationList')
  const b = await mdm.enqueue([device.udid], 'CertificateList')

  t.equal(commandIn(await device.idle())?.uuid, a.uuid)
  const afterNotNow = commandIn(await device.answer(a.uuid, 'NotNow'))
  t.equal(afterNotNow?.uuid, b.uuid, 'after NotNow: the next never-answered command')
  const end = await device.answer(b.uuid, 'Acknowledged', { CertificateList: [] })
  t.equal(end.body.length, 0, 'the NotNow-ed command is not offered again in the same connection')
  t.match(await mdm.targetStatus(device.udid, a.uuid), { status: 'NotNow', not_now_count: 1 })

  const again = commandIn(await device.idle())
  t.equal(again?.uuid, a.uuid, 'offered again on the next Idle')
  const nothing = await device.answer(a.uuid, 'NotNow')
  t.equal(nothing.body.length, 0, 'refused again: nothing else to send')
  t.match(await mdm.targetStatus(device.udid, a.uuid), { status: 'NotNow', not_now_count: 2, delivery_count: 2 })

  commandIn(await device.idle())
  const apps: PlistDict[] = [
    { Identifier: 'com.example.app', Name: 'Example', Version: '42', ShortVersion: '4.2', BundleSize: 123456, IsManaged: true },
    { Identifier: 'com.apple.Pages', Name: 'Pages', Version: '1', ShortVersion: '14.0' },
  ]
  t.equal((await device.answer(a.uuid, 'Acknowledged', { InstalledApplicationList: apps })).body.length, 0)
  const stored = await mdm.database.db.selectFrom('installed_applications').selectAll().where('enrollment_id', '=', device.udid).orderBy('identifier').execute()
  t.match(stored, [
    { identifier: 'com.apple.Pages', name: 'Pages', short_version: '14.0', is_managed: null },
    { identifier: 'com.example.app', name: 'Example', version: '42', bundle_size: 123456, is_managed: true },
  ])
})

t.test('a repeated result is stored once; a result for an unknown command gets the next command', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const a = await mdm.enqueue([device.udid], 'DeviceInformation', { Queries: ['DeviceName', 'OSVersion'] })
  const b = await mdm.enqueue([device.udid], 'SecurityInfo')

  t.equal(commandIn(await device.idle())?.uuid, a.uuid)
  const information = { QueryResponses: { DeviceName: 'Council iPad 7', OSVersion: '18.2', SerialNumber: 'F9FXYZ', IsSupervised: true, DeviceCapacity: 64.5 } }
  t.equal(commandIn(await device.answer(a.uuid, 'Acknowledged', information))?.uuid, b.uuid)
  const firstResult = await mdm.targetStatus(device.udid, a.uuid)
  // The device re-sends the same result (its first answer was lost on the way back).
  t.equal(commandIn(await device.answer(a.uuid, 'Acknowledged', { QueryResponses: { DeviceName: 'changed' } }))?.uuid, b.uuid, 'b is still the next command')
  t.same(await mdm.targetStatus(device.udid, a.uuid), firstResult, 'the repeated result changed nothing')

  t.equal(commandIn(await device.answer('no-such-command', 'Acknowledged'))?.uuid, b.uuid, 'unknown CommandUUID: logged, next command sent')

  const row = await mdm.database.db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(row, { device_name: 'Council iPad 7', os_version: '18.2', serial_number: 'F9FXYZ', is_supervised: true })
  t.match(row.device_information, { DeviceName: 'Council iPad 7', DeviceCapacity: 64.5 })
})

t.test('a command past its deadline is never sent and is marked Expired', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const stale = await mdm.enqueue([device.udid], 'ProfileList', {}, { expires_at: '2020-01-01T00:00:00Z' })
  const fresh = await mdm.enqueue([device.udid], 'SecurityInfo', {}, { expires_at: '2999-01-01T00:00:00Z' })
  t.equal(commandIn(await device.idle())?.uuid, fresh.uuid)
  t.match(await mdm.targetStatus(device.udid, stale.uuid), { status: 'Expired', delivery_count: 0 })
})

t.test('one command for many targets: unknown and disabled targets are reported, not dropped silently', async (t) => {
  const mdm = await setupMdm(t)
  const one = await mdm.enrolledDevice()
  const two = await mdm.enrolledDevice()
  const gone = await mdm.enrolledDevice()
  t.equal((await gone.checkOut()).status, 200)
  const result = await mdm.enqueue([one.udid, two.udid, 'unknown-udid', gone.udid, one.udid], 'DeviceInformation', { Queries: ['UDID'] })
  t.equal(result.statusCode, 200)
  t.same(result.json.targets, [
    { enrollment_id: one.udid, result: 'queued' },
    { enrollment_id: two.udid, result: 'queued' },
    { enrollment_id: 'unknown-udid', result: 'unknown_enrollment' },
    { enrollment_id: gone.udid, result: 'enrollment_disabled' },
  ])
  t.equal(commandIn(await one.idle())?.uuid, result.uuid)
  t.equal(commandIn(await two.idle())?.uuid, result.uuid, 'the same command bytes for every target')

  const none = await mdm.enqueue(['nobody'], 'DeviceInformation', { Queries: ['UDID'] })
  t.equal(none.json.stored, false, 'a command no target can take is not stored')
})

t.test('CheckOut stops delivery; a new enrollment starts with a clean queue', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const pending = await mdm.enqueue([device.udid], 'ProfileList')
  t.equal((await device.checkOut()).status, 200)
  t.match(await mdm.targetStatus(device.udid, pending.uuid), { status: 'Cancelled', cancel_reason: 'checked out' })
  const refused = await device.idle()
  t.equal(refused.status, 400, 'a checked-out enrollment gets 400 (never 401)')

  await device.enroll()
  t.equal((await device.idle()).body.length, 0, 'the old command is not delivered after re-enrollment')
  const next = await mdm.enqueue([device.udid], 'SecurityInfo')
  t.equal(commandIn(await device.idle())?.uuid, next.uuid, 'the new queue works')
})

t.test('Authenticate cancels what was queued and disables the channel until TokenUpdate', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const pending = await mdm.enqueue([device.udid], 'ProfileList')
  t.equal((await device.authenticate()).status, 200)
  t.match(await mdm.targetStatus(device.udid, pending.uuid), { status: 'Cancelled', cancel_reason: 're-authenticated' })
  t.equal((await device.idle()).status, 400, 'not enabled between Authenticate and TokenUpdate')
  t.equal((await mdm.enqueue([device.udid], 'ProfileList')).json.targets[0].result, 'enrollment_disabled')
  t.equal((await device.tokenUpdate()).status, 200)
  t.equal((await device.idle()).status, 200)
})

t.test('reports without Content-Type, and the single /mdm URL dispatching on Content-Type', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const queued = await mdm.enqueue([device.udid], 'ProfileList')
  const body = Buffer.from(
    `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>${device.udid}</string><key>Status</key><string>Idle</string></dict></plist>`,
  )
  const response = await mdm.app.inject({ method: 'PUT', url: '/mdm', payload: body, headers: { 'mdm-signature': device.sign(body) } })
  t.equal(response.statusCode, 200)
  t.equal(commandIn({ status: 200, body: response.rawPayload, contentType: undefined })?.uuid, queued.uuid)
  t.equal(
    (await device.send('/mdm', body, 'application/x-apple-aspen-mdm-checkin')).status,
    400,
    'checkin content type: parsed as a check-in, which this is not',
  )
})

t.test('the enqueue API wants a key and a valid command', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const plist = Buffer.from(
    '<plist version="1.0"><dict><key>CommandUUID</key><string>x1</string><key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict></dict></plist>',
  )
  const noKey = await mdm.app.inject({
    method: 'POST',
    url: `/api/v1/enqueue/${device.udid}`,
    headers: { 'content-type': 'application/x-apple-plist' },
    payload: plist,
  })
  t.equal(noKey.statusCode, 401)
  t.match(noKey.json(), { code: 'unauthorized' })
  const wrongKey = await mdm.app.inject({
    method: 'POST',
    url: `/api/v1/enqueue/${device.udid}`,
    headers: { authorization: 'Bearer nope-nope-nope-nope-nope-nope', 'content-type': 'application/x-apple-plist' },
    payload: plist,
  })
  t.equal(wrongKey.statusCode, 401)

  const send = (payload: string | Buffer) =>
    mdm.app.inject({
      method: 'POST',
      url: `/api/v1/enqueue/${device.udid}`,
      headers: { authorization: `Bearer ${'test-api-key-0123456789abcdef'}`, 'content-type': 'application/x-apple-plist' },
      payload,
    })
  t.equal((await send(plist)).statusCode, 200)
  const duplicate = await send(plist)
  t.equal(duplicate.statusCode, 409)
  t.match(duplicate.json(), { code: 'conflict' })
  const notPlist = await send('{"json": true}')
  t.equal(notPlist.statusCode, 400)
  t.match(notPlist.json(), { code: 'validation_failed', detail: /not a valid plist/ })
  const noRequestType = await send('<plist version="1.0"><dict><key>CommandUUID</key><string>x2</string><key>Command</key><dict/></dict></plist>')
  t.match(noRequestType.json(), { code: 'validation_failed', detail: /RequestType/ })
})
