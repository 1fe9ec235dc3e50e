// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Tenants (departments, optionally inside one organisation), the tenant of everything an
// admin acts on, roles for API keys, the audit log, and device tenancy periods (billing).
// A null tenant_id means central IT: only principals of central IT see such rows.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // Readable ids (they appear in configuration: ORCHARD_OIDC_GROUP_ROLES).
  await sql`
    create table tenants (
      id text primary key check (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
      name text not null check (length(name) between 1 and 200),
      parent_id text references tenants (id) on delete restrict,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check (parent_id is null or parent_id <> id)
    )`.execute(db)
  // Serves the children lookup behind every authenticated request of an organisation's principal.
  await sql`create index tenants_parent_id_idx on tenants (parent_id) where parent_id is not null`.execute(db)
  await sql`create unique index tenants_name_key on tenants (lower(name))`.execute(db)

  for (const table of ['devices', 'enrollment_links', 'commands', 'dep_tokens', 'push_certificates']) {
    await sql`alter table ${sql.table(table)} add column tenant_id text references tenants (id) on delete restrict`.execute(db)
  }
  // Tenant-scoped device lists and reports; the other tables are small or reached by id.
  await sql`create index devices_tenant_idx on devices (tenant_id, id)`.execute(db)
  await sql`create index commands_tenant_idx on commands (tenant_id, created_at, uuid)`.execute(db)
  await sql`create index enrollment_links_tenant_idx on enrollment_links (tenant_id)`.execute(db)
  await sql`create index dep_tokens_tenant_idx on dep_tokens (tenant_id)`.execute(db)
  await sql`create index push_certificates_tenant_idx on push_certificates (tenant_id)`.execute(db)

  // API keys: one role in one tenant (or central IT). read/write/admin become auditor/admin/owner.
  await sql`alter table api_keys add column tenant_id text references tenants (id) on delete restrict`.execute(db)
  await sql`alter table api_keys add column role text`.execute(db)
  await sql`
    update api_keys set role = case
      when 'admin' = any (scopes) then 'owner'
      when 'write' = any (scopes) then 'admin'
      else 'auditor' end`.execute(db)
  await sql`alter table api_keys alter column role set not null`.execute(db)
  await sql`alter table api_keys add constraint api_keys_role_check check (role in ('owner', 'admin', 'helpdesk', 'auditor'))`.execute(db)
  await sql`alter table api_keys add constraint api_keys_owner_is_central check (role <> 'owner' or tenant_id is null)`.execute(db)
  await sql`alter table api_keys drop column scopes`.execute(db)
  await sql`create index api_keys_tenant_idx on api_keys (tenant_id)`.execute(db)

  // Append-only: admin writes (in the transaction of the change) and device-side events.
  // No foreign keys: the log outlives the devices, keys and tenants it names.
  await sql`
    create table audit_events (
      id bigint generated always as identity primary key,
      at timestamptz not null default now(),
      category text not null check (category in ('admin', 'device')),
      tenant_id text,
      principal_id text check (length(principal_id) <= 300),
      principal_name text check (length(principal_name) <= 300),
      principal_source text check (principal_source in ('database', 'config', 'oidc')),
      action text not null check (length(action) between 1 and 100),
      target_type text check (length(target_type) <= 50),
      target_id text check (length(target_id) <= 300),
      device_id text,
      request_id text check (length(request_id) <= 200),
      outcome text not null check (outcome in ('success', 'failure')),
      status_code integer check (status_code between 100 and 599),
      details jsonb,
      check ((category = 'admin') = (principal_id is not null))
    )`.execute(db)
  // GET /api/v1/audit-events: newest first, per tenant or everything; per device (timeline).
  await sql`create index audit_events_tenant_idx on audit_events (tenant_id, id desc)`.execute(db)
  await sql`create index audit_events_device_idx on audit_events (device_id, id desc) where device_id is not null`.execute(db)
  await sql`create index audit_events_at_idx on audit_events (at)`.execute(db)

  // When a device was managed, and in which tenant: opened when it enrolls or moves in,
  // closed when it checks out, is deleted or moves out. Billing counts device-days from it.
  await sql`
    create table device_tenancy (
      id bigint generated always as identity primary key,
      device_id text not null,
      tenant_id text,
      started_at timestamptz not null,
      ended_at timestamptz,
      check (ended_at is null or ended_at >= started_at)
    )`.execute(db)
  await sql`create unique index device_tenancy_open_key on device_tenancy (device_id) where ended_at is null`.execute(db)
  // The billing report: periods of a tenant that overlap the period asked for.
  await sql`create index device_tenancy_tenant_idx on device_tenancy (tenant_id, started_at)`.execute(db)
  // Devices enrolled before this migration: one open period from their enrollment.
  await sql`
    insert into device_tenancy (device_id, tenant_id, started_at)
    select d.id, d.tenant_id, d.created_at
    from devices d join enrollments e on e.device_id = d.id and e.channel = 'device'
    where e.enabled`.execute(db)
}
