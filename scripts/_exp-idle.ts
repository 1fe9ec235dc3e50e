import { createHash } from 'node:crypto'
import { sql } from 'kysely'
import { openPostgresDatabase } from '../src/db/database.js'
import { createCommandQueueStore } from '../src/queue/command-queue-store.js'
const url = 'postgres://postgres@127.0.0.1:5432/exp2'
const handle = openPostgresDatabase({ connectionString: url, poolMax: 1 })
const db = handle.db
const fleet = Number(process.env.FLEET ?? 20000), history = Number(process.env.HISTORY ?? 100)
if (process.env.BUILD) {
  await sql`insert into devices (id, udid, serial_number, identity_sha256)
    select 'dev' || i, 'dev' || i, 'SER' || i, encode(sha256(convert_to('dev' || i, 'UTF8')), 'hex') from generate_series(1, ${fleet}::int) i`.execute(db)
  await sql`insert into enrollments (id, device_id, channel, enabled) select 'dev' || i, 'dev' || i, 'device', true from generate_series(1, ${fleet}::int) i`.execute(db)
  await sql`insert into commands (uuid, request_type, payload) select 'H' || c, 'ProfileList', '\\x00'::bytea from generate_series(1, ${history}::int) c`.execute(db)
  await sql`insert into command_targets (enrollment_id, command_uuid, status, result_at, updated_at)
    select 'dev' || i, 'H' || c, 'Acknowledged', now(), now() from generate_series(1, ${history}::int) c, generate_series(1, ${fleet}::int) i`.execute(db)
  await sql`vacuum analyze`.execute(db)
  await sql`insert into commands (uuid, request_type, payload) values ('fleet', 'DeviceInformation', '\\x00'::bytea)`.execute(db)
  await sql`insert into command_targets (enrollment_id, command_uuid) select 'dev' || i, 'fleet' from generate_series(1, ${fleet}::int) i`.execute(db)
}
if (process.env.EXPLAIN) {
  await sql`load 'auto_explain'`.execute(db)
  await sql`set auto_explain.log_min_duration = 0`.execute(db)
  await sql`set auto_explain.log_analyze = on`.execute(db)
  await sql`set auto_explain.log_buffers = on`.execute(db)
}
const store = createCommandQueueStore(db, { repushAfterSeconds: 300 })
const shaOf = (id: string) => createHash('sha256').update(id).digest('hex')
const n = Number(process.env.N ?? 30)
const times: number[] = []
for (let i = 1; i <= n; i++) {
  const t = performance.now()
  const outcome = await store.processReport({ enrollmentId: `dev${i}`, deviceId: `dev${i}`, certificateSha256: shaOf(`dev${i}`), status: 'Idle', raw: Buffer.from('Idle') })
  times.push(performance.now() - t)
  if (!outcome.accepted || !outcome.next) throw new Error(JSON.stringify(outcome))
}
console.log(times.map((x) => x.toFixed(1)).join(' '))
await handle.close()
