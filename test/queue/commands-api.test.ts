import { sql } from 'kysely'
import t from 'tap'
import { decodePlist, encodePlist } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm, testApiKey } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

t.test('typed commands: validated against Apple schema, encoded as plist, result readable as JSON', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()

  const lock = await api('POST', `/api/v1/devices/${device.udid}/commands?push=false&priority=5`, {
    body: { request_type: 'DeviceLock', Message: 'Call IT', PhoneNumber: '+31 20 555 0100' },
  })
  t.equal(lock.statusCode, 201)
  t.match(lock.json, { request_type: 'DeviceLock', stored: true, targets: [{ enrollment_id: device.udid, result: 'queued' }], push: null })

  const bad = await api('POST', `/api/v1/devices/${device.udid}/commands`, { body: { request_type: 'DeviceLock', Message: 42, Bogus: true } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json.code, 'validation_failed')
  t.same(bad.json.errors.map((e: { pointer: string }) => e.pointer).sort(), ['/Bogus', '/Message'])

  const missing = await api('POST', '/api/v1/commands', { body: { enrollment_ids: [device.udid], command: { request_type: 'InstallProfile' } } })
  t.equal(missing.statusCode, 400)
  t.same(
    missing.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/command/Payload'],
  )

  const unknownType = await api('POST', `/api/v1/devices/${device.udid}/commands`, { body: { request_type: 'SelfDestruct' } })
  t.equal(unknownType.statusCode, 400)
  t.equal(unknownType.json.errors[0].pointer, '/request_type')

  const notForIpad = await api('POST', `/api/v1/devices/${device.udid}/commands`, { body: { request_type: 'SetFirmwarePassword', NewPassword: 'x' } })
  t.equal(notForIpad.statusCode, 422)
  t.equal(notForIpad.json.code, 'not_applicable')
  t.equal(notForIpad.json.reason, 'unsupported_platform')

  const profile = Buffer.from('<?xml version="1.0"?><plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string></dict></plist>')
  const install = await api('POST', '/api/v1/commands', {
    body: {
      enrollment_ids: [device.udid, 'ghost'],
      command: { request_type: 'InstallProfile', Payload: profile.toString('base64') },
      push: false,
      command_uuid: 'install-1',
    },
  })
  t.equal(install.statusCode, 201)
  t.same(install.json.targets, [
    { enrollment_id: device.udid, result: 'queued' },
    { enrollment_id: 'ghost', result: 'unknown_enrollment' },
  ])
  t.equal(install.json.command_uuid, 'install-1')
  const duplicate = await api('POST', '/api/v1/commands', {
    body: { enrollment_ids: [device.udid], command: { request_type: 'ProfileList' }, command_uuid: 'install-1' },
  })
  t.equal(duplicate.statusCode, 409)

  // The device gets the lock first (priority 5), then the profile with the data intact.
  let response = await device.idle()
  t.equal(commandIn(response)!.requestType, 'DeviceLock')
  t.same(commandIn(response)!.command['Message'], 'Call IT')
  response = await device.answer(commandIn(response)!.uuid, 'Acknowledged')
  const delivered = commandIn(response)!
  t.equal(delivered.uuid, 'install-1')
  t.ok(Buffer.isBuffer(delivered.command['Payload']) && delivered.command['Payload'].equals(profile), 'data travelled as base64 and arrived as bytes')
  await device.answer('install-1', 'Error', { ErrorChain: [{ ErrorCode: 4001, ErrorDomain: 'MCProfileErrorDomain', LocalizedDescription: 'Bad profile' }] })

  const command = await api('GET', '/api/v1/commands/install-1')
  t.equal(command.statusCode, 200)
  t.match(command.json, {
    command_uuid: 'install-1',
    request_type: 'InstallProfile',
    command: { RequestType: 'InstallProfile', Payload: profile.toString('base64') },
    targets: { total: 1, Error: 1, Pending: 0 },
  })
  const targets = await api('GET', '/api/v1/commands/install-1/targets')
  t.match(targets.json.items, [
    { enrollment_id: device.udid, status: 'Error', delivered: true, error_chain: [{ ErrorCode: 4001 }], result: { Status: 'Error', CommandUUID: 'install-1' } },
  ])
  t.same((await api('GET', '/api/v1/commands/install-1/targets?status=Acknowledged')).json.items, [])
  t.equal((await api('GET', '/api/v1/commands/nope/targets')).statusCode, 404)

  const history = await api('GET', `/api/v1/enrollments/${device.udid}/commands?state=finished`)
  t.same(
    history.json.items.map((c: { request_type: string; status: string }) => `${c.request_type}:${c.status}`),
    ['InstallProfile:Error', 'DeviceLock:Acknowledged'],
  )
  const list = await api('GET', '/api/v1/commands?request_type=DeviceLock')
  t.same(
    list.json.items.map((c: { command_uuid: string }) => c.command_uuid),
    [lock.json.command_uuid],
  )
})

t.test('raw plists still work, through the JSON API too', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const plist = encodePlist({ CommandUUID: 'raw-1', Command: { RequestType: 'Settings', Settings: [{ Item: 'DeviceName', DeviceName: 'Kiosk' }] } })
  const queued = await api('POST', '/api/v1/commands', { body: { enrollment_ids: [device.udid], plist_base64: plist.toString('base64'), push: false } })
  t.equal(queued.statusCode, 201)
  t.equal(queued.json.command_uuid, 'raw-1')
  const response = await device.idle()
  t.ok(response.body.equals(plist), 'sent byte for byte')
  const both = await api('POST', '/api/v1/commands', {
    body: { enrollment_ids: [device.udid], plist_base64: plist.toString('base64'), command: { request_type: 'ProfileList' } },
  })
  t.equal(both.statusCode, 400)
  t.equal(both.json.errors[0].pointer, '/plist_base64')
  t.ok(decodePlist(plist))
})

t.test('targets by filter; not-applicable targets are skipped and reported', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const a = await mdm.enrolledDevice()
  const b = await mdm.enrolledDevice()
  const personal = await mdm.enrolledDevice({ userEnrollment: true })
  await mdm.newDevice() // never enrolled: never targeted by a filter
  // An erase by filter takes two steps (destructive-commands.test.ts): the dry run first.
  const dry = await api('POST', '/api/v1/commands', { body: { filter: {}, command: { request_type: 'EraseDevice' }, dry_run: true } })
  t.match(dry.json, { count: 2, not_applicable: 1, unknown: 0 })
  const erase = await api('POST', '/api/v1/commands', {
    body: { filter: {}, command: { request_type: 'EraseDevice' }, push: false, confirmation_token: dry.json.confirmation_token },
  })
  t.equal(erase.statusCode, 201)
  const byId = Object.fromEntries(erase.json.targets.map((x: { enrollment_id: string }) => [x.enrollment_id, x]))
  t.equal(Object.keys(byId).length, 3)
  t.equal(byId[a.udid].result, 'queued')
  t.equal(byId[b.udid].result, 'queued')
  const personalId = Object.keys(byId).find((id) => id !== a.udid && id !== b.udid)!
  t.match(byId[personalId], { result: 'not_applicable', reason: 'not_for_user_enrollment' })
  t.ok(personal)

  const one = await api('POST', '/api/v1/commands', {
    body: { filter: { serial_number: a.serialNumber }, command: { request_type: 'ProfileList' }, push: false },
  })
  t.same(one.json.targets, [{ enrollment_id: a.udid, result: 'queued' }])
})

t.test('cancel: queued targets are cancelled, fetched ones are in flight; clear a queue', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const a = await mdm.enrolledDevice()
  const b = await mdm.enrolledDevice()
  const queued = await api('POST', '/api/v1/commands', { body: { enrollment_ids: [a.udid, b.udid], command: { request_type: 'ProfileList' }, push: false } })
  const uuid = queued.json.command_uuid
  t.equal(commandIn(await a.idle())!.uuid, uuid, 'a fetched it')
  const cancelled = await api('POST', `/api/v1/commands/${uuid}/cancel`)
  t.same(cancelled.json, { command_uuid: uuid, cancelled: 1, in_flight: 1, finished: 0, not_targeted: 0 })
  t.equal((await b.idle()).body.length, 0, 'b never gets it')
  t.equal((await mdm.targetStatus(b.udid, uuid))!['status'], 'Cancelled')
  await a.answer(uuid, 'Acknowledged', { ProfileList: [] })
  t.equal((await mdm.targetStatus(a.udid, uuid))!['status'], 'Acknowledged', 'the in-flight one still records its result')
  t.same((await api('POST', `/api/v1/commands/${uuid}/cancel`, { body: { enrollment_ids: [a.udid, 'other'] } })).json, {
    command_uuid: uuid,
    cancelled: 0,
    in_flight: 0,
    finished: 1,
    not_targeted: 1,
  })
  t.equal((await api('POST', '/api/v1/commands/nope/cancel')).statusCode, 404)

  for (const type of ['ProfileList', 'CertificateList', 'SecurityInfo'])
    await api('POST', `/api/v1/devices/${b.udid}/commands?push=false`, { body: { request_type: type } })
  const open = await api('GET', `/api/v1/enrollments/${b.udid}/commands?state=open&limit=2`)
  t.same(
    open.json.items.map((c: { request_type: string }) => c.request_type),
    ['SecurityInfo', 'CertificateList'],
    'newest first',
  )
  const rest = await api('GET', `/api/v1/enrollments/${b.udid}/commands?state=open&limit=2&cursor=${open.json.next_cursor}`)
  t.same(
    rest.json.items.map((c: { request_type: string }) => c.request_type),
    ['ProfileList'],
  )
  t.equal(rest.json.next_cursor, null)
  t.equal(commandIn(await b.idle())!.requestType, 'ProfileList', 'one fetched')
  t.same((await api('DELETE', `/api/v1/enrollments/${b.udid}/commands`)).json, { cancelled: 2, in_flight: 1 })
  t.equal((await api('GET', `/api/v1/enrollments/${b.udid}/commands?state=open`)).json.items.length, 1)
  t.equal((await api('DELETE', '/api/v1/enrollments/nobody/commands')).statusCode, 404)
})

t.test('cancel racing a device fetching the command: it gets it or it is cancelled, never both, never neither', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const outcomes = { delivered: 0, cancelled: 0 }
  for (let round = 0; round < 25; round++) {
    const uuid = (await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { body: { request_type: 'ProfileList' } })).json.command_uuid
    const [poll, cancel] = await Promise.all([device.idle(), api('POST', `/api/v1/commands/${uuid}/cancel`)])
    const got = commandIn(poll)?.uuid === uuid
    const status = (await mdm.targetStatus(device.udid, uuid))!['status']
    if (got) {
      t.same([cancel.json.cancelled, cancel.json.in_flight, status], [0, 1, 'Pending'], `round ${round}: delivered, so not cancelled`)
      outcomes.delivered++
      await device.answer(uuid, 'Acknowledged', { ProfileList: [] })
    } else {
      t.same([cancel.json.cancelled, status, poll.body.length], [1, 'Cancelled', 0], `round ${round}: cancelled, so not delivered`)
      outcomes.cancelled++
    }
  }
  t.equal(outcomes.delivered + outcomes.cancelled, 25)
})

t.test('convenience actions: lock, erase, restart, profile install and removal', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const lock = await api('POST', `/api/v1/devices/${device.udid}/lock`, { body: { message: 'Lost: call +31 20 555 0100' } })
  t.equal(lock.statusCode, 201)
  t.equal(lock.json.request_type, 'DeviceLock')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/restart`)).json.request_type, 'RestartDevice')
  const profile = Buffer.from('<plist version="1.0"><dict/></plist>')
  const install = await api('POST', `/api/v1/devices/${device.udid}/profiles`, { raw: { payload: profile, contentType: 'application/x-apple-aspen-config' } })
  t.equal(install.statusCode, 201)
  const remove = await api('DELETE', `/api/v1/devices/${device.udid}/profiles/org.example.wifi`)
  t.equal(remove.statusCode, 201)
  t.equal((await api('POST', '/api/v1/devices/ghost/lock')).statusCode, 404)
  // Last: once the device acknowledges the erase it is handed nothing more.
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/erase`, { body: { preserve_data_plan: true } })).json.request_type, 'EraseDevice')

  const seen: Array<[string, unknown]> = []
  let response = await device.idle()
  while (commandIn(response)) {
    const command = commandIn(response)!
    seen.push([
      command.requestType,
      command.command['Message'] ??
        command.command['PreserveDataPlan'] ??
        command.command['Identifier'] ??
        (Buffer.isBuffer(command.command['Payload']) ? 'bytes' : null),
    ])
    response = await device.answer(command.uuid, 'Acknowledged')
  }
  t.same(seen, [
    ['DeviceLock', 'Lost: call +31 20 555 0100'],
    ['RestartDevice', null],
    ['InstallProfile', 'bytes'],
    ['RemoveProfile', 'org.example.wifi'],
    ['EraseDevice', true],
  ])

  const personal = await mdm.enrolledDevice({ userEnrollment: true })
  const personalId = (await api('GET', '/api/v1/devices?user_enrollment=true')).json.items[0].id
  t.ok(personal)
  const refused = await api('POST', `/api/v1/devices/${personalId}/erase`)
  t.equal(refused.statusCode, 422, 'a personal (User Enrollment) device is never fully erased')
  t.equal(refused.json.reason, 'not_for_user_enrollment')
})

t.test('retention: a setting, and pruning that removes only old finished results', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  t.same((await api('GET', '/api/v1/settings')).json, { command_retention_days: 90 })
  t.same((await api('PATCH', '/api/v1/settings', { body: { command_retention_days: 30 } })).json, { command_retention_days: 30 })
  t.equal((await api('PATCH', '/api/v1/settings', { body: { command_retention_days: 0 } })).statusCode, 400)
  t.equal((await api('PATCH', '/api/v1/settings', { body: {} })).statusCode, 400)

  const device = await mdm.enrolledDevice()
  const old = (await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { body: { request_type: 'ProfileList' } })).json.command_uuid
  const open = (await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { body: { request_type: 'CertificateList' } })).json.command_uuid
  const response = await device.idle()
  await device.answer(commandIn(response)!.uuid, 'Acknowledged', { ProfileList: [] })
  const db = mdm.database.db
  await sql`update command_targets set updated_at = now() - interval '31 days'`.execute(db)
  await sql`update commands set created_at = now() - interval '31 days'`.execute(db)
  t.same(await mdm.orchard.retention.prune(), { targets: 1, commands: 1 })
  t.equal((await api('GET', `/api/v1/commands/${old}`)).statusCode, 404, 'the old finished command is gone')
  t.equal((await api('GET', `/api/v1/commands/${open}`)).statusCode, 200, 'a queued one stays, however old')
})

t.test('retention: the inventory answers Orchard asked for by itself go after ORCHARD_INVENTORY_RESULT_RETENTION_DAYS', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_INVENTORY_AT_ENROLLMENT: 'true', ORCHARD_INVENTORY_RESULT_RETENTION_DAYS: '7' })
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const device = await mdm.enrolledDevice()
  const admins = (await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { body: { request_type: 'ProfileList' } })).json.command_uuid
  const answered: string[] = []
  for (let response = await device.idle(), command = commandIn(response); command; command = commandIn(response)) {
    answered.push(command.requestType)
    response = await device.answer(command.uuid, 'Acknowledged', command.requestType === 'ProfileList' ? { ProfileList: [] } : {})
  }
  t.same(
    [...answered].sort(),
    ['CertificateList', 'DeviceInformation', 'InstalledApplicationList', 'ProfileList', 'ProfileList', 'SecurityInfo'],
    'the enrollment inventory and the admin command were answered',
  )
  const { rows: own } = await sql<{ uuid: string }>`select uuid from commands where priority = -10`.execute(db)
  t.equal(own.length, 5, 'five inventory queries of its own')

  // Six days old: everything stays.
  await sql`update command_targets set updated_at = now() - interval '6 days'`.execute(db)
  await sql`update commands set created_at = now() - interval '6 days'`.execute(db)
  t.same(await mdm.orchard.retention.prune(), { targets: 0, commands: 0 })
  // Eight days old: the inventory answers go (their content is the inventory), the admin's command stays for its 90 days.
  await sql`update command_targets set updated_at = now() - interval '8 days'`.execute(db)
  await sql`update commands set created_at = now() - interval '8 days'`.execute(db)
  t.same(await mdm.orchard.retention.prune(), { targets: 5, commands: 5 })
  t.equal((await api('GET', `/api/v1/commands/${admins}`)).statusCode, 200, "the admin's ProfileList stays")
  for (const { uuid } of own) t.equal((await api('GET', `/api/v1/commands/${uuid}`)).statusCode, 404)
  const detail = (await api('GET', `/api/v1/devices/${device.udid}`)).json
  t.ok(detail.enrollments.length === 1, 'the device and its channel are untouched')
})

t.test(
  'an enqueue call stores the command, queues its enabled targets, schedules their re-push and audits it at once; a duplicate or an unreachable command leaves nothing',
  async (t) => {
    const mdm = await setupMdm(t)
    const db = mdm.database.db
    const [a, b, gone] = [await mdm.enrolledDevice(), await mdm.enrolledDevice(), await mdm.enrolledDevice()]
    t.equal((await gone.checkOut()).status, 200)
    const auditOf = (uuid: string) =>
      db
        .selectFrom('audit_events')
        .select(['category', 'device_id', 'details', 'outcome', 'principal_id'])
        .where('target_type', '=', 'command')
        .where('target_id', '=', uuid)
        .execute()
    const targetsOf = async (uuid: string) =>
      (await db.selectFrom('command_targets').select('enrollment_id').where('command_uuid', '=', uuid).orderBy('enrollment_id').execute()).map(
        (row) => row.enrollment_id,
      )

    const one = await mdm.enqueue([a.udid, gone.udid, 'ghost'], 'ProfileList', {}, { push: 'false' })
    t.equal(one.statusCode, 200)
    t.match(one.json.targets, [
      { enrollment_id: a.udid, result: 'queued' },
      { enrollment_id: gone.udid, result: 'enrollment_disabled' },
      { enrollment_id: 'ghost', result: 'unknown_enrollment' },
    ])
    t.same(await targetsOf(one.uuid), [a.udid], 'queued for the enabled target only')
    t.match(await auditOf(one.uuid), [
      { category: 'admin', device_id: a.udid, details: { request_type: 'ProfileList', queued: 1 }, outcome: 'success', principal_id: String },
    ])
    const repush = await db.selectFrom('enrollments').select(['id', 'next_repush_at']).where('id', 'in', [a.udid, gone.udid]).orderBy('id').execute()
    t.ok(repush.find((row) => row.id === a.udid)!.next_repush_at instanceof Date, 'the queued target is due a re-push')
    t.equal(repush.find((row) => row.id === gone.udid)!.next_repush_at, null, 'the disabled one is not')

    const two = await mdm.enqueue([b.udid, a.udid], 'DeviceInformation', { Queries: ['OSVersion'] }, { push: 'false' })
    t.same(await targetsOf(two.uuid), [a.udid, b.udid].sort())
    t.match(
      await auditOf(two.uuid),
      [{ device_id: null, details: { request_type: 'DeviceInformation', queued: 2 } }],
      'several targets: no single device named',
    )

    // The same CommandUUID again: refused, and nothing of the first is changed or added.
    const before = await mdm.snapshot()
    const again = await mdm.app.inject({
      method: 'POST',
      url: `/api/v1/enqueue/${b.udid}?push=false`,
      headers: { authorization: `Bearer ${testApiKey}`, 'content-type': 'application/x-apple-plist' },
      payload: encodePlist({ CommandUUID: one.uuid, Command: { RequestType: 'DeviceLock' } }),
    })
    t.equal(again.statusCode, 409)
    t.same(await mdm.snapshot(), before, 'no row written')
    t.equal((await auditOf(one.uuid)).length, 1, 'one audit row for the command')

    // No target can receive it: the command is not stored; the call is audited as one that changed nothing.
    const none = await mdm.enqueue([gone.udid, 'ghost'], 'ProfileList', {}, { push: 'false' })
    t.equal(none.statusCode, 200)
    t.match(none.json, { stored: false })
    t.same(await db.selectFrom('commands').select('uuid').where('uuid', '=', none.uuid).execute(), [])
    t.match(await auditOf(none.uuid), [{ device_id: null, details: { stored: false, targets: 2 } }])

    // Each device gets its commands in order.
    t.equal(commandIn(await a.idle())!.uuid, one.uuid)
    t.equal(commandIn(await b.idle())!.uuid, two.uuid)
  },
)
