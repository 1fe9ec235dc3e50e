import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { sql, type Kysely } from 'kysely'
import t from 'tap'
import { migrations } from '../../migrations/index.js'
import { openPostgresDatabase } from '../../src/db/database.js'
import { knownMigrations, migrateToLatest, migrationStatus } from '../../src/db/migrations.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

const migrationsDir = new URL('../../migrations/', import.meta.url)

async function schemaSnapshot(db: Kysely<any>): Promise<unknown[]> {
  const result = await sql<{ table_name: string; column_name: string; data_type: string }>`
    select table_name, column_name, data_type, is_nullable, column_default
    from information_schema.columns where table_schema = 'public'
    order by table_name, ordinal_position`.execute(db)
  return result.rows
}

t.test('a fresh database gets every migration; a second run changes nothing', async (t) => {
  const database = await createTestDatabase(t, { migrated: false })
  t.same(await migrationStatus(database.db), { applied: [], pending: [...knownMigrations] })

  t.same(await migrateToLatest(database.db), [...knownMigrations], 'first run applies all, in order')
  const after = await schemaSnapshot(database.db)
  t.ok(after.length > 0)

  t.same(await migrateToLatest(database.db), [], 'second run applies nothing')
  t.same(await schemaSnapshot(database.db), after, 'schema unchanged by the second run')
  t.same(await migrationStatus(database.db), { applied: [...knownMigrations], pending: [] })
})

t.test('servers migrating at the same moment migrate once', async (t) => {
  const database = await createTestDatabase(t, { migrated: false })
  // On Postgres each migrator gets its own pool, as two server processes would.
  const extra =
    testBackend === 'postgres'
      ? [openPostgresDatabase({ connectionString: database.url!, poolMax: 2 }), openPostgresDatabase({ connectionString: database.url!, poolMax: 2 })]
      : []
  t.teardown(async () => {
    for (const handle of extra) await handle.close()
  })
  const handles = extra.length ? extra : [database, database]
  const results = await Promise.all(handles.map((h) => migrateToLatest(h.db)))
  t.same(results.flat().sort(), [...knownMigrations], 'each migration applied by exactly one of them')
  const count = await sql<{ n: number }>`select count(*)::int as n from kysely_migration`.execute(database.db)
  t.equal(count.rows[0]!.n, knownMigrations.length)
})

t.test('every migration file is listed, in file-name order', async (t) => {
  const files = readdirSync(migrationsDir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.ts$/.test(f))
    .map((f) => f.replace(/\.ts$/, ''))
    .sort()
  t.same(Object.keys(migrations), files)
  t.same(knownMigrations, files)
})

t.test('landed migrations are frozen (migrations/frozen.json holds their hashes)', async (t) => {
  const frozen = JSON.parse(readFileSync(new URL('frozen.json', migrationsDir), 'utf8')) as Record<string, string>
  for (const name of knownMigrations) {
    const hash = createHash('sha256')
      .update(readFileSync(new URL(`${name}.ts`, migrationsDir)))
      .digest('hex')
    t.equal(frozen[name], hash, `${name}.ts is unchanged (a new migration needs its hash added to frozen.json)`)
  }
})
