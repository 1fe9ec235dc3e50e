// Handing a device the head of its queue (Idle -> next command) writes only the target's heap
// page: the delivery changes no indexed column, so PostgreSQL updates the row in place (a HOT
// update) and adds no entry to the table's indexes. Three of them hold every target ever kept
// (10 M rows with a retention of history): an index entry per delivery there meant reading
// and dirtying pages of indexes far larger than shared_buffers on every Idle.
// An in-place update needs room on the page: a fleet command's targets fill their pages, so
// the first delivery on a page finds none (a normal update); the ones after it reuse the room
// PostgreSQL reclaims from the versions they replaced (85% of deliveries were HOT in this test,
// run alone). Leaving room in every page (fillfactor 90) made it 93%, for 10% more space per row
// kept as history (587 -> 650 bytes per target on the scale bench): not worth it. How much room
// is reclaimed depends on other transactions running (34% in a CI run with another test file
// at work), so the test gives its pages room of their own and asks for every delivery.
// And the delivered row is named by its key: joined to the head of the queue, it was planned as
// a walk of every queued target of the fleet when the statistics came from an answered queue
// (as after ANALYZE on a history of 10 M answered targets: a fleet command of 100,000 is 1% of
// the table, below autovacuum's threshold to analyse it again): 40 ms per Idle.
import { createHash } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import t from 'tap'
import { openPostgresDatabase } from '../../src/db/database.js'
import type { Database } from '../../src/db/schema.js'
import { createCommandQueueStore, type ReportInput } from '../../src/queue/command-queue-store.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

const shaOf = (id: string) => createHash('sha256').update(id).digest('hex')

/** The Idle of device dev<i> (see fleetWithHistory), signed with its bound certificate. */
const idleOf = (i: number): ReportInput => ({
  enrollmentId: `dev${i}`,
  deviceId: `dev${i}`,
  certificateSha256: shaOf(`dev${i}`),
  status: 'Idle',
  raw: Buffer.from('Idle'),
})

/** Updates of command_targets reported so far, and how many of them were HOT (no index entries). */
async function targetUpdates(db: Kysely<Database>): Promise<{ updates: number; hot: number }> {
  // This connection's pending counts reach the shared statistics once it is idle (the statement after this one).
  await sql`select pg_stat_force_next_flush()`.execute(db)
  const { rows } = await sql<{ updates: number; hot: number }>`
    select n_tup_upd::int as updates, n_tup_hot_upd::int as hot from pg_stat_user_tables where relname = 'command_targets'`.execute(db)
  return rows[0]!
}

/**
 * `size` enrolled devices (dev1...) bound to the certificate shaOf(id), each with an answered
 * target (history, as retention keeps it) and then a queued fleet command ('fleet'), written as
 * the bulk enqueue writes it: one insert for every target.
 */
async function fleetWithHistory(db: Kysely<Database>, size: number, options: { analyzeHistory?: boolean } = {}): Promise<void> {
  await sql`insert into devices (id, udid, serial_number, identity_sha256)
    select 'dev' || i, 'dev' || i, 'SER' || i, encode(sha256(convert_to('dev' || i, 'UTF8')), 'hex') from generate_series(1, ${size}::int) i`.execute(db)
  await sql`insert into enrollments (id, device_id, channel, enabled) select 'dev' || i, 'dev' || i, 'device', true from generate_series(1, ${size}::int) i`.execute(
    db,
  )
  await sql`insert into commands (uuid, request_type, payload) values ('old', 'ProfileList', '\\x00'::bytea), ('fleet', 'DeviceInformation', '\\x00'::bytea)`.execute(
    db,
  )
  await sql`insert into command_targets (enrollment_id, command_uuid, status, result_at)
    select 'dev' || i, 'old', 'Acknowledged', now() from generate_series(1, ${size}::int) i`.execute(db)
  if (options.analyzeHistory) await sql`analyze`.execute(db)
  await sql`insert into command_targets (enrollment_id, command_uuid) select 'dev' || i, 'fleet' from generate_series(1, ${size}::int) i`.execute(db)
}

t.test('a delivery writes no index entry of command_targets', { skip: testBackend !== 'postgres' && 'PostgreSQL pass only (statistics)' }, async (t) => {
  const database = await createTestDatabase(t)
  // One connection: its statistics are flushed before they are read.
  const single = openPostgresDatabase({ connectionString: database.url!, poolMax: 1 })
  t.teardown(() => single.close())
  const db = single.db
  const fleet = 400
  // Room on every page for each target's deliveries, whatever PostgreSQL can reclaim meanwhile:
  // then a delivery is HOT exactly when it changes no indexed column.
  await sql`alter table command_targets set (fillfactor = 30)`.execute(db)
  await fleetWithHistory(db, fleet)
  const store = createCommandQueueStore(db, { repushAfterSeconds: 300 })
  const before = await targetUpdates(db)
  const idle = (i: number) => store.processReport(idleOf(i))
  for (let i = 1; i <= fleet; i++) {
    const outcome = await idle(i)
    if (!outcome.accepted || outcome.next?.uuid !== 'fleet') throw new Error(`dev${i}: ${JSON.stringify(outcome)}`)
  }
  // Handed out again (no answer yet), as a device that asks again after a lost connection.
  for (let i = 1; i <= fleet; i += 4) await idle(i)
  const after = await targetUpdates(db)
  const updates = after.updates - before.updates
  const hot = after.hot - before.hot
  t.equal(updates, fleet + fleet / 4, 'one update per delivery')
  t.equal(hot, updates, `${hot} of ${updates} deliveries were HOT updates (no index entry)`)

  // An answer changes the status (indexed, in the partial indexes' predicates): not HOT, and
  // the answered target leaves the queue's index as before.
  const answered = await store.processReport({
    enrollmentId: 'dev1',
    deviceId: 'dev1',
    certificateSha256: shaOf('dev1'),
    status: 'Acknowledged',
    commandUuid: 'fleet',
    raw: Buffer.from('Acknowledged'),
  })
  t.ok(answered.accepted && answered.result?.recorded, 'the answer is recorded')
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from command_targets where status in ('Pending', 'NotNow')`.execute(db)
  t.equal(rows[0]!.n, fleet - 1, 'the answered target is no longer queued')
})

t.test(
  "Idle -> next command reads the device's own targets, with statistics from an answered queue",
  { skip: testBackend !== 'postgres' && 'PostgreSQL pass only (plans)' },
  async (t) => {
    const database = await createTestDatabase(t)
    const db = database.db
    const fleet = 20_000
    // Statistics taken while every target was answered (history), then a fleet command no
    // ANALYZE has seen: PostgreSQL estimates one queued target in the whole table.
    await fleetWithHistory(db, fleet, { analyzeHistory: true })

    // Several Idles on one connection: the prepared statement's generic plan is used from the sixth.
    await db.connection().execute(async (connection) => {
      for (let i = 1; i <= 8; i++) {
        const { before, outcome, after } = await connection.transaction().execute(async (trx) => {
          const fetched = async () =>
            (await sql<{ n: number }>`select coalesce(idx_tup_fetch, 0)::int as n from pg_stat_xact_user_tables where relname = 'command_targets'`.execute(trx))
              .rows[0]!.n
          const before = await fetched()
          const outcome = await createCommandQueueStore(trx, { repushAfterSeconds: 300 }).processReport(idleOf(i))
          return { before, outcome, after: await fetched() }
        })
        t.equal(outcome.accepted && outcome.next?.uuid, 'fleet', `dev${i} is handed the fleet command`)
        t.ok(after - before < 20, `Idle ${i}: ${after - before} targets read by index (not every queued target of the fleet)`)
      }
    })
  },
)
