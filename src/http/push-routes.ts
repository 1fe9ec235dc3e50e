// Admin API for push: push certificates per topic, and pushing enrollments on demand.
import type { FastifyInstance } from 'fastify'
import { OrchardError } from '../errors.js'
import type { PushCertificateService, PushCertificateUpload, PushCertificateView } from '../services/push-certificates.js'
import type { PushReport, PushService } from '../services/push-service.js'
import type { ApiKeyCheck } from './api-auth.js'

export interface PushRoutesOptions {
  push: PushService
  certificates: PushCertificateService
  checkApiKey: ApiKeyCheck
}

interface UploadBody {
  certificate_pem?: string
  private_key_pem?: string
  passphrase?: string
  pkcs12_base64?: string
  password?: string
}

const uploadSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    certificate_pem: { type: 'string', maxLength: 65536 },
    private_key_pem: { type: 'string', maxLength: 65536 },
    passphrase: { type: 'string', maxLength: 1024 },
    pkcs12_base64: { type: 'string', maxLength: 262144 },
    password: { type: 'string', maxLength: 1024 },
  },
} as const

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
    serial_number: view.serialNumber,
    subject: view.subject,
    sha256: view.sha256,
    not_before: view.notBefore.toISOString(),
    not_after: view.notAfter.toISOString(),
    days_left: view.daysLeft,
    updated_at: view.updatedAt.toISOString(),
  }
}

export function pushReportJson(report: PushReport) {
  return {
    results: report.results.map((r) => ({
      enrollment_id: r.enrollmentId,
      status: r.status,
      ...(r.apnsId ? { apns_id: r.apnsId } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
    })),
    topic_errors: report.topicErrors,
  }
}

export async function pushRoutes(app: FastifyInstance, options: PushRoutesOptions): Promise<void> {
  app.addHook('onRequest', options.checkApiKey)

  app.get('/api/v1/push-certificates', async () => ({ push_certificates: (await options.certificates.list()).map(certificateJson) }))

  app.get<{ Params: { topic: string } }>('/api/v1/push-certificates/:topic', async (request) =>
    certificateJson(await options.certificates.get(request.params.topic)),
  )

  app.post<{ Body: UploadBody }>('/api/v1/push-certificates', { schema: { body: uploadSchema } }, async (request, reply) => {
    const view = await options.certificates.add(uploadFrom(request.body))
    return reply.code(201).send(certificateJson(view))
  })

  app.put<{ Params: { topic: string }; Querystring: { force?: string }; Body: UploadBody }>(
    '/api/v1/push-certificates/:topic',
    { schema: { body: uploadSchema } },
    async (request) => {
      const force = request.query.force === 'true'
      return certificateJson(await options.certificates.replace(request.params.topic, uploadFrom(request.body), force))
    },
  )

  app.post<{ Body: { enrollment_ids: string[] } }>(
    '/api/v1/push',
    {
      bodyLimit: 8 * 1024 * 1024,
      schema: {
        body: {
          type: 'object',
          required: ['enrollment_ids'],
          additionalProperties: false,
          properties: { enrollment_ids: { type: 'array', minItems: 1, maxItems: 100_000, items: { type: 'string', minLength: 1, maxLength: 400 } } },
        },
      },
    },
    async (request) => pushReportJson(await options.push.pushEnrollments(request.body.enrollment_ids)),
  )
}
