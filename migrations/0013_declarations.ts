// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Declarative device management: the declarations admins write (per tenant), the blueprints
// that carry them, each device's computed declaration set (served to its DDM check-ins from
// one indexed read), and what devices report on the status channel.
// https://developer.apple.com/documentation/devicemanagement/leveraging-the-declarative-management-data-model-to-scale-devices
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table declarations (
      id text primary key check (id ~ '^[0-9a-f-]{36}$'),
      tenant_id text references tenants (id) on delete restrict,
      -- The Identifier devices see; unique per tenant (a device's closest tenant wins a clash).
      identifier text not null check (identifier ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$'),
      type text not null check (type ~ '^com[.]apple[.][a-z0-9.-]{1,200}$'),
      kind text not null check (kind in ('activation', 'asset', 'configuration', 'management')),
      name text check (length(name) <= 200),
      payload jsonb not null check (jsonb_typeof(payload) = 'object'),
      -- Changes exactly when the content (type and payload) changes: a hash of it.
      server_token text not null check (length(server_token) between 1 and 100),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  await sql`create unique index declarations_identifier_idx on declarations (coalesce(tenant_id, ''), identifier)`.execute(db)

  await sql`
    create table blueprint_declarations (
      blueprint_id uuid not null references blueprints (id) on delete cascade,
      declaration_id text not null references declarations (id) on delete restrict,
      primary key (blueprint_id, declaration_id)
    )`.execute(db)
  await sql`create index blueprint_declarations_declaration_idx on blueprint_declarations (declaration_id)`.execute(db)

  // The device's effective declaration set as last computed: the manifest it is served, the
  // declarations behind it, and the DeclarationsToken (a hash of the manifest).
  await sql`
    create table device_declaration_sets (
      device_id text primary key references devices (id) on delete cascade,
      declarations_token text not null check (length(declarations_token) between 1 and 100),
      items jsonb not null check (jsonb_typeof(items) = 'array'),
      changed_at timestamptz not null default now(),
      -- The token last sent in a DeclarativeManagement command (null: none sent yet).
      sent_token text check (length(sent_token) <= 100),
      sent_at timestamptz
    )`.execute(db)

  // The status channel: the latest value of each status item per device.
  await sql`
    create table device_status_items (
      device_id text not null references devices (id) on delete cascade,
      item text not null check (length(item) between 1 and 200),
      value jsonb not null,
      updated_at timestamptz not null default now(),
      primary key (device_id, item)
    )`.execute(db)

  // management.declarations, one row per declaration the device reported.
  await sql`
    create table device_declaration_status (
      device_id text not null references devices (id) on delete cascade,
      identifier text not null check (length(identifier) between 1 and 300),
      kind text not null check (kind in ('activation', 'asset', 'configuration', 'management')),
      server_token text check (length(server_token) <= 300),
      active boolean not null,
      valid text not null check (valid in ('valid', 'invalid', 'unknown')),
      reasons jsonb,
      updated_at timestamptz not null default now(),
      primary key (device_id, identifier)
    )`.execute(db)
}
