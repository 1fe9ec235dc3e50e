// Commands in the admin API's JSON: the queue's commands and targets, and what queueing one
// answers (per-target results, or the dry run).
import type { Command, CommandSummary, CommandTarget, DryRunResult as DryRunJson, EnqueueResult } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import { plistToJson } from '../mdm/json.js'
import { decodePlist, isPlistDict } from '../mdm/plist.js'
import { commandTargetStatuses, type CommandTargetStatus } from '../model/commands.js'
import { pushReportJson } from '../push/push-json.js'
import type { CommandRow, CommandTargetRow, CommandWithCounts } from './command-admin-store.js'
import type { DispatchResult, DryRunResult } from './dispatch.js'

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

export function commandSummaryJson(row: CommandRow): CommandSummary {
  return { command_uuid: row.uuid, request_type: row.request_type, priority: row.priority, expires_at: iso(row.expires_at), created_at: iso(row.created_at)! }
}

export function commandJson(row: CommandWithCounts): Command {
  const envelope = plistJson(row.payload)
  const counts = Object.fromEntries(commandTargetStatuses.map((status) => [status, row.counts[status] ?? 0])) as Record<CommandTargetStatus, number>
  const total = Object.values(counts).reduce((sum, n) => sum + n, 0)
  return { ...commandSummaryJson(row), command: (envelope?.['Command'] as Record<string, unknown> | undefined) ?? {}, targets: { total, ...counts } }
}

export function commandTargetJson(row: CommandTargetRow): CommandTarget {
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

export function dispatchResultJson(result: DispatchResult): EnqueueResult {
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

export function dryRunJson(result: DryRunResult): DryRunJson {
  return {
    dry_run: true,
    request_type: result.requestType,
    count: result.count,
    targets: result.targets.map((t) => ({
      enrollment_id: t.enrollmentId,
      device_id: t.deviceId,
      serial_number: t.serialNumber,
      tenant_id: t.tenantId,
      kind: t.kind,
    })),
    not_applicable: result.notApplicable,
    unknown: result.unknown,
    destructive: result.destructive,
    confirmation_required: result.confirmationRequired,
    owner_required: result.ownerRequired,
    confirmation_token: result.confirmationToken,
    expires_at: result.expiresAt.toISOString(),
  }
}
