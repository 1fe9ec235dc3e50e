// Frozen: never edit a migration that has landed; add a new numbered one instead.
// OS update policies per tenant, targeted like blueprints: an exact version by a local date and
// time, or the latest release for each device's model within some days of its release. Devices
// with declarative software updates get an enforcement declaration; older ones the MDM commands.
// https://developer.apple.com/documentation/devicemanagement/softwareupdateenforcementspecific
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table update_policies (
      id uuid primary key,
      tenant_id text references tenants (id) on delete restrict,
      name text not null check (length(name) between 1 and 200),
      mode text not null check (mode in ('specific', 'latest')),
      target_os_version text check (target_os_version ~ '^[0-9]+(\\.[0-9]+){0,3}$'),
      target_build_version text check (length(target_build_version) between 1 and 40),
      -- The device's local date and time (no zone), as the declaration takes it.
      target_local_datetime text check (target_local_datetime ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$'),
      latest_within_days integer check (latest_within_days between 0 and 365),
      details_url text check (details_url ~ '^https://' and length(details_url) <= 2000),
      kinds text[] not null default '{}',
      groups text[] not null default '{}',
      device_ids text[] not null default '{}',
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((mode = 'specific' and target_os_version is not null and target_local_datetime is not null and latest_within_days is null)
        or (mode = 'latest' and latest_within_days is not null and target_os_version is null and target_build_version is null and target_local_datetime is null))
    )`.execute(db)
  await sql`create unique index update_policies_name_idx on update_policies (coalesce(tenant_id, ''), name)`.execute(db)
}
