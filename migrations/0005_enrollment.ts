// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Enrollment: the device CA (generated or imported, keys sealed at rest) and extra trusted
// CAs, enrollment links, one-time SCEP challenges, every certificate issued with what
// allowed it, where each device came from, and identity renewal bookkeeping.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // Every CA whose certificates identify devices. Rows with a key can issue; exactly one
  // (the active one) issues now. Certificates from older issuing CAs and from 'trusted'
  // CAs (another MDM's, after a migration) stay valid identities.
  await sql`
    create table certificate_authorities (
      id text primary key check (id ~ '^[0-9a-f]{64}$'),
      certificate_der bytea not null,
      subject text not null,
      not_before timestamptz not null,
      not_after timestamptz not null,
      source text not null check (source in ('generated', 'imported', 'trusted')),
      private_key_sealed bytea,
      -- An RSA registration authority for SCEP when the CA key cannot decrypt (EC).
      ra_certificate_der bytea,
      ra_private_key_sealed bytea,
      active boolean not null default false,
      created_at timestamptz not null default now(),
      check ((source = 'trusted') = (private_key_sealed is null)),
      check (not active or private_key_sealed is not null),
      check ((ra_certificate_der is null) = (ra_private_key_sealed is null))
    )`.execute(db)
  await sql`create unique index certificate_authorities_one_active_key on certificate_authorities (active) where active`.execute(db)

  // Links are revoked, never deleted: issued certificates and devices keep pointing at them.
  await sql`
    create table enrollment_links (
      id text primary key check (id ~ '^[0-9a-f-]{36}$'),
      token text not null check (token ~ '^[A-Za-z0-9_-]{32,64}$'),
      name text not null check (length(name) between 1 and 200),
      enrollment_type text not null check (enrollment_type in ('device', 'user_enrollment')),
      device_kind text not null check (device_kind in ('personal', 'work', 'function')),
      group_name text check (length(group_name) between 1 and 200),
      managed_apple_id text check (length(managed_apple_id) between 3 and 320),
      push_topic text check (push_topic like 'com.apple.mgmt.%'),
      expires_at timestamptz,
      max_uses integer check (max_uses > 0),
      uses integer not null default 0 check (uses >= 0),
      revoked_at timestamptz,
      created_at timestamptz not null default now(),
      check (max_uses is null or uses <= max_uses),
      -- A User Enrollment device is a personal device.
      check (enrollment_type = 'device' or device_kind = 'personal')
    )`.execute(db)
  await sql`create unique index enrollment_links_token_key on enrollment_links (token)`.execute(db)
  await sql`create index enrollment_links_created_idx on enrollment_links (created_at, id)`.execute(db)

  // One-time SCEP challenges; only their SHA-256 is stored.
  await sql`
    create table scep_challenges (
      challenge_sha256 bytea primary key check (length(challenge_sha256) = 32),
      purpose text not null check (purpose in ('enrollment', 'renewal')),
      enrollment_link_id text references enrollment_links (id),
      device_id text references devices (id) on delete cascade,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      used_at timestamptz,
      check ((purpose = 'renewal') = (device_id is not null))
    )`.execute(db)
  await sql`create index scep_challenges_expires_idx on scep_challenges (expires_at)`.execute(db)

  // History: no foreign keys to rows that may be pruned or forgotten (challenges, devices).
  await sql`
    create table issued_certificates (
      serial_number text primary key check (serial_number ~ '^[0-9a-f]{2,64}$'),
      ca_sha256 text not null check (ca_sha256 ~ '^[0-9a-f]{64}$'),
      sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
      subject text not null,
      public_key_sha256 text not null,
      not_before timestamptz not null,
      not_after timestamptz not null,
      authorized_by text not null check (authorized_by in ('static_challenge', 'challenge', 'renewal')),
      challenge_sha256 bytea,
      renewal_of_sha256 text,
      enrollment_link_id text references enrollment_links (id),
      -- The device a renewal was for (renewal challenge or signing identity).
      device_id text,
      transaction_id text not null,
      certificate_der bytea not null,
      created_at timestamptz not null default now(),
      check ((authorized_by = 'challenge') = (challenge_sha256 is not null)),
      check (authorized_by <> 'renewal' or renewal_of_sha256 is not null or device_id is not null)
    )`.execute(db)
  // Authenticate looks the presented certificate up here.
  await sql`create unique index issued_certificates_sha256_key on issued_certificates (sha256)`.execute(db)
  // A client retrying a transaction whose answer it lost gets the same certificate.
  await sql`create index issued_certificates_challenge_idx on issued_certificates (challenge_sha256) where challenge_sha256 is not null`.execute(db)
  await sql`create index issued_certificates_created_idx on issued_certificates (created_at, serial_number)`.execute(db)

  await sql`
    alter table devices
      add column enrollment_link_id text references enrollment_links (id),
      add column enrollment_group text,
      add column kind text check (kind in ('personal', 'work', 'function')),
      add column identity_renewal_queued_at timestamptz,
      add column identity_renewal_command_uuid text`.execute(db)
  // No index on identity_not_after: the hourly renewal sweep and the expiring-identities
  // list scan devices, which is cheap at 100k rows, while an extra index on this often
  // updated table (inventory results) measurably slowed command reports (bench: ~10%).
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    alter table devices
      drop column identity_renewal_command_uuid,
      drop column identity_renewal_queued_at,
      drop column kind,
      drop column enrollment_group,
      drop column enrollment_link_id`.execute(db)
  await sql`drop table issued_certificates`.execute(db)
  await sql`drop table scep_challenges`.execute(db)
  await sql`drop table enrollment_links`.execute(db)
  await sql`drop table certificate_authorities`.execute(db)
}
