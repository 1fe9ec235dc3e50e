// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Offboarding (leavers): one lifecycle action that erases a work or function device (or
// returns it to service) and retires it, or removes what we installed on a personal device
// and retires it. Return to Service: the Wi-Fi profile of the profile library an EraseDevice
// carries so that the iPad comes back enrolled by itself, one per tenant (null: central IT);
// a department without one inherits its organisation's.
// https://developer.apple.com/documentation/devicemanagement/erasedevicecommand/command-data.dictionary
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table lifecycle_actions drop constraint lifecycle_actions_action_check`.execute(db)
  await sql`
    alter table lifecycle_actions add constraint lifecycle_actions_action_check
      check (action in ('lost', 'found', 'locate', 'erase', 'selective_wipe', 'reinstall', 'retire', 'kind_changed', 'offboard'))`.execute(db)
  // One wipe at a time: an offboarding counts as one.
  await sql`drop index lifecycle_actions_one_wipe_key`.execute(db)
  await sql`
    create unique index lifecycle_actions_one_wipe_key on lifecycle_actions (device_id)
      where status = 'pending' and action in ('erase', 'selective_wipe', 'reinstall', 'offboard')`.execute(db)

  await sql`
    create table return_to_service_settings (
      -- null: central IT's devices. One row per tenant (nulls not distinct: one for central IT too).
      tenant_id text references tenants (id) on delete cascade,
      -- A library profile with a com.apple.wifi.managed payload; it cannot be deleted while named here.
      wifi_profile_id uuid not null references library_profiles (id) on delete restrict,
      updated_at timestamptz not null default now(),
      constraint return_to_service_settings_tenant_key unique nulls not distinct (tenant_id)
    )`.execute(db)
  // Deleting a library profile checks this reference.
  await sql`create index return_to_service_settings_profile_idx on return_to_service_settings (wifi_profile_id)`.execute(db)
}
