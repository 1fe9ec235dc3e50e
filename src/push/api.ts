// Admin API: push certificates per topic, and pushing enrollments on demand.
import { OrchardError } from '../errors.js'
import type { PushCertificateService, PushCertificateUpload, PushCertificateView } from './push-certificates.js'
import type { PushService } from './push-service.js'
import type { DeviceDirectoryStore } from '../fleet/device-directory-store.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { pushReportJson } from '../http/views.js'

export interface PushHandlerDeps {
  push: PushService
  certificates: PushCertificateService
  directory: Pick<DeviceDirectoryStore, 'targetFacts'>
}

interface UploadBody {
  certificate_pem?: string
  private_key_pem?: string
  tenant_id?: string | null
  passphrase?: string
  pkcs12_base64?: string
  password?: string
}

function uploadFrom(body: UploadBody): PushCertificateUpload {
  if (body.pkcs12_base64 !== undefined) {
    if (body.password === undefined) throw new OrchardError('validation_failed', 'a PKCS#12 upload needs its password (use "" for none)', { details: { errors: [{ pointer: '/password', detail: 'is required with pkcs12_base64' }] } })
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

export function certificateJson(view: PushCertificateView) {
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
      return certificateJson(await deps.certificates.get((request.params as { topic: string }).topic, accessOf(request)))
    },
    async addPushCertificate(request, reply) {
      const body = request.body as UploadBody
      const view = await deps.certificates.add(uploadFrom(body), accessOf(request), body.tenant_id)
      return reply.code(201).send(certificateJson(view))
    },
    async renewPushCertificate(request) {
      const { topic } = request.params as { topic: string }
      const force = (request.query as { force: boolean }).force
      return certificateJson(await deps.certificates.replace(topic, uploadFrom(request.body as UploadBody), force, accessOf(request)))
    },
    async pushEnrollments(request) {
      const requested = [...new Set((request.body as { enrollment_ids: string[] }).enrollment_ids)]
      // Channels outside the caller's tenants are reported as unknown, as if they did not exist.
      const visible = new Set((await deps.directory.targetFacts(accessOf(request), requested)).map((facts) => facts.enrollmentId))
      const report = visible.size > 0 ? await deps.push.pushEnrollments(requested.filter((id) => visible.has(id))) : { results: [], topicErrors: [] }
      const byId = new Map(report.results.map((result) => [result.enrollmentId, result]))
      const results = requested.map((enrollmentId) => byId.get(enrollmentId) ?? { enrollmentId, status: 'skipped' as const, reason: 'unknown enrollment' })
      return pushReportJson({ ...report, results })
    },
  }
}
