// Device lifecycle of ADE devices, with a fake ABM/ASM server and simulated devices that enroll
// the way Setup Assistant does (signed MachineInfo -> PreStage profile -> SCEP -> Authenticate
// -> TokenUpdate awaiting configuration): reinstall (erase, back through the PreStage into the
// token's tenant, enrollment steps again), wipe (erase, completed when acknowledged), retire
// with disown at Apple, and the refusals for devices that are not (or no longer) ours in ABM.
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { decodePlist, type PlistDict } from '../../src/mdm/plist.js'
import { sealServerToken, serverTokenMessage, setupDep, type DepFixture } from '../helpers/dep-fixture.js'
import { profileParts } from '../helpers/enrollment-fixture.js'
import { createTestCa, mintPushCertificate, startFakeApns, type FakeApns, type PushIdentity } from '../helpers/fake-apns.js'
import { createAppleLikeDeviceIdentity, signMachineInfo, type AppleLikeDeviceIdentity } from '../helpers/machine-info-signer.js'
import { scepEnroll } from '../helpers/scep-client.js'
import { commandIn, injectTransport, SimulatedDevice, testTopic } from '../helpers/simulated-device.js'

const tenantId = 'biology'
let apple: AppleLikeDeviceIdentity
let rootFile: string
// A fake APNs for every world: pushes answer at once (a closed port would cost each push its
// retries), and what was pushed can be checked.
let apns: FakeApns
let apnsCaFile: string
let pushIdentity: PushIdentity

t.before(async () => {
  apple = await createAppleLikeDeviceIdentity()
  const dir = mkdtempSync(join(tmpdir(), 'orchard-ade-lifecycle-'))
  rootFile = join(dir, 'apple-root.pem')
  writeFileSync(rootFile, `-----BEGIN CERTIFICATE-----\n${apple.root.certificateDer.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`)
  const pushCa = await createTestCa('ADE lifecycle push CA', 'rsa-2048')
  pushIdentity = await mintPushCertificate(pushCa, testTopic)
  apns = await startFakeApns({ topic: testTopic, clientCaPem: pushCa.pem })
  apnsCaFile = join(dir, 'apns-ca.pem')
  writeFileSync(apnsCaFile, apns.caPem)
})
t.teardown(() => apns.close())

/** The pushes the fake APNs accepted for this device's push token. */
const pushesTo = (device: SimulatedDevice) => apns.requests.filter((push) => push.token === device.token.toString('hex') && push.status === 200).length

/** A short assertion message, with the response body only when the status is not the one expected. */
const said = (response: { statusCode: number; body: string }, expected: number, label: string) =>
  response.statusCode === expected ? label : `${label}: ${response.body.slice(0, 500)}`

type Ran = { uuid: string; requestType: string; command: PlistDict }

/** Polls and answers Acknowledged until the queue is empty; returns what it ran, in order. */
async function runQueue(device: SimulatedDevice, answers: Record<string, PlistDict> = {}): Promise<Ran[]> {
  const ran: Ran[] = []
  let next = commandIn(await device.idle())
  while (next) {
    ran.push(next)
    next = commandIn(await device.answer(next.uuid, 'Acknowledged', answers[next.requestType] ?? {}))
  }
  return ran
}

interface World {
  world: DepFixture
  token: any
  profile: any
  /** The serial the helpers enroll (the world's first; `{ ...w, serial }` for another). */
  serial: string
}

/**
 * A tenant, an ABM token in it (its server token sealed the way Apple does), a PreStage of the
 * given kind that awaits configuration and has one enrollment step, and serials of ours at
 * Apple, synced and assigned.
 */
async function adeWorld(t: Test, kind: 'work' | 'function', serials: string[]): Promise<World> {
  const world = await setupDep(t, { ORCHARD_ADE_MACHINE_INFO_CA_FILES: rootFile, ORCHARD_APNS_URL: apns.url, ORCHARD_APNS_CA_FILE: apnsCaFile })
  // The fixture's push certificate, renewed with one the fake APNs trusts.
  const renewed = await world.call('PUT', `/api/v1/push-certificates/${testTopic}`, {
    body: { certificate_pem: pushIdentity.certificatePem, private_key_pem: pushIdentity.privateKeyPem },
  })
  t.equal(renewed.statusCode, 200, said(renewed, 200, 'push certificate renewed'))
  t.equal((await world.call('POST', '/api/v1/tenants', { body: { id: tenantId, name: 'Department of Biology' } })).statusCode, 201)
  world.abm.addDevices(serials.map((serial) => ({ serial_number: serial, model: 'iPad (10th generation)', device_family: 'iPad', os: 'iOS' })))
  const created = await world.call('POST', '/api/v1/dep/tokens', { body: { name: 'Biology MDM server', tenant_id: tenantId } })
  t.equal(created.statusCode, 201, said(created, 201, 'token created'))
  t.equal(created.json.tenant_id, tenantId, 'the token is the tenant’s')
  const p7m = sealServerToken(serverTokenMessage(world.abm.credentials), created.json.certificate_pem)
  const uploaded = await world.call('PUT', `/api/v1/dep/tokens/${created.json.id}/server-token`, {
    raw: { payload: p7m, contentType: 'application/pkcs7-mime' },
  })
  t.equal(uploaded.statusCode, 200, said(uploaded, 200, 'server token uploaded'))
  const token = uploaded.json
  const profile = await world.call('POST', '/api/v1/dep/profiles', {
    body: {
      token_id: token.id,
      name: `Biology ${kind} iPads`,
      device_kind: kind,
      default: true,
      enrollment_commands: [{ request_type: 'DeviceInformation', Queries: ['DeviceName', 'OSVersion'] }],
      settings: { await_device_configured: true, is_mdm_removable: false, skip_setup_items: ['Siri'] },
    },
  })
  t.equal(profile.statusCode, 201, said(profile, 201, 'PreStage created'))
  t.match((await world.sync(token.id)).json, { outcome: 'synced' })
  for (const serial of serials)
    t.equal(world.abm.devices.get(serial)!.profile_uuid, profile.json.profile_uuid, `the default PreStage is assigned to ${serial} at Apple`)
  return { world, token, profile: profile.json, serial: serials[0]! }
}

/**
 * Setup Assistant: the signed MachineInfo gets the PreStage's enrollment profile, SCEP gives a
 * new identity, then Authenticate and TokenUpdate (awaiting configuration). A fresh device
 * (new push token) holding the same UDID and serial, as after an erase.
 */
async function adeEnroll(t: Test, w: World, udid: string): Promise<SimulatedDevice> {
  const info: PlistDict = {
    UDID: udid,
    SERIAL: w.serial,
    PRODUCT: 'iPad13,18',
    VERSION: '22B83',
    OS_VERSION: '18.1',
    LANGUAGE: 'nl-NL',
    MDM_CAN_REQUEST_SOFTWARE_UPDATE: true,
  }
  const response = await w.world.app.inject({
    method: 'POST',
    url: '/enroll/ade',
    headers: { 'content-type': 'application/pkcs7-signature' },
    payload: signMachineInfo(info, apple.device),
  })
  t.equal(response.statusCode, 200, said(response, 200, 'MachineInfo answered with the PreStage profile'))
  const parts = profileParts(decodePlist(response.rawPayload) as PlistDict)
  const scep = await scepEnroll(w.world.scepHttp, { challenge: parts.challenge, subject: { commonName: 'Biology iPad', organization: 'University' } })
  t.equal(scep.certRep.pkiStatus, 'SUCCESS')
  const device = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(w.world.app), {
    udid,
    serialNumber: w.serial,
  })
  t.equal((await device.authenticate()).status, 200)
  t.equal((await device.tokenUpdate({ AwaitingConfiguration: true })).status, 200)
  return device
}

const deviceInformation = { DeviceInformation: { QueryResponses: { DeviceName: 'Bio 1', OSVersion: '18.1' } } }

async function tenancy(w: World, deviceId: string) {
  return w.world.database.db
    .selectFrom('device_tenancy')
    .select(['tenant_id', 'started_at', 'ended_at'])
    .where('device_id', '=', deviceId)
    .orderBy('started_at')
    .execute()
}

async function deviceEvents(w: World, deviceId: string): Promise<Array<{ action: string; tenant_id: string | null; details: any }>> {
  const events = await w.world.call('GET', `/api/v1/audit-events?device_id=${encodeURIComponent(deviceId)}&category=device`)
  if (events.statusCode !== 200) throw new Error(`audit events: ${events.statusCode} ${events.body}`)
  return events.json.items
}

async function pendingCommands(w: World, deviceId: string) {
  return w.world.database.db
    .selectFrom('command_targets')
    .select(['command_uuid', 'status'])
    .where('enrollment_id', '=', deviceId)
    .where('status', 'in', ['Pending', 'NotNow'])
    .execute()
}

t.test('reinstall: EraseDevice first, wiped when acknowledged, completed when the device is back through its PreStage in the same tenant', async (t) => {
  const w = await adeWorld(t, 'function', ['DMPBIO100001'])
  const { world } = w
  const udid = randomUUID().toUpperCase()
  const device = await adeEnroll(t, w, udid)
  const id = encodeURIComponent(udid)

  // The first enrollment: the PreStage's step, then DeviceConfigured.
  t.same(
    (await runQueue(device, deviceInformation)).map((c) => c.requestType),
    ['DeviceInformation', 'DeviceConfigured'],
    'first enrollment through the PreStage',
  )
  const before = await world.call('GET', `/api/v1/devices/${id}`)
  t.match(
    before.json,
    { tenant_id: tenantId, kind: 'function', lifecycle_state: 'active', enrolled: true, serial_number: w.serial },
    'enrolled into the token’s tenant with the PreStage’s kind',
  )
  t.match((await world.call('GET', `/api/v1/dep/devices/${w.serial}`)).json, { device_id: udid, removed_at: null })
  t.match(await tenancy(w, udid), [{ tenant_id: tenantId, ended_at: null }], 'one open billing period')

  // Something queued earlier, at the default priority.
  const earlier = await world.enqueue([udid], 'ProfileList', {}, { push: 'false' })
  t.equal(earlier.statusCode, 200, 'queued')

  const pushed = pushesTo(device)
  const reinstall = await world.call('POST', `/api/v1/devices/${id}/reinstall`, { body: { preserve_data_plan: true, disallow_proximity_setup: true } })
  t.equal(reinstall.statusCode, 201, said(reinstall, 201, 'reinstall accepted'))
  t.equal(pushesTo(device), pushed + 1, 'the device is pushed once')
  t.match(reinstall.json, { device_id: udid, action: 'reinstall', status: 'pending', completed_at: null })
  t.equal(reinstall.json.commands.length, 1)
  t.match(reinstall.json.commands[0], { command_uuid: String, request_type: 'EraseDevice', item: null, status: 'Pending', error_chain: null })
  const eraseUuid = reinstall.json.commands[0].command_uuid as string
  const priority = await world.database.db
    .selectFrom('command_targets')
    .select('priority')
    .where('command_uuid', '=', eraseUuid)
    .where('enrollment_id', '=', udid)
    .executeTakeFirstOrThrow()
  t.equal(priority.priority, 100, 'EraseDevice is queued at priority 100')
  t.equal((await world.call('GET', `/api/v1/devices/${id}`)).json.lifecycle_state, 'wipe_pending')

  const again = await world.call('POST', `/api/v1/devices/${id}/reinstall`, { body: {} })
  t.equal(again.statusCode, 409, 'one wipe at a time')
  t.match(again.json.detail, new RegExp(reinstall.json.id))
  t.equal((await world.call('POST', `/api/v1/devices/${id}/wipe`, { body: {} })).statusCode, 409, 'nor a wipe on top of the reinstall')

  const erase = commandIn(await device.idle())!
  t.equal(erase.requestType, 'EraseDevice', 'the erase goes before what was queued earlier')
  t.equal(erase.uuid, eraseUuid)
  t.equal(erase.command['PreserveDataPlan'], true)
  t.equal(erase.command['DisallowProximitySetup'], true)
  t.notOk('PIN' in erase.command, 'no PIN unless asked for')

  const acknowledged = await device.answer(erase.uuid, 'Acknowledged')
  t.equal(acknowledged.status, 200)
  // The wipe cancels what was queued: the answer to the acknowledgement must not hand the
  // device the earlier ProfileList (which would then be recorded Cancelled though delivered).
  t.equal(commandIn(acknowledged), undefined, 'nothing more is handed to a device that is erasing itself')

  // Wiped: not managed, not billed, on its timeline; the reinstall waits for it to come back.
  const wiped = await world.call('GET', `/api/v1/devices/${id}`)
  t.match(wiped.json, { lifecycle_state: 'wiped', enrolled: false, wiped_at: String, tenant_id: tenantId })
  t.ok(
    wiped.json.enrollments.every((e: { enrolled: boolean }) => !e.enrolled),
    'every channel disabled',
  )
  t.same(await pendingCommands(w, udid), [], 'nothing stays queued for the wiped device')
  const periods = await tenancy(w, udid)
  t.equal(periods.length, 1)
  t.ok(periods[0]!.ended_at, 'the billing period is closed')
  const wipedEvents = (await deviceEvents(w, udid)).filter((e) => e.action === 'wiped')
  t.equal(wipedEvents.length, 1, 'one wiped event')
  t.match(wipedEvents[0], { tenant_id: tenantId, details: { command_uuid: eraseUuid, lifecycle_action_id: reinstall.json.id } })
  const waiting = await world.call('GET', `/api/v1/devices/${id}/lifecycle/${reinstall.json.id}`)
  t.match(
    waiting.json,
    { action: 'reinstall', status: 'pending', completed_at: null, commands: [{ command_uuid: eraseUuid, status: 'Acknowledged' }] },
    'pending until the device enrolls again',
  )
  t.equal((await device.idle()).status, 400, 'the old enrollment is not served any more (never 401)')

  // Setup Assistant after the erase: the same UDID and serial, through the PreStage again.
  const back = await adeEnroll(t, w, udid)
  const done = await world.call('GET', `/api/v1/devices/${id}/lifecycle/${reinstall.json.id}`)
  t.match(done.json, { action: 'reinstall', status: 'completed', completed_at: String, details: { re_enrolled_at: String } }, 'completed by the re-enrollment')
  const active = await world.call('GET', `/api/v1/devices/${id}`)
  t.match(active.json, { lifecycle_state: 'active', enrolled: true, tenant_id: tenantId, kind: 'function' }, 'active again, in the token’s tenant')
  t.not(active.json.identity.certificate_sha256, before.json.identity.certificate_sha256, 'bound to its new identity')
  const reopened = await tenancy(w, udid)
  t.equal(reopened.length, 2, 'a new billing period')
  t.match(reopened[1], { tenant_id: tenantId, ended_at: null })

  const steps = await runQueue(back, deviceInformation)
  t.same(
    steps.map((c) => c.requestType),
    ['DeviceInformation', 'DeviceConfigured'],
    'the PreStage’s enrollment step again, then DeviceConfigured',
  )
  t.same(steps[0]!.command['Queries'], ['DeviceName', 'OSVersion'])
  t.notOk(
    steps.some((c) => c.uuid === earlier.uuid),
    'what was queued before the erase is not delivered after it',
  )

  t.same(
    (await deviceEvents(w, udid)).map((e) => e.action),
    ['enrolled', 'reenrolled', 'wiped', 'enrolled'],
    'the device timeline, newest first',
  )
  t.match(
    (await deviceEvents(w, udid))[1],
    { details: { reason: 'wiped', enrollment_path: /^ade:/ } },
    'the new identity was accepted because the device was wiped',
  )
  const history = await world.call('GET', `/api/v1/devices/${id}/lifecycle`)
  t.equal(history.statusCode, 200)
  t.same(
    history.json.items.map((a: { action: string; status: string }) => `${a.action}:${a.status}`),
    ['reinstall:completed'],
  )
  t.match(history.json.items[0].commands, [{ command_uuid: eraseUuid, request_type: 'EraseDevice', item: null, status: 'Acknowledged', error_chain: null }])
  const audit = await world.call('GET', `/api/v1/audit-events?device_id=${id}&category=admin`)
  t.match(
    audit.json.items.find((e: { action: string; outcome: string }) => e.action === 'reinstallDevice' && e.outcome === 'success'),
    {
      outcome: 'success',
      tenant_id: tenantId,
      target_type: 'device',
      target_id: udid,
      details: { lifecycle_action: 'reinstall', lifecycle_action_id: reinstall.json.id },
    },
    'the reinstall is audited on the device',
  )
})

t.test('work devices of one ABM token', async (t) => {
  const w = await adeWorld(t, 'work', ['DMPBIO200001', 'DMPBIO200002'])
  const { world } = w

  await t.test(
    'a reinstall the device refuses fails and frees the device; a later one succeeds; the lifecycle lists actions newest first with their commands',
    async (t) => {
      const udid = randomUUID().toUpperCase()
      const device = await adeEnroll(t, w, udid)
      await runQueue(device, deviceInformation)
      // Each action is some requests after the one before: the list sorts by created_at.
      t.equal((await world.call('PATCH', `/api/v1/devices/${udid}`, { body: { kind: 'function' } })).json.kind, 'function')

      const refused = await world.call('POST', `/api/v1/devices/${udid}/reinstall`, { body: {} })
      t.equal(refused.statusCode, 201, said(refused, 201, 'reinstall accepted'))
      const first = commandIn(await device.idle())!
      t.equal(first.requestType, 'EraseDevice')
      const chain = [{ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'Erase refused' }]
      t.equal((await device.answer(first.uuid, 'Error', { ErrorChain: chain })).status, 200)
      const failed = await world.call('GET', `/api/v1/devices/${udid}/lifecycle/${refused.json.id}`)
      t.match(failed.json, {
        action: 'reinstall',
        status: 'failed',
        completed_at: String,
        commands: [{ request_type: 'EraseDevice', status: 'Error', error_chain: [{ ErrorCode: 12021 }] }],
      })
      t.match((await world.call('GET', `/api/v1/devices/${udid}`)).json, { lifecycle_state: 'active', enrolled: true, wiped_at: null }, 'still managed')
      t.notOk(
        (await deviceEvents(w, udid)).some((e) => e.action === 'wiped'),
        'not wiped',
      )
      t.equal((await tenancy(w, udid)).filter((p) => p.ended_at === null).length, 1, 'still billed')

      t.equal((await world.call('PATCH', `/api/v1/devices/${udid}`, { body: { kind: 'work' } })).json.kind, 'work')

      const reinstall = await world.call('POST', `/api/v1/devices/${udid}/reinstall`)
      t.equal(reinstall.statusCode, 201, said(reinstall, 201, 'the failed one does not block; no body is fine'))
      const erase = commandIn(await device.idle())!
      t.equal(erase.requestType, 'EraseDevice')
      t.notOk('PreserveDataPlan' in erase.command || 'DisallowProximitySetup' in erase.command || 'PIN' in erase.command, 'only the keys asked for')
      await device.answer(erase.uuid, 'Acknowledged')
      t.equal((await world.call('GET', `/api/v1/devices/${udid}`)).json.lifecycle_state, 'wiped')

      const history = await world.call('GET', `/api/v1/devices/${udid}/lifecycle`)
      t.same(
        history.json.items.map((a: { action: string; status: string }) => `${a.action}:${a.status}`),
        ['reinstall:pending', 'kind_changed:completed', 'reinstall:failed', 'kind_changed:completed'],
        'newest first',
      )
      t.match(history.json.items[1].details, { from: 'function', to: 'work' })
      t.match(history.json.items[3].details, { from: 'work', to: 'function' })
      t.same(history.json.items[1].commands, [], 'a kind change sends nothing')
      t.same(history.json.items[0].commands, [{ command_uuid: erase.uuid, request_type: 'EraseDevice', item: null, status: 'Acknowledged', error_chain: null }])
      t.match(history.json.items[2].commands, [
        {
          command_uuid: first.uuid,
          request_type: 'EraseDevice',
          item: null,
          status: 'Error',
          error_chain: [{ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain' }],
        },
      ])

      const back = await adeEnroll(t, w, udid)
      t.match((await world.call('GET', `/api/v1/devices/${udid}`)).json, { lifecycle_state: 'active', enrolled: true, tenant_id: tenantId, kind: 'work' })
      t.same(
        (await runQueue(back, deviceInformation)).map((c) => c.requestType),
        ['DeviceInformation', 'DeviceConfigured'],
      )
      t.same(
        (await world.call('GET', `/api/v1/devices/${udid}/lifecycle`)).json.items.map((a: { action: string; status: string }) => `${a.action}:${a.status}`),
        ['reinstall:completed', 'kind_changed:completed', 'reinstall:failed', 'kind_changed:completed'],
        'the re-enrollment completes the pending reinstall only',
      )
    },
  )

  await t.test('wipe of an ADE work device: an erase, completed when the device acknowledges it', async (t) => {
    const v = { ...w, serial: 'DMPBIO200002' }
    const udid = randomUUID().toUpperCase()
    const device = await adeEnroll(t, v, udid)
    await runQueue(device, deviceInformation)
    t.equal((await world.call('GET', `/api/v1/devices/${udid}`)).json.kind, 'work')

    const pushed = pushesTo(device)
    const wipe = await world.call('POST', `/api/v1/devices/${udid}/wipe`, { body: { pin: '123456' } })
    t.equal(wipe.statusCode, 201, said(wipe, 201, 'wipe accepted'))
    t.equal(pushesTo(device), pushed + 1, 'the device is pushed once')
    t.match(wipe.json, { action: 'erase', status: 'pending', commands: [{ request_type: 'EraseDevice', status: 'Pending', item: null, error_chain: null }] })
    t.equal((await world.call('GET', `/api/v1/devices/${udid}`)).json.lifecycle_state, 'wipe_pending')
    const erase = commandIn(await device.idle())!
    t.equal(erase.requestType, 'EraseDevice')
    t.equal(erase.command['PIN'], '123456')
    t.equal((await device.answer(erase.uuid, 'Acknowledged')).status, 200)

    t.match(
      (await world.call('GET', `/api/v1/devices/${udid}/lifecycle/${wipe.json.id}`)).json,
      { action: 'erase', status: 'completed', completed_at: String, commands: [{ status: 'Acknowledged' }] },
      'an erase completes with the acknowledgement',
    )
    t.match((await world.call('GET', `/api/v1/devices/${udid}`)).json, { lifecycle_state: 'wiped', enrolled: false, wiped_at: String })
    t.ok(
      (await tenancy(w, udid)).every((p) => p.ended_at !== null),
      'billing stops',
    )
    t.same(
      (await deviceEvents(w, udid)).map((e) => e.action),
      ['wiped', 'enrolled'],
    )
    t.match((await world.call('GET', `/api/v1/dep/devices/${v.serial}`)).json, { removed_at: null }, 'still ours at Apple')
    t.same(
      world.abm.requests.filter((r) => r.path.startsWith('/devices/disown')),
      [],
      'nothing disowned',
    )

    // It may come back through ADE later: active again, the finished erase stays finished.
    const back = await adeEnroll(t, v, udid)
    t.match((await world.call('GET', `/api/v1/devices/${udid}`)).json, { lifecycle_state: 'active', enrolled: true, tenant_id: tenantId })
    t.same(
      (await runQueue(back, deviceInformation)).map((c) => c.requestType),
      ['DeviceInformation', 'DeviceConfigured'],
    )
    t.same(
      (await world.call('GET', `/api/v1/devices/${udid}/lifecycle`)).json.items.map((a: { action: string; status: string }) => `${a.action}:${a.status}`),
      ['erase:completed'],
    )
  })
})

t.test('retiring and the refusals', async (t) => {
  const w = await adeWorld(t, 'function', ['DMPBIO300001', 'DMPBIO300002'])
  const { world } = w

  await t.test('retire with disown_from_abm: Apple releases the serial through the device’s token; retired, not managed, the DEP row removed', async (t) => {
    const udid = randomUUID().toUpperCase()
    const device = await adeEnroll(t, w, udid)
    await runQueue(device, deviceInformation)
    await world.enqueue([udid], 'ProfileList', {}, { push: 'false' })
    // The department's own admin retires it (its token, its device); helpdesk may not.
    const helpdesk = (await world.call('POST', '/api/v1/api-keys', { body: { name: 'biology desk', role: 'helpdesk', tenant_id: tenantId } })).json
      .key as string
    const admin = (await world.call('POST', '/api/v1/api-keys', { body: { name: 'biology admin', role: 'admin', tenant_id: tenantId } })).json.key as string
    const requestsBefore = world.abm.requests.length
    const pushed = pushesTo(device)
    t.equal(
      (await world.call('POST', `/api/v1/devices/${udid}/retire`, { key: helpdesk, body: { disown_from_abm: true } })).statusCode,
      403,
      'helpdesk never retires',
    )
    t.equal((await world.call('POST', `/api/v1/devices/${udid}/reinstall`, { key: helpdesk, body: {} })).statusCode, 403, 'nor reinstalls')
    t.equal(world.abm.requests.length, requestsBefore, 'nothing asked of Apple for a refused call')

    const retired = await world.call('POST', `/api/v1/devices/${udid}/retire`, { key: admin, body: { disown_from_abm: true } })
    t.equal(retired.statusCode, 201, said(retired, 201, 'retired'))
    t.match(retired.json, { device_id: udid, action: 'retire', status: 'completed', completed_at: String, commands: [] })
    t.match(retired.json.details, { disown: true, disowned: 'SUCCESS' }, 'Apple’s answer for the serial')

    const disowns = world.abm.requests.slice(requestsBefore).filter((r) => r.path === '/devices/disown')
    t.equal(disowns.length, 1, 'one disown call at Apple')
    t.match(disowns[0], { method: 'POST', status: 200 })
    t.same((disowns[0]!.body as { devices: string[] }).devices, [w.serial], 'for this serial only')
    t.notOk(world.abm.devices.has(w.serial), 'gone from the organisation at Apple')
    t.equal(pushesTo(device), pushed, 'nothing is sent to the device')
    t.ok(world.abm.devices.has('DMPBIO300002'), 'the token’s other device stays')

    t.match((await world.call('GET', `/api/v1/devices/${udid}`)).json, { lifecycle_state: 'retired', enrolled: false, retired_at: String })
    t.match(
      (await world.call('GET', `/api/v1/dep/devices/${w.serial}`)).json,
      { serial_number: w.serial, removed_at: String },
      'the DEP record is marked removed',
    )
    t.match((await world.call('GET', '/api/v1/dep/devices/DMPBIO300002')).json, { removed_at: null })
    t.same(await pendingCommands(w, udid), [], 'queued commands cancelled')
    t.ok(
      (await tenancy(w, udid)).every((p) => p.ended_at !== null),
      'billing stops',
    )
    // Told to unenroll: 403 ErrorUnrecognizedDevice or 401 by its OS (test/fleet/lifecycle.test.ts tells them apart).
    const unenroll = (await device.idle()).status
    t.ok(unenroll === 401 || unenroll === 403, `the retired device is told to unenroll (${unenroll})`)

    const twice = await world.call('POST', `/api/v1/devices/${udid}/retire`, { body: { disown_from_abm: true } })
    t.equal(twice.statusCode, 409, 'retired already')
    t.equal(world.abm.requests.slice(requestsBefore).filter((r) => r.path === '/devices/disown').length, 1, 'nothing more sent to Apple')

    const history = await world.call('GET', `/api/v1/devices/${udid}/lifecycle`)
    t.same(
      history.json.items.map((a: { action: string; status: string }) => `${a.action}:${a.status}`),
      ['retire:completed'],
    )

    // The admin audit trail: the retire is on the device's timeline, filed in its tenant.
    const audit = await world.call('GET', `/api/v1/audit-events?device_id=${udid}&category=admin`)
    t.equal(audit.statusCode, 200)
    const retireEvent = audit.json.items.find((e: { action: string; outcome: string }) => e.action === 'retireDevice' && e.outcome === 'success')
    t.match(
      retireEvent,
      {
        category: 'admin',
        tenant_id: tenantId,
        target_type: 'device',
        target_id: udid,
        device_id: udid,
        details: { lifecycle_action: 'retire', lifecycle_action_id: retired.json.id, disown: true, disowned: 'SUCCESS' },
      },
      'the retire (with its disown) is audited on the device',
    )

    // Disowned: Setup Assistant no longer gets a profile for it.
    const info: PlistDict = { UDID: udid, SERIAL: w.serial, PRODUCT: 'iPad13,18', VERSION: '22B83', OS_VERSION: '18.1' }
    const refused = await world.app.inject({
      method: 'POST',
      url: '/enroll/ade',
      headers: { 'content-type': 'application/pkcs7-signature' },
      payload: signMachineInfo(info, apple.device),
    })
    t.equal(refused.statusCode, 403, 'not assigned to us any more')
  })

  await t.test('not ADE: reinstall and disown answer 422 not_ade and change nothing; a serial removed from ABM is not ADE any more', async (t) => {
    const plain = await world.enrolledDevice()
    const requestsBefore = world.abm.requests.length

    const reinstall = await world.call('POST', `/api/v1/devices/${plain.udid}/reinstall`, { body: {} })
    t.equal(reinstall.statusCode, 422)
    t.match(reinstall.json, { code: 'not_applicable', reason: 'not_ade' })
    const disown = await world.call('POST', `/api/v1/devices/${plain.udid}/retire`, { body: { disown_from_abm: true } })
    t.equal(disown.statusCode, 422)
    t.match(disown.json, { code: 'not_applicable', reason: 'not_ade' })
    t.equal(world.abm.requests.length, requestsBefore, 'nothing asked of Apple')
    t.match((await world.call('GET', `/api/v1/devices/${plain.udid}`)).json, { lifecycle_state: 'active', enrolled: true, retired_at: null })
    t.same((await world.call('GET', `/api/v1/devices/${plain.udid}/lifecycle`)).json.items, [], 'no action recorded')
    t.same(await world.database.db.selectFrom('commands').select('request_type').where('request_type', '=', 'EraseDevice').execute(), [], 'no erase stored')

    // An ADE device whose serial was released in ABM (sync sees it deleted): not ours to reinstall.
    const v = { ...w, serial: 'DMPBIO300002' }
    const udid = randomUUID().toUpperCase()
    const device = await adeEnroll(t, v, udid)
    await runQueue(device, deviceInformation)
    world.abm.removeDevice(v.serial)
    t.match((await world.sync(w.token.id)).json, { outcome: 'synced' })
    t.match((await world.call('GET', `/api/v1/dep/devices/${v.serial}`)).json, { removed_at: String })
    const gone = await world.call('POST', `/api/v1/devices/${udid}/reinstall`, { body: {} })
    t.equal(gone.statusCode, 422)
    t.equal(gone.json.reason, 'not_ade')
    const goneDisown = await world.call('POST', `/api/v1/devices/${udid}/retire`, { body: { disown_from_abm: true } })
    t.equal(goneDisown.statusCode, 422)
    t.equal(goneDisown.json.reason, 'not_ade')
    t.match((await world.call('GET', `/api/v1/devices/${udid}`)).json, { lifecycle_state: 'active', enrolled: true })
    t.same(
      await world.database.db.selectFrom('commands').select('request_type').where('request_type', '=', 'EraseDevice').execute(),
      [],
      'still no erase stored',
    )
  })
})

t.test(
  're-enrollment through ADE: an active device back through its PreStage is accepted for its serial; a MachineInfo of another serial is refused',
  async (t) => {
    const w = await adeWorld(t, 'function', ['DMPBIOREENR1', 'DMPBIOREENR2'])
    const udid = randomUUID().toUpperCase()
    const first = await adeEnroll(t, w, udid)
    // Erased on the device itself (Settings, Erase All Content): no CheckOut reached us.
    const back = await adeEnroll(t, w, udid)
    t.equal((await first.idle()).status, 400, 'the old identity no longer works')
    t.equal((await back.idle()).status, 200, 'the device is back with its new identity')
    t.match(
      (await deviceEvents(w, udid))[1],
      { action: 'reenrolled', tenant_id: tenantId, details: { reason: 'ade_serial', enrollment_path: /^ade:/ } },
      'accepted: ADE issued the identity for this serial',
    )

    // Another iPad of the same PreStage (a real MachineInfo, another serial) claiming this UDID.
    const other = { ...w, serial: 'DMPBIOREENR2' }
    const info: PlistDict = { UDID: udid, SERIAL: other.serial, PRODUCT: 'iPad13,18', VERSION: '22B83', OS_VERSION: '18.1', LANGUAGE: 'nl-NL' }
    const response = await w.world.app.inject({
      method: 'POST',
      url: '/enroll/ade',
      headers: { 'content-type': 'application/pkcs7-signature' },
      payload: signMachineInfo(info, apple.device),
    })
    const parts = profileParts(decodePlist(response.rawPayload) as PlistDict)
    const scep = await scepEnroll(w.world.scepHttp, { challenge: parts.challenge, subject: { commonName: 'Biology iPad', organization: 'University' } })
    const claimant = await SimulatedDevice.fromIdentity(
      { certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey },
      injectTransport(w.world.app),
      { udid, serialNumber: other.serial },
    )
    const refused = await claimant.authenticate()
    t.equal(refused.status, 403)
    t.match(refused.body.toString(), /reports SerialNumber "DMPBIOREENR2", the device has DMPBIOREENR1/)
    t.equal((await back.idle()).status, 200, 'the device keeps its enrollment')
    t.match((await deviceEvents(w, udid))[0], { action: 'identity_conflict', details: { reason: 'serial_mismatch' } })
  },
)
