// The command queue's contract at the storage level, on each backend: delivery order, the
// NotNow rule, expiry, polls racing a cancel, and delivery after a restart. Devices and
// channels come from the enrollment store, commands from the queue store, states are read
// through the admin store. No clocks: "later" is an expiry date set in the past.
import t from 'tap'
import { createHash, randomUUID } from 'node:crypto'
import { openPostgresDatabase } from '../../src/db/database.js'
import { createEnrollmentStore } from '../../src/device/enrollment-store.js'
import { fullAccess } from '../../src/model/access.js'
import { createCommandAdminStore, type CommandAdminStore, type CommandTargetRow } from '../../src/queue/command-admin-store.js'
import { createCommandQueueStore, type CommandQueueStore, type ReportInput, type ReportOutcome } from '../../src/queue/command-queue-store.js'
import type { Database } from '../../src/db/schema.js'
import { sql, type Kysely } from 'kysely'
import { createTestDatabase, testBackend, type TestDatabase } from '../helpers/database.js'

const topic = 'com.apple.mgmt.External.conformance'
const past = new Date('2001-01-01T00:00:00Z')

interface Queue {
  store: CommandQueueStore
  admin: CommandAdminStore
  /** Queues a command for the channels; returns its UUID. */
  enqueue(targets: readonly string[], options?: { priority?: number; expiresAt?: Date | null; requestType?: string }): Promise<string>
  status(enrollmentId: string, uuid: string): Promise<CommandTargetRow>
  open(enrollmentId: string): Promise<string[]>
}

function queueOver(db: Kysely<Database>): Queue {
  const store = createCommandQueueStore(db, { repushAfterSeconds: 300 })
  const admin = createCommandAdminStore(db)
  return {
    store,
    admin,
    async enqueue(targets, options = {}) {
      const uuid = randomUUID().toUpperCase()
      const requestType = options.requestType ?? 'ProfileList'
      const outcome = await store.insertCommand(
        { uuid, requestType, payload: Buffer.from(`<plist>${requestType}</plist>`), priority: options.priority ?? 0, expiresAt: options.expiresAt ?? null },
        targets,
      )
      if (!outcome.ok || !outcome.targets.every((target) => target.outcome === 'queued')) throw new Error(`not queued: ${JSON.stringify(outcome)}`)
      return uuid
    },
    async status(enrollmentId, uuid) {
      const page = await admin.listEnrollmentCommands(fullAccess, enrollmentId, 'all', { limit: 100 })
      const row = page.items.find((item) => item.command_uuid === uuid)
      if (!row) throw new Error(`no target ${enrollmentId} ${uuid}`)
      return row
    },
    async open(enrollmentId) {
      const page = await admin.listEnrollmentCommands(fullAccess, enrollmentId, 'open', { limit: 100 })
      return page.items.map((item) => item.command_uuid).sort()
    },
  }
}

/** A device whose channel is enrolled (Authenticate, then TokenUpdate), polling the queue. */
async function enrolledDevice(db: Kysely<Database>, id = `DEV-${randomUUID()}`) {
  const certificateSha256 = createHash('sha256').update(id).digest('hex')
  const enrollments = createEnrollmentStore(db)
  const authenticated = await enrollments.authenticate(
    { deviceId: id, udid: id, serialNumber: `S${id.slice(-8)}`, topic, raw: Buffer.from('Authenticate') },
    { certificateSha256, notAfter: null },
    { expectedIdentity: null },
  )
  if (!authenticated.ok) throw new Error('authenticate failed')
  const token = await enrollments.updateToken(
    { enrollmentId: id, deviceId: id, channel: 'device', topic, token: Buffer.alloc(32, 1), pushMagic: 'magic', awaitingConfiguration: false },
    certificateSha256,
  )
  if (!token.ok) throw new Error('token update failed')
  return devicePolling(id, certificateSha256)
}

function devicePolling(id: string, certificateSha256: string) {
  return {
    id,
    certificateSha256,
    /** The device's report to a queue store (one request of the device). */
    report(store: CommandQueueStore, status: ReportInput['status'], commandUuid?: string) {
      return store.processReport({ enrollmentId: id, deviceId: id, certificateSha256, status, commandUuid, raw: Buffer.from(`<plist>${status}</plist>`) })
    },
  }
}

function nextOf(outcome: ReportOutcome): string | undefined {
  if (!outcome.accepted) throw new Error(`report refused: ${outcome.reason}`)
  return outcome.next?.uuid
}

async function setup(t: Parameters<typeof createTestDatabase>[0]) {
  const database = await createTestDatabase(t)
  return { database, queue: queueOver(database.db) }
}

t.test('priority first, then first queued first; an unanswered command is offered again', async (t) => {
  const { database, queue } = await setup(t)
  const device = await enrolledDevice(database.db)
  const low1 = await queue.enqueue([device.id], { priority: 0 })
  const high1 = await queue.enqueue([device.id], { priority: 10 })
  const low2 = await queue.enqueue([device.id], { priority: 0 })
  const mid = await queue.enqueue([device.id], { priority: 5 })
  const high2 = await queue.enqueue([device.id], { priority: 10 })

  t.equal(nextOf(await device.report(queue.store, 'Idle')), high1, 'the highest priority, oldest first')
  t.equal(nextOf(await device.report(queue.store, 'Idle')), high1, 'not answered: offered again')
  t.match(await queue.status(device.id, high1), { status: 'Pending', delivery_count: 2 })

  const order: string[] = [high1]
  let next = nextOf(await device.report(queue.store, 'Acknowledged', high1))
  while (next !== undefined) {
    order.push(next)
    next = nextOf(await device.report(queue.store, 'Acknowledged', next))
  }
  t.same(order, [high1, high2, mid, low1, low2])
  t.same(await queue.open(device.id), [], 'drained')
  for (const uuid of order) t.match(await queue.status(device.id, uuid), { status: 'Acknowledged' })
})

t.test('each channel has its own queue; a command for several channels is delivered once to each', async (t) => {
  const { database, queue } = await setup(t)
  const a = await enrolledDevice(database.db)
  const b = await enrolledDevice(database.db)
  const both = await queue.enqueue([a.id, b.id], { priority: 1 })
  const onlyB = await queue.enqueue([b.id], { priority: 9 })
  const [fromA, fromB] = await Promise.all([a.report(queue.store, 'Idle'), b.report(queue.store, 'Idle')])
  t.equal(nextOf(fromA), both)
  t.equal(nextOf(fromB), onlyB, "the other channel's priority does not matter here")
  t.equal(nextOf(await a.report(queue.store, 'Acknowledged', both)), undefined)
  t.equal(nextOf(await b.report(queue.store, 'Acknowledged', onlyB)), both)
  t.match(await queue.status(a.id, both), { status: 'Acknowledged', delivery_count: 1 })
  t.match(await queue.status(b.id, both), { status: 'Pending', delivery_count: 1 })
})

t.test('NotNow: the command stays queued, is skipped for the rest of the connection and offered again on the next Idle', async (t) => {
  const { database, queue } = await setup(t)
  const device = await enrolledDevice(database.db)
  const a = await queue.enqueue([device.id])
  const b = await queue.enqueue([device.id])
  const c = await queue.enqueue([device.id])

  t.equal(nextOf(await device.report(queue.store, 'Idle')), a)
  const refused = await device.report(queue.store, 'NotNow', a)
  t.match(refused, { accepted: true, result: { recorded: true, notNowCount: 1 } })
  t.equal(nextOf(refused), b, 'after NotNow: the next never-answered command')
  t.equal(nextOf(await device.report(queue.store, 'NotNow', b)), c)
  const late = await queue.enqueue([device.id], { priority: 10 })
  t.equal(nextOf(await device.report(queue.store, 'Acknowledged', c)), late, 'a command queued meanwhile was never answered: offered')
  t.equal(nextOf(await device.report(queue.store, 'Acknowledged', late)), undefined, 'the refused ones are not offered again in this connection')
  t.match(await queue.status(device.id, a), { status: 'NotNow', not_now_count: 1, delivery_count: 1 })
  t.same(await queue.open(device.id), [a, b].sort(), 'both refused commands stay queued')

  t.equal(nextOf(await device.report(queue.store, 'Idle')), a, 'the next Idle offers them again, in queue order')
  t.equal(nextOf(await device.report(queue.store, 'NotNow', a)), undefined, 'refused again: b was refused too, so nothing else this connection')
  t.equal(nextOf(await device.report(queue.store, 'Idle')), a)
  t.equal(nextOf(await device.report(queue.store, 'Acknowledged', a)), b, 'an answer other than NotNow keeps the connection going')
  t.equal(nextOf(await device.report(queue.store, 'Acknowledged', b)), undefined)
  t.match(await queue.status(device.id, a), { status: 'Acknowledged', not_now_count: 2, delivery_count: 3 })
  t.match(await queue.status(device.id, b), { status: 'Acknowledged', not_now_count: 1, delivery_count: 2 })
})

t.test('NotNow on one channel does not hold back another', async (t) => {
  const { database, queue } = await setup(t)
  const busy = await enrolledDevice(database.db)
  const other = await enrolledDevice(database.db)
  const shared = await queue.enqueue([busy.id, other.id])
  t.equal(nextOf(await busy.report(queue.store, 'Idle')), shared)
  t.equal(nextOf(await busy.report(queue.store, 'NotNow', shared)), undefined)
  t.equal(nextOf(await other.report(queue.store, 'Idle')), shared)
})

t.test('expiry: an expired command is never delivered, and is marked Expired on the next Idle', async (t) => {
  const { database, queue } = await setup(t)
  const device = await enrolledDevice(database.db)
  const expired = await queue.enqueue([device.id], { priority: 10, expiresAt: past })
  const current = await queue.enqueue([device.id], { expiresAt: new Date('2999-01-01T00:00:00Z') })

  const idle = await device.report(queue.store, 'Idle')
  t.match(idle, { accepted: true, expired: 1 })
  t.equal(nextOf(idle), current, 'the higher-priority expired command is skipped')
  t.match(await queue.status(device.id, expired), { status: 'Expired', delivery_count: 0, first_delivered_at: null })

  // Expired while the connection runs (queued already overdue, no Idle yet): not offered, left for the next Idle.
  const overdue = await queue.enqueue([device.id], { priority: 10, expiresAt: past })
  const answered = await device.report(queue.store, 'Acknowledged', current)
  t.equal(nextOf(answered), undefined, 'not offered')
  t.match(answered, { expired: 0 })
  const idleAgain = await device.report(queue.store, 'Idle')
  t.match(idleAgain, { accepted: true, expired: 1 })
  t.equal(nextOf(idleAgain), undefined)
  t.match(await queue.status(device.id, overdue), { status: 'Expired', delivery_count: 0 })
  t.same(await queue.open(device.id), [])
})

t.test('expiry: a command the device fetched and may be running is not expired under it; a refused one is', async (t) => {
  const { database, queue } = await setup(t)
  const device = await enrolledDevice(database.db)
  const future = new Date('2999-01-01T00:00:00Z')
  const refused = await queue.enqueue([device.id], { expiresAt: future })
  t.equal(nextOf(await device.report(queue.store, 'Idle')), refused)
  t.equal(nextOf(await device.report(queue.store, 'NotNow', refused)), undefined)
  const inFlight = await queue.enqueue([device.id], { priority: 10, expiresAt: future })
  t.equal(nextOf(await device.report(queue.store, 'Idle')), inFlight, 'fetched; the device has not answered yet')
  // Time passes: both expiry dates are now behind.
  await database.db
    .updateTable('command_targets')
    .set({ expires_at: past })
    .where('enrollment_id', '=', device.id)
    .where('command_uuid', 'in', [refused, inFlight])
    .execute()

  const idle = await device.report(queue.store, 'Idle')
  t.match(idle, { accepted: true, expired: 1 })
  t.equal(nextOf(idle), inFlight, 'fetched, not answered: offered again, not expired')
  t.match(await queue.status(device.id, refused), { status: 'Expired', not_now_count: 1 })
  const done = await device.report(queue.store, 'Acknowledged', inFlight)
  t.match(done, { result: { recorded: true } })
  t.equal(nextOf(done), undefined, 'the expired one is not offered')
  t.match(await queue.status(device.id, inFlight), { status: 'Acknowledged', delivery_count: 2 })
})

t.test('cancellable: until the device fetches it, or after it refused it (NotNow)', async (t) => {
  const { database, queue } = await setup(t)
  const device = await enrolledDevice(database.db)
  const queued = await queue.enqueue([device.id], { priority: 10 })
  const fetched = await queue.enqueue([device.id], { priority: 5 })
  const refused = await queue.enqueue([device.id])
  t.same(await queue.admin.cancelCommand(fullAccess, queued, [device.id], 'before the poll'), { cancelled: 1, inFlight: 0, finished: 0, notTargeted: 0 })
  t.equal(nextOf(await device.report(queue.store, 'Idle')), fetched, 'the cancelled command is never offered')
  t.same(
    await queue.admin.cancelCommand(fullAccess, fetched, [device.id], 'too late'),
    { cancelled: 0, inFlight: 1, finished: 0, notTargeted: 0 },
    'fetched: it may be running',
  )
  t.equal(nextOf(await device.report(queue.store, 'Acknowledged', fetched)), refused)
  t.equal(nextOf(await device.report(queue.store, 'NotNow', refused)), undefined)
  t.same(await queue.admin.clearQueue(fullAccess, device.id, 'clear'), { cancelled: 1, inFlight: 0 }, 'refused: not running, so cancellable')
  t.match(await queue.status(device.id, queued), { status: 'Cancelled', delivery_count: 0 })
  t.match(await queue.status(device.id, refused), { status: 'Cancelled', not_now_count: 1 })
  t.equal(nextOf(await device.report(queue.store, 'Idle')), undefined)
})

t.test('a cancel racing a poll: the device gets the command or finds it cancelled, never both', async (t) => {
  const { database, queue } = await setup(t)
  const outcomes = { delivered: 0, cancelled: 0 }
  for (let round = 0; round < 8; round++) {
    const device = await enrolledDevice(database.db)
    const command = await queue.enqueue([device.id])
    const poll = () => device.report(queue.store, 'Idle')
    const cancelIt = () => queue.admin.cancelCommand(fullAccess, command, [device.id], 'race')
    // Either one is sent to the database first.
    const [polled, cancel] =
      round % 2 === 0 ? await Promise.all([poll(), cancelIt()]) : await Promise.all([cancelIt(), poll()]).then(([c, p]) => [p, c] as const)
    const delivered = nextOf(polled) === command
    const row = await queue.status(device.id, command)
    const seen = {
      polled: nextOf(polled),
      cancel: { cancelled: cancel.cancelled, inFlight: cancel.inFlight },
      row: { status: row.status, delivery_count: row.delivery_count },
      // The next poll: the command again while unanswered, never once cancelled.
      later: nextOf(await poll()),
    }
    outcomes[delivered ? 'delivered' : 'cancelled'] += 1
    t.same(
      seen,
      delivered
        ? { polled: command, cancel: { cancelled: 0, inFlight: 1 }, row: { status: 'Pending', delivery_count: 1 }, later: command }
        : { polled: undefined, cancel: { cancelled: 1, inFlight: 0 }, row: { status: 'Cancelled', delivery_count: 0 }, later: undefined },
      `round ${round}: ${delivered ? 'delivered, so not cancelled' : 'cancelled, so never delivered'}`,
    )
  }
  t.comment(`outcomes: ${JSON.stringify(outcomes)}`)
})

t.test('concurrent polls on one channel are taken one after the other: never out of order, every delivery counted', async (t) => {
  const { database, queue } = await setup(t)
  const device = await enrolledDevice(database.db)
  const first = await queue.enqueue([device.id], { priority: 5 })
  const second = await queue.enqueue([device.id])
  const polls = await Promise.all([0, 1, 2].map(() => device.report(queue.store, 'Idle')))
  t.same(polls.map(nextOf), [first, first, first], 'the head, offered again while unanswered')
  t.match(await queue.status(device.id, first), { delivery_count: 3 })
  t.match(await queue.status(device.id, second), { delivery_count: 0, first_delivered_at: null })
})

t.test(
  'a poll does not wait for a row an operator is cancelling: it skips it (SKIP LOCKED), and the cancelled command is never handed out',
  { skip: testBackend !== 'postgres' && 'needs two sessions (PGlite has one: a transaction holds it to the end)' },
  async (t) => {
    const database = await createTestDatabase(t)
    const setupQueue = queueOver(database.db)
    const device = await enrolledDevice(database.db)
    const head = await setupQueue.enqueue([device.id], { priority: 10 })
    const next = await setupQueue.enqueue([device.id])
    // The polling server fails rather than hangs if it ever waits for the lock.
    const url = new URL(database.url!)
    url.searchParams.set('options', '-c lock_timeout=10000')
    const server = openPostgresDatabase({ connectionString: url.toString(), poolMax: 2 })
    t.teardown(() => server.close())
    const serverQueue = queueOver(server.db)

    const polled = await database.db.transaction().execute(async (trx) => {
      // The operator's cancel has taken the head row's lock and not committed yet.
      await trx
        .updateTable('command_targets')
        .set({ status: 'Cancelled', cancel_reason: 'operator' })
        .where('enrollment_id', '=', device.id)
        .where('command_uuid', '=', head)
        .execute()
      return device.report(serverQueue.store, 'Idle')
    })
    t.equal(nextOf(polled), next, 'the locked head is skipped, not waited for')
    t.match(await serverQueue.status(device.id, head), { status: 'Cancelled', delivery_count: 0 })
    t.equal(nextOf(await device.report(serverQueue.store, 'Acknowledged', next)), undefined, 'the cancelled command never comes')
  },
)

t.test('delivery after a restart: what was fetched and not answered, or refused, is offered again', async (t) => {
  const database = await createTestDatabase(t)
  const device = await enrolledDevice(database.db)

  // A server is a database handle and the stores over it. On Postgres each server has its
  // own connection pool, the first one closed before the second starts; PGlite (in memory
  // here) is one session, so the restarted server is new stores over the same database.
  const servers: Array<{ db: Kysely<Database>; close(): Promise<void> }> = []
  const startServer = (test: TestDatabase) => {
    const server = test.kind === 'postgres' ? openPostgresDatabase({ connectionString: test.url!, poolMax: 2 }) : { db: test.db, close: async () => {} }
    servers.push(server)
    return { server, queue: queueOver(server.db) }
  }
  t.teardown(async () => {
    for (const server of servers) await server.close()
  })

  const before = startServer(database)
  const answered = await before.queue.enqueue([device.id], { priority: 30 })
  const refused = await before.queue.enqueue([device.id], { priority: 20 })
  const fetched = await before.queue.enqueue([device.id], { priority: 10 })
  const untouched = await before.queue.enqueue([device.id])
  t.equal(nextOf(await device.report(before.queue.store, 'Idle')), answered)
  t.equal(nextOf(await device.report(before.queue.store, 'Acknowledged', answered)), refused)
  t.equal(nextOf(await device.report(before.queue.store, 'NotNow', refused)), fetched)
  await before.server.close() // stops with `fetched` delivered and unanswered

  const after = startServer(database)
  t.same(await after.queue.open(device.id), [refused, fetched, untouched].sort(), 'still queued after the restart')
  t.equal(nextOf(await device.report(after.queue.store, 'Idle')), refused, 'the device reconnects: the refused command first (priority)')
  t.equal(nextOf(await device.report(after.queue.store, 'Acknowledged', refused)), fetched, 'then the one it fetched before the restart')
  t.equal(nextOf(await device.report(after.queue.store, 'Acknowledged', fetched)), untouched)
  t.equal(nextOf(await device.report(after.queue.store, 'Acknowledged', untouched)), undefined)
  t.match(await after.queue.status(device.id, fetched), { status: 'Acknowledged', delivery_count: 2 })
  t.match(await after.queue.status(device.id, answered), { status: 'Acknowledged', delivery_count: 1 })
})

t.test('a talking channel is touched at most once a minute unless its state changes: no new row version per request', async (t) => {
  const { database, queue } = await setup(t)
  const db = database.db
  const device = await enrolledDevice(db)
  const commands = [await queue.enqueue([device.id]), await queue.enqueue([device.id]), await queue.enqueue([device.id])]
  const row = async () =>
    (
      await sql<{ version: string; last_seen_at: Date; repush_count: number; not_now: boolean }>`
        select xmin::text as version, last_seen_at, repush_count, not_now_this_session as not_now from enrollments where id = ${device.id}`.execute(db)
    ).rows[0]!
  const enrolled = await row()
  t.equal(nextOf(await device.report(queue.store, 'Idle')), commands[0])
  t.equal(nextOf(await device.report(queue.store, 'Acknowledged', commands[0])), commands[1])
  t.equal((await row()).version, enrolled.version, 'seen a moment ago, nothing changed: the row is not rewritten')
  t.equal(nextOf(await device.report(queue.store, 'NotNow', commands[1])), commands[2])
  const refused = await row()
  t.not(refused.version, enrolled.version, 'a NotNow changes the session state: written')
  t.equal(refused.not_now, true)
  await sql`update enrollments set last_seen_at = now() - interval '2 minutes', repush_count = 3 where id = ${device.id}`.execute(db)
  t.equal(nextOf(await device.report(queue.store, 'Acknowledged', commands[2])), undefined, 'the refused one waits for the next Idle')
  const touched = await row()
  t.equal(touched.repush_count, 0, 'it answered: the re-push backoff starts over')
  t.ok(Date.now() - touched.last_seen_at.getTime() < 60_000, 'last seen again after a minute')
  t.equal(touched.not_now, true, 'still in the session that had a NotNow')
})

t.test('queueing brings a channel re-push forward, never back, and leaves the row alone when it is already due sooner', async (t) => {
  const { database, queue } = await setup(t)
  const db = database.db
  const device = await enrolledDevice(db)
  const row = async () =>
    (await sql<{ version: string; due: Date }>`select xmin::text as version, next_repush_at as due from enrollments where id = ${device.id}`.execute(db))
      .rows[0]!
  await sql`update enrollments set next_repush_at = now() + interval '1 day' where id = ${device.id}`.execute(db)
  await queue.enqueue([device.id])
  const first = await row()
  t.ok(first.due.getTime() - Date.now() < 301_000, 'brought forward to the re-push interval')
  await queue.enqueue([device.id])
  t.same(await row(), first, 'already due sooner: not written again')
})
