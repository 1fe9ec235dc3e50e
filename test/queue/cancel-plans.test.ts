// Cancelling one device's queue (on Authenticate, check-out, erase, retirement) finds the
// device's channels first and then their targets, whatever the statistics say. Written as
// `enrollment_id in (select ...)`, PostgreSQL planned it the other way round when the
// statistics came from a time the queue was nearly all answered: it walked every open target of
// the fleet and looked up each one's channel (21,000 index scans of enrollments per
// Authenticate at 9,000 enrolling devices; 85 ms of PostgreSQL CPU each).
import { randomBytes } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import t from 'tap'
import type { Database } from '../../src/db/schema.js'
import { cancelQueuedForDevice, createEnrollmentStore } from '../../src/device/enrollment-store.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

/** Index scans of enrollments by this transaction so far (counted in the backend, not yet reported). */
async function enrollmentIndexScans(trx: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ n: number }>`select idx_scan::int as n from pg_stat_xact_user_tables where relname = 'enrollments'`.execute(trx)
  return rows[0]?.n ?? 0
}

t.test(
  "a device's queue is cancelled through its own channels, with statistics from an answered queue",
  { skip: testBackend !== 'postgres' && 'PostgreSQL pass only (plans)' },
  async (t) => {
    const database = await createTestDatabase(t)
    const db = database.db
    const fleet = async (from: number, to: number, status: string) => {
      await sql`insert into devices (id, udid, serial_number) select 'dev' || i, 'dev' || i, 'SER' || i from generate_series(${from}::int, ${to}::int) i`.execute(
        db,
      )
      await sql`insert into enrollments (id, device_id, channel, enabled) select 'dev' || i, 'dev' || i, 'device', true from generate_series(${from}::int, ${to}::int) i`.execute(
        db,
      )
      await sql`insert into commands (uuid, request_type, payload) values (${`cmd-${from}`}, 'ProfileList', '\\x00'::bytea)`.execute(db)
      await sql`insert into command_targets (enrollment_id, command_uuid, status)
        select 'dev' || i, ${`cmd-${from}`}, ${status} from generate_series(${from}::int, ${to}::int) i`.execute(db)
    }
    // Statistics taken while every target was answered (as after a drained first batch), then a
    // fleet's worth of queued targets that no ANALYZE has seen yet.
    await fleet(1, 200, 'Acknowledged')
    await sql`analyze`.execute(db)
    await fleet(201, 20_200, 'Pending')

    await db.transaction().execute(async (trx) => {
      const before = await enrollmentIndexScans(trx)
      const outcome = await createEnrollmentStore(trx).authenticate(
        { deviceId: 'new-device', udid: 'new-device', serialNumber: 'NEW1', topic: 'com.apple.mgmt.test', raw: Buffer.from('<plist/>') },
        { certificateSha256: randomBytes(32).toString('hex'), notAfter: null },
        { expectedIdentity: null },
      )
      t.same(outcome, { ok: true, newDevice: true })
      const scans = (await enrollmentIndexScans(trx)) - before
      t.ok(scans < 20, `Authenticate of a new device: ${scans} index scans of enrollments (not one per queued target)`)
    })

    await db.transaction().execute(async (trx) => {
      const before = await enrollmentIndexScans(trx)
      await cancelQueuedForDevice(trx, 'dev500', 'checked out')
      const scans = (await enrollmentIndexScans(trx)) - before
      t.ok(scans < 20, `check-out: ${scans} index scans of enrollments`)
    })
    const { rows } = await sql<{ status: string; n: number }>`select status, count(*)::int as n from command_targets group by status order by status`.execute(
      db,
    )
    t.same(rows, [
      { status: 'Acknowledged', n: 200 },
      { status: 'Cancelled', n: 1 },
      { status: 'Pending', n: 19_999 },
    ])
  },
)
