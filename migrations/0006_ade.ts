// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Automated Device Enrollment: ABM/ASM server tokens (key pair for the token exchange,
// sealed OAuth credentials, sync cursor and lease, status an admin can read), PreStage
// (DEP) profiles, the devices Apple assigned to us, and where an ADE identity came from.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // One row per "MDM server" in Apple's portal. The key pair is ours (the admin uploads its
  // certificate to Apple, which encrypts the server token to it); the OAuth credentials
  // come from that token. Secrets are sealed with the master key, bound to the row id.
  await sql`
    create table dep_tokens (
      id text primary key check (id ~ '^[0-9a-f-]{36}$'),
      name text not null check (length(name) between 1 and 200),
      exchange_certificate_der bytea not null,
      exchange_private_key_sealed bytea not null,
      credentials_sealed bytea,
      access_token_expiry timestamptz,
      token_uploaded_at timestamptz,
      -- GET /account, as Apple answered it.
      server_name text,
      server_uuid text,
      org_name text,
      account jsonb,
      -- fetch: a full fetch runs (cursor continues it); sync: deltas from the cursor.
      sync_phase text not null default 'fetch' check (sync_phase in ('fetch', 'sync')),
      cursor text check (length(cursor) <= 4096),
      last_fetch_completed_at timestamptz,
      last_sync_at timestamptz,
      -- One syncer per token across replicas: a lease taken with a conditional update.
      sync_lease_owner text,
      sync_lease_until timestamptz,
      status text not null default 'awaiting_token'
        check (status in ('awaiting_token', 'ok', 'terms_not_signed', 'token_rejected', 'token_expired', 'throttled', 'error')),
      status_detail text check (length(status_detail) <= 2000),
      status_at timestamptz not null default now(),
      retry_after timestamptz,
      default_profile_id text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((credentials_sealed is null) = (token_uploaded_at is null)),
      check ((sync_lease_owner is null) = (sync_lease_until is null))
    )`.execute(db)
  await sql`create unique index dep_tokens_name_key on dep_tokens (name)`.execute(db)

  // PreStage profiles: the DEP profile JSON we define at Apple (profile), plus Orchard's own
  // settings: the kind of the devices, a minimum OS, and commands queued at enrollment.
  await sql`
    create table dep_profiles (
      id text primary key check (id ~ '^[0-9a-f-]{36}$'),
      token_id text not null references dep_tokens (id) on delete cascade,
      name text not null check (length(name) between 1 and 200),
      profile jsonb not null,
      device_kind text not null default 'work' check (device_kind in ('work', 'function')),
      minimum_os_version text check (minimum_os_version ~ '^[0-9]+(\\.[0-9]+){0,2}$'),
      enrollment_commands jsonb not null default '[]',
      -- Apple's UUID of the definition in use; null until defined (or when defining failed).
      profile_uuid text check (length(profile_uuid) between 1 and 100),
      defined_at timestamptz,
      define_error text check (length(define_error) <= 2000),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  await sql`create unique index dep_profiles_token_name_key on dep_profiles (token_id, name)`.execute(db)
  // ADE enrollment finds the PreStage a device's profile_uuid belongs to.
  await sql`create index dep_profiles_profile_uuid_idx on dep_profiles (profile_uuid) where profile_uuid is not null`.execute(db)
  await sql`alter table dep_tokens add constraint dep_tokens_default_profile_fk foreign key (default_profile_id) references dep_profiles (id) on delete set null`.execute(db)

  // Devices Apple assigned to one of our tokens (a serial is in one MDM server at a time).
  // Rows stay when Apple reports them deleted (removed_at), so history and links survive.
  await sql`
    create table dep_devices (
      serial_number text primary key check (length(serial_number) between 1 and 64),
      token_id text not null references dep_tokens (id) on delete cascade,
      model text,
      description text,
      color text,
      asset_tag text,
      os text,
      device_family text,
      profile_status text,
      profile_uuid text,
      profile_assign_time timestamptz,
      profile_push_time timestamptz,
      device_assigned_by text,
      device_assigned_date timestamptz,
      op_type text check (op_type in ('added', 'modified', 'deleted')),
      op_date timestamptz,
      removed_at timestamptz,
      raw jsonb not null,
      -- Orchard's assignment of a PreStage and Apple's answer for this device.
      assigned_profile_id text references dep_profiles (id) on delete set null,
      assign_status text check (assign_status in ('SUCCESS', 'NOT_ACCESSIBLE', 'FAILED', 'THROTTLED')),
      assign_detail text check (length(assign_detail) <= 2000),
      assigned_at timestamptz,
      assign_retry_at timestamptz,
      -- The enrolled device (UDID) once this serial enrolls through ADE.
      device_id text,
      first_seen_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((assign_status = 'THROTTLED') = (assign_retry_at is not null))
    )`.execute(db)
  // The per-token device list (paged by serial).
  await sql`create index dep_devices_token_idx on dep_devices (token_id, serial_number)`.execute(db)
  // The retry sweep of throttled assignments.
  await sql`create index dep_devices_assign_retry_idx on dep_devices (assign_retry_at) where assign_retry_at is not null`.execute(db)
  await sql`create index dep_devices_device_idx on dep_devices (device_id) where device_id is not null`.execute(db)

  // An ADE enrollment's challenge (and the identity issued with it) names the PreStage and
  // serial, so Authenticate can give the device its kind and link it to its DEP record.
  await sql`
    alter table scep_challenges
      add column dep_profile_id text references dep_profiles (id) on delete set null,
      add column ade_serial_number text`.execute(db)
  await sql`
    alter table issued_certificates
      add column dep_profile_id text,
      add column ade_serial_number text`.execute(db)
  await sql`alter table devices add column dep_profile_id text references dep_profiles (id) on delete set null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table devices drop column dep_profile_id`.execute(db)
  await sql`alter table issued_certificates drop column ade_serial_number, drop column dep_profile_id`.execute(db)
  await sql`alter table scep_challenges drop column ade_serial_number, drop column dep_profile_id`.execute(db)
  await sql`drop table dep_devices`.execute(db)
  await sql`alter table dep_tokens drop constraint dep_tokens_default_profile_fk`.execute(db)
  await sql`drop table dep_profiles`.execute(db)
  await sql`drop table dep_tokens`.execute(db)
}
