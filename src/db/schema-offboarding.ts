// Table types of offboarding and Return to Service (migrations/0022_offboarding.ts), beside schema.ts.
import type { ColumnType } from 'kysely'

export interface ReturnToServiceSettingsTable {
  /** Null: central IT. */
  tenant_id: string | null
  wifi_profile_id: string
  updated_at: ColumnType<Date, Date | undefined, Date>
}

export interface OffboardingTables {
  return_to_service_settings: ReturnToServiceSettingsTable
}
