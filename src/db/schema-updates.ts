// Table types of the OS release catalogue (migrations/0014_os_releases.ts), beside schema.ts.
import type { ColumnType } from 'kysely'

export type OsPlatform = 'iOS' | 'macOS' | 'visionOS' | 'tvOS' | 'watchOS'
/** public: PublicAssetSets; asset: AssetSets (what an MDM may push). */
export type OsAssetSet = 'public' | 'asset'

/** A `date` column: written as 'YYYY-MM-DD'; the stores read it as text (`::text`), never as a Date. */
type DateColumn = ColumnType<string, string, string>

export interface OsReleasesTable {
  platform: OsPlatform
  asset_set: OsAssetSet
  product_version: string
  build: string
  /** Generated from product_version. */
  version_key: ColumnType<number[], never, never>
  posting_date: DateColumn
  expiration_date: ColumnType<string | null, string | null, string | null>
  supported_devices: ColumnType<string[], string[], string[]>
}

export interface OsCatalogueFetchesTable {
  /** bigint: not read (pg and PGlite return it differently). */
  id: ColumnType<string, never, never>
  source: string
  fetched_at: ColumnType<Date, Date | undefined, never>
  outcome: 'ok' | 'failed'
  release_count: number | null
  skipped_count: number | null
  document_sha256: string | null
  error: string | null
}

export interface UpdatesTables {
  os_releases: OsReleasesTable
  os_catalogue_fetches: OsCatalogueFetchesTable
}
