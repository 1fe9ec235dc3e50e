// Gives each test file its own database on the backend this pass runs on
// (ORCHARD_TEST_BACKEND=pglite|postgres, set by scripts/run-tests.ts).
//  - PGlite: an in-memory instance, loaded from a migrated data directory that is built
//    once per migration set and cached in the temp folder (creating one costs seconds).
//  - Postgres: a fresh database cloned from a migrated template database, dropped at the end.
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { databaseFromPglite, openPostgresDatabase, pgliteTypeOptions, type DatabaseHandle } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrations.js'

export type TestBackend = 'pglite' | 'postgres'

export const testBackend: TestBackend = process.env['ORCHARD_TEST_BACKEND'] === 'postgres' ? 'postgres' : 'pglite'

export const postgresAdminUrl = process.env['TEST_DATABASE_URL'] || 'postgres://postgres@127.0.0.1:5432/postgres'

export interface TestDatabase extends DatabaseHandle {
  /** Makes the database unreachable for the handle (dropped / closed), to test outages. */
  kill(): Promise<void>
  /** Postgres only: the URL of this test's own database. */
  readonly url: string | null
}

interface Teardown {
  teardown(fn: () => unknown): void
}

const migrationsDir = new URL('../../migrations/', import.meta.url)

/** Changes whenever a migration file changes, so cached templates are rebuilt. */
export function migrationsHash(): string {
  const hash = createHash('sha256')
  for (const name of readdirSync(migrationsDir).sort()) {
    hash.update(name).update(readFileSync(new URL(name, migrationsDir)))
  }
  return hash.digest('hex').slice(0, 12)
}

export async function createTestDatabase(t: Teardown, options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const migrated = options.migrated ?? true
  const database = testBackend === 'postgres' ? await createPostgresTestDatabase(migrated) : await createPgliteTestDatabase(migrated)
  t.teardown(() => database.close())
  return database
}

async function createPgliteTestDatabase(migrated: boolean): Promise<TestDatabase> {
  const loadDataDir = migrated ? new Blob([await migratedPgliteDump()]) : undefined
  const pglite = await PGlite.create({ ...pgliteTypeOptions, ...(loadDataDir ? { loadDataDir } : {}) })
  const handle = databaseFromPglite(pglite)
  return {
    ...handle,
    url: null,
    async kill() {
      await pglite.close()
    },
  }
}

async function migratedPgliteDump(): Promise<Buffer> {
  const file = join(tmpdir(), `orchard-test-pglite-${migrationsHash()}.tar`)
  if (existsSync(file)) return readFileSync(file)
  const pglite = await PGlite.create(pgliteTypeOptions)
  const handle = databaseFromPglite(pglite)
  await migrateToLatest(handle.db)
  const dump = Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer())
  await handle.close()
  const partial = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`
  writeFileSync(partial, dump)
  renameSync(partial, file) // atomic: parallel test files never read half a file
  return dump
}

async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresAdminUrl })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

function databaseUrl(name: string): string {
  const url = new URL(postgresAdminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

async function ensurePostgresTemplate(): Promise<string> {
  const template = `orchard_tpl_${migrationsHash()}`
  await withAdminClient(async (admin) => {
    // Parallel test files race to build the template: one builds, the rest wait.
    await admin.query(`select pg_advisory_lock(hashtext('orchard-test-template'))`)
    try {
      const exists = await admin.query('select 1 from pg_database where datname = $1', [template])
      if (exists.rowCount) return
      const building = `${template}_building`
      await admin.query(`drop database if exists ${building} with (force)`)
      await admin.query(`create database ${building}`)
      const handle = openPostgresDatabase({ connectionString: databaseUrl(building), poolMax: 1 })
      try {
        await migrateToLatest(handle.db)
      } finally {
        await handle.close()
      }
      await admin.query(`alter database ${building} rename to ${template}`)
      // Templates of older migration sets are of no more use.
      const stale = await admin.query(`select datname from pg_database where datname like 'orchard\\_tpl\\_%' and datname <> $1`, [template])
      for (const row of stale.rows as Array<{ datname: string }>) {
        await admin.query(`drop database if exists ${row.datname} with (force)`)
      }
    } finally {
      await admin.query(`select pg_advisory_unlock(hashtext('orchard-test-template'))`)
    }
  })
  return template
}

async function createPostgresTestDatabase(migrated: boolean): Promise<TestDatabase> {
  const name = `orchard_test_${process.pid}_${randomBytes(4).toString('hex')}`
  const template = migrated ? await ensurePostgresTemplate() : 'template1'
  await withAdminClient(async (admin) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(`create database ${name} template ${template}`)
        return
      } catch (error) {
        // 55006: the template is being copied by another session right now; try again.
        if ((error as { code?: string }).code !== '55006' || attempt >= 20) throw error
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
  })
  const url = databaseUrl(name)
  const handle = openPostgresDatabase({ connectionString: url, poolMax: 5 })
  let dropped = false
  const drop = () =>
    withAdminClient(async (admin) => {
      if (dropped) return
      dropped = true
      await admin.query(`drop database if exists ${name} with (force)`)
    })
  return {
    ...handle,
    url,
    async kill() {
      await drop()
    },
    async close() {
      await handle.close()
      await drop()
    },
  }
}
