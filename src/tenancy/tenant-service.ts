// Tenants and the audit log for the admin API: a thin layer over the tenant and audit
// stores that keeps the cached tenant tree in step with creations and deletions, so
// handlers never reach the stores.
import type { TenantTree } from '../access/access-control.js'
import type { Page } from '../db/pagination.js'
import type { AccessScope } from '../model/access.js'
import type { AuditEventRow, AuditFilter, AuditStore } from './audit-store.js'
import type { CreateTenantOutcome, DeleteTenantOutcome, MoveOutcome, NewTenant, TenantChanges, TenantRow, TenantStore } from './tenant-store.js'

export type { AuditEventRow, AuditFilter, CreateTenantOutcome, DeleteTenantOutcome, MoveOutcome, NewTenant, TenantChanges, TenantRow }

export interface TenantService {
  listTenants(scope: AccessScope): Promise<TenantRow[]>
  getTenant(scope: AccessScope, id: string): Promise<TenantRow | undefined>
  createTenant(scope: AccessScope, input: NewTenant): Promise<CreateTenantOutcome>
  updateTenant(scope: AccessScope, id: string, changes: TenantChanges): Promise<TenantRow | undefined | 'name_taken'>
  deleteTenant(scope: AccessScope, id: string): Promise<DeleteTenantOutcome>
  /** Moves devices (inside the scope) to `tenantId`: see TenantStore.moveDevices. */
  moveDevices(scope: AccessScope, deviceIds: readonly string[], tenantId: string | null, at: Date): Promise<MoveOutcome>
  /** The audit log, newest first. */
  listAuditEvents(scope: AccessScope, filter: AuditFilter, page: { limit: number; cursor?: string }): Promise<Page<AuditEventRow>>
}

export interface TenantServiceDeps {
  store: Omit<TenantStore, 'allTenants'>
  audit: Pick<AuditStore, 'listEvents'>
  /** Cached tenant tree, refreshed when a tenant comes or goes. */
  tree: Pick<TenantTree, 'invalidate'>
}

export function createTenantService(deps: TenantServiceDeps): TenantService {
  const { store } = deps
  return {
    listTenants: (scope) => store.listTenants(scope),
    getTenant: (scope, id) => store.getTenant(scope, id),
    async createTenant(scope, input) {
      const outcome = await store.createTenant(scope, input)
      if (outcome.ok) deps.tree.invalidate()
      return outcome
    },
    updateTenant: (scope, id, changes) => store.updateTenant(scope, id, changes),
    async deleteTenant(scope, id) {
      const outcome = await store.deleteTenant(scope, id)
      if (outcome === 'deleted') deps.tree.invalidate()
      return outcome
    },
    moveDevices: (scope, deviceIds, tenantId, at) => store.moveDevices(scope, deviceIds, tenantId, at),
    listAuditEvents: (scope, filter, page) => deps.audit.listEvents(scope, filter, page),
  }
}
