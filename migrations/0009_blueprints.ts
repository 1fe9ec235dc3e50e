// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Desired configuration: a library of configuration profiles per tenant, blueprints (named
// sets of profiles and apps, assigned to a tenant, device kinds, enrollment groups or
// devices), and per device the state of each profile and app a blueprint put there.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table library_profiles (
      id uuid primary key,
      tenant_id text references tenants (id) on delete restrict,
      identifier text not null check (length(identifier) between 1 and 500),
      -- The top-level PayloadUUID: a new upload of the same identifier is a new version.
      payload_uuid text not null check (length(payload_uuid) between 1 and 200),
      name text not null check (length(name) between 1 and 500),
      payload_types text[] not null,
      content bytea not null check (length(content) <= 4194304),
      sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  // One profile per identifier in a tenant (central IT's are the '' bucket).
  await sql`create unique index library_profiles_identifier_key on library_profiles (coalesce(tenant_id, ''), identifier)`.execute(db)
  await sql`create index library_profiles_tenant_idx on library_profiles (tenant_id)`.execute(db)

  await sql`
    create table blueprints (
      id uuid primary key,
      tenant_id text references tenants (id) on delete restrict,
      name text not null check (length(name) between 1 and 200),
      description text check (length(description) <= 2000),
      -- Who it applies to, within its tenant (and the tenant's departments; central IT's: every
      -- device). Each list narrows when not empty: kinds AND groups; device_ids adds devices.
      kinds text[] not null default '{}' check (kinds <@ array['personal', 'work', 'function']),
      groups text[] not null default '{}',
      device_ids text[] not null default '{}',
      -- [{bundle_id, manifest_url} | {bundle_id, itunes_store_id}]
      applications jsonb not null default '[]'::jsonb check (jsonb_typeof(applications) = 'array'),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  await sql`create unique index blueprints_name_key on blueprints (coalesce(tenant_id, ''), lower(name))`.execute(db)

  await sql`
    create table blueprint_profiles (
      blueprint_id uuid not null references blueprints (id) on delete cascade,
      profile_id uuid not null references library_profiles (id) on delete restrict,
      primary key (blueprint_id, profile_id)
    )`.execute(db)
  await sql`create index blueprint_profiles_profile_idx on blueprint_profiles (profile_id)`.execute(db)

  // What Orchard put (or is putting) on a device because of a blueprint, by profile
  // identifier or app bundle id: only these are ever removed by convergence; profiles and
  // apps the device got otherwise are left alone.
  await sql`
    create table device_config_state (
      device_id text not null references devices (id) on delete cascade,
      item_type text not null check (item_type in ('profile', 'app')),
      identifier text not null check (length(identifier) between 1 and 500),
      profile_id uuid references library_profiles (id) on delete set null,
      -- The version wanted: a profile's PayloadUUID; for apps, null.
      version text,
      status text not null check (status in ('installing', 'installed', 'removing', 'failed')),
      command_uuid text,
      detail text check (length(detail) <= 2000),
      updated_at timestamptz not null default now(),
      primary key (device_id, item_type, identifier)
    )`.execute(db)
  // Command results find the item their command was for.
  await sql`create index device_config_state_command_idx on device_config_state (command_uuid) where command_uuid is not null`.execute(db)
}
