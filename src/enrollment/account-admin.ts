// What admins do with account-driven enrollment (account-api.ts is its HTTP face): the
// domain-to-tenant mapping, the enrollments with their person, asking a person to sign in
// again, and revoking an enrollment through the offboarding of its device.
import { OrchardError } from '../errors.js'
import { scopeIncludes, tenantForNewRow, type AccessScope } from '../model/access.js'
import type { DeviceKind } from '../model/devices.js'
import type { AccountDomainRow, AccountEnrollmentRow, AccountEnrollmentStore } from './account-enrollment-store.js'

export type { AccountDomainRow, AccountEnrollmentRow }

export interface AccountEnrollmentAdmin<Action> {
  listDomains(scope: AccessScope): Promise<AccountDomainRow[]>
  putDomain(
    scope: AccessScope,
    domain: string,
    input: { tenantId?: string | null; requiredGroup?: string | null; deviceKind?: DeviceKind },
  ): Promise<AccountDomainRow>
  deleteDomain(scope: AccessScope, domain: string): Promise<void>
  listEnrollments(scope: AccessScope, filter: { email?: string; tenantId?: string | null }): Promise<AccountEnrollmentRow[]>
  requireReauthentication(scope: AccessScope, deviceId: string): Promise<AccountEnrollmentRow>
  revoke(scope: AccessScope, deviceId: string, reason: string | undefined): Promise<Action>
}

export function createAccountEnrollmentAdmin<Action>(deps: {
  store: AccountEnrollmentStore
  /** The offboarding of one device (fleet/offboarding.ts): selective wipe of a personal device, then retired. */
  offboard: (scope: AccessScope, deviceId: string, reason: string | undefined) => Promise<Action>
  now?: () => Date
}): AccountEnrollmentAdmin<Action> {
  const { store } = deps
  const now = deps.now ?? (() => new Date())
  const noEnrollment = (deviceId: string) => new OrchardError('not_found', `no account-driven enrollment of device ${deviceId}`)

  return {
    listDomains: (scope) => store.listDomains(scope),

    async putDomain(scope, domain, input) {
      // A domain of a tenant outside the scope does not exist for the caller, whatever the body says.
      const existing = await store.domain(domain)
      if (existing && !scopeIncludes(scope, existing.tenant_id)) throw new OrchardError('not_found', `no domain ${domain}`)
      const tenantId = tenantForNewRow(scope, input.tenantId)
      const row = await store.putDomain(scope, { domain, tenantId, requiredGroup: input.requiredGroup ?? null, deviceKind: input.deviceKind ?? 'work' })
      if (!row) throw new OrchardError('not_found', `the domain ${domain} belongs to a tenant you do not manage, or tenant ${tenantId} does not exist`)
      return row
    },

    async deleteDomain(scope, domain) {
      if (!(await store.deleteDomain(scope, domain))) throw new OrchardError('not_found', `no domain ${domain}`)
    },

    listEnrollments: (scope, filter) => store.listEnrollments(scope, filter),

    async requireReauthentication(scope, deviceId) {
      if (!(await store.requireReauthentication(scope, deviceId, now()))) throw noEnrollment(deviceId)
      const row = await store.enrollment(scope, deviceId)
      if (!row) throw noEnrollment(deviceId)
      return row
    },

    async revoke(scope, deviceId, reason) {
      if (!(await store.enrollment(scope, deviceId))) throw noEnrollment(deviceId)
      return deps.offboard(scope, deviceId, reason)
    },
  }
}
