// Blueprint apps from Apps and Books end to end, on the fake v2 server and simulated devices:
// a licence per device in one batch, InstallApplication once it is assigned, failures per
// device (no licence left, Apple's refusal of a serial), and no licence of one tenant for
// another tenant's device.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { syncThroughJob } from '../helpers/jobs.js'
import { FaithfulDevice } from '../helpers/faithful-device.js'
import { startFakeVpp, vppError } from '../helpers/fake-vpp.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const notes = '361309726'
const bundleOf = { [notes]: 'com.example.notes' }

async function setup(t: Parameters<typeof setupMdm>[0]) {
  const fake = await startFakeVpp({ pollsUntilComplete: 0 })
  t.teardown(() => fake.close())
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'), ORCHARD_VPP_URL: `${fake.url}/mdm/v2`, ORCHARD_VPP_SYNC_SECONDS: '0' })
  const api = apiClient(mdm.app)
  const orchard = mdm.orchard
  /** What the background loop does every 30 s. */
  const licenceRound = async () => {
    const round = await orchard.vpp.licences.advance()
    await orchard.blueprints.devicesLicensed(round.settled)
    return round
  }
  return { fake, mdm, api, licenceRound }
}

async function connect(api: ReturnType<typeof apiClient>, sToken: string, body: Record<string, unknown> = {}) {
  const token = await api('POST', '/api/v1/vpp/tokens', { body: { name: `apps ${randomBytes(3).toString('hex')}`, content_token: sToken, ...body } })
  if (token.statusCode !== 201) throw new Error(token.body)
  const synced = await syncThroughJob(api, `/api/v1/vpp/tokens/${token.json.id}/sync`)
  if (synced.json.outcome !== 'synced') throw new Error(synced.body)
  return token.json
}

t.test('a blueprint app from Apps and Books: one batch of licences, then InstallApplication with the licence', async (t) => {
  const { fake, mdm, api, licenceRound } = await setup(t)
  const location = fake.addLocation({ locationName: 'Council' })
  fake.addAsset(location, { adamId: notes, totalCount: 3 })
  await connect(api, location.sToken)

  const devices = await Promise.all([1, 2, 3, 4].map(async (n) => new FaithfulDevice(await mdm.enrolledDevice({ serialNumber: `C0UNCIL0000${n}` }), bundleOf)))
  const blueprint = await api('POST', '/api/v1/blueprints', {
    body: {
      name: 'work apps',
      applications: [
        { bundle_id: 'com.example.notes', vpp_asset: notes, prevent_backup: true, configuration: { ServerURL: 'https://notes.council.example', Sync: true } },
      ],
    },
  })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  for (const device of devices) await device.sync()
  for (const device of devices) {
    t.notOk(
      device.ran.some((c) => c.startsWith('InstallApplication')),
      'no install before the licence',
    )
    const config = (await api('GET', `/api/v1/devices/${device.udid}/configuration`)).json
    t.match(config, { status: 'pending', applications: [{ bundle_id: 'com.example.notes', status: 'pending', detail: /waiting for Apple/ }] })
  }
  t.equal(fake.requestCount('POST /mdm/v2/assets/associate'), 0, 'nothing asked of Apple per device')

  const before = fake.requests.length
  const round = await licenceRound()
  t.equal(round.requested, 3)
  t.equal(round.failed, 1, 'three licences for four devices')
  t.equal(round.assigned.length, 3)
  t.equal(fake.requestCount('POST /mdm/v2/assets/associate'), 1, 'one associate call for the batch')
  t.equal(fake.requests.length - before, 3, 'service config, associate, event status')
  t.equal(round.appleCalls, 3)

  for (const device of devices) await device.sync()
  const installs = devices.flatMap((device) =>
    device.commands.filter((c) => c.requestType === 'InstallApplication').map((c) => ({ udid: device.udid, command: c.command })),
  )
  t.equal(installs.length, 3)
  t.match(installs[0]!.command, {
    iTunesStoreID: Number(notes),
    Options: { PurchaseMethod: 1 },
    ManagementFlags: 5,
    Configuration: { ServerURL: 'https://notes.council.example', Sync: true },
  })
  const statuses = await Promise.all(devices.map(async (d) => (await api('GET', `/api/v1/devices/${d.udid}/configuration`)).json))
  t.equal(statuses.filter((s) => s.status === 'in_sync').length, 3, 'three devices converged')
  const short = statuses.find((s) => s.status !== 'in_sync')
  t.match(short, {
    status: 'failed',
    applications: [{ status: 'failed', detail: /no_licence: 4 device\(s\) want app 361309726 and 3 licence\(s\) were free \("apps \w+": 3 of 3 available/ }],
  })
  const licensed = location.assignments.map((a) => a.serialNumber).sort()
  t.equal(licensed.length, 3)
  const shortDevice = devices.find((d) => d.udid === short.device_id)!
  t.notOk(licensed.includes(shortDevice.device.serialNumber))
  t.notOk(
    shortDevice.ran.some((c) => c.startsWith('InstallApplication')),
    'nothing queued without a licence',
  )
  t.match((await api('GET', `/api/v1/vpp/assets?adam_id=${notes}`)).json.items, [{ assigned_count: 3, available_count: 0 }])

  // The licence report: Apple's holders as of the last sync, each with its device (or none).
  location.assignments.push({ adamId: notes, pricingParam: 'STDQ', serialNumber: 'GONE00000001', version: 1 })
  await syncThroughJob(api, `/api/v1/vpp/tokens/${(await api('GET', '/api/v1/vpp/tokens')).json.items[0].id}/sync`)
  const report = await api('GET', '/api/v1/reports/licences')
  t.equal(report.statusCode, 200, report.body)
  const holders = report.json.items[0].holders as Array<{ serial_number: string; device_id: string | null }>
  t.equal(holders.length, 4)
  t.same(
    holders.filter((h) => h.device_id === null).map((h) => h.serial_number),
    ['GONE00000001'],
    'a serial Orchard does not manage shows without a device',
  )
  for (const holder of holders.filter((h) => h.device_id !== null))
    t.ok(devices.some((d) => d.udid === holder.device_id && d.device.serialNumber === holder.serial_number))
  const csv = await api('GET', '/api/v1/reports/licences?format=csv')
  t.match(csv.headers['content-type'], /^text\/csv/)
  const lines = csv.body.trim().split('\r\n')
  t.equal(lines[0], 'tenant_id,vpp_token_id,token_name,adam_id,pricing_param,total_count,assigned_count,available_count,serial_number,device_id')
  t.equal(lines.length, 5, 'one row per holder')
  t.match(
    lines.find((line) => line.includes('GONE00000001')),
    /,361309726,STDQ,3,3,0,GONE00000001,$/,
  )
  location.assignments.pop()
  await syncThroughJob(api, `/api/v1/vpp/tokens/${(await api('GET', '/api/v1/vpp/tokens')).json.items[0].id}/sync`)

  // A licence bought later: the admin's sync retries the failed device.
  fake.addAsset(location, { adamId: notes, totalCount: 4, assignedCount: 3, availableCount: 1 })
  await syncThroughJob(api, `/api/v1/vpp/tokens/${(await api('GET', '/api/v1/vpp/tokens')).json.items[0].id}/sync`)
  t.equal((await api('POST', `/api/v1/devices/${shortDevice.udid}/configuration/sync`)).statusCode, 202)
  await shortDevice.sync()
  t.equal((await licenceRound()).assigned.length, 1)
  await shortDevice.sync()
  t.equal((await api('GET', `/api/v1/devices/${shortDevice.udid}/configuration`)).json.status, 'in_sync')
})

t.test("a serial Apple refuses fails alone; a licence Apple already holds is used as is; another tenant's token is never used", async (t) => {
  const { fake, mdm, api, licenceRound } = await setup(t)
  for (const id of ['biology', 'physics']) t.equal((await api('POST', '/api/v1/tenants', { body: { id, name: id } })).statusCode, 201)
  const biology = fake.addLocation({ locationName: 'Biology' })
  fake.addAsset(biology, { adamId: notes, totalCount: 10 })
  await connect(api, biology.sToken, { tenant_id: 'biology' })
  const physics = fake.addLocation({ locationName: 'Physics' })
  fake.addAsset(physics, { adamId: '284882215', totalCount: 10 })
  await connect(api, physics.sToken, { tenant_id: 'physics' })

  const enroll = async (serialNumber: string, tenant: string) => {
    const device = new FaithfulDevice(await mdm.enrolledDevice({ serialNumber }), bundleOf)
    await mdm.database.db.updateTable('devices').set({ tenant_id: tenant }).where('id', '=', device.udid).execute()
    return device
  }
  const refused = await enroll('BIOREFUSED01', 'biology')
  const fine = await enroll('BIOFINE00001', 'biology')
  const stranger = await enroll('PHYSICS00001', 'physics')
  fake.failSerials.set('BIOREFUSED01', vppError(9603))

  // Central IT's blueprint reaches every tenant; only biology's token holds the app.
  t.equal(
    (await api('POST', '/api/v1/blueprints', { body: { name: 'notes', applications: [{ bundle_id: 'com.example.notes', vpp_asset: notes }] } })).statusCode,
    201,
  )
  for (const device of [refused, fine, stranger]) await device.sync()
  const round = await licenceRound()
  t.same(round.assigned, [fine.udid])
  for (const device of [refused, fine, stranger]) await device.sync()

  t.equal((await api('GET', `/api/v1/devices/${fine.udid}/configuration`)).json.status, 'in_sync')
  t.match((await api('GET', `/api/v1/devices/${refused.udid}/configuration`)).json.applications, [{ status: 'failed', detail: /Apple error 9603/ }])
  t.match((await api('GET', `/api/v1/devices/${stranger.udid}/configuration`)).json.applications, [
    { status: 'failed', detail: /no content token of this device's tenant holds app 361309726/ },
  ])
  t.same(
    biology.assignments.map((a) => a.serialNumber),
    ['BIOFINE00001'],
    "physics' device got nothing from biology's token",
  )
  t.equal(physics.assignments.length, 0)

  // Apple holds a licence for a new device already (assigned before Orchard): no call, installed at once.
  fake.addAsset(biology, { adamId: notes, totalCount: 10 })
  biology.assignments.push({ adamId: notes, pricingParam: 'STDQ', serialNumber: 'BIOEARLY0001', version: 1 })
  await syncThroughJob(api, `/api/v1/vpp/tokens/${(await api('GET', '/api/v1/vpp/tokens')).json.items.find((x: any) => x.tenant_id === 'biology').id}/sync`)
  const early = await enroll('BIOEARLY0001', 'biology')
  await mdm.database.db.updateTable('devices').set({ tenant_id: 'biology' }).where('id', '=', early.udid).execute()
  await api('POST', `/api/v1/devices/${early.udid}/configuration/sync`)
  const associations = fake.requestCount('POST /mdm/v2/assets/associate')
  await early.sync()
  t.ok(
    early.ran.some((c) => c.startsWith('InstallApplication')),
    'installed with the licence Apple already had',
  )
  t.equal(fake.requestCount('POST /mdm/v2/assets/associate'), associations)
})

t.test(
  'licences follow the device: released when the app leaves its blueprints, when it leaves management, and re-assigned from the new tenant after a move',
  async (t) => {
    const { fake, mdm, api, licenceRound } = await setup(t)
    for (const id of ['biology', 'physics']) t.equal((await api('POST', '/api/v1/tenants', { body: { id, name: id } })).statusCode, 201)
    const biology = fake.addLocation({ locationName: 'Biology' })
    fake.addAsset(biology, { adamId: notes, totalCount: 10 })
    await connect(api, biology.sToken, { tenant_id: 'biology' })
    const physics = fake.addLocation({ locationName: 'Physics' })
    fake.addAsset(physics, { adamId: notes, totalCount: 10 })
    await connect(api, physics.sToken, { tenant_id: 'physics' })

    const devices: FaithfulDevice[] = []
    for (const n of [1, 2, 3]) {
      const device = new FaithfulDevice(await mdm.enrolledDevice({ serialNumber: `BIOLOGY0000${n}` }), bundleOf)
      await mdm.database.db.updateTable('devices').set({ tenant_id: 'biology' }).where('id', '=', device.udid).execute()
      devices.push(device)
    }
    const [leaver, mover, stayer] = devices as [FaithfulDevice, FaithfulDevice, FaithfulDevice]
    const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'notes', applications: [{ bundle_id: 'com.example.notes', vpp_asset: notes }] } })
    for (const device of devices) await device.sync()
    t.equal((await licenceRound()).assigned.length, 3)
    for (const device of devices) await device.sync()
    t.same(biology.assignments.map((a) => a.serialNumber).sort(), ['BIOLOGY00001', 'BIOLOGY00002', 'BIOLOGY00003'])

    // Leaves management: its licence goes back to the pool.
    t.equal((await leaver.device.checkOut()).status, 200)
    // Moves to physics: biology's licence is released, physics' token gives one.
    const moved = await api('POST', '/api/v1/devices/move', { body: { device_ids: [mover.udid], tenant_id: 'physics' } })
    t.equal(moved.statusCode, 200, moved.body)
    const round = await licenceRound()
    t.equal(round.released, 2)
    t.same(
      biology.assignments.map((a) => a.serialNumber),
      ['BIOLOGY00003'],
    )
    t.match((await api('GET', `/api/v1/vpp/assets?adam_id=${notes}&tenant_id=biology`)).json.items, [{ assigned_count: 1, available_count: 9 }])
    await api('POST', `/api/v1/devices/${mover.udid}/configuration/sync`)
    await mover.sync()
    await licenceRound()
    t.same(
      physics.assignments.map((a) => a.serialNumber),
      ['BIOLOGY00002'],
      "the moved device's licence now comes from physics",
    )

    // The app leaves the blueprint: the device removes it and its licence is released.
    t.equal((await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'notes', applications: [] } })).statusCode, 200)
    await stayer.sync()
    t.ok(
      stayer.ran.some((c) => c.startsWith('RemoveApplication')),
      'the app is removed',
    )
    const calls = fake.requestCount('POST /mdm/v2/assets/disassociate')
    t.equal((await licenceRound()).released, 1)
    t.equal(fake.requestCount('POST /mdm/v2/assets/disassociate'), calls + 1, 'one call')
    t.same(biology.assignments, [])
    t.same(await mdm.database.db.selectFrom('vpp_licences').select(['device_id', 'state']).where('device_id', '=', stayer.udid).execute(), [])
  },
)
