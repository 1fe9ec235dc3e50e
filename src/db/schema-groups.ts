// Table types of device groups and device search (migrations/0019_device_groups.ts), beside schema.ts.
import type { ColumnType } from 'kysely'
import type { DeviceKind, LifecycleState } from '../model/devices.js'

/** A smart group's saved filter: every given field must hold (AND); absent fields do not narrow. */
export interface SmartGroupFilter {
  /** ProductName (iPad13,1) or Model (MK2K3LL/A), exactly. */
  model?: string
  /** The start of ProductName, e.g. "iPad" or "iPhone15,". */
  model_prefix?: string
  os_version_at_least?: string
  os_version_below?: string
  kinds?: DeviceKind[]
  supervised?: boolean
  user_enrollment?: boolean
  enrolled?: boolean
  lifecycle_states?: LifecycleState[]
  /** No contact for at least this many days (or never). */
  not_seen_for_days?: number
  seen_within_days?: number
  enrollment_group?: string
  /** Bundle ID in the device's last InstalledApplicationList. */
  app_installed?: string
  app_not_installed?: string
  /** PayloadIdentifier in the device's last ProfileList. */
  profile_installed?: string
  profile_not_installed?: string
}

export interface DeviceGroupsTable {
  id: string
  tenant_id: string | null
  name: string
  description: string | null
  filter: ColumnType<SmartGroupFilter | null, string | null, string | null>
  created_at: ColumnType<Date, never, never>
  updated_at: ColumnType<Date, Date | undefined, Date>
}

export interface DeviceGroupMembersTable {
  group_id: string
  device_id: string
  added_at: ColumnType<Date, never, never>
}

export interface DevicePhoneNumbersTable {
  device_id: string
  digits: string
}

export interface GroupsTables {
  device_groups: DeviceGroupsTable
  device_group_members: DeviceGroupMembersTable
  device_phone_numbers: DevicePhoneNumbersTable
}
