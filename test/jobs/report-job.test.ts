// The device-days report as a job: over more days than ORCHARD_REPORT_JOB_DAYS (or with
// `Prefer: respond-async`) the call answers 202 with a report job; its result (GET
// /api/v1/jobs/{id}/result) answers exactly what the synchronous call answers, in every
// form. A second app over the same database, with a threshold no period reaches, gives the
// synchronous answer to compare with. The history lies in the past, so "now" changes nothing.
import t, { type Test } from 'tap'
import { apiClient, type ApiResponse } from '../helpers/api.js'
import { buildTestApp } from '../helpers/app.js'
import { followJob } from '../helpers/jobs.js'
import { setupMdm, testApiKey, type MdmFixture } from '../helpers/mdm-fixture.js'

type Api = ReturnType<typeof apiClient>

const at = (text: string) => new Date(text)
/** 2023-06-01 to 2024-09-30: 488 days, over the default threshold of 366. */
const long = 'from=2023-06-01&to=2024-09-30'
/** February 2024: 29 days. */
const short = 'from=2024-02-01&to=2024-02-29'

async function keyFor(api: Api, role: string, tenantId: string | null): Promise<string> {
  const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId ?? 'central'}`, role, tenant_id: tenantId } })
  if (created.statusCode !== 201) throw new Error(`key creation failed: ${created.body}`)
  return created.json.key as string
}

/** An organisation with a price and two departments (one with its own price and billed kinds), and a tenant alone; devices over 2023-2024. */
async function history(api: Api, mdm: MdmFixture) {
  const db = mdm.database.db
  for (const body of [
    { id: 'science', name: 'Faculty of Science', price_per_device_year: '365' },
    { id: 'physics', name: 'Physics', parent_id: 'science' },
    { id: 'chemistry', name: 'Chemistry', parent_id: 'science', price_per_device_year: '732.00', billed_kinds: ['work', 'function'] },
    { id: 'library', name: 'Library' },
  ]) {
    const created = await api('POST', '/api/v1/tenants', { body })
    if (created.statusCode !== 201) throw new Error(created.body)
  }
  await db
    .insertInto('devices')
    .values([
      { id: 'p-work', udid: 'p-work', serial_number: 'PW', kind: 'work', product_name: 'iPad13,1', tenant_id: 'physics' },
      { id: 'c-work', udid: 'c-work', serial_number: 'CW', kind: 'work', product_name: 'iPad14,1', tenant_id: 'chemistry' },
      { id: 'c-personal', udid: 'c-personal', serial_number: 'CP', kind: 'personal', product_name: 'iPhone15,2', tenant_id: 'chemistry' },
      { id: 'l-work', udid: 'l-work', serial_number: '=LW', kind: 'work', product_name: 'Mac14,2', tenant_id: 'library' },
    ])
    .execute()
  await db
    .insertInto('device_tenancy')
    .values([
      { device_id: 'p-work', tenant_id: 'physics', started_at: at('2023-05-20T10:00:00Z'), ended_at: at('2024-03-10T12:00:00Z') },
      { device_id: 'p-work', tenant_id: 'chemistry', started_at: at('2024-03-10T12:00:00Z'), ended_at: at('2024-08-01T00:00:00Z') },
      { device_id: 'c-work', tenant_id: 'chemistry', started_at: at('2024-01-15T00:00:00Z'), ended_at: at('2024-12-01T00:00:00Z') },
      { device_id: 'c-personal', tenant_id: 'chemistry', started_at: at('2023-07-01T00:00:00Z'), ended_at: at('2024-02-15T00:00:00Z') },
      { device_id: 'l-work', tenant_id: 'library', started_at: at('2023-01-01T00:00:00Z'), ended_at: at('2024-06-30T00:00:00Z') },
      { device_id: 'gone', tenant_id: null, started_at: at('2023-09-01T00:00:00Z'), ended_at: at('2023-10-01T00:00:00Z') },
    ])
    .execute()
}

/** The app as configured by `env` (and one whose every report is synchronous, `sync`), with the history. */
async function setup(t: Test, env: Record<string, string> = {}) {
  const mdm = await setupMdm(t, env)
  const api = apiClient(mdm.app)
  await history(api, mdm)
  const other = await buildTestApp(t, mdm.database, {
    ORCHARD_DEVICE_CA_FILES: mdm.ca.pemFile,
    ORCHARD_API_KEYS: testApiKey,
    ORCHARD_REPORT_JOB_DAYS: '1100',
    ORCHARD_JOB_WORKER: 'false',
  })
  return { mdm, api, sync: apiClient(other.app) }
}

const withoutGeneratedAt = ({ generated_at: _at, ...rest }: Record<string, unknown>) => rest

/** Every form of the report through the job's result equals the synchronous call's. */
async function sameAsSync(t: Test, api: Api, sync: Api, job: { id: string; result: { result_url: string } }, period: string, key?: string) {
  const forms = [
    '',
    'per_device=true',
    'format=csv',
    'format=csv&per_device=true',
    ...['tenants', 'breakdown', 'organisations', 'devices'].map((r) => `format=csv&rows=${r}`),
  ]
  for (const form of forms) {
    const options = key ? { key } : {}
    const expected = await sync('GET', `/api/v1/reports/device-days?${period}${form ? `&${form}` : ''}`, options)
    t.equal(expected.statusCode, 200, `${form || 'json'}: the synchronous report`)
    const got = await api('GET', `${job.result.result_url}${form ? `?${form}` : ''}`, options)
    t.equal(got.statusCode, 200, `${form || 'json'}: the job's result`)
    if (form.includes('csv')) {
      t.equal(got.body, expected.body, `${form}: the same CSV`)
      t.equal(got.headers['content-type'], expected.headers['content-type'])
      t.equal(got.headers['content-disposition'], expected.headers['content-disposition'], 'the same file name')
    } else {
      t.same(withoutGeneratedAt(got.json), withoutGeneratedAt(expected.json), `${form || 'json'}: the same report`)
      t.type(got.json.generated_at, 'string', 'generated when the job ran')
    }
  }
}

t.test('a period over ORCHARD_REPORT_JOB_DAYS: 202 with a report job; its result is the synchronous report in every form', async (t) => {
  const { mdm, api, sync } = await setup(t)
  const accepted = await api('GET', `/api/v1/reports/device-days?${long}&format=csv&rows=devices`)
  t.equal(accepted.statusCode, 202, accepted.body)
  t.equal(accepted.headers['location'], `/api/v1/jobs/${accepted.json.id}`)
  t.notOk(accepted.headers['preference-applied'], 'no Prefer was sent')
  t.match(accepted.json, { type: 'report', tenant_id: null, state: 'queued', total: 1, done: 0, cancellable: true, started_by: { name: String } })
  const job = await followJob(api, accepted)
  t.same(job.result, {
    report: 'device-days',
    from: '2023-06-01',
    to: '2024-09-30',
    tenant_id: null,
    devices: 6,
    result_url: `/api/v1/jobs/${job.id}/result`,
  })
  t.match(job, { state: 'succeeded', done: 1, total: 1, outcomes: { generated: 1 }, cancellable: false })
  const stored = await mdm.database.db.selectFrom('jobs').select('params').where('id', '=', job.id).executeTakeFirstOrThrow()
  t.same(stored.params, {}, 'a finished report job keeps no params either')
  await sameAsSync(t, api, sync, job, long)
  const amounts = await api('GET', job.result.result_url)
  t.ok(
    amounts.json.items.some((item: { amount: string | null }) => item.amount !== null && item.amount !== '0.00'),
    'priced tenants have amounts',
  )

  // For one tenant, asked for asynchronously.
  const chemistry = await followJob(api, await api('GET', `/api/v1/reports/device-days?${long}&tenant_id=chemistry`))
  t.match(chemistry.result, { tenant_id: 'chemistry', devices: 3 })
  await sameAsSync(t, api, sync, chemistry, `${long}&tenant_id=chemistry`)

  const audited = await mdm.database.db.selectFrom('audit_events').select(['action', 'target_type', 'details']).where('target_type', '=', 'job').execute()
  t.match(audited[0], { action: 'getDeviceDaysReport', details: { job_type: 'report', report: 'device-days', from: '2023-06-01' } }, 'the job is audited')
})

t.test('Prefer: respond-async gives a job on any period; the period is checked first; ORCHARD_REPORT_JOB_DAYS=0 makes every report a job', async (t) => {
  const { mdm, api, sync } = await setup(t)
  const at200 = await api('GET', `/api/v1/reports/device-days?${short}`)
  t.equal(at200.statusCode, 200, 'a short period without Prefer: at once, as before')

  const accepted = await api('GET', `/api/v1/reports/device-days?${short}&per_device=true`, { headers: { prefer: 'wait=10, Respond-Async' } })
  t.equal(accepted.statusCode, 202, accepted.body)
  t.equal(accepted.headers['preference-applied'], 'respond-async')
  t.equal(accepted.headers['vary'], 'Prefer', 'the answer depends on Prefer')
  t.equal(at200.headers['vary'], 'Prefer')
  const job = await followJob(api, accepted)
  t.match(job.result, { from: '2024-02-01', to: '2024-02-29' })
  await sameAsSync(t, api, sync, job, short)
  t.equal((await api('GET', `/api/v1/reports/device-days?${short}`, { headers: { prefer: 'return=minimal' } })).statusCode, 200, 'another preference: ignored')

  const jobs = async () => (await mdm.database.db.selectFrom('jobs').select('id').execute()).length
  const before = await jobs()
  const backwards = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-01-01', { headers: { prefer: 'respond-async' } })
  t.equal(backwards.statusCode, 400)
  t.match(backwards.json, { code: 'validation_failed', errors: [{ parameter: 'to' }] })
  t.equal((await api('GET', '/api/v1/reports/device-days?from=2020-01-01&to=2026-01-01')).statusCode, 400, 'at most 1100 days, job or not')
  t.equal(await jobs(), before, 'no job for a refused period')

  const always = apiClient(
    (
      await buildTestApp(t, mdm.database, {
        ORCHARD_DEVICE_CA_FILES: mdm.ca.pemFile,
        ORCHARD_API_KEYS: testApiKey,
        ORCHARD_REPORT_JOB_DAYS: '0',
        ORCHARD_JOB_WORKER: 'false',
      })
    ).app,
  )
  t.equal((await always('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-01')).statusCode, 202, '0: even one day is a job')
})

t.test('the result: 409 until the job succeeded, 404 for another tenant, auditors read theirs, helpdesk does not', async (t) => {
  // No runner in the app: the test runs the jobs.
  const { mdm, api, sync } = await setup(t, { ORCHARD_JOB_WORKER: 'false' })
  const physicsAdmin = await keyFor(api, 'admin', 'physics')
  const physicsAuditor = await keyFor(api, 'auditor', 'physics')
  const physicsHelpdesk = await keyFor(api, 'helpdesk', 'physics')
  const libraryAdmin = await keyFor(api, 'admin', 'library')

  const accepted: ApiResponse = await api('GET', `/api/v1/reports/device-days?${long}`, { key: physicsAdmin })
  t.equal(accepted.statusCode, 202, accepted.body)
  t.match(accepted.json, { type: 'report', tenant_id: 'physics', state: 'queued', started_by: { name: 'admin physics' } }, "the caller's own tenant")
  const url = `/api/v1/jobs/${accepted.json.id}/result`
  const early = await api('GET', url, { key: physicsAdmin })
  t.equal(early.statusCode, 409)
  t.match(early.json, { code: 'conflict', detail: /not finished yet \(queued\)/ })

  t.equal(await mdm.orchard.jobs.runner.runDue(), 1)
  const job = (await api('GET', `/api/v1/jobs/${accepted.json.id}`, { key: physicsAdmin })).json
  t.equal(job.state, 'succeeded')
  await sameAsSync(t, api, sync, job, long, physicsAdmin)
  const scoped = await api('GET', url, { key: physicsAuditor })
  t.equal(scoped.statusCode, 200, 'an auditor of the tenant reads it')
  t.same(
    scoped.json.items.map((item: { tenant_id: string }) => item.tenant_id),
    ['physics'],
    "computed in the caller's scope",
  )
  t.equal((await api('GET', url, { key: physicsHelpdesk })).statusCode, 403, 'billing is not for helpdesk')
  t.equal((await api('GET', `/api/v1/jobs/${job.id}`, { key: physicsHelpdesk })).statusCode, 200, 'who reads the job all the same')
  for (const path of [url, `/api/v1/jobs/${job.id}`]) t.equal((await api('GET', path, { key: libraryAdmin })).statusCode, 404, `${path} as another tenant: 404`)
  t.equal((await api('GET', url)).statusCode, 200, 'central IT reads every job')
  t.equal((await api('GET', '/api/v1/jobs/00000000-0000-4000-8000-000000000000/result')).statusCode, 404)

  // Cancelled while queued: no result.
  const cancelled = await api('GET', `/api/v1/reports/device-days?${long}`, { key: physicsAdmin })
  t.equal((await api('DELETE', `/api/v1/jobs/${cancelled.json.id}`, { key: physicsAdmin })).json.state, 'cancelled')
  const none = await api('GET', `/api/v1/jobs/${cancelled.json.id}/result`, { key: physicsAdmin })
  t.equal(none.statusCode, 409)
  t.match(none.json, { code: 'conflict', detail: /ended cancelled/ })
  // A kind that keeps no output: its result is in the job.
  const bulk = await api('POST', '/api/v1/jobs/00000000-0000-4000-8000-000000000000/result')
  t.equal(bulk.statusCode, 405, 'GET only')
  await mdm.database.db
    .insertInto('jobs')
    .values({
      id: '00000000-0000-4000-8000-0000000000b1',
      type: 'abm_sync',
      state: 'succeeded',
      params: '{}',
      total: 1,
      started_at: at('2024-01-01'),
      finished_at: at('2024-01-01'),
    })
    .execute()
  const sync409 = await api('GET', '/api/v1/jobs/00000000-0000-4000-8000-0000000000b1/result')
  t.equal(sync409.statusCode, 409)
  t.match(sync409.json, { code: 'conflict', detail: /keeps no output/ })
})
