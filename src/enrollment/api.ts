// Admin API: enrollment links, the device CAs and expiring device identities.
import type { CertificateAuthorityService, CertificateAuthorityView } from './certificate-authority.js'
import type { EnrollmentLinkView, EnrollmentService } from './enrollment-service.js'
import type { IdentityRenewalService } from './identity-renewal.js'
import type { CertificateAuthority, EnrollmentLink } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { iso } from '../http/views.js'
import { dispatchResultJson } from '../queue/command-json.js'

export interface EnrollmentHandlerDeps {
  enrollment: EnrollmentService
  authority: CertificateAuthorityService
  renewal: IdentityRenewalService
}

function linkJson(link: EnrollmentLinkView): EnrollmentLink {
  return {
    id: link.id,
    tenant_id: link.tenant_id,
    name: link.name,
    url: link.url,
    enrollment_type: link.enrollment_type,
    device_kind: link.device_kind,
    group: link.group_name,
    managed_apple_id: link.managed_apple_id,
    push_topic: link.push_topic,
    expires_at: iso(link.expires_at),
    max_uses: link.max_uses,
    uses: link.uses,
    usable: link.usable,
    revoked_at: iso(link.revoked_at),
    created_at: iso(link.created_at)!,
  }
}

function authorityJson(view: CertificateAuthorityView): CertificateAuthority {
  return {
    id: view.id,
    subject: view.subject,
    source: view.source,
    active: view.active,
    not_before: iso(view.notBefore)!,
    not_after: iso(view.notAfter)!,
    certificate_pem: view.certificatePem,
    registration_authority: view.registrationAuthority
      ? {
          subject: view.registrationAuthority.subject,
          not_after: iso(view.registrationAuthority.notAfter)!,
          certificate_pem: view.registrationAuthority.certificatePem,
        }
      : null,
  }
}

export function enrollmentHandlers(deps: EnrollmentHandlerDeps): OperationHandlers {
  return {
    async listEnrollmentLinks(request) {
      const { include_revoked: includeRevoked } = request.query
      return { items: (await deps.enrollment.listLinks(accessOf(request), includeRevoked)).map(linkJson) }
    },
    async createEnrollmentLink(request, reply) {
      const { body } = request
      const link = await deps.enrollment.createLink(accessOf(request), {
        ...(body.tenant_id !== undefined ? { tenantId: body.tenant_id } : {}),
        name: body.name,
        enrollmentType: body.enrollment_type ?? 'device',
        ...(body.device_kind !== undefined ? { deviceKind: body.device_kind } : {}),
        group: body.group ?? null,
        managedAppleId: body.managed_apple_id ?? null,
        pushTopic: body.push_topic ?? null,
        expiresAt: body.expires_at !== undefined ? new Date(body.expires_at) : null,
        maxUses: body.max_uses ?? null,
      })
      return reply.code(201).send(linkJson(link))
    },
    async getEnrollmentLink(request) {
      return linkJson(await deps.enrollment.getLink(accessOf(request), request.params.link_id))
    },
    async revokeEnrollmentLink(request, reply) {
      await deps.enrollment.revokeLink(accessOf(request), request.params.link_id)
      return reply.code(204).send()
    },

    async listCertificateAuthorities() {
      return { items: deps.authority.list().map(authorityJson), issuing_available: deps.authority.available() }
    },
    async addCertificateAuthority(request, reply) {
      const { body } = request
      const scope = accessOf(request)
      const view =
        body.private_key_pem !== undefined
          ? await deps.authority.importAuthority(scope, body.certificate_pem, body.private_key_pem)
          : await deps.authority.addTrusted(scope, body.certificate_pem)
      request.log.info({ ca: view.id, active: view.active }, body.private_key_pem !== undefined ? 'device CA imported' : 'trusted device CA added')
      return reply.code(201).send(authorityJson(view))
    },
    async removeCertificateAuthority(request, reply) {
      await deps.authority.remove(accessOf(request), request.params.ca_id)
      return reply.code(204).send()
    },

    async listExpiringIdentities(request) {
      const { query } = request
      const page = await deps.renewal.listExpiring(accessOf(request), query.within_days, {
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
      })
      return {
        items: page.items.map((row) => ({
          device_id: row.device_id,
          serial_number: row.serial_number,
          user_enrollment: row.user_enrollment,
          identity_sha256: row.identity_sha256,
          identity_not_after: iso(row.identity_not_after)!,
          renewable: row.renewable,
          renewal_queued_at: iso(row.renewal_queued_at),
          renewal_command_uuid: row.renewal_command_uuid,
          renewal_command_status: row.renewal_command_status,
        })),
        next_cursor: page.nextCursor,
      }
    },
    async renewDeviceIdentity(request, reply) {
      const result = await deps.renewal.renewDevice(accessOf(request), request.params.device_id, { push: request.query.push })
      return reply.code(201).send(dispatchResultJson(result))
    },

    async allowDeviceReenrollment(request) {
      const id = request.params.device_id
      const { body } = request
      const until = await deps.renewal.allowReenrollment(accessOf(request), id, { minutes: body.minutes, reason: body.reason })
      return { device_id: id, reenrollment_allowed_until: until.toISOString() }
    },
  }
}
