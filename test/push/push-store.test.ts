import { sql } from 'kysely'
import t from 'tap'
import { openPostgresDatabase } from '../../src/db/database.js'
import { createPushStore } from '../../src/push/push-store.js'
import { createTestDatabase, testBackend, type TestDatabase } from '../helpers/database.js'

const schedule = { afterSeconds: 300, maxIntervalSeconds: 3600, giveUpAfterSeconds: 86_400 }

/** Enrollments with a push token; `pending` of them have a queued command; all last seen `silentFor` ago. */
async function seed(database: TestDatabase, count: number, options: { pending: boolean; silentSeconds: number; prefix: string }) {
  await sql`insert into devices (id, udid, topic) select ${options.prefix} || i, ${options.prefix} || i, 'com.apple.mgmt.test' from generate_series(1, ${count}::int) i`.execute(
    database.db,
  )
  await sql`
    insert into enrollments (id, device_id, channel, enabled, topic, push_token, push_magic, last_seen_at, next_repush_at)
    select ${options.prefix} || i, ${options.prefix} || i, 'device', true, 'com.apple.mgmt.test', '\\x00'::bytea, 'magic',
           now() - make_interval(secs => ${options.silentSeconds}::int), now() - interval '1 second'
    from generate_series(1, ${count}::int) i`.execute(database.db)
  if (options.pending) {
    await sql`insert into commands (uuid, request_type, payload) values (${`${options.prefix}cmd`}, 'ProfileList', '\\x00'::bytea)`.execute(database.db)
    await sql`insert into command_targets (enrollment_id, command_uuid) select ${options.prefix} || i, ${`${options.prefix}cmd`} from generate_series(1, ${count}::int) i`.execute(
      database.db,
    )
  }
}

async function repushState(database: TestDatabase, id: string) {
  return sql<{ repush_count: number; delay: number | null }>`
    select repush_count, round(extract(epoch from next_repush_at - now()))::int as delay from enrollments where id = ${id}`
    .execute(database.db)
    .then((r) => r.rows[0]!)
}

t.test('due devices with pending commands are claimed, with exponential backoff up to the ceiling', async (t) => {
  const database = await createTestDatabase(t)
  const store = createPushStore(database.db)
  await seed(database, 3, { pending: true, silentSeconds: 600, prefix: 'p' })
  t.same((await store.claimRepushes(schedule, 100)).sort(), ['p1', 'p2', 'p3'])
  t.same(await store.claimRepushes(schedule, 100), [], 'not due again until the backoff has passed')
  const delays: number[] = []
  for (let round = 0; round < 6; round++) {
    const state = await repushState(database, 'p1')
    delays.push(state.delay!)
    await sql`update enrollments set next_repush_at = now() - interval '1 second' where id = 'p1'`.execute(database.db)
    t.same(await store.claimRepushes(schedule, 100), ['p1'])
  }
  t.same(
    delays.map((d) => Math.round(d / 10) * 10),
    [600, 1200, 2400, 3600, 3600, 3600],
    '300 s doubled each time, capped at 3600 s',
  )
})

t.test('due devices with nothing pending, or silent too long, are unscheduled instead', async (t) => {
  const database = await createTestDatabase(t)
  const store = createPushStore(database.db)
  await seed(database, 2, { pending: false, silentSeconds: 600, prefix: 'idle' })
  await seed(database, 2, { pending: true, silentSeconds: 2 * 86_400, prefix: 'gone' })
  t.same(await store.claimRepushes(schedule, 100), [])
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from enrollments where next_repush_at is not null`.execute(database.db)
  t.equal(rows[0]!.n, 0, 'nothing left scheduled')
})

t.test('a retired token is not re-pushed; TokenUpdate-style reset brings it back', async (t) => {
  const database = await createTestDatabase(t)
  const store = createPushStore(database.db)
  await seed(database, 1, { pending: true, silentSeconds: 600, prefix: 'dead' })
  await store.recordPushOutcomes([{ enrollmentId: 'dead1', result: 'Unregistered', tokenInvalid: true }])
  t.match(await database.db.selectFrom('enrollments').selectAll().where('id', '=', 'dead1').executeTakeFirstOrThrow(), {
    push_invalid_reason: 'Unregistered',
    last_push_result: 'Unregistered',
  })
  t.same(await store.claimRepushes(schedule, 100), [])
  await store.recordPushOutcomes([{ enrollmentId: 'dead1', result: 'sent', apnsId: 'A' }])
  t.match(
    await database.db.selectFrom('enrollments').selectAll().where('id', '=', 'dead1').executeTakeFirstOrThrow(),
    { push_invalid_reason: 'Unregistered', last_push_apns_id: 'A' },
    'a later success does not revive it: only TokenUpdate does',
  )
})

t.test(
  'replicas claiming at the same moment never claim the same device',
  { skip: testBackend !== 'postgres' && 'needs two connections (Postgres)' },
  async (t) => {
    const database = await createTestDatabase(t)
    await seed(database, 500, { pending: true, silentSeconds: 600, prefix: 'r' })
    const replicas = [0, 1, 2].map(() => openPostgresDatabase({ connectionString: database.url!, poolMax: 2 }))
    t.teardown(async () => {
      for (const replica of replicas) await replica.close()
    })
    const claims = await Promise.all(replicas.flatMap((replica) => [0, 1, 2, 3].map(() => createPushStore(replica.db).claimRepushes(schedule, 60))))
    const all = claims.flat()
    t.equal(new Set(all).size, all.length, 'no device claimed twice')
    t.equal(all.length, 500, 'every due device claimed once')
  },
)
