// Frozen: never edit a migration that has landed; add a new numbered one instead.
// The newest version of each app that a device has reported, for blueprint apps that update
// themselves: without Apple's metadata API (a developer token), what devices report is what
// Orchard knows of App Store versions. Compared as dotted numbers in the application.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table app_versions (
      bundle_id text primary key check (length(bundle_id) between 1 and 500),
      -- CFBundleShortVersionString as the device reported it (ShortVersion), else Version.
      version text not null check (length(version) between 1 and 100),
      reported_by text references devices (id) on delete set null,
      learned_at timestamptz not null default now()
    )`.execute(db)
  // An update asks which devices have an app (and which version): by bundle id across devices.
  await sql`create index installed_applications_identifier_idx on installed_applications (identifier)`.execute(db)
}
