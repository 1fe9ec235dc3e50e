// ABM/ASM and Apps and Books syncs asked for through the admin API answer 202 with a job
// whose result is the sync report; the job is the token's tenant's, not running twice, and
// webhook-free. The background loops keep syncing without jobs.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { setupDep } from '../helpers/dep-fixture.js'
import { startFakeVpp } from '../helpers/fake-vpp.js'
import { followJob } from '../helpers/jobs.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

t.test('POST /api/v1/dep/tokens/{id}/sync: 202 with an abm_sync job holding the sync report', async (t) => {
  const world = await setupDep(t)
  world.abm.addDevices(3)
  const token = await world.connectToken()
  const accepted = await world.call('POST', `/api/v1/dep/tokens/${token.id}/sync`)
  t.equal(accepted.statusCode, 202, accepted.body)
  t.match(accepted.json, { type: 'abm_sync', state: 'queued', total: 1, done: 0, cancellable: true, tenant_id: null })
  t.notOk('result' in accepted.json, 'no result before it ran')
  const job = await followJob(world.call, accepted)
  t.match(job, {
    state: 'succeeded',
    done: 1,
    total: 1,
    outcomes: { synced: 1 },
    result: { token_id: token.id, outcome: 'synced', devices: 3, added: 3, status: 'ok' },
  })
  t.equal((await world.call('DELETE', `/api/v1/jobs/${job.id}`)).statusCode, 409)
  t.equal((await world.call('POST', '/api/v1/dep/tokens/00000000-0000-4000-8000-000000000000/sync')).statusCode, 404, 'no job for an unknown token')
  t.equal((await world.call('GET', '/api/v1/jobs')).json.items.length, 1)
})

t.test('POST /api/v1/vpp/tokens/{id}/sync: 202 with a vpp_sync job of the token tenant, its report as result', async (t) => {
  const fake = await startFakeVpp({ pollsUntilComplete: 0 })
  t.teardown(() => fake.close())
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'), ORCHARD_VPP_URL: `${fake.url}/mdm/v2`, ORCHARD_VPP_SYNC_SECONDS: '0' })
  const api = apiClient(mdm.app)
  await mdm.database.db.insertInto('tenants').values({ id: 'biology', name: 'Biology', parent_id: null }).execute()
  const location = fake.addLocation({ locationName: 'Biology' })
  fake.addAsset(location, { adamId: '361309726', totalCount: 5 })
  const token = await api('POST', '/api/v1/vpp/tokens', { body: { name: 'apps', content_token: location.sToken, tenant_id: 'biology' } })
  t.equal(token.statusCode, 201, token.body)
  const job = await followJob(api, await api('POST', `/api/v1/vpp/tokens/${token.json.id}/sync`))
  t.match(job, {
    type: 'vpp_sync',
    tenant_id: 'biology',
    state: 'succeeded',
    outcomes: { synced: 1 },
    result: { vpp_token_id: token.json.id, outcome: 'synced', assets: 1 },
  })

  // Apple keeps answering 503: the sync fails, and so does its job, with the report as result.
  fake.throttleNext(10, { status: 503, retryAfter: 0 })
  const failed = await followJob(api, await api('POST', `/api/v1/vpp/tokens/${token.json.id}/sync`))
  t.match(failed, { state: 'failed', outcomes: { failed: 1 }, result: { outcome: 'failed', status: 'throttled' } })
})
