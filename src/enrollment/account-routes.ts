// Device-facing routes of account-driven enrollment (account-enrollment.ts has the protocol
// and its traps): service discovery, the enrollment endpoints of both versions, and the
// sign-in's start and callback, which run in the device's web view.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { OrchardError } from '../errors.js'
import { problemErrorHandler, toOrchardError } from '../http/problem.js'
import { isAccountVersion, type AccountEnrollment } from './account-enrollment.js'

export interface AccountEnrollmentRoutesOptions {
  accountEnrollment: AccountEnrollment
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(reply: FastifyReply, status: number, title: string, text: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(
      `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>\n`,
    )
}

export async function accountEnrollmentRoutes(app: FastifyInstance, options: AccountEnrollmentRoutesOptions): Promise<void> {
  const service = options.accountEnrollment
  // The device may POST a body (its MachineInfo-like details) to the enrollment URL: taken as bytes, unused.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (_request, body, done) => done(null, body))
  app.setErrorHandler((error, request, reply) => {
    const orchardError = toOrchardError(error)
    const challenge = orchardError.details?.['www_authenticate']
    if (orchardError.code === 'account_authentication_required' && typeof challenge === 'string') {
      // Exactly Apple's challenge: the device opens url= in a web view.
      return reply.code(401).header('www-authenticate', challenge).type('text/plain; charset=utf-8').send(`${orchardError.code}: ${orchardError.message}\n`)
    }
    return problemErrorHandler(error, request, reply)
  })

  // https://developer.apple.com/documentation/devicemanagement/wellknown; the device adds
  // user-identifier and model-family to the query: the document is the same for everyone.
  app.get('/.well-known/com.apple.remotemanagement', async (_request, reply) =>
    reply.type('application/json').header('cache-control', 'no-store').send(service.discovery()),
  )

  const enroll = async (request: FastifyRequest<{ Params: { version: string } }>, reply: FastifyReply) => {
    const version = request.params.version
    if (!isAccountVersion(version)) throw new OrchardError('not_found', `no account-driven enrollment ${version} (mdm-byod, mdm-adde)`)
    const profile = await service.enroll(version, request.headers.authorization)
    return reply.type('application/x-apple-aspen-config').header('cache-control', 'no-store').send(profile.body)
  }
  app.get('/enroll/account/:version', enroll)
  app.post('/enroll/account/:version', enroll)

  app.get<{ Querystring: Record<string, string | undefined> }>('/enroll/account/login', async (request, reply) => {
    const version = request.query['version'] ?? ''
    if (!isAccountVersion(version))
      throw new OrchardError('validation_failed', 'version must be mdm-byod or mdm-adde', {
        details: { errors: [{ parameter: 'version', detail: 'mdm-byod or mdm-adde' }] },
      })
    const userIdentifier = request.query['user-identifier']
    const location = await service.startLogin(version, userIdentifier && /^[^@\s]+@[^@\s]+$/.test(userIdentifier) ? userIdentifier : undefined)
    return reply.code(302).header('location', location).header('cache-control', 'no-store').send()
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/enroll/account/callback', async (request, reply) => {
    const { code, state, error } = request.query
    const outcome = await service.finishLogin({
      ...(code !== undefined ? { code } : {}),
      ...(state !== undefined ? { state } : {}),
      ...(error !== undefined ? { error } : {}),
    })
    if (outcome.kind === 'refused') return page(reply, 403, 'Enrollment not possible', outcome.reason)
    // The custom scheme ends the device's web view session; the token is single use and short-lived.
    return reply.code(302).header('location', outcome.location).header('cache-control', 'no-store').send()
  })
}
