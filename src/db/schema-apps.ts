// Table types of the Apps and Books (VPP) tables (migrations/0011_vpp.ts), beside schema.ts.
import type { ColumnType, Generated } from 'kysely'

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>
type CreatedAt = ColumnType<Date, Date | string | undefined, never>
type TenantColumn = ColumnType<string | null, string | null | undefined, string | null>
type Json<T = unknown> = ColumnType<T, string, string>

/** What Apple last answered for a content token; claimed_elsewhere: another MDM holds its location. */
export type VppTokenStatus = 'pending' | 'ok' | 'claimed_elsewhere' | 'token_expired' | 'token_revoked' | 'token_rejected' | 'throttled' | 'error'

export interface VppTokensTable {
  id: string
  tenant_id: TenantColumn
  name: string
  token_sealed: Buffer
  org_name: string | null
  expires_at: Date | null
  location_uid: string | null
  location_name: string | null
  country_code: string | null
  client_context: string | null
  serves_sub_tenants: Generated<boolean>
  status: Generated<VppTokenStatus>
  status_detail: string | null
  status_at: Timestamp
  retry_after: Date | null
  last_sync_at: Date | null
  sync_lease_owner: string | null
  sync_lease_until: Date | null
  created_at: CreatedAt
  updated_at: Timestamp
}

export interface VppAssetsTable {
  token_id: string
  adam_id: string
  pricing_param: string
  product_type: string
  total_count: number
  assigned_count: number
  available_count: number
  retired_count: number
  device_assignable: boolean
  revocable: boolean
  supported_platforms: Json<string[]>
  synced_at: Date
}

export interface VppAssignmentsTable {
  token_id: string
  adam_id: string
  pricing_param: string
  serial_number: string
  synced_at: Date
}

export type VppLicenceState = 'wanted' | 'assigning' | 'assigned' | 'failed' | 'releasing' | 'revoking'

export interface VppLicencesTable {
  device_id: string
  adam_id: string
  serial_number: string
  token_id: string | null
  pricing_param: string | null
  state: VppLicenceState
  event_id: string | null
  detail: string | null
  updated_at: Timestamp
}

/** The newest version of an app that devices reported (migrations/0012_app_versions.ts). */
export interface AppVersionsTable {
  bundle_id: string
  version: string
  reported_by: string | null
  learned_at: Timestamp
}

export interface AppsTables {
  vpp_tokens: VppTokensTable
  vpp_assets: VppAssetsTable
  vpp_assignments: VppAssignmentsTable
  vpp_licences: VppLicencesTable
  app_versions: AppVersionsTable
}
