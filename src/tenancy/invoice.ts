// A tenant's invoice for a month or a year: its device-days in the period (as the device-days
// report counts them) priced under its effective settings, in lines by kind and model.
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import { billOf, effectiveBilling, periodDays, type Bill } from './billing.js'
import type { BillingStore } from './billing-store.js'
import type { ReportStore } from './report-store.js'
import type { TenantStore } from './tenant-store.js'

export interface Invoice {
  tenantId: string
  tenantName: string
  parentId: string | null
  /** `2026` or `2026-12`. */
  period: string
  firstDay: string
  lastDay: string
  /** False while the period has days after now (they are not counted yet). */
  complete: boolean
  bill: Bill
}

export interface Invoices {
  /** The invoice of `tenantId` (default: the caller's own tenant); 404 outside the scope. */
  invoice(scope: AccessScope, query: { period: string; tenantId?: string }, now: Date): Promise<Invoice>
}

export interface InvoicesDeps {
  reports: Pick<ReportStore, 'deviceDays'>
  tenants: Pick<TenantStore, 'getTenant'>
  billing: BillingStore
  currency: string
}

const dayMs = 24 * 60 * 60 * 1000

export function createInvoices(deps: InvoicesDeps): Invoices {
  return {
    async invoice(scope, query, now) {
      const tenantId = query.tenantId ?? (scope.kind === 'tenants' ? scope.ids[0] : undefined)
      if (tenantId === undefined) {
        const detail = 'name the tenant to invoice (central IT is not invoiced)'
        throw new OrchardError('validation_failed', `tenant_id: ${detail}`, { details: { errors: [{ parameter: 'tenant_id', detail }] } })
      }
      const tenant = await deps.tenants.getTenant(scope, tenantId)
      if (!tenant) throw new OrchardError('not_found', `no tenant ${tenantId}`)
      const { firstDay, lastDay } = periodDays(query.period)
      const rows = await deps.reports.deviceDays(scope, { from: firstDay, to: lastDay, now, tenantId })
      const settings = new Map((await deps.billing.allBillingSettings()).map((row) => [row.id, row]))
      return {
        tenantId,
        tenantName: tenant.name,
        parentId: tenant.parent_id,
        period: query.period,
        firstDay,
        lastDay,
        complete: now.getTime() >= Date.parse(`${lastDay}T00:00:00Z`) + dayMs,
        bill: billOf(rows, effectiveBilling(tenantId, settings), deps.currency),
      }
    },
  }
}
