// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Declarative management on user channels (a macOS user's, a Shared iPad user's): a
// declaration is for the device channel or for the user channels of the devices its blueprints
// reach; each user channel has its own computed set (served to its DDM check-ins from one
// indexed read) and its own status items and declaration states.
// https://developer.apple.com/documentation/devicemanagement/declarativemanagement
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table declarations add column channel text not null default 'device' check (channel in ('device', 'user'))`.execute(db)

  // The user channel's effective set as last computed, as device_declaration_sets is the device's.
  await sql`
    create table user_channel_declaration_sets (
      enrollment_id text primary key references enrollments (id) on delete cascade,
      device_id text not null references devices (id) on delete cascade,
      declarations_token text not null check (length(declarations_token) between 1 and 100),
      items jsonb not null check (jsonb_typeof(items) = 'array'),
      changed_at timestamptz not null default now(),
      sent_token text check (length(sent_token) <= 100),
      sent_at timestamptz
    )`.execute(db)
  await sql`create index user_channel_declaration_sets_device_idx on user_channel_declaration_sets (device_id)`.execute(db)

  await sql`
    create table user_channel_status_items (
      enrollment_id text not null references enrollments (id) on delete cascade,
      item text not null check (length(item) between 1 and 200),
      value jsonb not null,
      updated_at timestamptz not null default now(),
      primary key (enrollment_id, item)
    )`.execute(db)

  await sql`
    create table user_channel_declaration_status (
      enrollment_id text not null references enrollments (id) on delete cascade,
      identifier text not null check (length(identifier) between 1 and 300),
      kind text not null check (kind in ('activation', 'asset', 'configuration', 'management')),
      server_token text check (length(server_token) <= 300),
      active boolean not null,
      valid text not null check (valid in ('valid', 'invalid', 'unknown')),
      reasons jsonb,
      updated_at timestamptz not null default now(),
      primary key (enrollment_id, identifier)
    )`.execute(db)
}
