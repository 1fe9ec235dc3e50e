// What part of the fleet a caller may see and act on. Every admin query takes one and
// applies it in SQL (db/scope-sql.ts, inScope), so a principal of one tenant cannot reach another
// tenant's rows by id or by filter: such rows simply do not exist for it (404).
//
// Rows with tenant_id null belong to central IT: only the 'all' scope sees them.
import { OrchardError } from '../errors.js'

export const roles = ['owner', 'admin', 'helpdesk', 'auditor'] as const
export type Role = (typeof roles)[number]

/** One role in one tenant; tenantId null = central IT (the whole installation). */
export interface Grant {
  tenantId: string | null
  role: Role
}

/** Who is acting, for the audit log. */
export interface AuditActor {
  principalId: string
  principalName: string
  principalSource: 'database' | 'config' | 'oidc'
  requestId: string
  /** The operationId of the admin API operation. */
  action: string
  /** Set once a row for this request has been written (by a store, in its transaction). */
  recorded: boolean
}

export type AccessScope =
  { readonly kind: 'all'; readonly actor?: AuditActor } | { readonly kind: 'tenants'; readonly ids: readonly string[]; readonly actor?: AuditActor }

/** The scope of the system itself (enrollment, background loops): everything, no actor. */
export const fullAccess: AccessScope = Object.freeze({ kind: 'all' })

export function tenantsAccess(ids: readonly string[], actor?: AuditActor): AccessScope {
  return Object.freeze({ kind: 'tenants', ids: Object.freeze([...ids]), ...(actor ? { actor } : {}) })
}

/** A scope as a job keeps it in its params (JSON): its tenant ids, null for every tenant. */
export function scopeTenantIds(scope: AccessScope): string[] | null {
  return scope.kind === 'all' ? null : [...scope.ids]
}

/** The scope a job does its work in, from the tenant ids it kept (scopeTenantIds). */
export function scopeOfTenantIds(ids: readonly string[] | null, actor?: AuditActor): AccessScope {
  return ids === null ? Object.freeze({ kind: 'all', ...(actor ? { actor } : {}) }) : tenantsAccess(ids, actor)
}

/** Whether a row of `tenantId` is inside the scope. */
export function scopeIncludes(scope: AccessScope, tenantId: string | null): boolean {
  return scope.kind === 'all' || (tenantId !== null && scope.ids.includes(tenantId))
}

/** The tenant a new row gets when the caller names none: its only tenant, or central IT. */
export function defaultTenantOf(scope: AccessScope): string | null {
  if (scope.kind === 'all') return null
  return scope.ids[0] ?? null
}

/**
 * The tenant a new row gets: the one asked for, which must be inside the scope, or the
 * caller's own (central IT for a central caller). Unknown and foreign tenants get the same
 * answer, so existence does not leak.
 */
export function tenantForNewRow(scope: AccessScope, requested: string | null | undefined): string | null {
  const tenantId = requested === undefined ? defaultTenantOf(scope) : requested
  if (!scopeIncludes(scope, tenantId)) {
    const detail = tenantId === null ? 'only central IT can create rows outside a tenant' : `${tenantId} is not a tenant you manage`
    throw new OrchardError('validation_failed', `tenant_id: ${detail}`, { details: { errors: [{ pointer: '/tenant_id', detail }] } })
  }
  return tenantId
}
