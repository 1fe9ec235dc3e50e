// Jobs through the admin API: a bulk command above ORCHARD_JOB_THRESHOLD answered 202 with
// a job that queues it, its progress, outcomes and errors; the guard on destructive commands
// before any job; cancellation; tenant isolation; the job.* webhook events and the gauges.
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { followJob } from '../helpers/jobs.js'
import { setupMdm, testApiKey, type MdmFixture } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

async function devices(mdm: MdmFixture, count: number) {
  const out = []
  for (let i = 0; i < count; i++) out.push(await mdm.enrolledDevice())
  return out
}

const profileList = (ids: string[]) => ({ enrollment_ids: ids, command: { request_type: 'ProfileList' }, push: false })

t.test('a command to more targets than ORCHARD_JOB_THRESHOLD: 202 with a job that queues it once per target', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_JOB_THRESHOLD: '3', ORCHARD_WEBHOOK_WORKER: 'false', ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const api = apiClient(mdm.app)
  const hook = await api('POST', '/api/v1/webhooks', { body: { url: 'http://127.0.0.1:9/hook', event_types: ['job.started', 'job.finished'] } })
  t.equal(hook.statusCode, 201, hook.body)
  const fleet = await devices(mdm, 4)
  const ids = [...fleet.map((d) => d.udid), 'no-such-enrollment']

  const small = await api('POST', '/api/v1/commands', { body: profileList(ids.slice(0, 3)) })
  t.equal(small.statusCode, 201, 'at the threshold: queued at once, as before')
  const dry = await api('POST', '/api/v1/commands', { body: { ...profileList(ids), dry_run: true } })
  t.equal(dry.statusCode, 200, 'a dry run stays synchronous')
  t.equal(dry.json.count, 4)

  const accepted = await api('POST', '/api/v1/commands', { body: profileList(ids) })
  t.equal(accepted.statusCode, 202, accepted.body)
  t.equal(accepted.headers['location'], `/api/v1/jobs/${accepted.json.id}`)
  t.match(accepted.json, {
    type: 'bulk_command',
    tenant_id: null,
    state: 'queued',
    total: 5,
    done: 1,
    outcomes: { unknown_enrollment: 1 },
    started_by: { api_key_id: String, name: String },
    started_at: null,
    finished_at: null,
    cancellable: true,
    result: { command_uuid: String, request_type: 'ProfileList' },
  })
  const job = await followJob(api, accepted)
  t.match(job, { state: 'succeeded', done: 5, total: 5, outcomes: { queued: 4, unknown_enrollment: 1 }, cancellable: false })
  t.ok(job.started_at && job.finished_at, 'started and finished times')
  const uuid = job.result.command_uuid

  const errors = await api('GET', `/api/v1/jobs/${job.id}/errors`)
  t.equal(errors.statusCode, 200)
  t.match(errors.json, { items: [{ seq: 1, target: 'no-such-enrollment', code: 'unknown_enrollment' }], next_cursor: null })
  t.match((await api('GET', `/api/v1/commands/${uuid}`)).json, { command_uuid: uuid, request_type: 'ProfileList' })
  const db = mdm.database.db
  const targets = await db.selectFrom('command_targets').select('enrollment_id').where('command_uuid', '=', uuid).execute()
  t.same(targets.map((row) => row.enrollment_id).sort(), fleet.map((d) => d.udid).sort(), 'queued once for each enrolled target')
  for (const device of fleet) {
    const polled = commandIn(await device.idle())
    t.equal(polled?.uuid, small.json.targets.find((x: any) => x.enrollment_id === device.udid) ? small.json.command_uuid : uuid)
  }

  const audit = await db.selectFrom('audit_events').select(['action', 'target_type', 'target_id']).where('target_type', '=', 'job').execute()
  t.same(audit, [{ action: 'enqueueCommand', target_type: 'job', target_id: job.id }], 'the request is audited with its job')
  const events = await db.selectFrom('webhook_deliveries').select(['event_type', 'payload']).orderBy('id').execute()
  t.same(
    events.map((e) => e.event_type),
    ['job.started', 'job.finished'],
  )
  t.match((events[1]!.payload as any).data, { id: job.id, state: 'succeeded', outcomes: { queued: 4 } })

  // The list: newest first, filtered, paged.
  const second = await followJob(api, await api('POST', '/api/v1/commands', { body: profileList(ids) }))
  const page1 = await api('GET', '/api/v1/jobs?limit=1')
  t.equal(page1.json.items[0].id, second.id, 'newest first')
  const page2 = await api('GET', `/api/v1/jobs?limit=1&cursor=${page1.json.next_cursor}`)
  t.same([page2.json.items[0].id, page2.json.next_cursor], [job.id, null])
  t.equal((await api('GET', '/api/v1/jobs?state=succeeded&type=bulk_command')).json.items.length, 2)
  t.same((await api('GET', '/api/v1/jobs?type=abm_sync')).json.items, [])
  t.same((await api('GET', '/api/v1/jobs?state=running')).json.items, [])
  t.equal((await api('GET', '/api/v1/jobs/00000000-0000-4000-8000-000000000000')).statusCode, 404)
  t.equal((await api('DELETE', `/api/v1/jobs/${job.id}`)).statusCode, 409, 'a finished job cannot be cancelled')
})

t.test('a destructive command: the confirmation is checked before the job exists', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_JOB_THRESHOLD: '1' })
  const api = apiClient(mdm.app)
  const fleet = await devices(mdm, 2)
  const body = { enrollment_ids: fleet.map((d) => d.udid), command: { request_type: 'EraseDevice' }, push: false }
  const refused = await api('POST', '/api/v1/commands', { body })
  t.equal(refused.statusCode, 428, refused.body)
  const wrong = await api('POST', '/api/v1/commands', { body: { ...body, confirmation_token: 'x.y' } })
  t.equal(wrong.statusCode, 409)
  t.same(await mdm.database.db.selectFrom('jobs').select('id').execute(), [], 'no job for a refused call')
  const dry = await api('POST', '/api/v1/commands', { body: { ...body, dry_run: true } })
  const job = await followJob(api, await api('POST', '/api/v1/commands', { body: { ...body, confirmation_token: dry.json.confirmation_token } }))
  t.match(job, { state: 'succeeded', outcomes: { queued: 2 } })
})

t.test('cancelling: a queued job at once, a running bulk command between chunks, never a finished job', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_JOB_THRESHOLD: '0', ORCHARD_JOB_WORKER: 'false' })
  const api = apiClient(mdm.app)
  const [device] = await devices(mdm, 1)
  const queued = await api('POST', '/api/v1/commands', { body: profileList([device!.udid]) })
  t.equal(queued.statusCode, 202)
  const metrics = await mdm.app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /orchard_jobs_queued\{type="bulk_command"\} 1/)
  t.match(metrics.body, /orchard_jobs_running\{type="bulk_command"\} 0/)
  const cancelled = await api('DELETE', `/api/v1/jobs/${queued.json.id}`)
  t.equal(cancelled.statusCode, 200, cancelled.body)
  t.match(cancelled.json, { state: 'cancelled', cancellable: false, started_at: null, finished_at: String })
  t.equal((await api('DELETE', `/api/v1/jobs/${queued.json.id}`)).statusCode, 409)
  t.equal(await mdm.orchard.jobs.runner.runDue(), 0, 'nothing left to run')
  t.same(await mdm.database.db.selectFrom('commands').select('uuid').execute(), [], 'nothing was queued')

  // A sync job that is running: not stoppable midway.
  const db = mdm.database.db
  await sql`insert into jobs (id, type, state, params, total, started_at, lease_owner, lease_until)
    values ('00000000-0000-4000-8000-0000000000aa', 'abm_sync', 'running', '{}', 1, now(), 'elsewhere', now() + interval '1 hour')`.execute(db)
  const running = await api('DELETE', '/api/v1/jobs/00000000-0000-4000-8000-0000000000aa')
  t.equal(running.statusCode, 409)
  t.match(running.json, { code: 'conflict', detail: /cannot be stopped midway/ })
  t.equal((await api('GET', '/api/v1/jobs/00000000-0000-4000-8000-0000000000aa')).json.cancellable, false)
})

t.test('jobs are tenant scoped: a department sees its own, central IT all; auditors read', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_JOB_THRESHOLD: '0', ORCHARD_JOB_WORKER: 'false' })
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  await db
    .insertInto('tenants')
    .values([
      { id: 'alpha', name: 'Alpha', parent_id: null },
      { id: 'beta', name: 'Beta', parent_id: null },
    ])
    .execute()
  const [a, b] = await devices(mdm, 2)
  await db.updateTable('devices').set({ tenant_id: 'alpha' }).where('id', '=', a!.udid).execute()
  await db.updateTable('devices').set({ tenant_id: 'beta' }).where('id', '=', b!.udid).execute()
  const key = async (tenant: string, role: string) =>
    (await api('POST', '/api/v1/api-keys', { body: { name: `${tenant} ${role}`, role, tenant_id: tenant } })).json.key as string
  const alphaAdmin = await key('alpha', 'admin')
  const alphaAuditor = await key('alpha', 'auditor')
  const betaAdmin = await key('beta', 'admin')

  const alphaJob = await api('POST', '/api/v1/commands', { body: profileList([a!.udid]), key: alphaAdmin })
  t.equal(alphaJob.statusCode, 202, alphaJob.body)
  t.match(alphaJob.json, { tenant_id: 'alpha', started_by: { name: 'alpha admin' } })
  // Beta naming alpha's device: unknown to it, and the job is beta's own.
  const betaJob = await api('POST', '/api/v1/commands', { body: profileList([a!.udid]), key: betaAdmin })
  t.match(betaJob.json, { tenant_id: 'beta', done: 1, outcomes: { unknown_enrollment: 1 } })

  const id = alphaJob.json.id
  for (const [method, url] of [
    ['GET', `/api/v1/jobs/${id}`],
    ['GET', `/api/v1/jobs/${id}/errors`],
    ['DELETE', `/api/v1/jobs/${id}`],
  ] as const) {
    const response = await api(method, url, { key: betaAdmin })
    t.equal(response.statusCode, 404, `${method} ${url} as beta: 404`)
  }
  t.same(
    (await api('GET', '/api/v1/jobs', { key: betaAdmin })).json.items.map((j: any) => j.id),
    [betaJob.json.id],
  )
  t.same(
    (await api('GET', '/api/v1/jobs', { key: alphaAuditor })).json.items.map((j: any) => j.id),
    [id],
  )
  t.equal((await api('GET', `/api/v1/jobs/${id}`, { key: alphaAuditor })).statusCode, 200, 'an auditor reads')
  t.equal((await api('DELETE', `/api/v1/jobs/${id}`, { key: alphaAuditor })).statusCode, 403, 'an auditor does not cancel')
  t.equal((await api('GET', '/api/v1/jobs', { key: testApiKey })).json.items.length, 2, 'central IT sees every job')
  t.equal((await api('DELETE', `/api/v1/jobs/${id}`, { key: alphaAdmin })).json.state, 'cancelled')
  t.equal((await db.selectFrom('jobs').select('state').where('id', '=', betaJob.json.id).executeTakeFirstOrThrow()).state, 'queued', "beta's untouched")
})
