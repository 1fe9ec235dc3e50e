// The device-facing surface: check-ins (CheckInURL) and command reports (ServerURL).
// Bodies are read raw: the Mdm-Signature covers the exact bytes.
// Never answer 401 here: a device that gets 401 removes its MDM profile.
// https://developer.apple.com/documentation/devicemanagement/check-in
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TLSSocket } from 'node:tls'
import { OrchardError } from '../errors.js'
import { parseCheckinMessage } from '../mdm/checkin.js'
import { decodePlist, PlistError } from '../mdm/plist.js'
import { parseCommandReport } from '../mdm/report.js'
import type { Metrics } from '../ops/metrics.js'
import type { CheckinService } from './checkin-service.js'
import type { ReportService } from './report-service.js'
import type { IdentityResolver } from './identity-resolver.js'
import type { MdmReply } from './mdm-types.js'
import { toOrchardError } from '../http/problem.js'

export interface MdmRoutesOptions {
  resolveIdentity: IdentityResolver
  checkin: CheckinService
  reports: ReportService
  metrics: Metrics
  /** Largest body accepted, in bytes (larger: 413). */
  bodyLimit: number
  /** Header a TLS-terminating proxy puts the client certificate in (lower case), if any. */
  clientCertificateHeader: string | null
  /**
   * Ongoing authentication of account-driven enrollments (enrollment/account-enrollment.ts):
   * throws account_authentication_required, the only 401 besides device_retired.
   */
  accountGate?: (deviceId: string, certificateSha256: string, authorization: string | undefined) => Promise<void>
}

const checkinContentType = 'application/x-apple-aspen-mdm-checkin'

/** Errors on the device surface (these routes, and what devices fetch elsewhere): plain text, Apple's statuses. */
export function mdmErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const orchardError = toOrchardError(error)
  // Apple gives these statuses meanings; anything unexpected is a 500 the device retries. 401
  // makes a device unenroll: only a retired device on an OS without the 403 below gets it, and
  // an account-driven enrollment whose person must sign in again (account-enrollment.ts gate).
  const allowed401 = orchardError.code === 'device_retired' || orchardError.code === 'account_authentication_required'
  const status = orchardError.status === 401 && !allowed401 ? 400 : orchardError.status
  if (status >= 500) request.log.error({ err: error, code: orchardError.code }, 'mdm request failed')
  else request.log.warn({ code: orchardError.code, reason: orchardError.message }, 'mdm request refused')
  if (orchardError.code === 'unrecognized_device') {
    // iOS 17/macOS 14: the documented way to make a device unenroll.
    return reply.code(403).type('application/json').send({ code: 'com.apple.unrecognized.device' })
  }
  const challenge = orchardError.details?.['www_authenticate']
  if (status === 401 && orchardError.code === 'account_authentication_required' && typeof challenge === 'string') reply.header('www-authenticate', challenge)
  return reply.code(status).type('text/plain; charset=utf-8').send(`${orchardError.code}: ${orchardError.message}\n`)
}

export async function mdmRoutes(app: FastifyInstance, options: MdmRoutesOptions): Promise<void> {
  // Every body is taken as bytes, whatever its Content-Type; some devices send none at all.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_request, body, done) => done(null, body))

  app.setErrorHandler(mdmErrorHandler)

  const identityOf = (request: FastifyRequest, body: Buffer) => {
    const signature = request.headers['mdm-signature']
    const forwarded = options.clientCertificateHeader ? request.headers[options.clientCertificateHeader] : undefined
    const socket = request.raw.socket as Partial<TLSSocket>
    return options.resolveIdentity(
      {
        signature: typeof signature === 'string' ? signature : undefined,
        forwardedCertificate: typeof forwarded === 'string' && forwarded !== '' ? forwarded : undefined,
        peerCertificate: () => {
          const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined
          return peer && 'raw' in peer && Buffer.isBuffer(peer.raw) ? peer.raw : undefined
        },
      },
      body,
    )
  }

  const gate = async (request: FastifyRequest, deviceId: string, certificateSha256: string) => {
    if (!options.accountGate) return
    const authorization = request.headers.authorization
    await options.accountGate(deviceId, certificateSha256, typeof authorization === 'string' ? authorization : undefined)
  }

  const bodyOf = (request: FastifyRequest): Buffer => {
    const body = request.body
    if (!Buffer.isBuffer(body) || body.length === 0) throw new OrchardError('malformed_message', 'the request body is empty')
    return body
  }

  const decode = (body: Buffer) => {
    try {
      return decodePlist(body)
    } catch (error) {
      if (error instanceof PlistError) throw new OrchardError('malformed_message', `not a valid plist: ${error.message}`, { cause: error })
      throw error
    }
  }

  const send = (reply: FastifyReply, result: MdmReply) => {
    reply.code(result.status)
    if (result.body === null) return reply.send()
    return reply.type(result.contentType ?? 'application/xml').send(result.body)
  }

  const handleCheckin = async (request: FastifyRequest, reply: FastifyReply) => {
    const body = bodyOf(request)
    const identity = identityOf(request, body)
    const message = parseCheckinMessage(decode(body))
    await gate(request, message.channel.deviceId, identity.certificateSha256)
    try {
      const result = await options.checkin.handleCheckin(message, identity, body)
      options.metrics.mdmCheckins.inc({ message_type: message.type, outcome: 'ok' })
      return send(reply, result)
    } catch (error) {
      options.metrics.mdmCheckins.inc({ message_type: message.type, outcome: toOrchardError(error).code })
      throw error
    }
  }

  const handleReport = async (request: FastifyRequest, reply: FastifyReply) => {
    const body = bodyOf(request)
    const identity = identityOf(request, body)
    const report = parseCommandReport(decode(body))
    await gate(request, report.channel.deviceId, identity.certificateSha256)
    const next = await options.reports.handleReport(report, identity, body)
    // No more commands: 200 with a zero-byte body, not an empty plist.
    if (next === null) return reply.code(200).send()
    return reply.code(200).type('application/xml').send(next)
  }

  const isCheckin = (request: FastifyRequest) => (request.headers['content-type'] ?? '').toLowerCase().startsWith(checkinContentType)

  app.put('/mdm/checkin', handleCheckin)
  app.put('/mdm/connect', handleReport)
  // One URL for both, as profiles with no CheckInURL use: dispatch on Content-Type.
  app.put('/mdm', (request, reply) => (isCheckin(request) ? handleCheckin(request, reply) : handleReport(request, reply)))
}
