// Tenants and audit events in the admin API's JSON.
import type { AuditEvent, Tenant } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import { deviceKinds } from '../model/devices.js'
import { formatPrice, minorDigits, parsePrice } from './billing.js'
import type { AuditEventRow, TenantRow } from './tenant-service.js'

/** A tenant, its own price shown with the minor digits of the installation's currency. */
export function tenantJson(row: TenantRow, currency: string): Tenant {
  return {
    id: row.id,
    name: row.name,
    parent_id: row.parent_id,
    price_per_device_year: row.price_per_device_year === null ? null : formatPrice(parsePrice(row.price_per_device_year), minorDigits(currency)),
    billed_kinds: row.billed_kinds === null ? null : deviceKinds.filter((kind) => row.billed_kinds!.includes(kind)),
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

export function auditEventJson(row: AuditEventRow): AuditEvent {
  return {
    id: String(row.id),
    at: iso(row.at)!,
    category: row.category,
    tenant_id: row.tenant_id,
    principal: row.principal_id === null ? null : { id: row.principal_id, name: row.principal_name ?? '', source: row.principal_source ?? 'database' },
    action: row.action,
    target_type: row.target_type,
    target_id: row.target_id,
    device_id: row.device_id,
    request_id: row.request_id,
    outcome: row.outcome,
    status_code: row.status_code,
    details: (row.details ?? null) as Record<string, unknown> | null,
  }
}
