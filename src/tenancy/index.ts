// Tenancy as main.ts composes it: tenants (and the tree the access checks walk), the audit
// log with the device timeline's listeners, and the reports.
import type { DatabaseHandle } from '../db/database.js'
import { createTenantTree } from '../access/access-control.js'
import { createAuditStore } from './audit-store.js'
import { createReportStore } from './report-store.js'
import { createTenantReports } from './tenant-reports.js'
import { createTenantService } from './tenant-service.js'
import { createTenantStore } from './tenant-store.js'

export { tenantHandlers } from './api.js'
export { auditDeviceListeners } from './audit-listeners.js'

export function createTenancyFeature(deps: { db: DatabaseHandle['db'] }) {
  const store = createTenantStore(deps.db)
  const tree = createTenantTree(() => store.allTenants())
  const audit = createAuditStore(deps.db)
  const tenants = createTenantService({ store, audit, tree })
  const reports = createTenantReports({ reports: createReportStore(deps.db), tenants: store })
  return { tree, audit, tenants, reports }
}
