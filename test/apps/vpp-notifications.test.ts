// Apple's Apps and Books notifications end to end, on the fake v2 server (which posts them over
// loopback HTTP to a relay into the in-process app): the endpoint set in client config and its
// TEST_NOTIFICATION, licences settled by ASSET_MANAGEMENT without polling the event, a serial's
// failure, ASSET_COUNT, and what is refused (wrong bearer, unknown token, another location,
// malformed bodies) without changing anything; a repeated delivery changes nothing either.
import { randomBytes, randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { syncThroughJob } from '../helpers/jobs.js'
import { FaithfulDevice } from '../helpers/faithful-device.js'
import { assetManagementNotifications, startFakeVpp, vppError, type FakeVppLocation } from '../helpers/fake-vpp.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const notes = '361309726'
const bundleOf = { [notes]: 'com.example.notes' }

/** A loopback HTTP server that hands every request to the app (which is built after its URL is known). */
async function startRelay(t: { teardown(fn: () => unknown): void }) {
  let app: FastifyInstance | undefined
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const headers: Record<string, string> = {}
      for (const name of ['authorization', 'content-type']) if (typeof req.headers[name] === 'string') headers[name] = req.headers[name]
      app!
        .inject({ method: req.method as 'POST', url: req.url ?? '/', headers, payload: Buffer.concat(chunks) })
        .then((response) => {
          res.writeHead(response.statusCode, { 'content-type': String(response.headers['content-type'] ?? 'text/plain') })
          res.end(response.rawPayload)
        })
        .catch(() => {
          res.writeHead(502)
          res.end()
        })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, serve: (target: FastifyInstance) => void (app = target) }
}

async function setup(t: Parameters<typeof setupMdm>[0], env: Record<string, string> = {}) {
  const fake = await startFakeVpp({ pollsUntilComplete: 0 })
  t.teardown(() => fake.close())
  const relay = await startRelay(t)
  const mdm = await setupMdm(t, {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_VPP_URL: `${fake.url}/mdm/v2`,
    ORCHARD_VPP_SYNC_SECONDS: '0',
    // Apple requires https; the fake takes loopback http.
    ORCHARD_VPP_NOTIFICATION_URL: relay.url,
    ...env,
  })
  relay.serve(mdm.app)
  const api = apiClient(mdm.app)
  const licenceRound = async () => {
    const round = await mdm.orchard.vpp.licences.advance()
    await mdm.orchard.blueprints.devicesLicensed(round.settled)
    return round
  }
  const connect = async (sToken: string, body: Record<string, unknown> = {}) => {
    const token = await api('POST', '/api/v1/vpp/tokens', { body: { name: `apps ${randomBytes(3).toString('hex')}`, content_token: sToken, ...body } })
    if (token.statusCode !== 201) throw new Error(token.body)
    const synced = await syncThroughJob(api, `/api/v1/vpp/tokens/${token.json.id}/sync`)
    if (synced.json.outcome !== 'synced') throw new Error(synced.body)
    return token.json as { id: string; status: string }
  }
  const enroll = async (serialNumber: string, tenant?: string) => {
    const device = new FaithfulDevice(await mdm.enrolledDevice({ serialNumber }), bundleOf)
    if (tenant) await mdm.database.db.updateTable('devices').set({ tenant_id: tenant }).where('id', '=', device.udid).execute()
    return device
  }
  const licences = () =>
    mdm.database.db.selectFrom('vpp_licences').select(['device_id', 'serial_number', 'state', 'event_id', 'detail']).orderBy('serial_number').execute()
  const counts = async () => (await api('GET', `/api/v1/vpp/assets?adam_id=${notes}`)).json.items as Array<Record<string, unknown>>
  const statusPolls = () => fake.requestCount('/mdm/v2/status')
  return { fake, relay, mdm, api, licenceRound, connect, enroll, licences, counts, statusPolls }
}

async function wantNotes(api: ReturnType<typeof apiClient>, devices: FaithfulDevice[]) {
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'notes', applications: [{ bundle_id: 'com.example.notes', vpp_asset: notes }] } })
  if (blueprint.statusCode !== 201) throw new Error(blueprint.body)
  for (const device of devices) await device.sync()
}

/** POSTs a notification body as Apple would. */
async function post(url: string, authorization: string | undefined, body: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization !== undefined ? { authorization } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined }
}

const endpointOf = (location: FakeVppLocation) => ({ url: location.notificationUrl!, bearer: `Bearer ${location.notificationAuthToken!}` })

t.test('claiming sets the endpoint (Apple tests it), and ASSET_MANAGEMENT settles the licences without polling the event', async (t) => {
  const { fake, relay, api, licenceRound, connect, enroll, licences, counts, statusPolls } = await setup(t)
  const location = fake.addLocation({ locationName: 'Council' })
  fake.addAsset(location, { adamId: notes, totalCount: 5 })
  const token = await connect(location.sToken)
  t.equal(token.status, 'ok')
  t.equal(location.notificationUrl, `${relay.url}/vpp/notifications/${token.id}`)
  t.match(location.notificationAuthToken, /^[A-Za-z0-9_-]{43}$/, 'a derived bearer value')
  t.same(location.subscribedNotificationTypes.slice().sort(), ['ASSET_COUNT', 'ASSET_MANAGEMENT'])
  t.match(fake.deliveries, [{ status: 200, body: { notificationType: 'TEST_NOTIFICATION', uId: location.uId } }], 'the test notification was answered 200')

  const devices = await Promise.all(['COUNCIL00001', 'COUNCIL00002'].map((serial) => enroll(serial)))
  await wantNotes(api, devices)
  const first = await licenceRound()
  t.equal(first.requested, 2)
  t.equal(first.open, 1, 'the event is open')
  t.equal(statusPolls(), 0, 'and not polled: Apple notifies it')

  fake.completeEvents()
  const deliveries = await fake.sendNotifications()
  t.equal(deliveries.length, 1)
  t.equal(deliveries[0]!.status, 200)
  t.match(await licences(), [
    { state: 'assigned', event_id: null },
    { state: 'assigned', event_id: null },
  ])
  t.match(await counts(), [{ assigned_count: 2, available_count: 3 }], "Apple's counts moved with the event")

  // The devices were asked for their app list, which installs the app.
  for (const device of devices) await device.sync()
  for (const device of devices)
    t.ok(
      device.ran.some((c) => c.startsWith('InstallApplication')),
      'installed',
    )

  const second = await licenceRound()
  t.equal(second.open, 0, 'nothing left to follow')
  t.equal(statusPolls(), 0, 'the event was never polled')

  // Apple delivers again (it retries when it saw no 2xx in time): nothing changes.
  const before = { licences: await licences(), counts: await counts() }
  for (const delivery of deliveries) t.equal((await post(delivery.url, delivery.authorization, delivery.body)).status, 200)
  t.same({ licences: await licences(), counts: await counts() }, before, 'a repeated notification changes nothing')
})

t.test("a serial Apple refuses fails with Apple's reason; ASSET_COUNT reads the asset's counts again", async (t) => {
  const { fake, api, licenceRound, connect, enroll, licences, counts, statusPolls } = await setup(t)
  const location = fake.addLocation()
  fake.addAsset(location, { adamId: notes, totalCount: 5 })
  await connect(location.sToken)
  const refused = await enroll('REFUSED00001')
  const fine = await enroll('FINE00000001')
  fake.failSerials.set('REFUSED00001', vppError(9603))
  await wantNotes(api, [refused, fine])
  await licenceRound()

  fake.completeEvents()
  const deliveries = await fake.sendNotifications()
  t.match(
    deliveries.map((d) => [d.status, (d.body['notification'] as { result: string }).result]),
    [
      [200, 'SUCCESS'],
      [200, 'FAILURE'],
    ],
  )
  t.match(await licences(), [
    { serial_number: 'FINE00000001', state: 'assigned' },
    { serial_number: 'REFUSED00001', state: 'failed', detail: 'Apple error 9603: Internal error.' },
  ])
  await refused.sync()
  t.match((await api('GET', `/api/v1/devices/${refused.udid}/configuration`)).json.applications, [{ status: 'failed', detail: /Apple error 9603/ }])
  t.equal(statusPolls(), 0)
  t.equal((await licenceRound()).open, 0)

  // Licences bought: Apple says the count changed; Orchard reads that asset again.
  fake.addAsset(location, { adamId: notes, totalCount: 25, assignedCount: 1 })
  const assets = fake.requestCount('/mdm/v2/assets')
  const delivery = await fake.notify(location, 'ASSET_COUNT', { adamId: notes, countDelta: 20, pricingParam: 'STDQ' })
  t.equal(delivery.status, 200)
  t.equal(fake.requestCount('/mdm/v2/assets'), assets + 1, 'one call for that asset')
  t.match(await counts(), [{ total_count: 25, available_count: 24 }])

  // Types Orchard does not handle (Apple adds some) are taken and ignored.
  t.equal((await fake.notify(location, 'USER_MANAGEMENT', { eventId: randomUUID(), type: 'REGISTER', result: 'SUCCESS' })).status, 200)
})

t.test('wrong bearer, unknown token, another location and malformed bodies are refused and change nothing', async (t) => {
  const { fake, mdm, api, licenceRound, connect, enroll, licences } = await setup(t)
  for (const id of ['biology', 'physics']) t.equal((await api('POST', '/api/v1/tenants', { body: { id, name: id } })).statusCode, 201)
  const biology = fake.addLocation({ locationName: 'Biology' })
  fake.addAsset(biology, { adamId: notes, totalCount: 5 })
  const biologyToken = await connect(biology.sToken, { tenant_id: 'biology' })
  const physics = fake.addLocation({ locationName: 'Physics' })
  await connect(physics.sToken, { tenant_id: 'physics' })
  const device = await enroll('BIOLOGY00001', 'biology')
  await wantNotes(api, [device])
  await licenceRound()
  const [event] = fake.completeEvents()
  const [success] = assetManagementNotifications(biology, event!, randomUUID)
  const bio = endpointOf(biology)
  const phys = endpointOf(physics)
  const pending = await licences()
  t.match(pending, [{ state: 'assigning' }])

  const wrong = await post(bio.url, phys.bearer, success)
  t.equal(wrong.status, 403, "another token's bearer")
  t.match(wrong.json, { code: 'forbidden', status: 403 })
  t.equal((await post(bio.url, undefined, success)).status, 403, 'no bearer')
  t.equal((await post(bio.url, `Bearer ${biology.sToken}`, success)).status, 403, 'the sToken is not the bearer value')
  t.equal(
    (
      await post(
        bio.url,
        bio.bearer.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
        success,
      )
    ).status,
    403,
    'one character off',
  )

  t.match(await post(bio.url.replace(biologyToken.id, randomUUID()), bio.bearer, success), { status: 404, json: { code: 'not_found' } })
  t.equal((await post(bio.url.replace(biologyToken.id, 'not-a-token'), bio.bearer, success)).status, 404)
  // Physics' endpoint with its own bearer: biology's location and event are not its.
  t.equal((await post(phys.url, phys.bearer, success)).status, 404, "another location's notification")
  t.equal((await post(phys.url, phys.bearer, { ...success, uId: undefined })).status, 200, 'without uId: taken...')

  t.match(await post(bio.url, bio.bearer, '{"notificationType": '), { status: 400, json: { code: 'invalid_json' } })
  t.equal((await post(bio.url, bio.bearer, '')).status, 400, 'empty')
  t.equal((await post(bio.url, bio.bearer, `"${'x'.repeat(2 * 1024 * 1024)}"`)).status, 413, 'over 1 MiB')
  t.equal((await post(bio.url, bio.bearer, [success])).status, 400, 'an array')
  t.equal((await post(bio.url, bio.bearer, { notificationId: randomUUID(), notification: {} })).status, 400, 'no type')
  const bad = (notification: Record<string, unknown>) => ({ ...success, notification: { ...(success!['notification'] as object), ...notification } })
  t.equal((await post(bio.url, bio.bearer, bad({ result: 'MAYBE' }))).status, 400)
  t.equal((await post(bio.url, bio.bearer, bad({ assignments: 'all' }))).status, 400)
  t.equal((await post(bio.url, bio.bearer, bad({ eventId: 7 }))).status, 400)
  t.equal((await post(bio.url, bio.bearer, bad({ assignments: [{ serialNumber: 'BIOLOGY00001' }] }))).status, 400, 'an assignment without adamId')
  t.same(await licences(), pending, '...and nothing changed')
  t.equal(
    (await mdm.database.db.selectFrom('vpp_licences').select('state').executeTakeFirstOrThrow()).state,
    'assigning',
    "physics' endpoint did not settle biology's licence",
  )

  t.equal((await post(bio.url, bio.bearer, success)).status, 200)
  t.match(await licences(), [{ state: 'assigned' }])
})

t.test('without a notification URL, or when Apple refuses it, the location is claimed anyway and events are polled', async (t) => {
  for (const [name, env] of [
    ['no https public URL', { ORCHARD_VPP_NOTIFICATION_URL: '' }],
    ['off', { ORCHARD_VPP_NOTIFICATION_URL: 'off' }],
    ['unreachable', { ORCHARD_VPP_NOTIFICATION_URL: 'http://127.0.0.1:9' }],
  ] as const) {
    await t.test(name, async (t) => {
      const { fake, api, licenceRound, connect, enroll, licences, statusPolls } = await setup(t, env)
      const location = fake.addLocation()
      fake.addAsset(location, { adamId: notes, totalCount: 5 })
      const token = await connect(location.sToken)
      t.equal(token.status, 'ok')
      t.equal(location.mdmInfo?.name, 'Orchard', 'claimed')
      t.equal(location.notificationUrl, undefined, 'without an endpoint')
      t.equal(fake.deliveries.filter((d) => d.status === 200).length, 0)
      await wantNotes(api, [await enroll('POLLED000001')])
      const round = await licenceRound()
      t.same(round.assigned.length, 1, 'the event was polled at once')
      t.ok(statusPolls() > 0)
      t.match(await licences(), [{ state: 'assigned' }])
    })
  }
})

t.test('a location claimed without the endpoint gets it at the next sync', async (t) => {
  const { fake, mdm, relay, connect } = await setup(t)
  const location = fake.addLocation()
  // Claimed by this installation before notifications existed.
  const config = mdm.orchard.vpp
  const token = await connect(location.sToken)
  location.notificationUrl = undefined
  location.notificationAuthToken = undefined
  location.subscribedNotificationTypes = []
  const report = await config.sync.syncToken(token.id)
  t.equal(report.outcome, 'synced')
  t.equal(location.notificationUrl, `${relay.url}/vpp/notifications/${token.id}`)
  const posts = fake.requestCount('POST /mdm/v2/client/config')
  await config.sync.syncToken(token.id)
  t.equal(fake.requestCount('POST /mdm/v2/client/config'), posts, 'set once, not at every sync')
})
