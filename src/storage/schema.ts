// Table types for Kysely. Keep in step with migrations/ (the storage tests on both
// backends fail when a column here does not exist).
import type { ColumnType } from 'kysely'

export interface ServerSettingsTable {
  key: string
  value: ColumnType<unknown, string, string>
  updated_at: ColumnType<Date, Date | undefined, Date>
}

export interface Database {
  server_settings: ServerSettingsTable
}
