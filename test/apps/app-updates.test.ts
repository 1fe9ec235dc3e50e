// App updates and the rest of an app's life on simulated devices and the fake Apps and Books
// server: blueprint apps that update themselves to the newest version devices report, an
// admin's update of an app (dry run, given version, devices without a licence), Attributes in
// InstallApplication, the licence released by a wipe, and the licences of serials Orchard does
// not manage (listed, then freed when the admin names them).
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { syncThroughJob } from '../helpers/jobs.js'
import { FaithfulDevice } from '../helpers/faithful-device.js'
import { startFakeVpp } from '../helpers/fake-vpp.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const notes = '361309726'
const maps = '284882215'
const bundleOf = { [notes]: 'com.example.notes', [maps]: 'com.example.maps' }

async function setup(t: Parameters<typeof setupMdm>[0]) {
  const fake = await startFakeVpp({ pollsUntilComplete: 0 })
  t.teardown(() => fake.close())
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'), ORCHARD_VPP_URL: `${fake.url}/mdm/v2`, ORCHARD_VPP_SYNC_SECONDS: '0' })
  const api = apiClient(mdm.app)
  const licenceRound = async () => {
    const round = await mdm.orchard.vpp.licences.advance()
    await mdm.orchard.blueprints.devicesLicensed(round.settled)
    return round
  }
  return { fake, mdm, api, licenceRound }
}

async function connect(api: ReturnType<typeof apiClient>, sToken: string) {
  const token = await api('POST', '/api/v1/vpp/tokens', { body: { name: `apps ${randomBytes(3).toString('hex')}`, content_token: sToken } })
  if (token.statusCode !== 201) throw new Error(token.body)
  const synced = await syncThroughJob(api, `/api/v1/vpp/tokens/${token.json.id}/sync`)
  if (synced.json.outcome !== 'synced') throw new Error(synced.body)
  return token.json as { id: string }
}

const installsOf = (device: FaithfulDevice) => device.commands.filter((c) => c.requestType === 'InstallApplication').map((c) => c.command)

t.test('an auto-update app follows the newest version a device reports; Attributes go with the install', async (t) => {
  const { fake, mdm, api, licenceRound } = await setup(t)
  const location = fake.addLocation({ locationName: 'Council' })
  fake.addAsset(location, { adamId: notes, totalCount: 10 })
  await connect(api, location.sToken)
  const devices = await Promise.all([1, 2, 3].map(async (n) => new FaithfulDevice(await mdm.enrolledDevice({ serialNumber: `UPDATE00000${n}` }), bundleOf)))
  for (const device of devices) device.storeVersions[notes] = '1.9'
  const attributes = { vpn_uuid: '5B1D3A67-7A0B-4C2E-9B7B-4E0C1F1A2B3C', associated_domains: ['applinks:notes.council.example'], removable: false }
  const blueprint = await api('POST', '/api/v1/blueprints', {
    body: { name: 'notes', applications: [{ bundle_id: 'com.example.notes', vpp_asset: notes, auto_update: true, attributes }] },
  })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  t.match(blueprint.json.applications, [{ auto_update: true, attributes }])
  const refused = await api('POST', '/api/v1/blueprints', {
    body: { name: 'bad', applications: [{ bundle_id: 'com.example.notes', vpp_asset: notes, attributes: { vpn: 'x' } }] },
  })
  t.equal(refused.statusCode, 400, 'an attribute Orchard does not know is refused')

  for (const device of devices) await device.sync()
  await licenceRound()
  for (const device of devices) await device.sync()
  for (const device of devices) {
    t.equal(device.appVersions.get('com.example.notes'), '1.9')
    t.match(installsOf(device), [
      {
        iTunesStoreID: Number(notes),
        Options: { PurchaseMethod: 1 },
        Attributes: { VPNUUID: attributes.vpn_uuid, AssociatedDomains: attributes.associated_domains, Removable: false },
      },
    ])
    device.reset()
  }

  // The store has 1.10 now; one device's user updated by hand: it reports 1.10 first.
  const [first, second, third] = devices as [FaithfulDevice, FaithfulDevice, FaithfulDevice]
  for (const device of devices) device.storeVersions[notes] = '1.10'
  first.appVersions.set('com.example.notes', '1.10')
  t.equal((await api('POST', `/api/v1/devices/${first.udid}/configuration/sync`)).statusCode, 202)
  await first.sync()
  t.same(installsOf(first), [], 'the device at the newest version is left alone')
  const known = await mdm.database.db.selectFrom('app_versions').selectAll().execute()
  t.match(known, [{ bundle_id: 'com.example.notes', version: '1.10', reported_by: first.udid }], '1.10 is newer than 1.9 (numbers, not text)')

  // The others update on their next app list, with their licence.
  t.equal((await api('POST', `/api/v1/devices/${second.udid}/configuration/sync`)).statusCode, 202)
  await second.sync()
  t.match(installsOf(second), [{ iTunesStoreID: Number(notes), Options: { PurchaseMethod: 1 } }])
  t.equal(second.appVersions.get('com.example.notes'), '1.10')
  await api('POST', `/api/v1/devices/${second.udid}/configuration/sync`)
  second.reset()
  await second.sync()
  t.same(installsOf(second), [], 'updated: nothing more to send')
  t.match((await api('GET', `/api/v1/devices/${second.udid}/configuration`)).json, { status: 'in_sync' })

  // An older report never lowers what is known; the device is sent the update.
  third.appVersions.set('com.example.notes', '1.2')
  third.storeVersions[notes] = '1.2'
  third.reset()
  let detail: unknown
  third.beforeAnswer = async (requestType) => {
    if (requestType === 'InstallApplication') detail = (await api('GET', `/api/v1/devices/${third.udid}/configuration`)).json.applications[0].detail
  }
  await api('POST', `/api/v1/devices/${third.udid}/configuration/sync`)
  await third.sync()
  t.match(await mdm.database.db.selectFrom('app_versions').selectAll().execute(), [{ version: '1.10' }])
  t.equal(installsOf(third).length, 1)
  t.match(detail, /reported version 1\.2, 1\.10 is known: updating it/)
})

t.test('POST /api/v1/apps/{adam_id}/update: the devices at an older version, with their licence; a dry run first', async (t) => {
  const { fake, mdm, api, licenceRound } = await setup(t)
  const location = fake.addLocation({ locationName: 'Council' })
  fake.addAsset(location, { adamId: maps, totalCount: 2 })
  await connect(api, location.sToken)
  const devices = await Promise.all([1, 2, 3].map(async (n) => new FaithfulDevice(await mdm.enrolledDevice({ serialNumber: `MAPS0000000${n}` }), bundleOf)))
  const [a, b, c] = devices as [FaithfulDevice, FaithfulDevice, FaithfulDevice]
  // c has the app from before Orchard (no licence will be left for it).
  c.apps.add('com.example.maps')
  c.appVersions.set('com.example.maps', '2.0')
  for (const device of [a, b]) device.storeVersions[maps] = '2.0'
  const blueprint = await api('POST', '/api/v1/blueprints', {
    body: { name: 'maps', applications: [{ bundle_id: 'com.example.maps', vpp_asset: maps, prevent_backup: true }] },
  })
  t.equal(blueprint.statusCode, 201)
  for (const device of [a, b]) await device.sync()
  await licenceRound()
  await c.sync()
  await licenceRound()
  for (const device of devices) await device.sync()
  // Their app lists (the periodic check) tell Orchard which version each has.
  for (const device of devices) {
    await api('POST', `/api/v1/devices/${device.udid}/configuration/sync`)
    await device.sync()
  }
  t.same(location.assignments.map((x) => x.serialNumber).sort(), [a.device.serialNumber, b.device.serialNumber].sort())

  const nothing = await api('POST', `/api/v1/apps/${maps}/update`, { body: {} })
  t.equal(nothing.statusCode, 200, nothing.body)
  t.match(nothing.json, {
    bundle_id: 'com.example.maps',
    target_version: '2.0',
    version_source: 'reported',
    updating: [],
    up_to_date_count: 3,
    command_uuid: null,
  })

  const dry = await api('POST', `/api/v1/apps/${maps}/update`, { body: { version: '2.1', dry_run: true } })
  t.equal(dry.statusCode, 200, dry.body)
  t.same(dry.json.updating.sort(), [a.udid, b.udid].sort())
  t.same(dry.json.without_licence, [c.udid], 'a device without a licence is named, not updated')
  t.match(dry.json, { target_version: '2.1', version_source: 'given', command_uuid: null, dry_run: true })
  for (const device of devices) device.reset()
  await a.sync()
  t.same(a.ran, [], 'a dry run queues nothing')

  for (const device of devices) device.storeVersions[maps] = '2.1'
  const updated = await api('POST', `/api/v1/apps/${maps}/update`, { body: { version: '2.1' } })
  t.equal(updated.statusCode, 200, updated.body)
  t.type(updated.json.command_uuid, 'string')
  t.same(updated.json.updating.sort(), [a.udid, b.udid].sort())
  for (const device of devices) await device.sync()
  for (const device of [a, b]) {
    t.match(installsOf(device), [{ iTunesStoreID: Number(maps), ManagementFlags: 5, Options: { PurchaseMethod: 1 } }])
    t.equal(device.appVersions.get('com.example.maps'), '2.1')
  }
  t.same(installsOf(c), [])
  const audit = await api('GET', '/api/v1/audit-events?action=updateApp')
  t.match(audit.json.items, [{ outcome: 'success', target_type: 'command', target_id: updated.json.command_uuid }], 'the update is audited as its command')

  // Once a device reported 2.1, it is the version an update reaches without being told.
  await api('POST', `/api/v1/devices/${a.udid}/configuration/sync`)
  await a.sync()
  const again = await api('POST', `/api/v1/apps/${maps}/update`, { body: { dry_run: true } })
  t.match(again.json, { target_version: '2.1', version_source: 'reported', updating: [], without_licence: [c.udid] })

  // What Orchard cannot know is said, not guessed.
  const unknown = await api('POST', '/api/v1/apps/999999/update', { body: {} })
  t.equal(unknown.statusCode, 400)
  t.match(unknown.json, { detail: /no blueprint installs app 999999: give its bundle_id/ })
  const noVersion = await api('POST', '/api/v1/apps/999999/update', { body: { bundle_id: 'com.example.none' } })
  t.equal(noVersion.statusCode, 409)
  t.match(noVersion.json, { detail: /no device has reported a version of com\.example\.none/ })
  t.equal((await api('POST', `/api/v1/apps/${maps}/update`, { body: { blueprint_id: '6f1c1a55-0000-4000-8000-000000000000' } })).statusCode, 404)
  t.equal((await api('POST', `/api/v1/apps/${maps}/update`, { body: { versions: '2' } })).statusCode, 400, 'unknown fields are refused')
})

t.test("a wiped device's licence goes back; licences of serials Orchard does not manage are listed and freed when named", async (t) => {
  const { fake, mdm, api, licenceRound } = await setup(t)
  const location = fake.addLocation({ locationName: 'Council' })
  fake.addAsset(location, { adamId: notes, totalCount: 10 })
  const token = await connect(api, location.sToken)
  const devices = await Promise.all([1, 2].map(async (n) => new FaithfulDevice(await mdm.enrolledDevice({ serialNumber: `WIPE0000000${n}` }), bundleOf)))
  const [wiped, kept] = devices as [FaithfulDevice, FaithfulDevice]
  await api('POST', '/api/v1/blueprints', { body: { name: 'notes', applications: [{ bundle_id: 'com.example.notes', vpp_asset: notes }] } })
  for (const device of devices) await device.sync()
  await licenceRound()
  for (const device of devices) await device.sync()
  t.equal(location.assignments.length, 2)

  const wipe = await api('POST', `/api/v1/devices/${wiped.udid}/wipe`, { body: {} })
  t.equal(wipe.statusCode, 201, wipe.body)
  await wiped.sync()
  t.ok(wiped.ran.includes('EraseDevice'))
  const round = await licenceRound()
  t.equal(round.released, 1, 'the wiped device gives its licence back')
  t.same(
    location.assignments.map((x) => x.serialNumber),
    [kept.device.serialNumber],
  )

  // Apple holds licences for serials Orchard does not manage: one never seen, and the wiped one
  // assigned again by someone else.
  location.assignments.push({ adamId: notes, pricingParam: 'STDQ', serialNumber: 'ELSEWHERE001', version: 1 })
  location.assignments.push({ adamId: notes, pricingParam: 'STDQ', serialNumber: wiped.device.serialNumber, version: 1 })
  await syncThroughJob(api, `/api/v1/vpp/tokens/${token.id}/sync`)
  const listed = await api('GET', '/api/v1/vpp/unmanaged-licences')
  t.equal(listed.statusCode, 200, listed.body)
  t.equal(listed.json.total, 2)
  t.match(listed.json.items, [
    { serial_number: 'ELSEWHERE001', device_id: null, adam_id: notes, vpp_token_id: token.id },
    { serial_number: wiped.device.serialNumber, device_id: wiped.udid },
  ])
  t.same(
    (await mdm.orchard.vpp.unmanaged.report()).map((x) => x.count),
    [2],
    'the daily reconcile counts them',
  )

  const released = await api('POST', '/api/v1/vpp/unmanaged-licences/release', {
    body: { vpp_token_id: token.id, serial_numbers: ['ELSEWHERE001', kept.device.serialNumber, 'NOSUCHSERIAL'] },
  })
  t.equal(released.statusCode, 200, released.body)
  t.match(released.json, { released: 1, skipped: [kept.device.serialNumber, 'NOSUCHSERIAL'] })
  t.equal(released.json.event_ids.length, 1)
  fake.completeEvents()
  t.same(
    location.assignments.map((x) => x.serialNumber).sort(),
    [kept.device.serialNumber, wiped.device.serialNumber].sort(),
    "a managed device's licence is never freed here",
  )
  await syncThroughJob(api, `/api/v1/vpp/tokens/${token.id}/sync`)
  t.match((await api('GET', '/api/v1/vpp/unmanaged-licences')).json, { total: 1, items: [{ serial_number: wiped.device.serialNumber }] })
  t.equal((await api('POST', '/api/v1/vpp/unmanaged-licences/release', { body: { vpp_token_id: token.id, serial_numbers: [] } })).statusCode, 400)
  const audit = await api('GET', '/api/v1/audit-events?action=releaseUnmanagedLicences')
  t.match(
    audit.json.items.map((item: { outcome: string; status_code: number }) => [item.outcome, item.status_code]),
    [
      ['failure', 400],
      ['success', 200],
    ],
  )
})

t.test('an install still underway is asked about (ManagedApplicationList), not sent again; a declined one fails with the reason', async (t) => {
  const { mdm, api } = await setup(t)
  const devices = await Promise.all([1, 2, 3].map(async (n) => new FaithfulDevice(await mdm.enrolledDevice({ serialNumber: `SLOW0000000${n}` }), bundleOf)))
  const [slow, declining, forgetting] = devices as [FaithfulDevice, FaithfulDevice, FaithfulDevice]
  for (const device of devices) device.slowApps.add(maps)
  declining.declinedApps.add(maps)
  t.equal(
    (await api('POST', '/api/v1/blueprints', { body: { name: 'maps', applications: [{ bundle_id: 'com.example.maps', itunes_store_id: Number(maps) }] } }))
      .statusCode,
    201,
  )
  for (const device of devices) await device.sync()
  const configuration = async (device: FaithfulDevice) => (await api('GET', `/api/v1/devices/${device.udid}/configuration`)).json
  for (const device of devices) {
    t.equal(installsOf(device).length, 1)
    t.match(await configuration(device), { status: 'pending', applications: [{ status: 'pending', detail: 'the device is installing it (Installing)' }] })
  }
  // The next app list does not show it yet: the device is asked how the install goes.
  forgetting.installing.clear()
  for (const device of devices) {
    device.reset()
    await api('POST', `/api/v1/devices/${device.udid}/configuration/sync`)
    await device.sync()
  }
  t.same(slow.ran, ['ProfileList', 'InstalledApplicationList', 'ManagedApplicationList'], 'asked, not installed again')
  t.match(slow.commands.at(-1)?.command, { Identifiers: ['com.example.maps'] })
  t.match(await configuration(slow), { status: 'pending', applications: [{ detail: 'the device is installing it (Installing)' }] })
  t.match(await configuration(declining), {
    status: 'failed',
    applications: [{ status: 'failed', detail: 'UserRejected: the user declined the installation' }],
  })
  t.match(await configuration(forgetting), { status: 'pending' }, 'a device with no record of the install')

  // The install finished: the app list shows it. The device that lost it gets it again; the
  // declined one is tried again because this is an admin's sync (the periodic check leaves it).
  slow.finishInstalls()
  for (const device of devices) {
    device.reset()
    device.slowApps.delete(maps)
    await api('POST', `/api/v1/devices/${device.udid}/configuration/sync`)
    await device.sync()
  }
  t.same(slow.ran, ['ProfileList', 'InstalledApplicationList'])
  t.match(await configuration(slow), { status: 'in_sync' })
  t.match(installsOf(forgetting), [{ iTunesStoreID: Number(maps) }])
  t.match(await configuration(forgetting), { status: 'in_sync' })
  t.match(installsOf(declining), [{ iTunesStoreID: Number(maps) }], "an admin's sync tries a failed install again")
})
