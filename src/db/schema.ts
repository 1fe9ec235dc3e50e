// Table types for Kysely. Keep in step with migrations/ (the storage tests on both
// backends fail when a column here does not exist).
import type { ColumnType, Generated, Selectable } from 'kysely'
import type { Role } from '../model/access.js'
import type { CommandTargetStatus } from '../model/commands.js'
import type { DeviceKind, LifecycleActionKind, LifecycleState } from '../model/devices.js'
import type { AccountEnrollmentTables } from './schema-account-enrollment.js'
import type { AppsTables } from './schema-apps.js'
import type { DdmTables } from './schema-ddm.js'
import type { GroupsTables } from './schema-groups.js'
import type { JobsTables } from './schema-jobs.js'
import type { OffboardingTables } from './schema-offboarding.js'
import type { SharedIpadTables } from './schema-shared-ipad.js'
import type { UpdatesTables } from './schema-updates.js'

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>
type CreatedAt = ColumnType<Date, Date | string | undefined, never>
/** Null: central IT. Optional on insert. */
type TenantColumn = ColumnType<string | null, string | null | undefined, string | null>
/** jsonb: read back parsed; written as JSON text (storage code passes JSON.stringify output). */
type Json<T = unknown> = ColumnType<T, string, string>

export interface ServerSettingsTable {
  key: string
  value: Json
  updated_at: ColumnType<Date, Date | undefined, Date>
}

export interface DevicesTable {
  id: string
  udid: string | null
  enrollment_id: string | null
  user_enrollment: Generated<boolean>
  serial_number: string | null
  imei: string | null
  meid: string | null
  model: string | null
  model_name: string | null
  product_name: string | null
  device_name: string | null
  os_version: string | null
  build_version: string | null
  /** DeviceInformation SoftwareUpdateDeviceID: the ID the OS catalogue lists a Mac under (board ID, e.g. J413AP). */
  software_update_device_id: string | null
  topic: string | null
  identity_sha256: string | null
  identity_not_after: Date | null
  authenticate_raw: Buffer | null
  authenticated_at: Date | null
  is_supervised: boolean | null
  device_information: Json | null
  device_information_at: Date | null
  security_info: Json | null
  security_info_at: Date | null
  enrollment_link_id: string | null
  enrollment_group: string | null
  /** The person the device belongs to (an admin's, or a User Enrollment's Managed Apple ID). */
  user_email: string | null
  kind: Generated<DeviceKind>
  lifecycle_state: Generated<LifecycleState>
  lifecycle_changed_at: Date | null
  wiped_at: Date | null
  retired_at: Date | null
  identity_renewal_queued_at: Date | null
  identity_renewal_command_uuid: string | null
  dep_profile_id: string | null
  reenrollment_allowed_until: Date | null
  /** Account-driven enrollment (migrations/0024): the person's OIDC subject, user | device, last sign-in, sign-in due since. */
  account_subject: ColumnType<string | null, string | null | undefined, string | null>
  account_enrollment: ColumnType<'user' | 'device' | null, 'user' | 'device' | null | undefined, 'user' | 'device' | null>
  account_authenticated_at: ColumnType<Date | null, Date | null | undefined, Date | null>
  account_reauth_required_at: ColumnType<Date | null, Date | null | undefined, Date | null>
  created_at: CreatedAt
  updated_at: Timestamp
  tenant_id: TenantColumn
  /** A copy of its device channel's last contact (enrollments.last_seen_at), kept by a trigger: the list's index. */
  last_seen_at: Date | null
}

/** A devices row as read. */
export type DeviceRecord = Selectable<DevicesTable>

export interface EnrollmentsTable {
  id: string
  device_id: string
  channel: 'device' | 'user'
  user_id: string | null
  user_short_name: string | null
  user_long_name: string | null
  enabled: Generated<boolean>
  topic: string | null
  push_token: Buffer | null
  push_magic: string | null
  /** Legacy clear column: emptied by sealClearDeviceSecrets at start-up. */
  unlock_token: Buffer | null
  unlock_token_sealed: Buffer | null
  awaiting_configuration: Generated<boolean>
  token_update_count: Generated<number>
  token_updated_at: Date | null
  not_now_this_session: Generated<boolean>
  last_seen_at: Date | null
  checked_out_at: Date | null
  created_at: CreatedAt
  updated_at: Timestamp
  push_invalid_at: Date | null
  push_invalid_reason: string | null
  last_push_at: Date | null
  last_push_result: string | null
  last_push_apns_id: string | null
  repush_count: Generated<number>
  next_repush_at: Date | null
}

export interface PushCertificatesTable {
  topic: string
  certificate_pem: string
  private_key_sealed: Buffer
  serial_number: string
  subject: string
  sha256: string
  not_before: Date
  not_after: Date
  created_at: CreatedAt
  updated_at: Timestamp
  tenant_id: TenantColumn
}

export interface CommandsTable {
  uuid: string
  request_type: string
  payload: Buffer
  priority: Generated<number>
  expires_at: Date | null
  created_at: CreatedAt
  tenant_id: TenantColumn
}

export interface CommandTargetsTable {
  enrollment_id: string
  command_uuid: string
  seq: ColumnType<number, never, never>
  status: Generated<CommandTargetStatus>
  priority: Generated<number>
  expires_at: Date | null
  not_now_count: Generated<number>
  last_not_now_at: Date | null
  delivery_count: Generated<number>
  first_delivered_at: Date | null
  last_delivered_at: Date | null
  result_at: Date | null
  result_raw: Buffer | null
  error_chain: Json | null
  cancel_reason: string | null
  created_at: CreatedAt
  updated_at: Timestamp
}

export interface BootstrapTokensTable {
  device_id: string
  /** Legacy clear column: emptied by sealClearDeviceSecrets at start-up. */
  token: Buffer | null
  token_sealed: Buffer | null
  updated_at: Timestamp
}

/** A supervised device's Activation Lock bypass code, sealed (migration 0018). */
export interface ActivationLockBypassCodesTable {
  device_id: string
  /** Sealed with `activation-lock-bypass-code:<device id>`. */
  code_sealed: Buffer | null
  code_received_at: Date | null
  request_state: 'awaiting_supervision' | 'requested' | 'received' | 'failed' | 'not_kept'
  command_uuid: string | null
  detail: string | null
  updated_at: Timestamp
  // Migration 0023: organization-linked Activation Lock (ABM/ASM) and unlocking at Apple.
  /** Sealed with `activation-lock-server-code:<device id>`. */
  server_code_sealed: Buffer | null
  escrow_state: 'pending' | 'escrowed' | 'failed' | 'refused' | 'cleared' | null
  escrow_detail: string | null
  escrow_attempts: Generated<number>
  escrow_attempted_at: Date | null
  escrow_retry_at: Date | null
  escrowed_at: Date | null
  unlocked_at: Date | null
  unlocked_with: 'device' | 'server' | null
  unlock_detail: string | null
  device_clear_state: 'requested' | 'cleared' | 'failed' | null
  device_clear_command_uuid: string | null
  device_clear_detail: string | null
}

export interface InstalledApplicationsTable {
  enrollment_id: string
  identifier: string
  name: string | null
  version: string | null
  short_version: string | null
  bundle_size: number | null
  is_managed: boolean | null
  attributes: Json
  updated_at: Timestamp
}

export interface InstalledProfilesTable {
  enrollment_id: string
  identifier: string
  uuid: string | null
  display_name: string | null
  is_managed: boolean | null
  attributes: Json
  updated_at: Timestamp
}

export interface InstalledCertificatesTable {
  enrollment_id: string
  sha256: string
  common_name: string | null
  is_identity: boolean | null
  data: Buffer
  updated_at: Timestamp
}

/** The SHA-256 of the answer each channel's inventory list was last written from (migration 0029). */
export interface InventoryListDigestsTable {
  enrollment_id: string
  list: 'applications' | 'profiles' | 'certificates'
  sha256: Buffer
}

export interface DdmStatusReportsTable {
  id: ColumnType<number, never, never>
  enrollment_id: string
  report: Json
  received_at: CreatedAt
}

export interface ApiKeysTable {
  id: string
  name: string
  role: Role
  tenant_id: TenantColumn
  key_sha256: Buffer
  created_at: CreatedAt
  last_used_at: Date | null
  expires_at: Date | null
  revoked_at: Date | null
}

export interface WebhooksTable {
  id: string
  url: string
  secret_sealed: Buffer
  event_types: string[]
  enabled: Generated<boolean>
  description: string | null
  created_at: CreatedAt
  updated_at: Timestamp
}

export interface WebhookDeliveriesTable {
  id: ColumnType<number, never, never>
  webhook_id: string
  event_id: string
  event_type: string
  payload: Json
  status: Generated<'pending' | 'delivered' | 'failed'>
  attempts: Generated<number>
  next_attempt_at: Timestamp
  last_attempt_at: Date | null
  last_status_code: number | null
  last_error: string | null
  delivered_at: Date | null
  created_at: CreatedAt
}

export interface LifecycleCommandRef {
  command_uuid: string
  request_type: string
  /** What the command removes or installs: a profile identifier, an app bundle id. */
  item?: string
}

export interface LifecycleActionsTable {
  id: string
  device_id: string
  tenant_id: string | null
  action: LifecycleActionKind
  status: 'pending' | 'completed' | 'failed' | 'cancelled'
  principal_id: string | null
  principal_name: string | null
  request_id: string | null
  commands: ColumnType<LifecycleCommandRef[], string, string>
  details: Json | null
  created_at: CreatedAt
  completed_at: Date | null
}

export interface LibraryProfilesTable {
  id: string
  tenant_id: string | null
  identifier: string
  payload_uuid: string
  name: string
  payload_types: string[]
  content: Buffer
  sha256: string
  created_at: CreatedAt
  updated_at: Timestamp
}

export interface BlueprintApplication {
  bundle_id: string
  manifest_url?: string
  itunes_store_id?: number
  /** An Apps and Books asset (adamId): installed with a device licence. */
  vpp_asset?: string
  remove_on_unenroll?: boolean
  prevent_backup?: boolean
  /** Managed app configuration (InstallApplication's Configuration). */
  configuration?: Record<string, unknown>
  /** InstallApplication's Attributes (per-app VPN and the like). */
  attributes?: BlueprintAppAttributes
  /** Installed again when a device reports an older version than the newest one devices reported. */
  auto_update?: boolean
}

export interface BlueprintAppAttributes {
  vpn_uuid?: string
  content_filter_uuid?: string
  dns_proxy_uuid?: string
  relay_uuid?: string
  cellular_slice_uuid?: string
  associated_domains?: string[]
  associated_domains_enable_direct_downloads?: boolean
  removable?: boolean
  tap_to_pay_screen_lock?: boolean
  hideable?: boolean
  lockable?: boolean
}

export interface BlueprintsTable {
  id: string
  tenant_id: string | null
  name: string
  description: string | null
  kinds: ColumnType<DeviceKind[], DeviceKind[] | undefined, DeviceKind[]>
  groups: ColumnType<string[], string[] | undefined, string[]>
  /** Device groups (static or smart) whose members it reaches. */
  group_ids: ColumnType<string[], string[] | undefined, string[]>
  device_ids: ColumnType<string[], string[] | undefined, string[]>
  applications: ColumnType<BlueprintApplication[], string | undefined, string>
  /** Kiosk mode (src/fleet/kiosk-profile.ts); null: none. */
  kiosk: ColumnType<BlueprintKiosk | null, string | null | undefined, string | null>
  created_at: CreatedAt
  updated_at: Timestamp
}

/** A blueprint's kiosk mode: one app (App Lock) or an allow-list. */
export type BlueprintKiosk =
  { app: { bundle_id: string; options?: Record<string, boolean>; user_enabled_options?: Record<string, boolean> } } | { allowed_apps: string[] }

export interface BlueprintProfilesTable {
  blueprint_id: string
  profile_id: string
}

export type ConfigItemType = 'profile' | 'app'
export type ConfigItemStatus = 'installing' | 'installed' | 'removing' | 'failed'

export interface DeviceConfigStateTable {
  device_id: string
  item_type: ConfigItemType
  identifier: string
  profile_id: string | null
  version: string | null
  status: ConfigItemStatus
  command_uuid: string | null
  detail: string | null
  updated_at: Timestamp
}

export interface DeviceLocationsTable {
  id: Generated<string>
  device_id: string
  command_uuid: string | null
  latitude: number
  longitude: number
  horizontal_accuracy: number | null
  vertical_accuracy: number | null
  altitude: number | null
  speed: number | null
  course: number | null
  located_at: Date | null
  received_at: CreatedAt
}

export interface CertificateAuthoritiesTable {
  id: string
  certificate_der: Buffer
  subject: string
  not_before: Date
  not_after: Date
  source: 'generated' | 'imported' | 'trusted'
  private_key_sealed: Buffer | null
  ra_certificate_der: Buffer | null
  ra_private_key_sealed: Buffer | null
  active: Generated<boolean>
  created_at: CreatedAt
}

export interface EnrollmentLinksTable {
  id: string
  token: string
  name: string
  enrollment_type: 'device' | 'user_enrollment'
  device_kind: DeviceKind
  group_name: string | null
  managed_apple_id: string | null
  push_topic: string | null
  expires_at: Date | null
  max_uses: number | null
  uses: Generated<number>
  revoked_at: Date | null
  created_at: CreatedAt
  tenant_id: TenantColumn
}

export interface ScepChallengesTable {
  challenge_sha256: Buffer
  purpose: 'enrollment' | 'renewal'
  enrollment_link_id: string | null
  device_id: string | null
  created_at: CreatedAt
  expires_at: Date
  used_at: Date | null
  dep_profile_id: string | null
  ade_serial_number: string | null
}

export interface IssuedCertificatesTable {
  serial_number: string
  ca_sha256: string
  sha256: string
  subject: string
  public_key_sha256: string
  not_before: Date
  not_after: Date
  authorized_by: 'static_challenge' | 'challenge' | 'renewal'
  challenge_sha256: Buffer | null
  renewal_of_sha256: string | null
  enrollment_link_id: string | null
  device_id: string | null
  transaction_id: string
  certificate_der: Buffer
  dep_profile_id: string | null
  ade_serial_number: string | null
  created_at: CreatedAt
}

export const depTokenStatuses = ['awaiting_token', 'ok', 'terms_not_signed', 'token_rejected', 'token_expired', 'throttled', 'error'] as const
export type DepTokenStatus = (typeof depTokenStatuses)[number]

export interface DepTokensTable {
  id: string
  name: string
  exchange_certificate_der: Buffer
  exchange_private_key_sealed: Buffer
  credentials_sealed: Buffer | null
  access_token_expiry: Date | null
  token_uploaded_at: Date | null
  server_name: string | null
  server_uuid: string | null
  org_name: string | null
  account: Json | null
  sync_phase: Generated<'fetch' | 'sync'>
  cursor: string | null
  last_fetch_completed_at: Date | null
  last_sync_at: Date | null
  sync_lease_owner: string | null
  sync_lease_until: Date | null
  status: Generated<DepTokenStatus>
  status_detail: string | null
  status_at: Timestamp
  retry_after: Date | null
  default_profile_id: string | null
  created_at: CreatedAt
  updated_at: Timestamp
  tenant_id: TenantColumn
}

export interface DepProfilesTable {
  id: string
  token_id: string
  name: string
  profile: Json<Record<string, unknown>>
  device_kind: Generated<'work' | 'function'>
  minimum_os_version: string | null
  enrollment_commands: ColumnType<unknown[], string | undefined, string>
  profile_uuid: string | null
  defined_at: Date | null
  define_error: string | null
  created_at: CreatedAt
  updated_at: Timestamp
}

export const depAssignStatuses = ['SUCCESS', 'NOT_ACCESSIBLE', 'FAILED', 'THROTTLED'] as const
export type DepAssignStatus = (typeof depAssignStatuses)[number]

export interface DepDevicesTable {
  serial_number: string
  token_id: string
  model: string | null
  description: string | null
  color: string | null
  asset_tag: string | null
  os: string | null
  device_family: string | null
  profile_status: string | null
  profile_uuid: string | null
  profile_assign_time: Date | null
  profile_push_time: Date | null
  device_assigned_by: string | null
  device_assigned_date: Date | null
  op_type: 'added' | 'modified' | 'deleted' | null
  op_date: Date | null
  removed_at: Date | null
  raw: Json
  assigned_profile_id: string | null
  assign_status: DepAssignStatus | null
  assign_detail: string | null
  assigned_at: Date | null
  assign_retry_at: Date | null
  device_id: string | null
  first_seen_at: CreatedAt
  updated_at: Timestamp
}

export interface TenantsTable {
  id: string
  name: string
  parent_id: string | null
  /** numeric(13,3), read as its decimal text; null = the organisation's (migrations/0020_billing.ts). */
  price_per_device_year: ColumnType<string | null, string | null | undefined, string | null>
  /** Device kinds billed; null = the organisation's. */
  billed_kinds: ColumnType<DeviceKind[] | null, DeviceKind[] | null | undefined, DeviceKind[] | null>
  created_at: CreatedAt
  updated_at: Timestamp
}

export interface AuditEventsTable {
  id: ColumnType<string, never, never>
  at: ColumnType<Date, Date | undefined, never>
  category: 'admin' | 'device'
  tenant_id: string | null
  principal_id: string | null
  principal_name: string | null
  principal_source: 'database' | 'config' | 'oidc' | null
  action: string
  target_type: string | null
  target_id: string | null
  device_id: string | null
  request_id: string | null
  outcome: 'success' | 'failure'
  status_code: number | null
  details: Json | null
}

export interface DeviceTenancyTable {
  id: ColumnType<string, never, never>
  device_id: string
  tenant_id: string | null
  started_at: Date
  ended_at: Date | null
}

export interface Database extends AccountEnrollmentTables, AppsTables, DdmTables, UpdatesTables, GroupsTables, SharedIpadTables, OffboardingTables, JobsTables {
  server_settings: ServerSettingsTable
  devices: DevicesTable
  enrollments: EnrollmentsTable
  commands: CommandsTable
  command_targets: CommandTargetsTable
  bootstrap_tokens: BootstrapTokensTable
  activation_lock_bypass_codes: ActivationLockBypassCodesTable
  installed_applications: InstalledApplicationsTable
  installed_profiles: InstalledProfilesTable
  installed_certificates: InstalledCertificatesTable
  inventory_list_digests: InventoryListDigestsTable
  ddm_status_reports: DdmStatusReportsTable
  push_certificates: PushCertificatesTable
  api_keys: ApiKeysTable
  webhooks: WebhooksTable
  webhook_deliveries: WebhookDeliveriesTable
  certificate_authorities: CertificateAuthoritiesTable
  enrollment_links: EnrollmentLinksTable
  scep_challenges: ScepChallengesTable
  issued_certificates: IssuedCertificatesTable
  dep_tokens: DepTokensTable
  dep_profiles: DepProfilesTable
  dep_devices: DepDevicesTable
  tenants: TenantsTable
  audit_events: AuditEventsTable
  device_tenancy: DeviceTenancyTable
  lifecycle_actions: LifecycleActionsTable
  device_locations: DeviceLocationsTable
  library_profiles: LibraryProfilesTable
  blueprints: BlueprintsTable
  blueprint_profiles: BlueprintProfilesTable
  device_config_state: DeviceConfigStateTable
}
