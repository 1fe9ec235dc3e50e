// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Apps and Books (VPP) content tokens per tenant, and what Apple holds for each location:
// the assets (licence counts) and the device assignments, as of the last sync.
// https://developer.apple.com/documentation/devicemanagement/app-and-book-management
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table vpp_tokens (
      id text primary key check (id ~ '^[0-9a-f-]{36}$'),
      tenant_id text references tenants (id) on delete restrict,
      name text not null check (length(name) between 1 and 200),
      -- The sToken (the .vpptoken file's content), sealed with the master key.
      token_sealed bytea not null check (length(token_sealed) > 0),
      -- Read from the file: the organisation and the expiry Apple wrote into it.
      org_name text check (length(org_name) <= 500),
      expires_at timestamptz,
      -- From Apple's client configuration: the location this token belongs to.
      location_uid text check (length(location_uid) between 1 and 100),
      location_name text check (length(location_name) <= 500),
      country_code text check (length(country_code) <= 10),
      -- The claim another server (or we) left on the location; ours names this installation.
      client_context text check (length(client_context) <= 4000),
      -- An organisation's token also licenses the devices of its departments.
      serves_sub_tenants boolean not null default false,
      status text not null default 'pending'
        check (status in ('pending', 'ok', 'claimed_elsewhere', 'token_expired', 'token_revoked', 'token_rejected', 'throttled', 'error')),
      status_detail text check (length(status_detail) <= 2000),
      status_at timestamptz not null default now(),
      retry_after timestamptz,
      last_sync_at timestamptz,
      -- One syncer per token across replicas, as for ABM tokens.
      sync_lease_owner text,
      sync_lease_until timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((sync_lease_owner is null) = (sync_lease_until is null))
    )`.execute(db)
  // A location is claimed by one token row: renewal replaces the token of that row.
  await sql`create unique index vpp_tokens_location_key on vpp_tokens (location_uid) where location_uid is not null`.execute(db)
  await sql`create unique index vpp_tokens_name_key on vpp_tokens (coalesce(tenant_id, ''), lower(name))`.execute(db)
  await sql`create index vpp_tokens_tenant_idx on vpp_tokens (tenant_id)`.execute(db)

  await sql`
    create table vpp_assets (
      token_id text not null references vpp_tokens (id) on delete cascade,
      adam_id text not null check (adam_id ~ '^[0-9]{1,20}$'),
      pricing_param text not null check (length(pricing_param) between 1 and 20),
      product_type text not null check (length(product_type) between 1 and 50),
      total_count integer not null check (total_count >= 0),
      assigned_count integer not null check (assigned_count >= 0),
      available_count integer not null check (available_count >= 0),
      retired_count integer not null check (retired_count >= 0),
      device_assignable boolean not null,
      revocable boolean not null,
      supported_platforms jsonb not null default '[]',
      synced_at timestamptz not null,
      primary key (token_id, adam_id, pricing_param)
    )`.execute(db)

  // Device assignments only: user-based ones (clientUserId) are not kept.
  await sql`
    create table vpp_assignments (
      token_id text not null references vpp_tokens (id) on delete cascade,
      adam_id text not null check (adam_id ~ '^[0-9]{1,20}$'),
      pricing_param text not null check (length(pricing_param) between 1 and 20),
      serial_number text not null check (length(serial_number) between 1 and 64),
      synced_at timestamptz not null,
      primary key (token_id, adam_id, pricing_param, serial_number)
    )`.execute(db)
  // Which licences a device holds (revoking follows the device; the nightly reconcile).
  await sql`create index vpp_assignments_serial_idx on vpp_assignments (serial_number)`.execute(db)

  // Orchard's side of a device's licence for an asset: wanted (to be associated), assigning
  // (associate sent, Apple's event open), assigned, failed (with Apple's reason or no_licence),
  // releasing (to be disassociated: the device no longer needs it), revoking (disassociate
  // sent). The serial is the one the licence was asked for.
  await sql`
    create table vpp_licences (
      device_id text not null references devices (id) on delete cascade,
      adam_id text not null check (adam_id ~ '^[0-9]{1,20}$'),
      serial_number text not null check (length(serial_number) between 1 and 64),
      token_id text references vpp_tokens (id) on delete set null,
      pricing_param text,
      state text not null check (state in ('wanted', 'assigning', 'assigned', 'failed', 'releasing', 'revoking')),
      event_id text check (length(event_id) <= 200),
      detail text check (length(detail) <= 2000),
      updated_at timestamptz not null default now(),
      primary key (device_id, adam_id),
      check (state not in ('assigning', 'revoking') or (event_id is not null and token_id is not null))
    )`.execute(db)
  // The licence worker: wanted rows in order, open events.
  await sql`create index vpp_licences_wanted_idx on vpp_licences (updated_at) where state in ('wanted', 'releasing')`.execute(db)
  // Licences whose device left management, was wiped or moved are found from the devices.
  await sql`create index vpp_licences_device_idx on vpp_licences (device_id) where state = 'assigned'`.execute(db)
  await sql`create index vpp_licences_event_idx on vpp_licences (token_id, event_id) where event_id is not null`.execute(db)
}
