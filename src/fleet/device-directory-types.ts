// What the device directory answers (device-directory-store.ts): the device list's filter and
// sort, a device as listed and in full, and the facts that decide whether a command suits a target.
import type { DeviceRecord } from '../db/schema.js'
import type { DeviceKind, LifecycleState } from '../model/devices.js'

export interface DeviceFilter {
  serialNumber?: string
  udid?: string
  model?: string
  osVersion?: string
  enrolled?: boolean
  userEnrollment?: boolean
  supervised?: boolean
  lastSeenBefore?: Date
  lastSeenAfter?: Date
  /** null: central IT's own devices (no tenant). */
  tenantId?: string | null
  kind?: DeviceKind
  lifecycleState?: LifecycleState
  /** Devices in this device group (one the caller can see; none otherwise). */
  groupId?: string
  enrollmentGroup?: string
  /** The search parameter: a prefix of name, serial number, UDID, IMEI, user email or phone number. */
  search?: string
}

export const deviceSorts = ['created_at', '-created_at', 'last_seen_at', '-last_seen_at', 'serial_number', '-serial_number'] as const
export type DeviceSort = (typeof deviceSorts)[number]

/** A device as listed: its own columns and its device channel's enrollment state. */
export type DeviceRow = Pick<
  DeviceRecord,
  | 'id'
  | 'udid'
  | 'enrollment_id'
  | 'user_enrollment'
  | 'serial_number'
  | 'imei'
  | 'meid'
  | 'model'
  | 'model_name'
  | 'product_name'
  | 'device_name'
  | 'os_version'
  | 'build_version'
  | 'is_supervised'
  | 'identity_sha256'
  | 'identity_not_after'
  | 'authenticated_at'
  | 'created_at'
  | 'updated_at'
  | 'tenant_id'
  | 'kind'
  | 'lifecycle_state'
  | 'wiped_at'
  | 'retired_at'
  | 'enrollment_group'
  | 'user_email'
> & { enrolled: boolean; last_seen_at: Date | null }

export interface DeviceDetail {
  device: DeviceRow & {
    device_information: unknown
    device_information_at: Date | null
    security_info: unknown
    security_info_at: Date | null
    reenrollment_allowed_until: Date | null
    unlock_token_escrowed: boolean
    bootstrap_token_escrowed: boolean
  }
  enrollments: Array<{
    id: string
    channel: 'device' | 'user'
    user_id: string | null
    user_short_name: string | null
    user_long_name: string | null
    enabled: boolean
    awaiting_configuration: boolean
    last_seen_at: Date | null
    checked_out_at: Date | null
    created_at: Date
    topic: string | null
    has_token: boolean
    token_updated_at: Date | null
    push_invalid_at: Date | null
    push_invalid_reason: string | null
    last_push_at: Date | null
    last_push_result: string | null
    next_repush_at: Date | null
  }>
  applications: Array<{
    enrollment_id: string
    identifier: string
    name: string | null
    version: string | null
    short_version: string | null
    bundle_size: number | null
    is_managed: boolean | null
  }>
  profiles: Array<{ enrollment_id: string; identifier: string; uuid: string | null; display_name: string | null; is_managed: boolean | null }>
  certificates: Array<{ enrollment_id: string; sha256: string; common_name: string | null; is_identity: boolean | null }>
  /** The device groups it is in now, that the caller can see. */
  groups: Array<{ id: string; name: string; smart: boolean }>
}

/** What is known about a command target, for the applicability check. */
export interface TargetFacts {
  enrollmentId: string
  deviceId: string
  channel: 'device' | 'user'
  enabled: boolean
  productName: string | null
  model: string | null
  osVersion: string | null
  supervised: boolean | null
  userEnrollment: boolean
  tenantId: string | null
  kind: DeviceKind
  serialNumber: string | null
}
