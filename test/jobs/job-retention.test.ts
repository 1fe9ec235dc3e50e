// What a finished job keeps: no params (they may hold secrets, e.g. an EraseDevice PIN), whether
// it succeeded, failed or was cancelled while queued; and for ORCHARD_JOB_RETENTION_DAYS only:
// finished jobs older than that are pruned in batches, their errors and output with them,
// while open jobs stay whatever their age. The clock is passed in: no sleeping.
import { sql } from 'kysely'
import t from 'tap'
import { createJobStore } from '../../src/jobs/job-store.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const pin = '739146'
const day = 86_400_000

t.test('a job that ends keeps no params: a bulk EraseDevice with a PIN once it ran, one cancelled while queued, one that failed', async (t) => {
  // No runner in the app: the test runs the jobs, so it sees them queued first.
  const mdm = await setupMdm(t, { ORCHARD_JOB_THRESHOLD: '1', ORCHARD_JOB_WORKER: 'false' })
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const fleet = [await mdm.enrolledDevice(), await mdm.enrolledDevice()]
  const erase = { enrollment_ids: fleet.map((d) => d.udid), command: { request_type: 'EraseDevice', PIN: pin }, push: false }
  const paramsOf = async (id: string) => (await db.selectFrom('jobs').select('params').where('id', '=', id).executeTakeFirstOrThrow()).params
  const holdsPin = (params: Record<string, unknown>) => {
    const payload = params['payload_base64']
    return typeof payload === 'string' && Buffer.from(payload, 'base64').toString().includes(pin)
  }
  const confirmed = async () => {
    const dry = await api('POST', '/api/v1/commands', { body: { ...erase, dry_run: true } })
    const accepted = await api('POST', '/api/v1/commands', { body: { ...erase, confirmation_token: dry.json.confirmation_token } })
    t.equal(accepted.statusCode, 202, accepted.body)
    return accepted.json.id as string
  }

  const ran = await confirmed()
  t.ok(holdsPin(await paramsOf(ran)), 'a queued job holds the command with its PIN (the test would prove nothing otherwise)')
  t.equal(await mdm.orchard.jobs.runner.runDue(), 1)
  t.match((await api('GET', `/api/v1/jobs/${ran}`)).json, { state: 'succeeded', outcomes: { queued: 2 } })
  t.same(await paramsOf(ran), {}, 'succeeded: params emptied in the finishing UPDATE')

  const cancelled = await confirmed()
  t.ok(holdsPin(await paramsOf(cancelled)))
  t.equal((await api('DELETE', `/api/v1/jobs/${cancelled}`)).json.state, 'cancelled')
  t.same(await paramsOf(cancelled), {}, 'cancelled while queued: params emptied too')
  const left = await db.selectFrom('jobs').select('params').execute()
  t.notOk(
    left.some((row) => holdsPin(row.params)),
    'no row holds the PIN any more',
  )

  // A job the runners gave up on (claimed too often) fails: its params go as well.
  await sql`insert into jobs (id, type, state, params, total, attempts)
    values ('00000000-0000-4000-8000-0000000000f1', 'abm_sync', 'queued', '{"token_id": "secret-ish"}', 1, 5)`.execute(db)
  t.equal(await mdm.orchard.jobs.runner.runDue(), 1)
  const failed = await db.selectFrom('jobs').select(['state', 'params']).where('id', '=', '00000000-0000-4000-8000-0000000000f1').executeTakeFirstOrThrow()
  t.same(failed, { state: 'failed', params: {} }, 'failed: params emptied')
})

t.test('finished jobs are pruned ORCHARD_JOB_RETENTION_DAYS after they finished, with their errors and output; open jobs stay', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_JOB_RETENTION_DAYS: '30', ORCHARD_JOB_WORKER: 'false' })
  const db = mdm.database.db
  const now = new Date('2031-06-15T12:00:00Z')
  const ago = (days: number) => new Date(now.getTime() - days * day)
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`
  const finished = (n: number, state: 'succeeded' | 'failed' | 'cancelled', daysAgo: number) => ({
    id: id(n),
    type: 'report' as const,
    state,
    params: '{}',
    total: 1,
    created_at: ago(daysAgo + 1),
    started_at: ago(daysAgo + 1),
    finished_at: ago(daysAgo),
  })
  await db
    .insertInto('jobs')
    .values([
      finished(1, 'succeeded', 45),
      finished(2, 'failed', 31),
      finished(3, 'cancelled', 30.5),
      finished(4, 'succeeded', 29),
      finished(5, 'succeeded', 1),
      // Open jobs: never pruned, however old.
      { id: id(6), type: 'bulk_command', params: '{}', total: 1, created_at: ago(400) },
      { id: id(7), type: 'report', state: 'running', params: '{}', total: 1, created_at: ago(300), started_at: ago(300) },
    ])
    .execute()
  await db
    .insertInto('job_errors')
    .values([
      { job_id: id(2), seq: 1, target: 'x', code: 'job_failed', message: 'boom' },
      { job_id: id(4), seq: 1, target: 'y', code: 'not_found', message: 'gone' },
    ])
    .execute()
  await db
    .insertInto('job_outputs')
    .values([
      { job_id: id(1), content: JSON.stringify({ kind: 'device-days' }) },
      { job_id: id(5), content: JSON.stringify({ kind: 'device-days' }) },
    ])
    .execute()

  t.equal(await mdm.orchard.jobs.prune(now), 3, 'the three finished more than 30 days before now')
  const ids = async (table: 'jobs' | 'job_errors' | 'job_outputs') =>
    (await sql<{ id: string }>`select ${sql.ref(table === 'jobs' ? 'id' : 'job_id')} as id from ${sql.table(table)} order by 1`.execute(db)).rows.map(
      (row) => row.id,
    )
  t.same(await ids('jobs'), [id(4), id(5), id(6), id(7)])
  t.same(await ids('job_errors'), [id(4)], 'errors go with their job')
  t.same(await ids('job_outputs'), [id(5)], 'outputs go with their job')
  t.equal(await mdm.orchard.jobs.prune(now), 0, 'nothing more the second time')
  t.equal(await mdm.orchard.jobs.prune(new Date(now.getTime() + 30 * day)), 2, 'a month later: the two others finished')
  t.same(await ids('jobs'), [id(6), id(7)])

  // A backlog goes in batches: each statement deletes at most batchSize jobs, until none is left.
  await db
    .insertInto('jobs')
    .values([11, 12, 13, 14, 15].map((n) => finished(n, 'succeeded', 100 + n)))
    .execute()
  t.equal(await createJobStore(db).pruneFinished(ago(50), 2), 5, 'three statements of at most 2')
  t.same(await ids('jobs'), [id(6), id(7)])

  const index = await sql<{ indexdef: string }>`select indexdef from pg_indexes where indexname = 'jobs_finished_idx'`.execute(db)
  t.match(index.rows[0]?.indexdef, /\(finished_at\) WHERE \(finished_at IS NOT NULL\)/, 'served by a partial index on finished_at')
})

t.test('ORCHARD_JOB_RETENTION_DAYS=0 keeps finished jobs forever', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_JOB_RETENTION_DAYS: '0', ORCHARD_JOB_WORKER: 'false' })
  const db = mdm.database.db
  await sql`insert into jobs (id, type, state, params, total, started_at, finished_at)
    values ('00000000-0000-4000-8000-0000000000a1', 'report', 'succeeded', '{}', 1, now() - interval '10 years', now() - interval '10 years')`.execute(db)
  t.equal(await mdm.orchard.jobs.prune(new Date()), 0)
  t.equal((await db.selectFrom('jobs').select('id').execute()).length, 1)
})
