// Devices in the admin API's JSON: devices as listed and in full, their lifecycle actions
// and locations, and the device filter and erase options requests carry.
import type { Device, DeviceLocation, DeviceSummary, EraseOptions, LifecycleAction, Query } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import { platformFromProduct } from '../mdm/command-validation.js'
import type { BypassCodeStatus } from './activation-lock.js'
import type { DeviceDetail, DeviceFilter, DeviceRow } from './device-directory.js'
import type { EraseInput } from './lifecycle-policy.js'
import type { LifecycleActionView, LocationRow } from './lifecycle-store.js'

export function deviceSummaryJson(row: DeviceRow): DeviceSummary {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    kind: row.kind,
    lifecycle_state: row.lifecycle_state,
    udid: row.udid,
    enrollment_id: row.enrollment_id,
    serial_number: row.serial_number,
    model: row.product_name,
    model_name: row.model_name,
    product_name: row.product_name,
    device_name: row.device_name,
    os_version: row.os_version,
    build_version: row.build_version,
    platform: platformFromProduct(row.product_name, row.model) ?? null,
    user_enrollment: row.user_enrollment,
    supervised: row.is_supervised,
    enrolled: row.enrolled,
    enrollment_group: row.enrollment_group,
    user_email: row.user_email,
    last_seen_at: iso(row.last_seen_at),
    wiped_at: iso(row.wiped_at),
    retired_at: iso(row.retired_at),
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

/** `activationLockBypassCode`: whether a bypass code is held (GET /devices/{id} tells, see withBypassCodeStatus). */
export function deviceJson(detail: DeviceDetail & { activationLockBypassCode?: BypassCodeStatus }): Device {
  const { device } = detail
  // As reported: device_information holds the answers merged as the devices columns keep them.
  const reported = (device.device_information ?? {}) as Record<string, unknown>
  const softwareUpdateDeviceId = reported['SoftwareUpdateDeviceID']
  const activationLockEnabled = reported['IsActivationLockEnabled']
  const bypassCode = detail.activationLockBypassCode
  return {
    ...deviceSummaryJson(device),
    imei: device.imei,
    meid: device.meid,
    groups: detail.groups,
    software_update_device_id: typeof softwareUpdateDeviceId === 'string' && softwareUpdateDeviceId !== '' ? softwareUpdateDeviceId : null,
    activation_lock_enabled: typeof activationLockEnabled === 'boolean' ? activationLockEnabled : null,
    ...(bypassCode ? { activation_lock_bypass_code_held: bypassCode.held, activation_lock_bypass_code_detail: bypassCode.detail } : {}),
    identity: {
      certificate_sha256: device.identity_sha256,
      not_after: iso(device.identity_not_after),
      authenticated_at: iso(device.authenticated_at),
      reenrollment_allowed_until: iso(device.reenrollment_allowed_until),
    },
    escrow: { unlock_token: device.unlock_token_escrowed, bootstrap_token: device.bootstrap_token_escrowed },
    enrollments: detail.enrollments.map((e) => ({
      id: e.id,
      channel: e.channel,
      user_id: e.user_id,
      user_short_name: e.user_short_name,
      user_long_name: e.user_long_name,
      enrolled: e.enabled,
      awaiting_configuration: e.awaiting_configuration,
      last_seen_at: iso(e.last_seen_at),
      checked_out_at: iso(e.checked_out_at),
      created_at: iso(e.created_at)!,
      push: {
        topic: e.topic,
        token_valid: e.has_token && e.push_invalid_at === null,
        token_updated_at: iso(e.token_updated_at),
        invalid_at: iso(e.push_invalid_at),
        invalid_reason: e.push_invalid_reason,
        last_push_at: iso(e.last_push_at),
        last_push_result: e.last_push_result,
        next_repush_at: iso(e.next_repush_at),
      },
    })),
    inventory: {
      // Stored as the device reported them (JSON objects).
      device_information: (device.device_information ?? null) as Record<string, unknown> | null,
      device_information_at: iso(device.device_information_at),
      security_info: (device.security_info ?? null) as Record<string, unknown> | null,
      security_info_at: iso(device.security_info_at),
      applications: detail.applications,
      profiles: detail.profiles,
      certificates: detail.certificates,
    },
  }
}

/** The filters of GET /devices, which a bulk command's `filter` takes too. */
export type DeviceFilterQuery = Omit<Query<'listDevices'>, 'sort' | 'limit' | 'cursor'>

export function deviceFilterFrom(query: DeviceFilterQuery): DeviceFilter {
  return {
    ...(query.serial_number !== undefined ? { serialNumber: query.serial_number } : {}),
    ...(query.udid !== undefined ? { udid: query.udid } : {}),
    ...(query.model !== undefined ? { model: query.model } : {}),
    ...(query.os_version !== undefined ? { osVersion: query.os_version } : {}),
    ...(query.enrolled !== undefined ? { enrolled: query.enrolled } : {}),
    ...(query.user_enrollment !== undefined ? { userEnrollment: query.user_enrollment } : {}),
    ...(query.supervised !== undefined ? { supervised: query.supervised } : {}),
    ...(query.last_seen_before !== undefined ? { lastSeenBefore: new Date(query.last_seen_before) } : {}),
    ...(query.last_seen_after !== undefined ? { lastSeenAfter: new Date(query.last_seen_after) } : {}),
    ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}),
    ...(query.kind !== undefined ? { kind: query.kind } : {}),
    ...(query.lifecycle_state !== undefined ? { lifecycleState: query.lifecycle_state } : {}),
    ...(query.group_id !== undefined ? { groupId: query.group_id } : {}),
    ...(query.enrollment_group !== undefined ? { enrollmentGroup: query.enrollment_group } : {}),
    ...(query.q !== undefined ? { search: query.q } : {}),
  }
}

/** The EraseOptions of openapi.yaml (wipe, reinstall, erase). */
export function eraseInput(body: EraseOptions): EraseInput {
  return {
    ...(body.pin !== undefined ? { pin: body.pin } : {}),
    ...(body.preserve_data_plan !== undefined ? { preserveDataPlan: body.preserve_data_plan } : {}),
    ...(body.disallow_proximity_setup !== undefined ? { disallowProximitySetup: body.disallow_proximity_setup } : {}),
    ...(body.return_to_service !== undefined ? { returnToService: body.return_to_service } : {}),
  }
}

export function lifecycleActionJson(action: LifecycleActionView): LifecycleAction {
  return {
    id: action.id,
    device_id: action.device_id,
    action: action.action,
    status: action.status,
    principal: action.principal_id === null ? null : { id: action.principal_id, name: action.principal_name },
    details: (action.details ?? null) as Record<string, unknown> | null,
    commands: action.commands.map((command, index) => {
      const status = action.commandStatus[index]
      return {
        command_uuid: command.command_uuid,
        request_type: command.request_type,
        item: command.item ?? null,
        status: status?.status ?? null,
        error_chain: status?.errorChain ?? null,
      }
    }),
    created_at: iso(action.created_at)!,
    completed_at: iso(action.completed_at),
  }
}

export function locationJson(row: LocationRow): DeviceLocation {
  return {
    latitude: row.latitude,
    longitude: row.longitude,
    horizontal_accuracy: row.horizontal_accuracy,
    vertical_accuracy: row.vertical_accuracy,
    altitude: row.altitude,
    speed: row.speed,
    course: row.course,
    located_at: iso(row.located_at),
    received_at: iso(row.received_at)!,
    command_uuid: row.command_uuid,
  }
}
