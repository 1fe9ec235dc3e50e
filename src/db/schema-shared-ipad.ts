// Table types of Shared iPad users and configuration (migrations/0021_shared_ipad_users.ts), beside schema.ts.
import type { ColumnType } from 'kysely'

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>
/** jsonb: read back parsed; written as JSON text. */
type Json<T = unknown> = ColumnType<T, string, string>

export type SharedDeviceConfigurationStatus = 'pending' | 'acknowledged' | 'error'

export interface SharedIpadDevicesTable {
  device_id: string
  users_reported_at: Date | null
  users_command_uuid: string | null
  users_detail: string | null
  /** The SharedDeviceConfiguration keys last sent (Apple's names), without Item. */
  configuration: Json<Record<string, unknown>> | null
  configuration_command_uuid: string | null
  configuration_status: SharedDeviceConfigurationStatus | null
  configuration_detail: string | null
  configuration_sent_at: Date | null
  configuration_answered_at: Date | null
  updated_at: Timestamp
}

export interface SharedIpadUsersTable {
  device_id: string
  user_name: string
  user_guid: string | null
  full_name: string | null
  is_logged_in: boolean | null
  has_data_to_sync: boolean | null
  data_quota: number | null
  data_used: number | null
  mobile_account: boolean | null
  attributes: Json
  reported_at: Date
}

export interface SharedIpadTables {
  shared_ipad_devices: SharedIpadDevicesTable
  shared_ipad_users: SharedIpadUsersTable
}
