// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Device lifecycle: every device has a kind (personal, work, function), a lifecycle state
// (active, lost, wipe pending, wiped, retired), the lifecycle actions taken on it with the
// commands each one queued, and the locations it reported in Lost Mode.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // A User Enrollment is personal by definition; a device of unknown origin is a work device
  // (the open enrollment profile, Apple Configurator) until an admin says otherwise.
  await sql`update devices set kind = case when user_enrollment then 'personal' else 'work' end where kind is null or user_enrollment`.execute(db)
  await sql`alter table devices alter column kind set default 'work'`.execute(db)
  await sql`alter table devices alter column kind set not null`.execute(db)
  await sql`alter table devices add constraint devices_user_enrollment_is_personal check (not user_enrollment or kind = 'personal')`.execute(db)

  await sql`alter table devices add column lifecycle_state text not null default 'active' check (lifecycle_state in ('active', 'lost', 'wipe_pending', 'wiped', 'retired'))`.execute(db)
  await sql`alter table devices add column lifecycle_changed_at timestamptz`.execute(db)
  await sql`alter table devices add column wiped_at timestamptz`.execute(db)
  await sql`alter table devices add column retired_at timestamptz`.execute(db)
  // The device list's lifecycle filter (lost devices of a tenant); active is the common case.
  await sql`create index devices_lifecycle_idx on devices (tenant_id, lifecycle_state) where lifecycle_state <> 'active'`.execute(db)

  await sql`
    create table lifecycle_actions (
      id uuid primary key,
      device_id text not null references devices (id) on delete cascade,
      tenant_id text,
      action text not null check (action in ('lost', 'found', 'locate', 'erase', 'selective_wipe', 'reinstall', 'retire', 'kind_changed')),
      status text not null check (status in ('pending', 'completed', 'failed', 'cancelled')),
      principal_id text check (length(principal_id) <= 300),
      principal_name text check (length(principal_name) <= 300),
      request_id text check (length(request_id) <= 200),
      -- [{command_uuid, request_type, item?}]: what the action queued, in order.
      commands jsonb not null default '[]'::jsonb check (jsonb_typeof(commands) = 'array'),
      details jsonb,
      created_at timestamptz not null default now(),
      completed_at timestamptz,
      check ((status = 'pending') = (completed_at is null))
    )`.execute(db)
  // A device's lifecycle timeline, newest first.
  await sql`create index lifecycle_actions_device_idx on lifecycle_actions (device_id, created_at desc)`.execute(db)
  // One wipe at a time: a second erase, selective wipe or reinstall waits for the first.
  await sql`create unique index lifecycle_actions_one_wipe_key on lifecycle_actions (device_id) where status = 'pending' and action in ('erase', 'selective_wipe', 'reinstall')`.execute(db)
  // Results find the pending action a command belongs to.
  await sql`create index lifecycle_actions_pending_idx on lifecycle_actions using gin (commands jsonb_path_ops) where status = 'pending'`.execute(db)

  await sql`
    create table device_locations (
      id bigint generated always as identity primary key,
      device_id text not null references devices (id) on delete cascade,
      command_uuid text,
      latitude double precision not null check (latitude between -90 and 90),
      longitude double precision not null check (longitude between -180 and 180),
      horizontal_accuracy double precision,
      vertical_accuracy double precision,
      altitude double precision,
      speed double precision,
      course double precision,
      located_at timestamptz,
      received_at timestamptz not null default now()
    )`.execute(db)
  await sql`create index device_locations_device_idx on device_locations (device_id, id desc)`.execute(db)
}
