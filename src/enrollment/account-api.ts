// Admin API of account-driven enrollment (account-admin.ts does the work): the domain-to-tenant
// mapping, the enrollments with their person, asking a person to sign in again, and revoking.
import type { AccountEnrollment as EnrollmentJson, AccountEnrollmentDomain as DomainJson } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { iso } from '../http/views.js'
import { lifecycleActionJson } from '../fleet/device-json.js'
import type { AccountDomainRow, AccountEnrollmentAdmin, AccountEnrollmentRow } from './account-admin.js'

type LifecycleActionView = Parameters<typeof lifecycleActionJson>[0]

const domainJson = (row: AccountDomainRow): DomainJson => ({
  domain: row.domain,
  tenant_id: row.tenant_id,
  required_group: row.required_group,
  device_kind: row.device_kind,
  updated_at: row.updated_at.toISOString(),
})

const enrollmentJson = (row: AccountEnrollmentRow): EnrollmentJson => ({
  device_id: row.device_id,
  tenant_id: row.tenant_id,
  serial_number: row.serial_number,
  kind: row.kind,
  lifecycle_state: row.lifecycle_state,
  enrollment_type: row.account_enrollment,
  subject: row.account_subject,
  email: row.user_email,
  authenticated_at: iso(row.account_authenticated_at),
  reauthentication_required_at: iso(row.account_reauth_required_at),
})

export function accountEnrollmentHandlers(deps: { admin: AccountEnrollmentAdmin<LifecycleActionView> }): OperationHandlers {
  const { admin } = deps
  return {
    async listAccountEnrollmentDomains(request) {
      return { items: (await admin.listDomains(accessOf(request))).map(domainJson) }
    },

    async putAccountEnrollmentDomain(request) {
      const { body } = request
      const row = await admin.putDomain(accessOf(request), request.params.domain, {
        ...(body.tenant_id !== undefined ? { tenantId: body.tenant_id } : {}),
        ...(body.required_group !== undefined ? { requiredGroup: body.required_group } : {}),
        ...(body.device_kind !== undefined ? { deviceKind: body.device_kind } : {}),
      })
      return domainJson(row)
    },

    async deleteAccountEnrollmentDomain(request, reply) {
      await admin.deleteDomain(accessOf(request), request.params.domain)
      return reply.code(204).send()
    },

    async listAccountEnrollments(request) {
      const { email, tenant_id: tenantId } = request.query
      const rows = await admin.listEnrollments(accessOf(request), {
        ...(email !== undefined ? { email } : {}),
        ...(tenantId !== undefined ? { tenantId } : {}),
      })
      return { items: rows.map(enrollmentJson) }
    },

    async requireAccountReauthentication(request) {
      return enrollmentJson(await admin.requireReauthentication(accessOf(request), request.params.device_id))
    },

    async revokeAccountEnrollment(request, reply) {
      const action = await admin.revoke(accessOf(request), request.params.device_id, request.body?.reason)
      return reply.code(201).send(lifecycleActionJson(action))
    },
  }
}
