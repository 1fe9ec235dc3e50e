// JSON shapes of the admin API (snake_case, ISO 8601 dates), from storage rows.
import { platformFromProduct } from '../mdm/command-validation.js'
import { plistToJson } from '../mdm/json.js'
import { decodePlist, isPlistDict } from '../mdm/plist.js'
import type { DispatchResult } from '../queue/dispatch.js'
import type { PushReport } from '../push/push-service.js'
import type { CommandRow, CommandTargetRow, CommandWithCounts } from '../queue/command-admin-store.js'
import type { DeviceDetail, DeviceRow } from '../fleet/device-directory-store.js'
import { commandTargetStatuses } from '../model/commands.js'

export function iso(date: Date | null | undefined): string | null {
  return date ? date.toISOString() : null
}

export function pushReportJson(report: PushReport) {
  return {
    results: report.results.map((r) => ({
      enrollment_id: r.enrollmentId,
      status: r.status,
      ...(r.apnsId ? { apns_id: r.apnsId } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
    })),
    topic_errors: report.topicErrors,
  }
}

export function deviceSummaryJson(row: DeviceRow) {
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
    last_seen_at: iso(row.last_seen_at),
    wiped_at: iso(row.wiped_at),
    retired_at: iso(row.retired_at),
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

export function deviceJson(detail: DeviceDetail) {
  const { device } = detail
  return {
    ...deviceSummaryJson(device),
    imei: device.imei,
    meid: device.meid,
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
      device_information: (device.device_information ?? null) as object | null,
      device_information_at: iso(device.device_information_at),
      security_info: (device.security_info ?? null) as object | null,
      security_info_at: iso(device.security_info_at),
      applications: detail.applications,
      profiles: detail.profiles,
      certificates: detail.certificates,
    },
  }
}

/** A stored plist as JSON; a body that no longer decodes is shown as null (never a 500). */
function plistJson(bytes: Buffer | null): Record<string, unknown> | null {
  if (!bytes) return null
  try {
    const value = decodePlist(bytes)
    return isPlistDict(value) ? (plistToJson(value) as Record<string, unknown>) : null
  } catch {
    return null
  }
}

export function commandSummaryJson(row: CommandRow) {
  return { command_uuid: row.uuid, request_type: row.request_type, priority: row.priority, expires_at: iso(row.expires_at), created_at: iso(row.created_at)! }
}

export function commandJson(row: CommandWithCounts) {
  const envelope = plistJson(row.payload)
  const counts = Object.fromEntries(commandTargetStatuses.map((status) => [status, row.counts[status] ?? 0]))
  const total = Object.values(counts).reduce((sum, n) => sum + n, 0)
  return { ...commandSummaryJson(row), command: (envelope?.['Command'] as object | undefined) ?? {}, targets: { total, ...counts } }
}

export function commandTargetJson(row: CommandTargetRow) {
  return {
    enrollment_id: row.enrollment_id,
    command_uuid: row.command_uuid,
    request_type: row.request_type,
    status: row.status,
    delivered: row.first_delivered_at !== null,
    not_now_count: row.not_now_count,
    delivery_count: row.delivery_count,
    first_delivered_at: iso(row.first_delivered_at),
    last_delivered_at: iso(row.last_delivered_at),
    result_at: iso(row.result_at),
    error_chain: (row.error_chain ?? null) as unknown[] | null,
    result: plistJson(row.result_raw),
    cancel_reason: row.cancel_reason,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

export function dispatchResultJson(result: DispatchResult) {
  return {
    command_uuid: result.commandUuid,
    request_type: result.requestType,
    stored: result.stored,
    targets: result.targets.map((t) => ({
      enrollment_id: t.enrollmentId,
      result: t.result,
      ...(t.result === 'not_applicable' ? { reason: t.reason, detail: t.detail } : {}),
    })),
    push: result.push === null ? null : 'error' in result.push ? result.push : pushReportJson(result.push),
  }
}
