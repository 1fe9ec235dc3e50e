// Admin API: push certificates per topic, and pushing enrollments on demand.
import { OrchardError } from '../errors.js'
import type { PushCertificateService, PushCertificateUpload, PushCertificateView } from './push-certificates.js'
import type { PushService } from './push-service.js'
import type { DeviceDirectory } from '../fleet/device-directory.js'
import type { PushCertificate, PushCertificateUpload as UploadBody } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { pushReportJson } from './push-json.js'

export interface PushHandlerDeps {
  push: PushService
  certificates: PushCertificateService
  directory: Pick<DeviceDirectory, 'visibleEnrollments'>
}

function uploadFrom(body: UploadBody): PushCertificateUpload {
  if (body.pkcs12_base64 !== undefined) {
    if (body.password === undefined)
      throw new OrchardError('validation_failed', 'a PKCS#12 upload needs its password (use "" for none)', {
        details: { errors: [{ pointer: '/password', detail: 'is required with pkcs12_base64' }] },
      })
    const pkcs12 = Buffer.from(body.pkcs12_base64, 'base64')
    if (pkcs12.length === 0) throw new OrchardError('validation_failed', 'pkcs12_base64 is empty or not base64')
    return { kind: 'pkcs12', pkcs12, password: body.password }
  }
  if (body.certificate_pem === undefined || body.private_key_pem === undefined) {
    throw new OrchardError('validation_failed', 'send certificate_pem and private_key_pem, or pkcs12_base64 and password', {
      details: { errors: [{ pointer: body.certificate_pem === undefined ? '/certificate_pem' : '/private_key_pem', detail: 'is required' }] },
    })
  }
  return { kind: 'pem', certificatePem: body.certificate_pem, privateKeyPem: body.private_key_pem, passphrase: body.passphrase }
}

export function certificateJson(view: PushCertificateView): PushCertificate {
  return {
    topic: view.topic,
    tenant_id: view.tenantId,
    serial_number: view.serialNumber,
    subject: view.subject,
    sha256: view.sha256,
    not_before: view.notBefore.toISOString(),
    not_after: view.notAfter.toISOString(),
    days_left: view.daysLeft,
    updated_at: view.updatedAt.toISOString(),
  }
}

export function pushHandlers(deps: PushHandlerDeps): OperationHandlers {
  return {
    async listPushCertificates(request) {
      return { push_certificates: (await deps.certificates.list(accessOf(request))).map(certificateJson) }
    },
    async getPushCertificate(request) {
      return certificateJson(await deps.certificates.get(request.params.topic, accessOf(request)))
    },
    async addPushCertificate(request, reply) {
      const view = await deps.certificates.add(uploadFrom(request.body), accessOf(request), request.body.tenant_id)
      return reply.code(201).send(certificateJson(view))
    },
    async renewPushCertificate(request) {
      return certificateJson(await deps.certificates.replace(request.params.topic, uploadFrom(request.body), request.query.force, accessOf(request)))
    },
    async pushEnrollments(request) {
      const requested = [...new Set(request.body.enrollment_ids)]
      // Channels outside the caller's tenants are reported as unknown, as if they did not exist.
      const visible = await deps.directory.visibleEnrollments(accessOf(request), requested)
      const report = visible.size > 0 ? await deps.push.pushEnrollments(requested.filter((id) => visible.has(id))) : { results: [], topicErrors: [] }
      const byId = new Map(report.results.map((result) => [result.enrollmentId, result]))
      const results = requested.map((enrollmentId) => byId.get(enrollmentId) ?? { enrollmentId, status: 'skipped' as const, reason: 'unknown enrollment' })
      return pushReportJson({ ...report, results })
    },
  }
}
