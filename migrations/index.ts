// The ordered list of migrations. Names sort in the order they run; a test checks that
// every file in this folder is listed here and that landed files are unchanged
// (migrations/frozen.json).
import type { Migration } from 'kysely'
import * as m0001 from './0001_init.js'
import * as m0002 from './0002_mdm_core.js'
import * as m0003 from './0003_push.js'
import * as m0004 from './0004_admin_api.js'
import * as m0005 from './0005_enrollment.js'
import * as m0006 from './0006_ade.js'
import * as m0007 from './0007_tenants.js'
import * as m0008 from './0008_lifecycle.js'
import * as m0009 from './0009_blueprints.js'
import * as m0010 from './0010_device_trust.js'
import * as m0011 from './0011_vpp.js'
import * as m0012 from './0012_app_versions.js'
import * as m0013 from './0013_declarations.js'
import * as m0014 from './0014_os_releases.js'
import * as m0015 from './0015_update_policies.js'
import * as m0016 from './0016_legacy_profile_declarations.js'
import * as m0017 from './0017_software_update_device_id.js'
import * as m0018 from './0018_activation_lock.js'
import * as m0019 from './0019_device_groups.js'
import * as m0020 from './0020_billing.js'
import * as m0021 from './0021_shared_ipad_users.js'
import * as m0022 from './0022_offboarding.js'
import * as m0023 from './0023_activation_lock_escrow.js'
import * as m0024 from './0024_account_driven_enrollment.js'
import * as m0025 from './0025_jobs.js'
import * as m0026 from './0026_user_channel_declarations.js'
import * as m0027 from './0027_report_jobs.js'
import * as m0028 from './0028_device_last_seen.js'
import * as m0029 from './0029_inventory_list_digests.js'

export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_init': m0001,
  '0002_mdm_core': m0002,
  '0003_push': m0003,
  '0004_admin_api': m0004,
  '0005_enrollment': m0005,
  '0006_ade': m0006,
  '0007_tenants': m0007,
  '0008_lifecycle': m0008,
  '0009_blueprints': m0009,
  '0010_device_trust': m0010,
  '0011_vpp': m0011,
  '0012_app_versions': m0012,
  '0013_declarations': m0013,
  '0014_os_releases': m0014,
  '0015_update_policies': m0015,
  '0016_legacy_profile_declarations': m0016,
  '0017_software_update_device_id': m0017,
  '0018_activation_lock': m0018,
  '0019_device_groups': m0019,
  '0020_billing': m0020,
  '0021_shared_ipad_users': m0021,
  '0022_offboarding': m0022,
  '0023_activation_lock_escrow': m0023,
  '0024_account_driven_enrollment': m0024,
  '0025_jobs': m0025,
  '0026_user_channel_declarations': m0026,
  '0027_report_jobs': m0027,
  '0028_device_last_seen': m0028,
  '0029_inventory_list_digests': m0029,
})
