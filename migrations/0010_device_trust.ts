// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Device trust: a time-limited permission to re-enroll a device with a new identity, and
// device secrets sealed at rest (the UnlockToken of TokenUpdate, the BootstrapToken).
// The clear columns stay only until start-up has sealed what they hold: a migration has no
// master key (ORCHARD_SECRET_KEYS), so the server seals them once it has opened its keys
// (src/device/device-secrets.ts, sealClearSecrets) and empties them.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // Until when an admin of the device's tenant lets a new identity take over the enrollment.
  await sql`alter table devices add column reenrollment_allowed_until timestamptz`.execute(db)

  await sql`alter table enrollments add column unlock_token_sealed bytea check (length(unlock_token_sealed) > 0)`.execute(db)
  // The seal-on-start sweep looks for rows still holding a clear token.
  await sql`create index enrollments_clear_unlock_token_idx on enrollments (id) where unlock_token is not null`.execute(db)

  await sql`alter table bootstrap_tokens add column token_sealed bytea check (length(token_sealed) > 0)`.execute(db)
  await sql`alter table bootstrap_tokens alter column token drop not null`.execute(db)
  await sql`alter table bootstrap_tokens add constraint bootstrap_tokens_token_present check (token is not null or token_sealed is not null)`.execute(db)
}

