// Who may do what: a principal holds grants (a role in a tenant, or in central IT), an
// operation of the admin API names the roles allowed to call it (openapi.yaml,
// `security: [{ apiKey: [roles...] }]`), and the scope of the call is the set of tenants
// where the principal holds one of those roles, with their departments.
import { tenantsAccess, type AccessScope, type AuditActor, type Grant, type Role } from '../model/access.js'

export interface Principal {
  /** `<key id>`, `config:<n>` or `oidc:<subject>`. */
  id: string
  name: string
  source: 'database' | 'config' | 'oidc'
  grants: readonly Grant[]
}

export interface TenantTree {
  /** The tenant and its departments (an organisation's children), itself first. */
  withDepartments(tenantId: string): Promise<readonly string[]>
  /** The organisation a tenant belongs to: its parent, or itself when it has none. */
  organisationOf(tenantId: string): Promise<string>
  /** After a tenant is created, moved or deleted in this process. */
  invalidate(): void
}

export function describeGrants(grants: readonly Grant[]): string {
  if (grants.length === 0) return 'no role'
  return grants.map((grant) => `${grant.role} in ${grant.tenantId === null ? 'central IT' : `tenant ${grant.tenantId}`}`).join(', ')
}

/**
 * The scope of a call allowed for `allowed` roles, or null when none of the principal's
 * grants has one of them.
 */
export async function scopeForRoles(principal: Principal, allowed: readonly Role[], tree: TenantTree, actor?: AuditActor): Promise<AccessScope | null> {
  const usable = principal.grants.filter((grant) => allowed.includes(grant.role))
  if (usable.length === 0) return null
  if (usable.some((grant) => grant.tenantId === null)) return Object.freeze({ kind: 'all', ...(actor ? { actor } : {}) })
  const ids: string[] = []
  for (const grant of usable) {
    for (const id of await tree.withDepartments(grant.tenantId!)) if (!ids.includes(id)) ids.push(id)
  }
  return tenantsAccess(ids, actor)
}

/** A tenant tree over a loader of every tenant, cached for `ttlMs` (tenants change rarely). */
export function createTenantTree(
  load: () => Promise<Array<{ id: string; parentId: string | null }>>,
  options: { ttlMs?: number; now?: () => number } = {},
): TenantTree {
  const ttlMs = options.ttlMs ?? 5_000
  const now = options.now ?? Date.now
  interface Shape {
    children: Map<string, string[]>
    parents: Map<string, string>
  }
  let cached: { until: number; shape: Promise<Shape> } | undefined

  function shape(): Promise<Shape> {
    if (cached && cached.until > now()) return cached.shape
    const entry = {
      until: now() + ttlMs,
      shape: load().then((tenants) => {
        const children = new Map<string, string[]>()
        const parents = new Map<string, string>()
        for (const tenant of tenants) {
          if (tenant.parentId === null) continue
          const list = children.get(tenant.parentId) ?? []
          list.push(tenant.id)
          children.set(tenant.parentId, list)
          parents.set(tenant.id, tenant.parentId)
        }
        return { children, parents }
      }),
    }
    entry.shape.catch(() => {
      if (cached === entry) cached = undefined
    })
    cached = entry
    return entry.shape
  }

  return {
    async withDepartments(tenantId) {
      return [tenantId, ...((await shape()).children.get(tenantId) ?? [])]
    },
    async organisationOf(tenantId) {
      return (await shape()).parents.get(tenantId) ?? tenantId
    },
    invalidate() {
      cached = undefined
    },
  }
}

/**
 * The tenant a command sent to devices of `targetTenants` belongs to, so its sender (and the
 * right admins) see it: the targets' one tenant; else their common organisation (a command
 * to several departments of one organisation); else central IT for a central sender, or the
 * first of the sender's own tenants among the targets'.
 */
export async function commandTenant(
  targetTenants: ReadonlySet<string | null>,
  scope: AccessScope,
  tree: Pick<TenantTree, 'organisationOf'>,
): Promise<string | null> {
  const tenants = [...targetTenants]
  if (tenants.length === 1) return tenants[0]!
  if (tenants.length > 1 && !tenants.includes(null)) {
    const organisations = new Set(await Promise.all(tenants.map((id) => tree.organisationOf(id!))))
    const organisation = organisations.size === 1 ? [...organisations][0]! : undefined
    if (organisation !== undefined && (scope.kind === 'all' || scope.ids.includes(organisation))) return organisation
  }
  if (scope.kind === 'all') return null
  return scope.ids.find((id) => targetTenants.has(id)) ?? null
}
