// Apps and Books content tokens through the admin API against the fake Apps and Books v2
// server: upload and claim, another MDM's location, renewal, Apple's refusals, throttling,
// the asset and assignment sync, and tenancy.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { syncThroughJob } from '../helpers/jobs.js'
import { startFakeVpp, type FakeVpp } from '../helpers/fake-vpp.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'

interface World {
  mdm: MdmFixture
  api: ReturnType<typeof apiClient>
  fake: FakeVpp
}

async function setup(t: Parameters<typeof setupMdm>[0], pageSize = 100): Promise<World> {
  const fake = await startFakeVpp({ pageSize, pollsUntilComplete: 0 })
  t.teardown(() => fake.close())
  const mdm = await setupMdm(t, {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_VPP_URL: `${fake.url}/mdm/v2`,
    ORCHARD_VPP_SYNC_SECONDS: '0',
  })
  return { mdm, api: apiClient(mdm.app), fake }
}

async function keyFor(api: World['api'], role: string, tenantId: string | null): Promise<string> {
  const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId ?? 'central'}`, role, tenant_id: tenantId } })
  if (created.statusCode !== 201) throw new Error(created.body)
  return created.json.key as string
}

t.test('upload claims the location, seals the token and syncs assets and device assignments page by page', async (t) => {
  const { mdm, api, fake } = await setup(t, 2)
  const location = fake.addLocation({ locationName: 'Biology', orgName: 'University' })
  for (const adamId of ['361309726', '361304891', '284882215', '1108187390', '409183694']) fake.addAsset(location, { adamId, totalCount: 10 })

  const uploaded = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'Biology apps', content_token: location.sToken } })
  t.equal(uploaded.statusCode, 201, uploaded.body)
  const token = uploaded.json
  t.equal(token.status, 'ok')
  t.equal(token.location_name, 'Biology')
  t.equal(token.location_uid, location.uId)
  t.equal(token.org_name, 'University')
  t.ok(token.days_left > 300 && token.expires_soon === false)
  t.equal(location.mdmInfo?.name, 'Orchard', 'the location is claimed for this installation')
  const installationId = (await mdm.database.db.selectFrom('server_settings').select('value').where('key', '=', 'installation_id').executeTakeFirstOrThrow())
    .value
  t.equal(location.mdmInfo?.id, installationId)

  const row = await mdm.database.db.selectFrom('vpp_tokens').select('token_sealed').where('id', '=', token.id).executeTakeFirstOrThrow()
  t.notOk(row.token_sealed.includes(Buffer.from(location.sToken)), 'the sToken is not stored in clear')
  t.notOk(row.token_sealed.includes(Buffer.from(location.innerToken)))
  t.notMatch(JSON.stringify(token), location.sToken.slice(0, 40), 'nor shown')

  // Apple holds licences for two serials already.
  await fetch(`${fake.url}/mdm/v2/assets/associate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${location.sToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ assets: [{ adamId: '361309726', pricingParam: 'STDQ' }], serialNumbers: ['C02AAA000001', 'C02AAA000002'] }),
  })
  fake.completeEvents()

  const before = fake.requests.length
  const synced = await syncThroughJob(api, `/api/v1/vpp/tokens/${token.id}/sync`)
  t.equal(synced.statusCode, 202, synced.body)
  t.match(synced.json, { outcome: 'synced', assets: 5, assignments: 2, status: 'ok' })
  t.equal(synced.json.requests, fake.requests.length - before, 'the report counts the Apple calls')
  t.equal(fake.requestCount('/mdm/v2/assets'), 3, 'five assets in pages of two')

  const assets = await api('GET', '/api/v1/vpp/assets')
  t.equal(assets.statusCode, 200, assets.body)
  t.equal(assets.json.items.length, 5)
  const pages = assets.json.items.find((a: any) => a.adam_id === '361309726')
  t.match(pages, {
    vpp_token_id: token.id,
    token_name: 'Biology apps',
    location_name: 'Biology',
    total_count: 10,
    assigned_count: 2,
    available_count: 8,
    product_type: 'App',
  })
  t.equal((await api('GET', `/api/v1/vpp/assets?adam_id=284882215`)).json.items.length, 1)
  const holders = await mdm.database.db.selectFrom('vpp_assignments').select('serial_number').orderBy('serial_number').execute()
  t.same(
    holders.map((h) => h.serial_number),
    ['C02AAA000001', 'C02AAA000002'],
  )
  t.equal((await api('GET', `/api/v1/vpp/tokens/${token.id}`)).json.asset_count, 5)

  // An asset gone at Apple, and a licence freed there, are gone after the next sync.
  location.assets = location.assets.filter((a) => a.adamId !== '409183694')
  location.assignments = location.assignments.filter((a) => a.serialNumber !== 'C02AAA000002')
  t.match((await syncThroughJob(api, `/api/v1/vpp/tokens/${token.id}/sync`)).json, { outcome: 'synced', assets: 4, assignments: 1 })
  t.equal((await api('GET', '/api/v1/vpp/assets')).json.items.length, 4)
  t.equal(
    await mdm.database.db
      .selectFrom('vpp_assignments')
      .select('serial_number')
      .execute()
      .then((r) => r.length),
    1,
  )
  t.ok((await api('GET', `/api/v1/vpp/tokens/${token.id}`)).json.last_sync_at)
})

t.test('a location another MDM manages is not taken over unless an admin says so', async (t) => {
  const { api, fake } = await setup(t)
  const location = fake.addLocation({ locationName: 'Chemistry' })
  fake.addAsset(location, { adamId: '361309726' })
  location.mdmInfo = { id: 'jamf-0001', name: 'Jamf Pro', metadata: '11.0' }

  const uploaded = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'Chemistry apps', content_token: location.sToken } })
  t.equal(uploaded.statusCode, 201, uploaded.body)
  t.equal(uploaded.json.status, 'claimed_elsewhere')
  t.match(uploaded.json.status_detail, /Jamf Pro \(id jamf-0001\)/)
  t.equal(location.mdmInfo.id, 'jamf-0001', 'Apple was not told anything')
  t.equal(fake.requestCount('POST /mdm/v2/client/config'), 0)

  const synced = await syncThroughJob(api, `/api/v1/vpp/tokens/${uploaded.json.id}/sync`)
  t.match(synced.json, { outcome: 'failed', status: 'claimed_elsewhere', assets: 0 })
  t.equal(fake.requestCount('/mdm/v2/assets'), 0, 'no assets are read from a location that is not ours')

  const claimed = await api('POST', `/api/v1/vpp/tokens/${uploaded.json.id}/claim`)
  t.equal(claimed.statusCode, 200, claimed.body)
  t.equal(claimed.json.status, 'ok')
  t.match(claimed.json.status_detail, /from Jamf Pro/)
  t.equal(location.mdmInfo.name, 'Orchard')
  t.match((await syncThroughJob(api, `/api/v1/vpp/tokens/${uploaded.json.id}/sync`)).json, { outcome: 'synced', assets: 1 })

  // Another MDM claims it later: syncing stops until an admin acts.
  location.mdmInfo = { id: 'kandji-7', name: 'Kandji', metadata: '1' }
  t.match((await syncThroughJob(api, `/api/v1/vpp/tokens/${uploaded.json.id}/sync`)).json, { outcome: 'failed', status: 'claimed_elsewhere' })
  t.equal(location.mdmInfo.id, 'kandji-7')

  // force on upload claims at once.
  const other = fake.addLocation({ locationName: 'Physics' })
  other.mdmInfo = { id: 'jamf-0001', name: 'Jamf Pro', metadata: '11.0' }
  const forced = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'Physics apps', content_token: other.sToken, force: true } })
  t.equal(forced.json.status, 'ok', forced.body)
  t.equal(other.mdmInfo.name, 'Orchard')
})

t.test('renewal replaces the token of the same location; refusals are clear and store nothing', async (t) => {
  const { mdm, api, fake } = await setup(t)
  const location = fake.addLocation({ locationName: 'Library', expDate: new Date(Date.now() + 10 * 86_400_000) })
  const first = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'Library apps', content_token: location.sToken } })
  t.equal(first.statusCode, 201, first.body)
  t.equal(first.json.expires_soon, true, 'ten days left')

  const again = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'Library again', content_token: location.sToken } })
  t.equal(again.statusCode, 409)
  t.match(again.json.detail, new RegExp(`renew it with PUT /api/v1/vpp/tokens/${first.json.id}/content-token`))

  // Apple issues a new token for the same location (the old one stops working).
  const oldToken = location.sToken
  const renewedLocation = fake.addLocation({ locationName: 'Library' })
  fake.locations.delete(renewedLocation.sToken)
  const newToken = renewedLocation.sToken
  fake.locations.delete(oldToken)
  location.sToken = newToken
  location.expDate = new Date(Date.now() + 365 * 86_400_000)
  fake.locations.set(newToken, location)
  const renewed = await api('PUT', `/api/v1/vpp/tokens/${first.json.id}/content-token`, { body: { content_token: newToken } })
  t.equal(renewed.statusCode, 200, renewed.body)
  t.equal(renewed.json.expires_soon, false)
  t.equal(renewed.json.status, 'ok')
  t.match((await syncThroughJob(api, `/api/v1/vpp/tokens/${first.json.id}/sync`)).json, { outcome: 'synced' }, 'the new token is the one used')

  const elsewhere = fake.addLocation({ locationName: 'Archive' })
  const wrong = await api('PUT', `/api/v1/vpp/tokens/${first.json.id}/content-token`, { body: { content_token: elsewhere.sToken } })
  t.equal(wrong.statusCode, 400)
  t.match(wrong.json.detail, /for the location "Archive", not "Library"/)

  const count = async () => (await mdm.database.db.selectFrom('vpp_tokens').select('id').execute()).length
  const garbage = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'x', content_token: 'not a token!' } })
  t.equal(garbage.statusCode, 400)
  t.match(garbage.json.errors, [{ pointer: '/content_token' }])
  const expiredFile = Buffer.from(JSON.stringify({ token: 'abc', expDate: '2020-01-01T00:00:00+0000', orgName: 'Old' })).toString('base64')
  t.match((await api('POST', '/api/v1/vpp/tokens', { body: { name: 'x', content_token: expiredFile } })).json.detail, /expired on 2020-01-01/)
  const unknown = Buffer.from(JSON.stringify({ token: 'unknown', expDate: '2099-01-01T00:00:00+0000', orgName: 'X' })).toString('base64')
  const refused = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'x', content_token: unknown } })
  t.equal(refused.statusCode, 400)
  t.match(refused.json.detail, /Apple refused the content token/)
  const revokedLocation = fake.addLocation({ locationName: 'Revoked' })
  revokedLocation.revoked = true
  t.match((await api('POST', '/api/v1/vpp/tokens', { body: { name: 'x', content_token: revokedLocation.sToken } })).json.detail, /revoked/)
  t.equal(await count(), 1, 'no refused upload left a row')
  t.equal(
    (await api('POST', '/api/v1/vpp/tokens', { body: { name: 'x', content_token: location.sToken, extra: 1 } })).statusCode,
    400,
    'unknown fields are refused',
  )

  // Revoked after upload: the sync says so.
  location.revoked = true
  t.match((await syncThroughJob(api, `/api/v1/vpp/tokens/${first.json.id}/sync`)).json, { outcome: 'failed', status: 'token_revoked' })
  t.match((await api('GET', `/api/v1/vpp/tokens/${first.json.id}`)).json, { status: 'token_revoked', status_detail: /revoked/ })
})

t.test('throttling: Retry-After is honoured; a location that stays throttled waits until retry_after', async (t) => {
  const { api, fake } = await setup(t)
  const location = fake.addLocation()
  fake.addAsset(location, { adamId: '361309726' })
  const token = (await api('POST', '/api/v1/vpp/tokens', { body: { name: 'apps', content_token: location.sToken } })).json

  fake.throttleNext(2, { retryAfter: 0 })
  const synced = await syncThroughJob(api, `/api/v1/vpp/tokens/${token.id}/sync`)
  t.match(synced.json, { outcome: 'synced', assets: 1 }, 'two 429s, then through')
  t.equal(fake.requests.filter((r) => r.status === 429).length, 2)

  fake.throttleNext(10, { status: 503, retryAfter: 0 })
  const throttled = await syncThroughJob(api, `/api/v1/vpp/tokens/${token.id}/sync`)
  t.match(throttled.json, { outcome: 'failed', status: 'throttled' })
  t.equal(fake.requests.filter((r) => r.status === 503).length, 4, 'four attempts, then the token waits')
  const stored = (await api('GET', `/api/v1/vpp/tokens/${token.id}`)).json
  t.equal(stored.status, 'throttled')
  t.ok(stored.retry_after)
})

t.test('a department sees and syncs only its own tokens and assets', async (t) => {
  const { api, fake } = await setup(t)
  for (const id of ['biology', 'physics']) t.equal((await api('POST', '/api/v1/tenants', { body: { id, name: id } })).statusCode, 201)
  const biologyKey = await keyFor(api, 'admin', 'biology')
  const physicsKey = await keyFor(api, 'admin', 'physics')
  const biologyLocation = fake.addLocation({ locationName: 'Biology' })
  fake.addAsset(biologyLocation, { adamId: '361309726' })
  const physicsLocation = fake.addLocation({ locationName: 'Physics' })
  fake.addAsset(physicsLocation, { adamId: '284882215' })

  const biology = await api('POST', '/api/v1/vpp/tokens', { key: biologyKey, body: { name: 'apps', content_token: biologyLocation.sToken } })
  t.equal(biology.statusCode, 201, biology.body)
  t.equal(biology.json.tenant_id, 'biology', "the caller's own tenant")
  const physics = await api('POST', '/api/v1/vpp/tokens', { key: physicsKey, body: { name: 'apps', content_token: physicsLocation.sToken } })
  t.equal(physics.statusCode, 201, 'names are per tenant')
  const intrusion = await api('POST', '/api/v1/vpp/tokens', { key: physicsKey, body: { name: 'mine', content_token: biologyLocation.sToken } })
  t.equal(intrusion.statusCode, 409)
  t.match(intrusion.json.detail, /another tenant/)
  t.notMatch(intrusion.json.detail, biology.json.id, 'without naming it')
  t.equal(
    (await api('POST', '/api/v1/vpp/tokens', { key: physicsKey, body: { name: 'x', content_token: physicsLocation.sToken, tenant_id: 'biology' } })).statusCode,
    400,
  )

  for (const id of [biology.json.id, physics.json.id]) t.equal((await syncThroughJob(api, `/api/v1/vpp/tokens/${id}/sync`)).job.state, 'succeeded')
  const seen = await api('GET', '/api/v1/vpp/assets', { key: biologyKey })
  t.same(
    seen.json.items.map((a: any) => a.adam_id),
    ['361309726'],
  )
  t.same(
    (await api('GET', '/api/v1/vpp/tokens', { key: biologyKey })).json.items.map((x: any) => x.id),
    [biology.json.id],
  )
  for (const [method, path] of [
    ['GET', ''],
    ['POST', '/sync'],
    ['POST', '/claim'],
    ['DELETE', ''],
  ] as const) {
    t.equal(
      (await api(method, `/api/v1/vpp/tokens/${physics.json.id}${path}`, { key: biologyKey })).statusCode,
      404,
      `${method} ${path} of another tenant's token`,
    )
  }
  t.equal((await api('GET', `/api/v1/vpp/assets?vpp_token_id=${physics.json.id}`, { key: biologyKey })).json.items.length, 0)
  t.equal((await api('GET', '/api/v1/vpp/assets')).json.items.length, 2, 'central IT sees both')
  t.equal((await api('DELETE', `/api/v1/vpp/tokens/${biology.json.id}`, { key: biologyKey })).statusCode, 204)
  t.equal((await api('GET', '/api/v1/vpp/assets', { key: biologyKey })).json.items.length, 0, 'its assets went with it')
})
