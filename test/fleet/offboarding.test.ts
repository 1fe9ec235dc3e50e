// Offboarding end to end, with simulated devices answering the real MDM endpoints: a work
// device erased then retired, a personal device's selective wipe ending with the removal of
// its enrollment profile then retired (acknowledged, or by check-out), a device already gone
// retired at once, and the leavers action over a person's devices through the two-step guard.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { PlistDict } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { commandIn, plistText, type SimulatedDevice } from '../helpers/simulated-device.js'

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

const dayMs = 86_400_000

/** The device was last in contact `days` ago. */
async function lastSeen(mdm: MdmFixture, deviceId: string, days: number) {
  await mdm.database.db
    .updateTable('enrollments')
    .set({ last_seen_at: new Date(Date.now() - days * dayMs) })
    .where('id', '=', deviceId)
    .execute()
}

/** A personal device (User Enrollment) that reported one managed app and one managed profile. */
async function personalDevice(mdm: MdmFixture) {
  const device = await mdm.enrolledDevice({ userEnrollment: true })
  await mdm.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })
  await mdm.enqueue([device.udid], 'InstalledApplicationList', {}, { push: 'false' })
  const profiles = [
    { PayloadIdentifier: 'orchard.enrollment', PayloadUUID: randomUUID(), IsManaged: false, PayloadContent: [{ PayloadType: 'com.apple.mdm' }] },
    { PayloadIdentifier: 'council.mail', PayloadUUID: randomUUID(), IsManaged: true, PayloadContent: [{ PayloadType: 'com.apple.mail.managed' }] },
    { PayloadIdentifier: 'me.vpn', PayloadUUID: randomUUID(), IsManaged: false, PayloadContent: [{ PayloadType: 'com.apple.vpn.managed' }] },
  ]
  const apps = [
    { Identifier: 'com.council.intranet', IsManaged: true },
    { Identifier: 'com.example.game', IsManaged: false },
  ]
  await runQueue(device, { ProfileList: { ProfileList: profiles }, InstalledApplicationList: { InstalledApplicationList: apps } })
  return device
}

t.test('a work device: erased, then retired when it acknowledges; the retired device is told to unenroll', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  await mdm.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })

  const started = await api('POST', `/api/v1/devices/${device.udid}/offboard`, { body: { reason: 'leaver: Jane', preserve_data_plan: true } })
  t.equal(started.statusCode, 201, started.body)
  t.match(started.json, {
    action: 'offboard',
    status: 'pending',
    details: {
      method: 'erase',
      reason: 'leaver: Jane',
      steps: [
        { step: 'erase', status: 'pending' },
        { step: 'retire', status: 'pending' },
      ],
    },
    commands: [{ request_type: 'EraseDevice', status: 'Pending' }],
  })
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.lifecycle_state, 'wipe_pending')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/offboard`, { body: {} })).statusCode, 409, 'one at a time')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/wipe`, { body: {} })).statusCode, 409, 'nor a wipe on top of it')

  const erase = commandIn(await device.idle())!
  t.equal(erase.requestType, 'EraseDevice', 'the erase goes before what was queued')
  t.equal(erase.command['PreserveDataPlan'], true)
  t.notOk('ReturnToService' in erase.command, 'a work device is not returned to service unless asked')
  t.equal(commandIn(await device.answer(erase.uuid, 'Acknowledged')), undefined, 'nothing more for a device erasing itself')

  const done = await api('GET', `/api/v1/devices/${device.udid}/lifecycle/${started.json.id}`)
  t.match(done.json, {
    status: 'completed',
    completed_at: String,
    details: {
      erased_at: String,
      steps: [
        { step: 'erase', status: 'done' },
        { step: 'retire', status: 'done' },
      ],
    },
    commands: [{ status: 'Acknowledged' }],
  })
  const retired = await api('GET', `/api/v1/devices/${device.udid}`)
  t.match(retired.json, { lifecycle_state: 'retired', enrolled: false, wiped_at: String, retired_at: String })
  const period = await mdm.database.db.selectFrom('device_tenancy').select('ended_at').where('device_id', '=', device.udid).executeTakeFirstOrThrow()
  t.ok(period.ended_at, 'billing stops')
  const modern = await device.idle()
  t.equal(modern.status, 403, 'a retired iPad that still polls is told to unenroll (ErrorUnrecognizedDevice)')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/offboard`, { body: {} })).statusCode, 409, 'retired already')

  const events = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}`)).json.items as Array<{ action: string; outcome: string; details: any }>
  t.ok(
    events.some((e) => e.action === 'wiped'),
    'the wipe is on the device timeline',
  )
  t.match(
    events.find((e) => e.action === 'offboardDevice' && e.outcome === 'success'),
    { details: { lifecycle_action: 'offboard', method: 'erase', reason: 'leaver: Jane' } },
    'audited on the device',
  )
})

t.test('an erase the device refuses fails the offboarding and leaves the device active', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const started = await api('POST', `/api/v1/devices/${device.udid}/offboard`, { body: {} })
  t.equal(started.statusCode, 201)
  const erase = commandIn(await device.idle())!
  await device.answer(erase.uuid, 'Error', { ErrorChain: [{ ErrorCode: 1, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'no' }] })
  t.match((await api('GET', `/api/v1/devices/${device.udid}/lifecycle/${started.json.id}`)).json, {
    status: 'failed',
    details: {
      error: /Error/,
      steps: [
        { step: 'erase', status: 'failed' },
        { step: 'retire', status: 'pending' },
      ],
    },
  })
  t.match((await api('GET', `/api/v1/devices/${device.udid}`)).json, { lifecycle_state: 'active', enrolled: true })
})

t.test('a personal device: selective wipe, the enrollment profile last, then retired; never erased', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await personalDevice(mdm)
  const id = encodeURIComponent(device.udid)

  const refused = await api('POST', `/api/v1/devices/${id}/offboard`, { body: { return_to_service: true } })
  t.equal(refused.statusCode, 422, 'a personal device never returns to service')
  t.equal(refused.json.reason, 'not_for_personal_device')

  const started = await api('POST', `/api/v1/devices/${id}/offboard`, { body: {} })
  t.equal(started.statusCode, 201, started.body)
  t.match(started.json, {
    action: 'offboard',
    details: {
      method: 'selective_wipe',
      removing: { applications: ['com.council.intranet'], profiles: ['council.mail'], mdm_profile: 'orchard.enrollment' },
      steps: [
        { step: 'remove_managed_content', status: 'pending' },
        { step: 'remove_enrollment_profile', status: 'pending' },
        { step: 'retire', status: 'pending' },
      ],
    },
  })
  const ran = await runQueue(device)
  t.same(
    ran.map((c) => `${c.requestType} ${plistText(c.command['Identifier'])}`),
    ['RemoveApplication com.council.intranet', 'RemoveProfile council.mail', 'RemoveProfile orchard.enrollment'],
    'what we installed, then the enrollment profile',
  )
  t.notOk(
    ran.some((c) => c.requestType === 'EraseDevice'),
    'no erase',
  )
  t.match((await api('GET', `/api/v1/devices/${id}/lifecycle/${started.json.id}`)).json, {
    status: 'completed',
    details: { steps: [{ status: 'done' }, { status: 'done' }, { status: 'done' }] },
  })
  t.match((await api('GET', `/api/v1/devices/${id}`)).json, { lifecycle_state: 'retired', enrolled: false, wiped_at: null })
})

t.test('a personal device that checks out instead of answering the last removal is retired too', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await personalDevice(mdm)
  const id = encodeURIComponent(device.udid)
  const started = await api('POST', `/api/v1/devices/${id}/offboard`, { body: {} })
  t.equal(started.statusCode, 201)
  // The app and the mail profile are removed; removing the enrollment profile ends with a CheckOut.
  for (let i = 0; i < 2; i++) {
    const next = commandIn(await device.idle())!
    await device.answer(next.uuid, 'Acknowledged')
  }
  t.equal((await device.checkOut()).status, 200)
  t.match((await api('GET', `/api/v1/devices/${id}/lifecycle/${started.json.id}`)).json, { status: 'completed', details: { checked_out: true } })
  t.equal((await api('GET', `/api/v1/devices/${id}`)).json.lifecycle_state, 'retired')
})

t.test('a device already gone is retired at once, with its reason; retire itself can insist on it', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const gone = await mdm.enrolledDevice()
  const here = await mdm.enrolledDevice()
  await lastSeen(mdm, gone.udid, 40)

  const tooSoon = await api('POST', `/api/v1/devices/${gone.udid}/offboard`, { body: { gone_for_days: 3 } })
  t.equal(tooSoon.statusCode, 400, 'gone_for_days has a minimum')
  const retired = await api('POST', `/api/v1/devices/${gone.udid}/offboard`, { body: { gone_for_days: 30, reason: 'stolen in March' } })
  t.equal(retired.statusCode, 201, retired.body)
  t.match(retired.json, {
    action: 'retire',
    status: 'completed',
    commands: [],
    details: { offboarding: true, reason: 'stolen in March', gone_for_days: 30, last_contact_at: String, why: /no contact since/ },
  })
  t.match((await api('GET', `/api/v1/devices/${gone.udid}`)).json, { lifecycle_state: 'retired', enrolled: false })
  t.equal(
    await mdm.database.db.selectFrom('command_targets').select('status').where('enrollment_id', '=', gone.udid).executeTakeFirst(),
    undefined,
    'nothing sent',
  )

  // Seen yesterday: not gone, so offboarding erases it; retire with gone_for_days refuses.
  await lastSeen(mdm, here.udid, 1)
  const refused = await api('POST', `/api/v1/devices/${here.udid}/retire`, { body: { gone_for_days: 30, reason: 'lost' } })
  t.equal(refused.statusCode, 409)
  t.match(refused.json.detail, /not gone; offboard it instead/)
  await lastSeen(mdm, here.udid, 31)
  const ok = await api('POST', `/api/v1/devices/${here.udid}/retire`, { body: { gone_for_days: 30, reason: 'lost on a train' } })
  t.equal(ok.statusCode, 201)
  t.match(ok.json.details, { reason: 'lost on a train', gone_for_days: 30, disown: false })
})

t.test('leavers: a person’s devices, by kind, through a dry run and a confirmation bound to them', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_DESTRUCTIVE_OWNER_LIMIT: '1' })
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const laptop = await mdm.enrolledDevice()
  const phone = await personalDevice(mdm)
  const colleague = await mdm.enrolledDevice()
  const old = await mdm.enrolledDevice()
  const link = await api('POST', '/api/v1/enrollment-links', {
    body: { name: 'BYOD Jane', enrollment_type: 'user_enrollment', managed_apple_id: 'jane@council.example' },
  })
  t.equal(link.statusCode, 201, link.body)
  await db.updateTable('devices').set({ user_email: 'Jane@Council.example' }).where('id', 'in', [laptop.udid, old.udid]).execute()
  await db.updateTable('devices').set({ enrollment_link_id: link.json.id }).where('id', '=', phone.udid).execute()
  await db.updateTable('devices').set({ user_email: 'bob@council.example' }).where('id', '=', colleague.udid).execute()
  t.equal((await api('POST', `/api/v1/devices/${old.udid}/retire`)).statusCode, 201)

  const person = 'jane@council.example'
  const blind = await api('POST', '/api/v1/offboarding', { body: { person } })
  t.equal(blind.statusCode, 428, 'never without a dry run')
  t.equal(blind.json.code, 'confirmation_required')
  t.equal((await api('POST', '/api/v1/offboarding', { body: {} })).statusCode, 400, 'a person or devices')
  t.equal((await api('POST', '/api/v1/offboarding', { body: { person, device_ids: [laptop.udid] } })).statusCode, 400, 'not both')

  const dryRun = await api('POST', '/api/v1/offboarding', { body: { person, reason: 'left on 2026-12-31', dry_run: true } })
  t.equal(dryRun.statusCode, 200, dryRun.body)
  const plans = Object.fromEntries(dryRun.json.targets.map((target: any) => [target.device_id, target]))
  t.same(Object.keys(plans).sort(), [laptop.udid, phone.udid, old.udid].sort(), 'her devices, not her colleague’s')
  t.match(plans[laptop.udid], { plan: 'erase', kind: 'work', matched_by: 'user_email' })
  t.match(plans[phone.udid], { plan: 'selective_wipe', kind: 'personal', matched_by: 'managed_apple_id' })
  t.match(plans[old.udid], { plan: 'skip', reason: 'retired' })
  t.match(dryRun.json, { dry_run: true, person, count: 2, owner_required: true, confirmation_token: String })
  t.equal(await db.selectFrom('lifecycle_actions').select('id').where('action', '=', 'offboard').executeTakeFirst(), undefined, 'a dry run does nothing')
  const token = dryRun.json.confirmation_token as string

  // Above ORCHARD_DESTRUCTIVE_OWNER_LIMIT (1 here): an admin may not, an owner may.
  const admin = (await api('POST', '/api/v1/api-keys', { body: { name: 'admin', role: 'admin' } })).json.key as string
  const byAdmin = await api('POST', '/api/v1/offboarding', { key: admin, body: { person, reason: 'left on 2026-12-31', confirmation_token: token } })
  t.equal(byAdmin.statusCode, 403, 'two devices is more than the limit for an admin')
  const otherOptions = await api('POST', '/api/v1/offboarding', { body: { person, reason: 'another reason', confirmation_token: token } })
  t.equal(otherOptions.statusCode, 409, 'the token is bound to the options')
  t.equal(otherOptions.json.code, 'confirmation_invalid')
  // Her colleague's laptop is named as hers meanwhile: the set changed.
  await db.updateTable('devices').set({ user_email: person }).where('id', '=', colleague.udid).execute()
  const changed = await api('POST', '/api/v1/offboarding', { body: { person, reason: 'left on 2026-12-31', confirmation_token: token } })
  t.equal(changed.statusCode, 409)
  t.match(changed.json, { code: 'confirmation_invalid', problem: 'targets_changed' })
  await db.updateTable('devices').set({ user_email: 'bob@council.example' }).where('id', '=', colleague.udid).execute()

  const done = await api('POST', '/api/v1/offboarding', { body: { person, reason: 'left on 2026-12-31', confirmation_token: token } })
  t.equal(done.statusCode, 201, done.body)
  const outcomes = Object.fromEntries(done.json.devices.map((d: any) => [d.device_id, d]))
  t.match(outcomes[laptop.udid], { outcome: 'started', plan: 'erase', lifecycle_action_id: String })
  t.match(outcomes[phone.udid], { outcome: 'started', plan: 'selective_wipe', lifecycle_action_id: String })
  t.match(outcomes[old.udid], { outcome: 'skipped', lifecycle_action_id: null })
  t.equal((await api('GET', `/api/v1/devices/${colleague.udid}`)).json.lifecycle_state, 'active', 'the colleague’s laptop is untouched')

  const erase = (await runQueue(laptop)).map((c) => c.requestType)
  t.same(erase, ['EraseDevice'])
  t.same(
    (await runQueue(phone)).map((c) => c.requestType),
    ['RemoveApplication', 'RemoveProfile', 'RemoveProfile'],
  )
  for (const [device, actionId] of [
    [laptop, outcomes[laptop.udid].lifecycle_action_id],
    [phone, outcomes[phone.udid].lifecycle_action_id],
  ] as const) {
    const id = encodeURIComponent(device.udid)
    t.match((await api('GET', `/api/v1/devices/${id}/lifecycle/${actionId}`)).json, {
      action: 'offboard',
      status: 'completed',
      details: { reason: 'left on 2026-12-31' },
    })
    t.equal((await api('GET', `/api/v1/devices/${id}`)).json.lifecycle_state, 'retired')
  }
  const audit = (await api('GET', '/api/v1/audit-events?action=offboardLeaver')).json.items as Array<{
    device_id: string | null
    details: any
    outcome: string
  }>
  t.same(
    audit
      .filter((e) => e.outcome === 'success' && e.device_id !== null)
      .map((e) => e.device_id)
      .sort(),
    [laptop.udid, phone.udid].sort(),
    'each device’s offboarding is its own audit row',
  )
  t.ok(
    audit.some((e) => e.device_id === null && Array.isArray(e.details?.results)),
    'and the call itself, with what it did',
  )
})

t.test('leavers by device list: unknown and other tenants’ devices are not found; a gone one is retired at once', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'parks', name: 'Parks' } })).statusCode, 201)
  const parksAdmin = (await api('POST', '/api/v1/api-keys', { body: { name: 'parks admin', role: 'admin', tenant_id: 'parks' } })).json.key as string
  const ours = await mdm.enrolledDevice()
  const gone = await mdm.enrolledDevice()
  const central = await mdm.enrolledDevice()
  await mdm.database.db.updateTable('devices').set({ tenant_id: 'parks' }).where('id', 'in', [ours.udid, gone.udid]).execute()
  await lastSeen(mdm, gone.udid, 60)
  const body = { device_ids: [ours.udid, gone.udid, central.udid, 'NO-SUCH-DEVICE'], gone_for_days: 30 }

  const dryRun = await api('POST', '/api/v1/offboarding', { key: parksAdmin, body: { ...body, dry_run: true } })
  t.equal(dryRun.statusCode, 200, dryRun.body)
  t.same(
    dryRun.json.targets.map((target: any) => `${target.device_id}:${target.plan}`),
    [`${ours.udid}:erase`, `${gone.udid}:retire`, `${central.udid}:not_found`, 'NO-SUCH-DEVICE:not_found'],
    'central IT’s device does not exist for a department admin',
  )
  t.equal(dryRun.json.owner_required, false)
  const done = await api('POST', '/api/v1/offboarding', { key: parksAdmin, body: { ...body, confirmation_token: dryRun.json.confirmation_token } })
  t.equal(done.statusCode, 201, done.body)
  t.same(
    done.json.devices.map((d: any) => `${d.device_id}:${d.outcome}`),
    [`${ours.udid}:started`, `${gone.udid}:retired`, `${central.udid}:not_found`, 'NO-SUCH-DEVICE:not_found'],
  )
  t.match((await api('GET', `/api/v1/devices/${central.udid}`)).json, { lifecycle_state: 'active', enrolled: true }, 'untouched')
  const token = dryRun.json.confirmation_token as string
  const owner = await api('POST', '/api/v1/offboarding', { body: { ...body, confirmation_token: token } })
  t.equal(owner.statusCode, 409, 'a token is bound to the caller who ran the dry run')
})
