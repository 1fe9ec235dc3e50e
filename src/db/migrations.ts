// Runs the numbered migrations in migrations/. Kysely's Migrator holds a Postgres
// advisory lock (pg_advisory_lock) around one transaction that applies them all, so two
// servers starting at once against one database migrate once: the second waits, then
// finds nothing left to do (test/db/migrations.test.ts races two of them).
import { Migrator, type Kysely, type MigrationResult } from 'kysely'
import { migrations } from '../../migrations/index.js'
import { OrchardError } from '../errors.js'

export interface MigrationStatus {
  applied: string[]
  pending: string[]
}

function migratorFor<DB>(db: Kysely<DB>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } })
}

/** Applies every pending migration; returns the names applied now (empty when current). */
export async function migrateToLatest<DB>(db: Kysely<DB>): Promise<string[]> {
  const { error, results } = await migratorFor(db).migrateToLatest()
  if (error) {
    const failed = results?.find((r: MigrationResult) => r.status === 'Error')?.migrationName
    const where = failed ? ` in migration ${failed}` : ''
    throw new OrchardError('database_unavailable', `database migration failed${where}: ${error instanceof Error ? error.message : JSON.stringify(error)}`, {
      cause: error,
    })
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
}

/** Which known migrations the database has, and which it still lacks. Read-only. */
export async function migrationStatus<DB>(db: Kysely<DB>): Promise<MigrationStatus> {
  const infos = await migratorFor(db).getMigrations()
  return {
    applied: infos.filter((m) => m.executedAt !== undefined).map((m) => m.name),
    pending: infos.filter((m) => m.executedAt === undefined).map((m) => m.name),
  }
}

export const knownMigrations: readonly string[] = Object.keys(migrations).sort()
