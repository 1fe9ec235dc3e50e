// Tenancy as main.ts composes it: tenants (and the tree the access checks walk), the audit
// log with the device timeline's listeners, the reports (long ones as report jobs) and the invoices.
import type { DatabaseHandle } from '../db/database.js'
import { createTenantTree } from '../access/access-control.js'
import { createAuditStore } from './audit-store.js'
import { createBillingStore } from './billing-store.js'
import { createInvoices } from './invoice.js'
import { createReportStore } from './report-store.js'
import { createTenantReports } from './tenant-reports.js'
import { createTenantService } from './tenant-service.js'
import { createTenantStore } from './tenant-store.js'

export { tenantHandlers } from './api.js'
export { billingHandlers } from './billing-api.js'
export { createReportJobs, renderJobOutput, reportJobKind } from './report-job.js'
export { auditDeviceListeners } from './audit-listeners.js'

/** `currency`: ORCHARD_BILLING_CURRENCY. */
export function createTenancyFeature(deps: { db: DatabaseHandle['db']; currency: string }) {
  const store = createTenantStore(deps.db)
  const tree = createTenantTree(() => store.allTenants())
  const audit = createAuditStore(deps.db)
  const tenants = createTenantService({ store, audit, tree })
  const reportStore = createReportStore(deps.db)
  const billing = createBillingStore(deps.db)
  const reports = createTenantReports({ reports: reportStore, tenants: store, billing, currency: deps.currency })
  const invoices = createInvoices({ reports: reportStore, tenants: store, billing, currency: deps.currency })
  return { tree, audit, tenants, reports, invoices }
}
