// The job runner across replicas, on one database: a job whose replica died (its lease ran
// out) is taken over by another runner, which goes on from the last checkpoint without
// doing a finished chunk again, and queues the command exactly once per target even for
// the chunk the dead replica did without checkpointing it. A running bulk command stops
// between chunks when cancelled.
import { sql } from 'kysely'
import t from 'tap'
import { pino } from 'pino'
import { createJobRunner } from '../../src/jobs/job-runner.js'
import { createJobStore } from '../../src/jobs/job-store.js'
import { bulkCommandJobKind } from '../../src/queue/bulk-command-job.js'
import { createCommandChunkStore } from '../../src/queue/command-chunk-store.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

const silent = pino({ level: 'silent' })

/** A replica's runner over the test database, queueing two targets per chunk. */
function replica(mdm: MdmFixture, owner: string, push: (ids: readonly string[]) => Promise<unknown> = async () => undefined) {
  const db = mdm.database.db
  const chunks = createCommandChunkStore(db, { repushAfterSeconds: 60 })
  const chunkCalls: string[][] = []
  const counted = {
    ...chunks,
    enqueueChunk: (command: Parameters<typeof chunks.enqueueChunk>[0], targets: readonly string[]) => (
      chunkCalls.push([...targets]),
      chunks.enqueueChunk(command, targets)
    ),
  }
  const kind = bulkCommandJobKind({ chunks: counted, push, chunkSize: 2 })
  const events: Array<{ type: string; state: string }> = []
  const runner = createJobRunner({
    store: createJobStore(db),
    kinds: new Map([[kind.type, kind]]),
    owner,
    emit: async (type, job) => void events.push({ type, state: job.state }),
    logger: silent,
  })
  return { runner, kind, chunkCalls, events }
}

async function setup(t: Parameters<typeof setupMdm>[0], count: number, push = false) {
  // No runner in the app: the test's replicas run the jobs.
  const mdm = await setupMdm(t, { ORCHARD_JOB_THRESHOLD: '0', ORCHARD_JOB_WORKER: 'false' })
  const api = apiClient(mdm.app)
  const fleet = []
  for (let i = 0; i < count; i++) fleet.push(await mdm.enrolledDevice())
  const accepted = await api('POST', '/api/v1/commands', { body: { enrollment_ids: fleet.map((d) => d.udid), command: { request_type: 'ProfileList' }, push } })
  if (accepted.statusCode !== 202) throw new Error(accepted.body)
  return { mdm, api, fleet, job: accepted.json }
}

t.test('a job orphaned by a dead replica is resumed by another without repeating finished chunks', async (t) => {
  const { mdm, api, fleet, job } = await setup(t, 5)
  const db = mdm.database.db
  const a = replica(mdm, 'replica-a')
  const b = replica(mdm, 'replica-b')

  // Replica A: one chunk checkpointed, then the next chunk's work without its checkpoint, then it dies.
  t.equal(await a.runner.runDue({ maxSteps: 1 }), 1)
  let row = await db.selectFrom('jobs').selectAll().where('id', '=', job.id).executeTakeFirstOrThrow()
  t.match(row, { state: 'running', done: 2, checkpoint: 2, lease_owner: 'replica-a', attempts: 1 })
  await a.kind.step({ id: row.id, tenantId: null, params: row.params, total: row.total, done: row.done, checkpoint: row.checkpoint, attempts: 1 })
  t.same(a.chunkCalls, [fleet.slice(0, 2).map((d) => d.udid), fleet.slice(2, 4).map((d) => d.udid)])

  t.equal(await b.runner.runDue(), 0, 'a live lease is not taken over')
  t.match((await api('GET', `/api/v1/jobs/${job.id}`)).json, { state: 'running', done: 2, total: 5, cancellable: true })
  // A's lease runs out (as it would a minute after A died).
  await sql`update jobs set lease_until = now() - interval '1 second' where id = ${job.id}`.execute(db)

  t.equal(await b.runner.runDue(), 1, 'B takes the orphaned job over')
  t.same(b.chunkCalls, [fleet.slice(2, 4).map((d) => d.udid), [fleet[4]!.udid]], 'from the checkpoint: the first chunk is not done again')
  row = await db.selectFrom('jobs').selectAll().where('id', '=', job.id).executeTakeFirstOrThrow()
  t.match(row, { state: 'succeeded', done: 5, attempts: 2, lease_owner: null, error_count: 0 })
  t.same(row.outcomes, { queued: 5 }, 'each target counted once')
  t.same(a.events, [{ type: 'job.started', state: 'running' }], 'started once, by the first replica')
  t.same(b.events, [{ type: 'job.finished', state: 'succeeded' }])

  const uuid = job.result.command_uuid
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from command_targets where command_uuid = ${uuid}`.execute(db)
  t.equal(rows[0]!.n, 5, 'one queue entry per target')
  t.equal((await db.selectFrom('commands').select('uuid').execute()).length, 1, 'one command')
  for (const device of fleet) {
    const first = commandIn(await device.idle())
    t.equal(first?.uuid, uuid, `${device.udid} gets the command`)
    t.equal(commandIn(await device.answer(uuid, 'Acknowledged')), undefined, 'and nothing more: queued exactly once')
  }
})

t.test('a running bulk command cancelled stops between chunks; what it queued stays queued', async (t) => {
  const { mdm, api, job } = await setup(t, 5, true)
  // The admin cancels while the first chunk is being pushed.
  const answers: Array<{ statusCode: number; json: any }> = []
  const a = replica(mdm, 'replica-a', async () => {
    answers.push(await api('DELETE', `/api/v1/jobs/${job.id}`), await api('DELETE', `/api/v1/jobs/${job.id}`))
  })
  await a.runner.runDue()
  t.equal(answers[0]!.statusCode, 202, 'a running job: 202, stopping')
  t.match(answers[0]!.json, { state: 'running', cancellable: false })
  t.equal(answers[1]!.statusCode, 202, 'asked again: still stopping')
  t.equal(a.chunkCalls.length, 1, 'no chunk after the cancellation')
  t.match((await api('GET', `/api/v1/jobs/${job.id}`)).json, { state: 'cancelled', done: 2, total: 5, outcomes: { queued: 2 }, finished_at: String })
  t.same(a.events, [
    { type: 'job.started', state: 'running' },
    { type: 'job.finished', state: 'cancelled' },
  ])
  const command = await api('GET', `/api/v1/commands/${job.result.command_uuid}`)
  t.equal(command.statusCode, 200, 'the chunk queued before stays')
})

t.test('a replica shutting down lets its job go between two chunks; another goes on at once', async (t) => {
  const { mdm, api, job } = await setup(t, 5, true)
  const a = replica(mdm, 'replica-a', async () => {
    await a.runner.stop()
  })
  t.equal(await a.runner.runDue(), 1)
  t.equal(a.chunkCalls.length, 1, 'one chunk, then it stopped')
  t.match((await api('GET', `/api/v1/jobs/${job.id}`)).json, { state: 'running', done: 2 })
  const b = replica(mdm, 'replica-b')
  t.equal(await b.runner.runDue(), 1, 'no lease to wait for')
  t.equal(b.chunkCalls.length, 2)
  t.match((await api('GET', `/api/v1/jobs/${job.id}`)).json, { state: 'succeeded', done: 5, outcomes: { queued: 5 } })
})

t.test('a step that throws fails the job with the reason as its error', async (t) => {
  const { mdm, api, job } = await setup(t, 1)
  const store = createJobStore(mdm.database.db)
  const runner = createJobRunner({
    store,
    kinds: new Map([
      [
        'bulk_command',
        {
          type: 'bulk_command',
          stoppable: true,
          step: async () => {
            throw new Error('database went away')
          },
        },
      ],
    ]),
    owner: 'replica-c',
    emit: async () => undefined,
    logger: silent,
  })
  await runner.runDue()
  t.match((await api('GET', `/api/v1/jobs/${job.id}`)).json, { state: 'failed' })
  t.match((await api('GET', `/api/v1/jobs/${job.id}/errors`)).json.items, [{ target: null, code: 'job_failed', message: 'database went away' }])
})
