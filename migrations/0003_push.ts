// Frozen: never edit a migration that has landed; add a new numbered one instead.
// APNs push: push certificates per topic, and per-enrollment push state and re-push schedule.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table push_certificates (
      topic text primary key check (topic ~ '^com\\.apple\\.mgmt\\.[A-Za-z0-9._:-]{1,200}$'),
      certificate_pem text not null,
      -- The private key, sealed with the configured master key (AES-256-GCM envelope).
      private_key_sealed bytea not null,
      serial_number text not null,
      subject text not null,
      sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
      not_before timestamptz not null,
      not_after timestamptz not null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)

  await sql`alter table enrollments
    add column push_invalid_at timestamptz,
    add column push_invalid_reason text,
    add column last_push_at timestamptz,
    add column last_push_result text,
    add column last_push_apns_id text,
    add column repush_count integer not null default 0 check (repush_count >= 0),
    add column next_repush_at timestamptz`.execute(db)
  // Serves the orphan count of the renewal guard (enrolled channels per topic).
  await sql`create index enrollments_topic_idx on enrollments (topic) where enabled`.execute(db)
  // Serves the re-push loop: enabled channels with a valid token whose next re-push is due.
  await sql`create index enrollments_repush_idx on enrollments (next_repush_at) where enabled and push_invalid_at is null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index enrollments_repush_idx`.execute(db)
  await sql`drop index enrollments_topic_idx`.execute(db)
  await sql`alter table enrollments
    drop column push_invalid_at, drop column push_invalid_reason, drop column last_push_at, drop column last_push_result,
    drop column last_push_apns_id, drop column repush_count, drop column next_repush_at`.execute(db)
  await db.schema.dropTable('push_certificates').execute()
}
