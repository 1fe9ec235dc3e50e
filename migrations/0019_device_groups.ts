// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Device groups per tenant: static (a list of devices an admin keeps) or smart (a saved filter
// over inventory, evaluated whenever it is read). Blueprints and update policies target them by
// id; a blueprint may put function devices in kiosk mode. Device search: the person a device
// belongs to, its phone numbers, and prefix indexes for the search parameter of the device list.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table device_groups (
      id uuid primary key,
      tenant_id text references tenants (id) on delete restrict,
      name text not null check (length(name) between 1 and 200),
      description text check (length(description) <= 2000),
      -- null for a static group; a smart group's filter (see src/fleet/device-group-sql.ts).
      filter jsonb check (filter is null or jsonb_typeof(filter) = 'object'),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  await sql`create unique index device_groups_name_key on device_groups (coalesce(tenant_id, ''), lower(name))`.execute(db)
  await sql`create index device_groups_tenant_idx on device_groups (tenant_id)`.execute(db)

  await sql`
    create table device_group_members (
      group_id uuid not null references device_groups (id) on delete cascade,
      device_id text not null references devices (id) on delete cascade,
      added_at timestamptz not null default now(),
      primary key (group_id, device_id)
    )`.execute(db)
  // The groups of one device (its detail, blueprint targeting per device).
  await sql`create index device_group_members_device_idx on device_group_members (device_id)`.execute(db)

  // Blueprints and update policies reach the members of these groups (besides enrollment groups by name).
  await sql`alter table blueprints add column group_ids uuid[] not null default '{}'`.execute(db)
  await sql`alter table update_policies add column group_ids uuid[] not null default '{}'`.execute(db)
  // Kiosk mode of a blueprint for function devices (src/fleet/kiosk-profile.ts): one app or an
  // allow-list; its profile lives in the library as orchard.kiosk.<blueprint id>.
  await sql`alter table blueprints add column kiosk jsonb check (kiosk is null or jsonb_typeof(kiosk) = 'object')`.execute(db)

  // OS versions compared as numbers, padded to three parts: 17.5 = 17.5.0 < 17.10. Null for
  // anything else (betas reported with letters never match a comparison).
  await sql`
    create function orchard_version_parts(version text) returns int[]
    language sql immutable parallel safe as $$
      select case when version ~ '^[0-9]{1,6}(\\.[0-9]{1,6}){0,3}$'
        then (string_to_array(version || '.0.0', '.')::int[])[1:3] end
    $$`.execute(db)
  // Smart groups on installed profiles: the channels holding one (apps have theirs since 0012).
  await sql`create index installed_profiles_identifier_idx on installed_profiles (identifier)`.execute(db)
  // Smart groups comparing OS versions ("below 17.5").
  await sql`create index devices_os_version_parts_idx on devices (orchard_version_parts(os_version))`.execute(db)

  // The person a device belongs to: given by an admin, or the Managed Apple ID a User
  // Enrollment came with. Searched by prefix; the leavers action finds a person's devices by it.
  await sql`alter table devices add column user_email text check (length(user_email) between 3 and 320)`.execute(db)

  // Phone numbers from DeviceInformation (PhoneNumber, ServiceSubscriptions), digits only.
  await sql`
    create table device_phone_numbers (
      device_id text not null references devices (id) on delete cascade,
      digits text not null check (digits ~ '^[0-9]{3,20}$'),
      primary key (device_id, digits)
    )`.execute(db)
  // Search by the start of a number (with country code) or by its end (the local number).
  await sql`create index device_phone_numbers_prefix_idx on device_phone_numbers (digits text_pattern_ops)`.execute(db)
  await sql`create index device_phone_numbers_suffix_idx on device_phone_numbers (reverse(digits) text_pattern_ops)`.execute(db)

  // The device list's search parameter `q`: case-insensitive prefix of each searched column.
  await sql`create index devices_search_name_idx on devices (lower(device_name) text_pattern_ops)`.execute(db)
  await sql`create index devices_search_serial_idx on devices (lower(serial_number) text_pattern_ops)`.execute(db)
  await sql`create index devices_search_udid_idx on devices (lower(udid) text_pattern_ops)`.execute(db)
  await sql`create index devices_search_imei_idx on devices (replace(imei, ' ', '') text_pattern_ops)`.execute(db)
  await sql`create index devices_search_user_email_idx on devices (lower(user_email) text_pattern_ops)`.execute(db)
  // A department's device list in its default order (created_at), and a group's devices in it:
  // walked in order within the tenant instead of filtering the whole fleet's order.
  await sql`create index devices_tenant_created_idx on devices (tenant_id, created_at, id)`.execute(db)
  // The enrollment group filter of the device list.
  await sql`create index devices_enrollment_group_idx on devices (enrollment_group, id) where enrollment_group is not null`.execute(db)
}
