// Frozen: never edit a migration that has landed; add a new numbered one instead.
// A legacy-profile declaration (com.apple.configuration.legacy, .legacy.interactive) may name a
// profile of the library instead of a ProfileURL: Orchard serves that profile to the devices
// whose set carries the declaration, at a URL it signs per device. The profile cannot be deleted
// while a declaration names it.
// https://developer.apple.com/documentation/devicemanagement/legacyprofile
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table declarations add column profile_id uuid references library_profiles (id) on delete restrict`.execute(db)
  await sql`
    alter table declarations add constraint declarations_profile_type_check
      check (profile_id is null or type in ('com.apple.configuration.legacy', 'com.apple.configuration.legacy.interactive'))`.execute(db)
  await sql`create index declarations_profile_idx on declarations (profile_id) where profile_id is not null`.execute(db)
}
