// Table types of account-driven enrollment (migrations/0024_account_driven_enrollment.ts), beside schema.ts.
import type { ColumnType, Generated } from 'kysely'
import type { DeviceKind } from '../model/devices.js'

export type AccountEnrollmentVersion = 'mdm-byod' | 'mdm-adde'

export interface AccountEnrollmentDomainsTable {
  domain: string
  /** Null: central IT. */
  tenant_id: string | null
  required_group: string | null
  device_kind: Generated<DeviceKind>
  updated_at: ColumnType<Date, Date | undefined, Date>
}

export interface AccountLoginStatesTable {
  state_sha256: Buffer
  version: AccountEnrollmentVersion
  code_verifier: string
  nonce: string
  user_identifier: string | null
  /** Re-authentication of an enrolled device: the device; null for a new enrollment. */
  device_id: string | null
  expires_at: Date
  used_at: Date | null
  created_at: Generated<Date>
}

export interface AccountAccessTokensTable {
  token_sha256: Buffer
  version: AccountEnrollmentVersion
  tenant_id: string | null
  subject: string
  email: string
  device_id: string | null
  expires_at: Date
  used_at: Date | null
  created_at: Generated<Date>
}

export interface AccountEnrollmentChallengesTable {
  challenge_sha256: Buffer
  version: AccountEnrollmentVersion
  tenant_id: string | null
  subject: string
  email: string
  device_kind: DeviceKind
  created_at: Generated<Date>
}

export interface AccountEnrollmentTables {
  account_enrollment_domains: AccountEnrollmentDomainsTable
  account_login_states: AccountLoginStatesTable
  account_access_tokens: AccountAccessTokensTable
  account_enrollment_challenges: AccountEnrollmentChallengesTable
}
