import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import t from 'tap'
import { needsInitdb } from '../../src/db/pglite-initdb.js'
import { openPgliteDatabase, openPostgresDatabase } from '../../src/db/database.js'
import { preparedStatement, preparedStatementName, replanAfterUses } from '../../src/db/statement-names.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

t.test('values come back in the same JavaScript types on both backends', async (t) => {
  const database = await createTestDatabase(t)
  const { rows } = await sql<Record<string, unknown>>`
    select 9007199254740991::int8 as big, count(*) as n, ${Buffer.from([1, 2, 255])}::bytea as bytes,
           '2026-01-02T03:04:05.678Z'::timestamptz as at, '{"a":[1,2]}'::jsonb as doc,
           ${JSON.stringify([1, { b: 2 }])}::text::jsonb as sent_json, 1.25::numeric as num, true as flag
    from (values (1), (2)) v(x)`.execute(database.db)
  const row = rows[0]!
  t.equal(row['big'], 9007199254740991)
  t.equal(row['n'], 2, 'count(*) is a number')
  t.ok(Buffer.isBuffer(row['bytes']), 'bytea is a Buffer')
  t.same([...(row['bytes'] as Buffer)], [1, 2, 255])
  t.ok(row['at'] instanceof Date)
  t.equal((row['at'] as Date).toISOString(), '2026-01-02T03:04:05.678Z')
  t.same(row['doc'], { a: [1, 2] })
  t.same(row['sent_json'], [1, { b: 2 }])
  t.equal(row['num'], '1.25', 'numeric stays exact, as a string')
  t.equal(row['flag'], true)
})

t.test('a transaction is isolated from concurrent queries and rolls back on error', async (t) => {
  const database = await createTestDatabase(t)
  const db = database.db
  await sql`create table scratch (n int primary key)`.execute(db)

  let releaseTransaction!: () => void
  const held = new Promise<void>((resolve) => (releaseTransaction = resolve))
  let inside!: () => void
  const entered = new Promise<void>((resolve) => (inside = resolve))
  const transaction = db
    .transaction()
    .execute(async (trx) => {
      await sql`insert into scratch values (1)`.execute(trx)
      inside()
      await held
      throw new Error('abort')
    })
    .catch((error: Error) => error.message)

  await entered
  // A query from outside while the transaction is open must not see (or join) it.
  const outside = sql<{ n: number }>`select count(*)::int as n from scratch`.execute(db)
  releaseTransaction()
  t.equal(await transaction, 'abort')
  t.equal((await outside).rows[0]!.n, 0, 'uncommitted and then rolled-back row never visible')
  const after = await sql<{ n: number }>`select count(*)::int as n from scratch`.execute(db)
  t.equal(after.rows[0]!.n, 0)
})

t.test('pool statistics are reported', async (t) => {
  const database = await createTestDatabase(t)
  await database.ping()
  const stats = database.poolStats()
  t.ok(stats.total >= 1)
  t.ok(stats.idle >= 0 && stats.idle <= stats.total)
  t.equal(stats.waiting, 0)
})

t.test('embedded database: persisted, and one process at a time', { skip: testBackend !== 'pglite' && 'PGlite only' }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'orchard-pglite-'))
  const first = await openPgliteDatabase(dataDir)
  await sql`create table kept (v text)`.execute(first.db)
  await sql`insert into kept values ('still here')`.execute(first.db)
  t.ok(existsSync(join(dataDir, 'pglite.lock')))

  // A second open while the first holds the lock (simulating another live process).
  writeFileSync(join(dataDir, 'pglite.lock'), String(process.ppid))
  await t.rejects(openPgliteDatabase(dataDir), { code: 'database_unavailable', message: /is in use by process \d+/ })
  writeFileSync(join(dataDir, 'pglite.lock'), String(process.pid))

  await first.close()
  t.notOk(existsSync(join(dataDir, 'pglite.lock')), 'lock removed on close')

  // A stale lock (its process is gone) does not keep the database closed.
  writeFileSync(join(dataDir, 'pglite.lock'), '999999999')
  const second = await openPgliteDatabase(dataDir)
  const { rows } = await sql<{ v: string }>`select v from kept`.execute(second.db)
  t.same(rows, [{ v: 'still here' }], 'data survives a restart')
  await second.close()
})

t.test(
  'embedded database: created by a child process (initdb), opened with the configured page cache',
  { skip: testBackend !== 'pglite' && 'PGlite only' },
  async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'orchard-pglite-'))
    const directory = join(dataDir, 'pglite')
    t.ok(needsInitdb(directory))
    const database = await openPgliteDatabase(dataDir, undefined, { sharedBuffersMb: 24 })
    t.notOk(needsInitdb(directory), 'the cluster exists once opened')
    const { rows } = await sql<{ value: string }>`select current_setting('shared_buffers') as value`.execute(database.db)
    t.equal(rows[0]!.value, '24MB')
    await database.close()

    // The child's failure reaches the caller with its reason; no lock is left behind.
    const broken = mkdtempSync(join(tmpdir(), 'orchard-pglite-'))
    writeFileSync(join(broken, 'pglite'), 'not a directory')
    await t.rejects(openPgliteDatabase(broken), { code: 'database_unavailable', message: /initdb \(child process\) ended with code 1: .*(EEXIST|ENOTDIR)/ })
    t.notOk(existsSync(join(broken, 'pglite.lock')))
  },
)

t.test(
  'PostgreSQL connections run without JIT (it cost ~140 ms per declaration-set read)',
  { skip: testBackend !== 'postgres' && 'PostgreSQL pass only' },
  async (t) => {
    const database = await createTestDatabase(t)
    // Several connections at once: each new one of the pool gets the setting before its first query.
    const settings = await Promise.all(
      Array.from({ length: 4 }, () =>
        database.db.transaction().execute(async (trx) => {
          const { rows } = await sql<{ jit: string; pid: number }>`select current_setting('jit') as jit, pg_backend_pid() as pid from pg_sleep(0.01)`.execute(
            trx,
          )
          return rows[0]!
        }),
      ),
    )
    t.ok(new Set(settings.map((row) => row.pid)).size > 1, 'more than one connection')
    t.same(new Set(settings.map((row) => row.jit)), new Set(['off']))
  },
)

t.test('a prepared statement is planned again as its table grows (a plan made on a nearly empty table scanned it whole)', async (t) => {
  const created = await createTestDatabase(t)
  // One connection, so every use below is on the same one, and EXPLAIN EXECUTE sees its
  // statements (PGlite has one session anyway).
  const database = created.url ? openPostgresDatabase({ connectionString: created.url, poolMax: 1 }) : created
  if (created.url) t.teardown(() => database.close())
  const db = database.db
  await sql`create table replan_probe (id integer primary key, payload text not null)`.execute(db)
  await sql`insert into replan_probe values (1, 'one')`.execute(db)
  // Analysed while nearly empty, as a new installation's tables are: the planner then believes
  // their size is what it sees when it plans.
  await sql`analyze replan_probe`.execute(db)
  const read = (id: number) => sql<{ payload: string }>`${sql.raw(preparedStatement)} select payload from replan_probe where id = ${id}`.execute(db)
  const text = `${preparedStatement} select payload from replan_probe where id = $1`
  const planOf = async (name: string) => {
    const { rows } = await sql<{ 'QUERY PLAN': string }>`explain (costs off) execute ${sql.raw(name)}(1)`.execute(db)
    return rows.map((row) => row['QUERY PLAN']).join('\n')
  }
  const first = replanAfterUses[0]
  for (let i = 0; i < 10; i += 1) t.equal((await read(1)).rows[0]?.payload, 'one')
  t.match(await planOf(preparedStatementName(text, 1)), /Seq Scan on replan_probe/, 'the first plan scans the one-page table')
  await sql`insert into replan_probe select n, 'row ' || n from generate_series(2, 50000) as n`.execute(db)
  for (let i = 10; i < first; i += 1) await read(1)
  t.equal(preparedStatementName(text, first), preparedStatementName(text, 1), `uses 1 to ${first}: one name, one plan`)
  // That plan still scans the table: nothing has analysed it since it grew. Reported, not asserted:
  // a shared-invalidation reset (other databases' DDL filling the queue while this backend is busy,
  // as CI's parallel tests do) makes a backend rebuild every cached plan, and once it failed here.
  const kept = await planOf(preparedStatementName(text, first))
  t.comment(/Seq Scan on replan_probe/.test(kept) ? 'the plan made on the one-row table is kept' : `the plan was rebuilt from outside: ${kept}`)
  t.equal((await read(40000)).rows[0]?.payload, 'row 40000', `use ${first + 1} prepares it again`)
  t.not(preparedStatementName(text, first + 1), preparedStatementName(text, first))
  t.match(await planOf(preparedStatementName(text, first + 1)), /Index Scan using replan_probe_pkey/, 'planned again: the index')
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_prepared_statements where statement = ${text}`.execute(db)
  if (testBackend === 'postgres') t.equal(rows[0]!.n, 2, 'two names for it on this connection so far')
  // PGlite's session lives as long as the process: the older plan is closed.
  else t.equal(rows[0]!.n, 1, 'the older name is closed')
})

t.test('prepared and unprepared runs of a statement give the same values and errors', async (t) => {
  const database = await createTestDatabase(t)
  const db = database.db
  await sql`create table prepared_probe (id int8 primary key, at timestamptz, doc jsonb, bytes bytea, tags text[])`.execute(db)
  const insert = (id: number, doc: unknown) =>
    sql`${sql.raw(preparedStatement)} insert into prepared_probe values (${id}, ${new Date(Date.UTC(2026, 0, 2, 3, 4, 5, id))}, ${JSON.stringify(doc)},
      ${Buffer.from([id, 0, 255])}, ${['a', `t${id}`]}) returning id`.execute(db)
  const read = (ids: number[]) =>
    sql<Record<string, unknown>>`${sql.raw(preparedStatement)} select id, at, doc, bytes, tags, ${null}::text as nothing
      from prepared_probe where id = any(${ids}) order by id`.execute(db)
  for (let id = 1; id <= 4; id += 1) t.same((await insert(id, { id })).rows, [{ id }])
  const first = (await read([1, 2, 3, 4])).rows // prepared from the first use (marked)
  const unprepared = (await sql<Record<string, unknown>>`select id, at, doc, bytes, tags, null::text as nothing from prepared_probe order by id`.execute(db))
    .rows
  t.same(first, unprepared)
  t.ok(Buffer.isBuffer(first[0]!['bytes']) && first[0]!['at'] instanceof Date && first[0]!['id'] === 1)
  t.same(first[3]!['doc'], { id: 4 })
  t.same(first[2]!['tags'], ['a', 't3'])
  // A failing run inside a transaction: the transaction rolls back, and the statement (and
  // the session) still work afterwards.
  await t.rejects(
    db.transaction().execute(async (trx) => {
      await sql`${sql.raw(preparedStatement)} insert into prepared_probe values (${5}, null, null, null, null)`.execute(trx)
      await sql`${sql.raw(preparedStatement)} insert into prepared_probe values (${1}, null, null, null, null)`.execute(trx)
    }),
    { code: '23505' },
  )
  t.same(
    (await read([1, 5])).rows.map((row) => row['id']),
    [1],
    'row 5 was rolled back',
  )
  await t.rejects(insert(2, {}), { code: '23505' }, 'a duplicate key, prepared')
  t.same((await insert(6, [1])).rows, [{ id: 6 }], 'the session goes on')
})
