// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Migrations import nothing from src/: they describe the schema as it was at their time.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // Installation-wide settings (one row per key). The first row identifies this
  // installation; it is exported as a label of the orchard_info metric.
  await db.schema
    .createTable('server_settings')
    .addColumn('key', 'text', (c) => c.primaryKey().check(sql`key ~ '^[a-z][a-z0-9_.]{0,99}$'`))
    .addColumn('value', 'jsonb', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  await sql`insert into server_settings (key, value) values ('installation_id', to_jsonb(gen_random_uuid()::text))`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('server_settings').execute()
}
