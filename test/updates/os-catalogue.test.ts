// The OS release catalogue through the admin API against a fake of Apple's software lookup
// service: refresh, import (air-gapped sites), malformed documents and a failing server changing
// nothing, the scheduled refresh, and which releases apply to each tenant's device models (Macs
// by their SoftwareUpdateDeviceID).
import t from 'tap'
import { OrchardError } from '../../src/errors.js'
import { createOsCatalogue } from '../../src/updates/os-catalogue.js'
import { createOsReleaseStore } from '../../src/updates/os-release-store.js'
import { apiClient } from '../helpers/api.js'
import { testLogger } from '../helpers/app.js'
import { dayFromNow, samplePmvDocument, startFakeOsCatalogue, type FakeOsCatalogue } from '../helpers/fake-os-catalogue.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'

interface World {
  mdm: MdmFixture
  api: ReturnType<typeof apiClient>
  fake: FakeOsCatalogue
}

async function setup(t: Parameters<typeof setupMdm>[0], env: Record<string, string> = {}): Promise<World> {
  const fake = await startFakeOsCatalogue()
  t.teardown(() => fake.close())
  const mdm = await setupMdm(t, { ORCHARD_OS_CATALOGUE_URL: fake.url, ORCHARD_OS_CATALOGUE_SECONDS: '0', ...env })
  return { mdm, api: apiClient(mdm.app), fake }
}

async function keyFor(api: World['api'], role: string, tenantId: string | null): Promise<string> {
  const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId ?? 'central'}`, role, tenant_id: tenantId } })
  if (created.statusCode !== 201) throw new Error(created.body)
  return created.json.key as string
}

/** The stored releases as `platform set version build`, sorted. */
async function stored(world: World): Promise<string[]> {
  const rows = await world.mdm.database.db.selectFrom('os_releases').select(['platform', 'asset_set', 'product_version', 'build']).execute()
  return rows.map((row) => `${row.platform} ${row.asset_set} ${row.product_version} ${row.build}`).sort()
}

const sampleReleases = [
  'iOS asset 16.7.8 20H343',
  'iOS asset 17.4.1 21E236',
  'iOS asset 17.5.1 21F90',
  'iOS public 16.7.8 20H343',
  'iOS public 17.5.1 21F90',
  'macOS asset 13.6.7 22G720',
  'macOS public 14.5 23F79',
  'visionOS public 1.2 21O589',
]

const smallDocument = {
  PublicAssetSets: {
    iOS: [{ ProductVersion: '18.0', Build: '22A3354', PostingDate: dayFromNow(-1), ExpirationDate: dayFromNow(100), SupportedDevices: ['iPad13,1'] }],
  },
}

t.test('refresh fetches the document, keeps the usable releases and says what it skipped', async (t) => {
  const world = await setup(t)
  const { api } = world
  const before = await api('GET', '/api/v1/os-releases/status')
  t.equal(before.statusCode, 200, before.body)
  t.same(before.json, { url: world.fake.url, schedule_seconds: 0, last_attempt: null, last_success: null })
  t.match((await api('GET', '/api/v1/os-releases')).json, { catalogue: null, items: [], latest: [] }, 'empty before the first fetch')

  const refreshed = await api('POST', '/api/v1/os-releases/refresh')
  t.equal(refreshed.statusCode, 200, refreshed.body)
  t.match(refreshed.json, {
    source: world.fake.url,
    release_count: 8,
    skipped_count: 1,
    problems: [{ pointer: '/PublicAssetSets/iOS/2', detail: /PostingDate "yesterday"/ }],
    ignored_platforms: ['audioOS'],
    document_sha256: /^[0-9a-f]{64}$/,
  })
  t.same(world.fake.requests, ['/v2/pmv'])
  t.same(await stored(world), sampleReleases, 'both sets; the malformed entry, the ignored platform and the RSR list left out')

  const status = await api('GET', '/api/v1/os-releases/status')
  t.match(status.json, { last_attempt: { source: world.fake.url, outcome: 'ok', release_count: 8, skipped_count: 1, error: null } })
  t.same(status.json.last_attempt, status.json.last_success)

  const ios = await api('GET', '/api/v1/os-releases?platform=iOS')
  t.equal(ios.statusCode, 200, ios.body)
  t.same(
    ios.json.items.map((r: any) => `${r.product_version} ${r.set}`),
    ['17.5.1 public', '17.5.1 asset', '17.4.1 asset', '16.7.8 public', '16.7.8 asset'],
    'newest version first, public before asset',
  )
  const expired = ios.json.items.find((r: any) => r.product_version === '17.4.1')
  t.match(expired, { expired: true, expiration_date: dayFromNow(-5) })
  t.same(
    ios.json.latest.map((r: any) => `${r.platform} ${r.product_version}`),
    ['iOS 17.5.1'],
  )
  const all = await api('GET', '/api/v1/os-releases')
  t.same(all.json.latest.map((r: any) => `${r.platform} ${r.product_version}`).sort(), ['iOS 17.5.1', 'macOS 14.5', 'visionOS 1.2'])
  t.match(
    all.json.items.find((r: any) => r.platform === 'visionOS'),
    { expiration_date: null, expired: false, supported_devices: ['RealityDevice14,1'] },
  )

  const audit = await world.mdm.database.db.selectFrom('audit_events').selectAll().where('action', '=', 'refreshOsCatalogue').execute()
  t.equal(audit.length, 1, 'the refresh is audited (after the handler)')
  t.equal(audit[0]!.outcome, 'success')

  // The latest release a model identifier can install, for the enforcement code to come.
  const catalogue = world.mdm.orchard.updates.catalogue
  t.match(await catalogue.latestFor('iPhone10,3'), { platform: 'iOS', productVersion: '16.7.8' })
  t.match(await catalogue.latestFor('iPad13,1'), { platform: 'iOS', productVersion: '17.5.1' })
  t.match(await catalogue.latestFor('J413AP'), { platform: 'macOS', productVersion: '14.5' })
  t.equal(await catalogue.latestFor('iPad2,1'), undefined)
})

t.test('an imported document replaces the catalogue; a malformed one changes nothing and says where it is wrong', async (t) => {
  const world = await setup(t, { ORCHARD_OS_CATALOGUE_URL: 'off' })
  const { api, mdm } = world
  t.equal((await api('GET', '/api/v1/os-releases/status')).json.url, null)
  const off = await api('POST', '/api/v1/os-releases/refresh')
  t.equal(off.statusCode, 409, off.body)
  t.match(off.json, { code: 'conflict', detail: /ORCHARD_OS_CATALOGUE_URL is off/ })
  t.same(world.fake.requests, [], 'nothing fetched')

  const imported = await api('POST', '/api/v1/os-releases/import', { body: samplePmvDocument() })
  t.equal(imported.statusCode, 200, imported.body)
  t.match(imported.json, { source: 'import', release_count: 8, skipped_count: 1 })
  t.same(await stored(world), sampleReleases)
  const audit = await mdm.database.db.selectFrom('audit_events').selectAll().where('action', '=', 'importOsCatalogue').execute()
  t.equal(audit.length, 1)
  t.match(audit[0], { outcome: 'success', target_type: 'os_catalogue', tenant_id: null })
  t.match(audit[0]!.details, { releases: 8, skipped: 1 }, 'recorded with the change')

  const replaced = await api('POST', '/api/v1/os-releases/import', { body: smallDocument })
  t.equal(replaced.statusCode, 200, replaced.body)
  t.same(await stored(world), ['iOS public 18.0 22A3354'], 'replaced, not merged')

  const malformed: Array<[string, unknown, string, RegExp]> = [
    ['a platform that is not a list', { PublicAssetSets: { iOS: { ProductVersion: '18.1' } } }, '/PublicAssetSets/iOS', /not an array/],
    ['AssetSets that is not an object', { PublicAssetSets: { iOS: [] }, AssetSets: [] }, '/AssetSets', /must be object/],
    [
      'no usable release',
      { PublicAssetSets: { iOS: [{ ProductVersion: 'eighteen', Build: '22A3354', PostingDate: '2024-09-16', SupportedDevices: [] }] } },
      '/PublicAssetSets/iOS/0',
      /no usable release.*ProductVersion "eighteen"/,
    ],
    ['only platforms Orchard does not manage', { PublicAssetSets: { audioOS: [] } }, '/PublicAssetSets', /no release of iOS/],
    ['no PublicAssetSets', { AssetSets: {} }, '/PublicAssetSets', /./],
  ]
  for (const [what, document, pointer, detail] of malformed) {
    const refused = await api('POST', '/api/v1/os-releases/import', { body: document })
    t.equal(refused.statusCode, 400, `${what}: ${refused.body}`)
    t.equal(refused.json?.code, 'validation_failed', what)
    t.match(refused.json?.errors?.[0], { pointer, detail }, `${what}: the pointer and the reason`)
  }
  const notJson = await api('POST', '/api/v1/os-releases/import', { raw: { payload: '{"PublicAssetSets": ', contentType: 'application/json' } })
  t.equal(notJson.statusCode, 400, notJson.body)
  t.same(await stored(world), ['iOS public 18.0 22A3354'], 'no refused document changed anything')
  const refusals = await mdm.database.db.selectFrom('audit_events').select('outcome').where('action', '=', 'importOsCatalogue').execute()
  t.equal(refusals.filter((row) => row.outcome === 'failure').length, malformed.length + 1, 'refusals are audited as failures')

  // Central IT only: a tenant's admin may not replace the installation's catalogue.
  await mdm.database.db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null }).execute()
  const tenantAdmin = await keyFor(api, 'admin', 'physics')
  const forbidden = await api('POST', '/api/v1/os-releases/import', { body: smallDocument, key: tenantAdmin })
  t.equal(forbidden.statusCode, 403, forbidden.body)
  t.equal((await api('POST', '/api/v1/os-releases/refresh', { key: tenantAdmin })).statusCode, 403)
  t.equal((await api('GET', '/api/v1/os-releases/status', { key: tenantAdmin })).statusCode, 200, 'the status is readable')
})

t.test('a failing catalogue server gives 502 with the reason and keeps the stored catalogue', async (t) => {
  const world = await setup(t)
  const { api, fake } = world
  t.equal((await api('POST', '/api/v1/os-releases/refresh')).statusCode, 200)
  const kept = await stored(world)
  const success = (await api('GET', '/api/v1/os-releases/status')).json.last_success

  const failures: Array<[string, FakeOsCatalogue['behaviour'], RegExp]> = [
    ['HTTP 500', { kind: 'status', status: 500 }, /answered HTTP 500/],
    ['an oversized answer (Content-Length)', { kind: 'oversized', bytes: 9 * 1024 * 1024, declared: true }, /larger than 8388608 bytes \(Content-Length/],
    ['an oversized answer (chunked)', { kind: 'oversized', bytes: 9 * 1024 * 1024, declared: false }, /larger than 8388608 bytes/],
    ['not JSON', { kind: 'raw', body: '<html>maintenance</html>', contentType: 'text/html' }, /not JSON/],
    [
      'not the document',
      { kind: 'raw', body: JSON.stringify({ PublicAssetSets: { iOS: 'soon' } }) },
      /not Apple's software lookup document.*\/PublicAssetSets\/iOS/,
    ],
  ]
  for (const [what, behaviour, reason] of failures) {
    fake.behaviour = behaviour
    const failed = await api('POST', '/api/v1/os-releases/refresh')
    t.equal(failed.statusCode, 502, `${what}: ${failed.body}`)
    t.match(failed.json, { code: 'upstream_failed', detail: reason }, what)
    t.match(failed.json.detail, /the stored one is kept/)
    const status = (await api('GET', '/api/v1/os-releases/status')).json
    t.match(status.last_attempt, { outcome: 'failed', source: fake.url, error: reason, release_count: null }, `${what}: in the status`)
    t.same(status.last_success, success, `${what}: the last success is still the one the releases come from`)
    t.same(await stored(world), kept, `${what}: the catalogue is unchanged`)
  }
  const audited = await world.mdm.database.db.selectFrom('audit_events').select('outcome').where('action', '=', 'refreshOsCatalogue').execute()
  t.equal(audited.filter((row) => row.outcome === 'failure').length, failures.length)

  // A server that stops answering: the client's timeout (short here) fails the fetch.
  fake.behaviour = { kind: 'hang' }
  const catalogue = createOsCatalogue({
    store: createOsReleaseStore(world.mdm.database.db),
    url: fake.url,
    scheduleSeconds: 0,
    client: { timeoutMs: 300 },
    log: testLogger(),
    now: () => new Date(),
  })
  const started = Date.now()
  const error = await catalogue.refresh().then(
    () => undefined,
    (error: unknown) => error,
  )
  t.ok(error instanceof OrchardError && error.status === 502, 'a 502')
  t.match((error as Error).message, /no complete answer within 300 ms/)
  t.ok(Date.now() - started < 5_000, 'within the timeout')
  t.same(await stored(world), kept, 'the catalogue is unchanged')
})

t.test('the scheduled refresh fetches only when the catalogue is older than the schedule', async (t) => {
  const world = await setup(t)
  let now = new Date()
  const catalogue = createOsCatalogue({
    store: createOsReleaseStore(world.mdm.database.db),
    url: world.fake.url,
    scheduleSeconds: 3600,
    log: testLogger(),
    now: () => now,
  })
  await catalogue.refreshIfStale()
  t.equal(world.fake.requests.length, 1, 'never fetched: fetched')
  await catalogue.refreshIfStale()
  t.equal(world.fake.requests.length, 1, 'fresh: not fetched')
  now = new Date(now.getTime() + 3_601_000)
  world.fake.behaviour = { kind: 'status', status: 503 }
  await catalogue.refreshIfStale()
  t.equal(world.fake.requests.length, 2, 'stale: fetched')
  t.match((await catalogue.status()).lastAttempt, { outcome: 'failed', error: /HTTP 503/ }, 'a failure is recorded, not thrown')
  await catalogue.refreshIfStale()
  t.equal(world.fake.requests.length, 3, 'still stale after a failure: tried again on the next check')
  t.equal((await catalogue.releases({})).length, 8, 'the catalogue is kept')
})

t.test("GET /api/v1/os-releases shows which releases apply to the caller's device models, per tenant", async (t) => {
  const world = await setup(t)
  const { api, mdm } = world
  const db = mdm.database.db
  t.equal((await api('POST', '/api/v1/os-releases/refresh')).statusCode, 200)
  await db
    .insertInto('tenants')
    .values([
      { id: 'alpha', name: 'Alpha', parent_id: null },
      { id: 'beta', name: 'Beta', parent_id: null },
    ])
    .execute()
  const place = async (tenantId: string, productName: string, extra: { lifecycle_state?: 'wiped'; software_update_device_id?: string } = {}) => {
    const device = await mdm.enrolledDevice()
    await db
      .updateTable('devices')
      .set({ tenant_id: tenantId, product_name: productName, ...extra })
      .where('id', '=', device.udid)
      .execute()
  }
  await place('alpha', 'iPad13,1')
  await place('alpha', 'iPad13,1')
  await place('alpha', 'iPhone15,2')
  await place('alpha', 'iPhone10,3', { lifecycle_state: 'wiped' })
  await place('beta', 'iPhone10,3')
  // Macs: the catalogue lists them by SoftwareUpdateDeviceID; one that has not reported it matches nothing.
  await place('beta', 'Mac14,2', { software_update_device_id: 'J413AP' })
  await place('beta', 'Mac14,2', { software_update_device_id: 'J413AP' })
  await place('beta', 'Mac14,2')
  // An iPhone reports one too (iOS 15+): it is still matched by ProductName.
  await place('beta', 'iPhone16,1', { software_update_device_id: 'D83AP' })
  const alphaAdmin = await keyFor(api, 'admin', 'alpha')
  const betaAuditor = await keyFor(api, 'auditor', 'beta')
  const betaHelpdesk = await keyFor(api, 'helpdesk', 'beta')

  const alpha = await api('GET', '/api/v1/os-releases', { key: alphaAdmin })
  t.equal(alpha.statusCode, 200, alpha.body)
  const ios1751 = alpha.json.items.find((r: any) => r.product_version === '17.5.1' && r.set === 'public')
  t.same(ios1751.models, [
    { model: 'iPad13,1', devices: 2 },
    { model: 'iPhone15,2', devices: 1 },
  ])
  t.equal(ios1751.devices, 3)
  const ios1678 = alpha.json.items.find((r: any) => r.product_version === '16.7.8' && r.set === 'public')
  t.same(ios1678.models, [], "the wiped iPhone10,3 is not a managed device: 16.7.8 applies to none of alpha's")
  t.notMatch(alpha.body, /"model":"J413AP"/, "nothing of beta's models")

  const beta = await api('GET', '/api/v1/os-releases', { key: betaAuditor })
  t.equal(beta.statusCode, 200, beta.body)
  t.same(beta.json.items.find((r: any) => r.product_version === '16.7.8' && r.set === 'public').models, [{ model: 'iPhone10,3', devices: 1 }])
  t.same(beta.json.items.find((r: any) => r.product_version === '14.5').models, [{ model: 'J413AP', devices: 2 }], 'Macs by SoftwareUpdateDeviceID')
  t.same(beta.json.items.find((r: any) => r.product_version === '13.6.7').models, [{ model: 'J413AP', devices: 2 }])
  t.notMatch(beta.body, /"model":"Mac14,2"/, 'the Mac without SoftwareUpdateDeviceID is in no release')
  t.notMatch(beta.body, /"model":"iPad13,1"|"model":"iPhone15,2"/, "nothing of alpha's models")
  t.same(
    beta.json.items.find((r: any) => r.product_version === '17.5.1' && r.set === 'public').models,
    [{ model: 'iPhone16,1', devices: 1 }],
    "beta's iPhone by ProductName, not its SoftwareUpdateDeviceID",
  )
  const mac = await api('GET', '/api/v1/os-releases?model=J413AP', { key: betaAuditor })
  t.same(
    mac.json.items.map((r: any) => `${r.platform} ${r.product_version} ${r.set} ${r.devices}`),
    ['macOS 14.5 public 2', 'macOS 13.6.7 asset 2'],
  )
  t.same(
    mac.json.latest.map((r: any) => `${r.platform} ${r.product_version}`),
    ['macOS 14.5'],
  )
  const byProductName = await api('GET', '/api/v1/os-releases?model=Mac14,2', { key: betaAuditor })
  t.same(byProductName.json.items, [], "a Mac's ProductName is in no release")

  const model = await api('GET', '/api/v1/os-releases?model=iPhone10,3', { key: betaHelpdesk })
  t.equal(model.statusCode, 200, model.body)
  t.same(
    model.json.items.map((r: any) => `${r.product_version} ${r.set}`),
    ['16.7.8 public', '16.7.8 asset'],
    'only the releases that model installs',
  )
  t.same(
    model.json.latest.map((r: any) => `${r.platform} ${r.product_version} ${r.devices}`),
    ['iOS 16.7.8 1'],
    'the newest it can install',
  )

  const everything = await api('GET', '/api/v1/os-releases?platform=iOS')
  const central = everything.json.items.find((r: any) => r.product_version === '17.5.1' && r.set === 'public')
  t.same(central.models, [
    { model: 'iPad13,1', devices: 2 },
    { model: 'iPhone15,2', devices: 1 },
    { model: 'iPhone16,1', devices: 1 },
  ])
  t.same(everything.json.items.find((r: any) => r.product_version === '16.7.8' && r.set === 'public').models, [{ model: 'iPhone10,3', devices: 1 }])
  t.match(everything.json.catalogue, { source: world.fake.url, outcome: 'ok', release_count: 8 })

  const bad = await api('GET', '/api/v1/os-releases?platform=Android')
  t.equal(bad.statusCode, 400, bad.body)
})
