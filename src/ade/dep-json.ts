// Automated Device Enrollment in the admin API's JSON: server tokens, their sync and
// assignment reports, PreStage profiles and the devices Apple assigned to us.
import type { DepAssignReport, DepDevice, DepProfile, DepSyncReport, DepToken } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import type { AssignReport, DepTokenView, SyncReport } from './dep-service.js'
import type { DepDeviceRow, DepProfileRow } from './dep-store.js'
import { depTokenWarningDays } from './tokens.js'

export function tokenJson(token: DepTokenView): DepToken {
  return {
    id: token.id,
    tenant_id: token.tenant_id,
    name: token.name,
    certificate_pem: token.certificatePem,
    server_token_uploaded_at: iso(token.token_uploaded_at),
    access_token_expiry: iso(token.access_token_expiry),
    days_left: token.daysLeft,
    expires_soon: token.daysLeft !== null && token.daysLeft <= depTokenWarningDays,
    status: token.status,
    status_detail: token.status_detail,
    status_at: iso(token.status_at)!,
    retry_after: iso(token.retry_after),
    server_name: token.server_name,
    server_uuid: token.server_uuid,
    org_name: token.org_name,
    sync_phase: token.sync_phase,
    last_fetch_completed_at: iso(token.last_fetch_completed_at),
    last_sync_at: iso(token.last_sync_at),
    default_profile_id: token.default_profile_id,
    device_count: token.deviceCount,
    created_at: iso(token.created_at)!,
  }
}

export function profileJson(profile: DepProfileRow): DepProfile {
  return {
    id: profile.id,
    token_id: profile.token_id,
    name: profile.name,
    device_kind: profile.device_kind,
    minimum_os_version: profile.minimum_os_version,
    // Stored as given: typed commands (JSON objects), validated when the profile was saved.
    enrollment_commands: profile.enrollment_commands as Array<Record<string, unknown>>,
    settings: profile.profile,
    profile_uuid: profile.profile_uuid,
    defined_at: iso(profile.defined_at),
    define_error: profile.define_error,
    is_default: profile.is_default,
    created_at: iso(profile.created_at)!,
    updated_at: iso(profile.updated_at)!,
  }
}

export function deviceJson(device: DepDeviceRow): DepDevice {
  return {
    serial_number: device.serial_number,
    token_id: device.token_id,
    model: device.model,
    description: device.description,
    color: device.color,
    asset_tag: device.asset_tag,
    os: device.os,
    device_family: device.device_family,
    profile_status: device.profile_status,
    profile_uuid: device.profile_uuid,
    profile_assign_time: iso(device.profile_assign_time),
    profile_push_time: iso(device.profile_push_time),
    device_assigned_by: device.device_assigned_by,
    device_assigned_date: iso(device.device_assigned_date),
    op_type: device.op_type,
    op_date: iso(device.op_date),
    removed_at: iso(device.removed_at),
    assigned_profile_id: device.assigned_profile_id,
    assign_status: device.assign_status,
    assign_detail: device.assign_detail,
    assigned_at: iso(device.assigned_at),
    assign_retry_at: iso(device.assign_retry_at),
    device_id: device.device_id,
    first_seen_at: iso(device.first_seen_at)!,
    updated_at: iso(device.updated_at)!,
  }
}

export function syncJson(report: SyncReport): DepSyncReport {
  return {
    token_id: report.tokenId,
    outcome: report.outcome,
    pages: report.pages,
    devices: report.devices,
    added: report.added,
    restarted_fetch: report.restartedFetch,
    status: report.status,
    status_detail: report.detail,
  }
}

export function assignJson(report: AssignReport): DepAssignReport {
  return {
    profile_uuid: report.profileUuid,
    results: report.results.map((r) => ({ serial_number: r.serialNumber, status: r.status, detail: r.detail, retry_at: iso(r.retryAt) })),
  }
}
