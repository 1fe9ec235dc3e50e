// Device-facing enrollment: the SCEP server (RFC 8894 §4) and enrollment profile downloads.
// SCEP errors are text/plain (SCEP clients show or log the body); profile errors are
// problem+json like the rest of the HTTP surface.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { OrchardError } from '../errors.js'
import { decodeDeviceInfoHeader } from '../mdm/machine-info.js'
import type { AdeEnrollmentService } from '../ade/ade-enrollment.js'
import type { EnrollmentService } from './enrollment-service.js'
import type { ScepService } from './scep-service.js'
import { problemErrorHandler, toOrchardError } from '../http/problem.js'

export interface EnrollmentRoutesOptions {
  scep: ScepService
  enrollment: EnrollmentService
  ade?: AdeEnrollmentService
}

/** A PKIOperation is a few KiB; RSA-4096 requests with certificates stay far below this. */
const scepBodyLimit = 64 * 1024

function scepError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  const orchardError = toOrchardError(error)
  if (orchardError.status >= 500 && orchardError.code !== 'not_ready') request.log.error({ err: error }, 'SCEP request failed')
  else request.log.warn({ code: orchardError.code, reason: orchardError.message }, 'SCEP request refused')
  return reply.code(orchardError.status).type('text/plain; charset=utf-8').send(`${orchardError.code}: ${orchardError.message}\n`)
}

/**
 * The `message` of a GET PKIOperation. Clients that do not URL-encode it turn every "+"
 * into a space by the time the query is parsed; some wrap the base64 in lines.
 */
function decodeGetMessage(value: string): Buffer {
  const text = value.replace(/ /g, '+').replace(/[\r\n]/g, '')
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new OrchardError('bad_request', 'message is not base64 (URL-encode it, or POST the PKIOperation)')
  }
  return Buffer.from(text, 'base64')
}

export async function enrollmentRoutes(app: FastifyInstance, options: EnrollmentRoutesOptions): Promise<void> {
  // Every body as bytes: SCEP clients send application/x-pki-message, octet-stream or nothing.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: scepBodyLimit }, (_request, body, done) => done(null, body))
  app.setErrorHandler((error, request, reply) =>
    request.routeOptions.url?.startsWith('/scep') ? scepError(error, request, reply) : problemErrorHandler(error, request, reply),
  )

  const pkiOperation = async (request: FastifyRequest, reply: FastifyReply, message: Buffer) => {
    if (message.length === 0) throw new OrchardError('bad_request', 'the PKIOperation message is empty')
    const certRep = await options.scep.pkiOperation(message)
    return reply.code(200).type('application/x-pki-message').send(certRep)
  }

  app.get<{ Querystring: Record<string, string | undefined> }>('/scep', async (request, reply) => {
    const operation = request.query['operation']
    switch (operation) {
      case 'GetCACaps':
        return reply.type('text/plain; charset=utf-8').send(options.scep.capabilities())
      case 'GetCACert': {
        const { body, contentType } = options.scep.caCertificates()
        return reply.type(contentType).send(body)
      }
      case 'PKIOperation': {
        const message: unknown = request.query['message']
        // A repeated parameter arrives as an array.
        if (typeof message !== 'string' || !message) throw new OrchardError('bad_request', 'GET PKIOperation needs one base64 message parameter')
        return pkiOperation(request, reply, decodeGetMessage(message))
      }
      default:
        throw new OrchardError(
          'bad_request',
          operation ? `unknown SCEP operation ${JSON.stringify(operation)} (GetCACaps, GetCACert, PKIOperation)` : 'the operation parameter is missing',
        )
    }
  })

  app.post<{ Querystring: Record<string, string | undefined> }>('/scep', async (request, reply) => {
    const operation = request.query['operation']
    if (operation !== 'PKIOperation') throw new OrchardError('bad_request', `POST is for operation=PKIOperation, not ${JSON.stringify(operation ?? '')}`)
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    return pkiOperation(request, reply, body)
  })

  const sendProfile = async (request: FastifyRequest<{ Params: { token?: string }; Querystring: Record<string, string | undefined> }>, reply: FastifyReply) => {
    const { signed, managed_apple_id: managedAppleId, ...rest } = request.query
    const unknown = Object.keys(rest)
    if (unknown.length)
      throw new OrchardError('validation_failed', `unknown query parameter ${unknown[0]}`, {
        details: { errors: unknown.map((parameter) => ({ parameter, detail: 'unknown parameter' })) },
      })
    if (signed !== undefined && signed !== 'true' && signed !== 'false') {
      throw new OrchardError('validation_failed', 'signed must be true or false', {
        details: { errors: [{ parameter: 'signed', detail: 'must be true or false' }] },
      })
    }
    const profile = await options.enrollment.enrollmentProfile({
      ...(request.params.token !== undefined ? { token: request.params.token } : {}),
      ...(signed !== undefined ? { signed: signed === 'true' } : {}),
      ...(managedAppleId !== undefined ? { managedAppleId } : {}),
    })
    return (
      reply
        .type('application/x-apple-aspen-config')
        .header('content-disposition', `attachment; filename="${profile.variant === 'user-enrollment' ? 'user-enrollment' : 'enroll'}.mobileconfig"`)
        // Each download carries its own one-time challenge: never cache or share it.
        .header('cache-control', 'no-store')
        .send(profile.body)
    )
  }

  app.get('/enroll', sendProfile)
  app.get('/enroll/:token', sendProfile)

  const ade = options.ade
  if (ade) {
    // The `url` of PreStage profiles: Setup Assistant POSTs the CMS-signed MachineInfo here.
    const answer = async (reply: FastifyReply, machineInfo: Buffer) => {
      const result = await ade.enroll(machineInfo)
      if (result.kind === 'software_update_required') {
        // Apple's body for this 403: the device updates to OSVersion, then retries.
        // https://developer.apple.com/documentation/devicemanagement/errorcodesoftwareupdaterequired
        return reply
          .code(403)
          .type('application/json')
          .send({ code: 'com.apple.softwareupdate.required', details: { OSVersion: result.osVersion } })
      }
      return reply.type('application/x-apple-aspen-config').header('cache-control', 'no-store').send(result.profile.body)
    }
    app.post('/enroll/ade', async (request, reply) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
      if (body.length === 0) throw new OrchardError('bad_request', 'the MachineInfo body is empty (expected application/pkcs7-signature)')
      return answer(reply, body)
    })
    // A PreStage's configuration_web_url: Setup Assistant opens it in a web view with the same
    // signed MachineInfo, base64, in x-apple-aspen-deviceinfo (a sign-in proxy in front of
    // this URL can authenticate the user first).
    app.get('/enroll/ade', async (request, reply) => {
      const header = request.headers['x-apple-aspen-deviceinfo']
      if (typeof header !== 'string' || header === '')
        throw new OrchardError('bad_request', 'the x-apple-aspen-deviceinfo header (base64 MachineInfo) is missing: open this URL from Setup Assistant')
      return answer(reply, decodeDeviceInfoHeader(header))
    })
  }
}
