// Table types of declarative device management (migrations/0013_declarations.ts), beside schema.ts.
import type { ColumnType } from 'kysely'

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>
type CreatedAt = ColumnType<Date, Date | string | undefined, never>
type TenantColumn = ColumnType<string | null, string | null | undefined, string | null>
type Json<T = unknown> = ColumnType<T, string, string>

export type DeclarationKind = 'activation' | 'asset' | 'configuration' | 'management'
export type DeclarationChannel = 'device' | 'user'

export interface DeclarationsTable {
  id: string
  tenant_id: TenantColumn
  identifier: string
  type: string
  kind: DeclarationKind
  name: string | null
  payload: Json<Record<string, unknown>>
  server_token: string
  /** A legacy-profile declaration of a library profile: Orchard serves the profile (0016). */
  profile_id: ColumnType<string | null, string | null | undefined, string | null>
  /** The device channel, or the user channels of the devices its blueprints reach (0026). */
  channel: ColumnType<DeclarationChannel, DeclarationChannel | undefined, DeclarationChannel>
  created_at: CreatedAt
  updated_at: Timestamp
}

export interface BlueprintDeclarationsTable {
  blueprint_id: string
  declaration_id: string
}

/** One entry of a device's declaration set. */
export interface DeclarationSetItem {
  identifier: string
  type: string
  kind: DeclarationKind
  /** The per-device ServerToken (the declaration's, with the device's substitutions folded in). */
  server_token: string
  /** The declarations row; null for a declaration Orchard makes (activation, status subscriptions), whose payload is here. */
  declaration_id: string | null
  payload?: Record<string, unknown>
}

export interface DeviceDeclarationSetsTable {
  device_id: string
  declarations_token: string
  items: Json<DeclarationSetItem[]>
  changed_at: Timestamp
  sent_token: string | null
  sent_at: Date | null
}

export interface DeviceStatusItemsTable {
  device_id: string
  item: string
  value: Json
  updated_at: Timestamp
}

export interface DeviceDeclarationStatusTable {
  device_id: string
  identifier: string
  kind: DeclarationKind
  server_token: string | null
  active: boolean
  valid: 'valid' | 'invalid' | 'unknown'
  reasons: Json | null
  updated_at: Timestamp
}

/** A user channel's computed set (migrations/0026_user_channel_declarations.ts). */
export interface UserChannelDeclarationSetsTable {
  enrollment_id: string
  device_id: string
  declarations_token: string
  items: Json<DeclarationSetItem[]>
  changed_at: Timestamp
  sent_token: string | null
  sent_at: Date | null
}

export type UserChannelStatusItemsTable = Omit<DeviceStatusItemsTable, 'device_id'> & { enrollment_id: string }
export type UserChannelDeclarationStatusTable = Omit<DeviceDeclarationStatusTable, 'device_id'> & { enrollment_id: string }

export type UpdatePolicyMode = 'specific' | 'latest'

/** OS update policies (migrations/0015_update_policies.ts). */
export interface UpdatePoliciesTable {
  id: string
  tenant_id: TenantColumn
  name: string
  mode: UpdatePolicyMode
  target_os_version: string | null
  target_build_version: string | null
  target_local_datetime: string | null
  latest_within_days: number | null
  details_url: string | null
  kinds: ColumnType<string[], string[] | undefined, string[]>
  groups: ColumnType<string[], string[] | undefined, string[]>
  group_ids: ColumnType<string[], string[] | undefined, string[]>
  device_ids: ColumnType<string[], string[] | undefined, string[]>
  created_at: CreatedAt
  updated_at: Timestamp
}

export interface DdmTables {
  update_policies: UpdatePoliciesTable
  declarations: DeclarationsTable
  blueprint_declarations: BlueprintDeclarationsTable
  device_declaration_sets: DeviceDeclarationSetsTable
  device_status_items: DeviceStatusItemsTable
  device_declaration_status: DeviceDeclarationStatusTable
  user_channel_declaration_sets: UserChannelDeclarationSetsTable
  user_channel_status_items: UserChannelStatusItemsTable
  user_channel_declaration_status: UserChannelDeclarationStatusTable
}
