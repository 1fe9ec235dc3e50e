// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Shared iPad (multi-user): the users a device reported in its last UserList answer, and per
// device when that was, how the last request went, and the SharedDeviceConfiguration last
// sent through Settings with the device's answer. The raw answers stay in command_targets.
// https://developer.apple.com/documentation/devicemanagement/user-list-command
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // users_detail: why the last UserList failed (null after a good answer).
  // configuration_status: pending (queued), acknowledged, error (the command or its item failed: configuration_detail).
  await sql`
    create table shared_ipad_devices (
      device_id text primary key references devices (id) on delete cascade,
      users_reported_at timestamptz,
      users_command_uuid text,
      users_detail text,
      configuration jsonb,
      configuration_command_uuid text,
      configuration_status text check (configuration_status in ('pending', 'acknowledged', 'error')),
      configuration_detail text,
      configuration_sent_at timestamptz,
      configuration_answered_at timestamptz,
      updated_at timestamptz not null default now(),
      constraint shared_ipad_devices_configuration check ((configuration is null) = (configuration_status is null))
    )`.execute(db)
  // One row per user of the last answer; the primary key serves the per-device view and the
  // lookup of one user before DeleteUser. Apple's UsersItem keys; iOS leaves the macOS-only ones out.
  await sql`
    create table shared_ipad_users (
      device_id text not null references devices (id) on delete cascade,
      user_name text not null,
      user_guid text,
      full_name text,
      is_logged_in boolean,
      has_data_to_sync boolean,
      data_quota bigint,
      data_used bigint,
      mobile_account boolean,
      attributes jsonb not null,
      reported_at timestamptz not null,
      primary key (device_id, user_name)
    )`.execute(db)
}
