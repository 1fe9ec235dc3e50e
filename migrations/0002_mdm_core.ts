// Frozen: never edit a migration that has landed; add a new numbered one instead.
// The MDM protocol core: devices, their enrollment channels, certificate binding, the
// command queue with per-target results, inventory, bootstrap tokens and DDM status.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // One row per device channel ID: the UDID, or the EnrollmentID of a User Enrollment.
  await sql`
    create table devices (
      id text primary key check (length(id) between 1 and 200),
      udid text,
      enrollment_id text,
      user_enrollment boolean not null default false,
      serial_number text,
      imei text,
      meid text,
      model text,
      model_name text,
      product_name text,
      device_name text,
      os_version text,
      build_version text,
      topic text,
      -- Certificate binding: hex SHA-256 of the identity certificate the device authenticated with.
      identity_sha256 text check (identity_sha256 ~ '^[0-9a-f]{64}$'),
      identity_not_after timestamptz,
      authenticate_raw bytea,
      authenticated_at timestamptz,
      is_supervised boolean,
      device_information jsonb,
      device_information_at timestamptz,
      security_info jsonb,
      security_info_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check (udid is not null or enrollment_id is not null)
    )`.execute(db)
  // A certificate identifies exactly one device (no impersonation): also the lookup on every request.
  await sql`create unique index devices_identity_sha256_key on devices (identity_sha256) where identity_sha256 is not null`.execute(db)
  await sql`create index devices_serial_number_idx on devices (serial_number) where serial_number is not null`.execute(db)

  // Channels: the device channel (id = device id) and user channels (macOS users, Shared
  // iPad users, User Enrollment users), each with its own push token and command queue.
  await sql`
    create table enrollments (
      id text primary key check (length(id) between 1 and 400),
      device_id text not null references devices (id) on delete cascade,
      channel text not null check (channel in ('device', 'user')),
      user_id text,
      user_short_name text,
      user_long_name text,
      enabled boolean not null default false,
      topic text,
      push_token bytea,
      push_magic text,
      unlock_token bytea,
      awaiting_configuration boolean not null default false,
      token_update_count integer not null default 0 check (token_update_count >= 0),
      token_updated_at timestamptz,
      -- A NotNow arrived since the last Idle: until the next Idle, offer only never-answered commands.
      not_now_this_session boolean not null default false,
      last_seen_at timestamptz,
      checked_out_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((channel = 'device') = (id = device_id))
    )`.execute(db)
  await sql`create index enrollments_device_id_idx on enrollments (device_id)`.execute(db)

  // A command is stored once, with the exact plist bytes sent to every target.
  await sql`
    create table commands (
      uuid text primary key check (length(uuid) between 1 and 200),
      request_type text not null check (request_type ~ '^[A-Za-z][A-Za-z0-9]{0,99}$'),
      payload bytea not null,
      priority smallint not null default 0 check (priority between -100 and 100),
      expires_at timestamptz,
      created_at timestamptz not null default now()
    )`.execute(db)

  // The queue and the results: one row per (target enrollment, command).
  await sql`
    create table command_targets (
      enrollment_id text not null references enrollments (id) on delete cascade,
      command_uuid text not null references commands (uuid) on delete cascade,
      seq bigint generated always as identity,
      status text not null default 'Pending'
        check (status in ('Pending', 'NotNow', 'Acknowledged', 'Error', 'CommandFormatError', 'Expired', 'Cancelled')),
      priority smallint not null default 0,
      expires_at timestamptz,
      not_now_count integer not null default 0 check (not_now_count >= 0),
      last_not_now_at timestamptz,
      delivery_count integer not null default 0 check (delivery_count >= 0),
      first_delivered_at timestamptz,
      last_delivered_at timestamptz,
      result_at timestamptz,
      result_raw bytea,
      error_chain jsonb,
      cancel_reason text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (enrollment_id, command_uuid)
    )`.execute(db)
  // Serves "next command for this enrollment": only open rows, already in delivery order,
  // so its cost does not grow with the rest of the queue or the history.
  await sql`
    create index command_targets_next_idx on command_targets (enrollment_id, priority desc, seq)
    where status in ('Pending', 'NotNow')`.execute(db)
  // Serves "targets of one command" (per-target status, cancel).
  await sql`create index command_targets_command_uuid_idx on command_targets (command_uuid)`.execute(db)

  await sql`
    create table bootstrap_tokens (
      device_id text primary key references devices (id) on delete cascade,
      token bytea not null check (length(token) > 0),
      updated_at timestamptz not null default now()
    )`.execute(db)

  // Inventory lists, replaced whole by each query response; keyed by channel so a macOS
  // user's profiles stay apart from the device's.
  await sql`
    create table installed_applications (
      enrollment_id text not null references enrollments (id) on delete cascade,
      identifier text not null,
      name text,
      version text,
      short_version text,
      bundle_size bigint,
      is_managed boolean,
      attributes jsonb not null,
      updated_at timestamptz not null default now(),
      primary key (enrollment_id, identifier)
    )`.execute(db)
  await sql`
    create table installed_profiles (
      enrollment_id text not null references enrollments (id) on delete cascade,
      identifier text not null,
      uuid text,
      display_name text,
      is_managed boolean,
      attributes jsonb not null,
      updated_at timestamptz not null default now(),
      primary key (enrollment_id, identifier)
    )`.execute(db)
  await sql`
    create table installed_certificates (
      enrollment_id text not null references enrollments (id) on delete cascade,
      sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
      common_name text,
      is_identity boolean,
      data bytea not null,
      updated_at timestamptz not null default now(),
      primary key (enrollment_id, sha256)
    )`.execute(db)

  await sql`
    create table ddm_status_reports (
      id bigint generated always as identity primary key,
      enrollment_id text not null references enrollments (id) on delete cascade,
      report jsonb not null,
      received_at timestamptz not null default now()
    )`.execute(db)
  // Serves "latest status reports of an enrollment".
  await sql`create index ddm_status_reports_enrollment_idx on ddm_status_reports (enrollment_id, received_at desc)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['ddm_status_reports', 'installed_certificates', 'installed_profiles', 'installed_applications', 'bootstrap_tokens', 'command_targets', 'commands', 'enrollments', 'devices']) {
    await db.schema.dropTable(table).execute()
  }
}
