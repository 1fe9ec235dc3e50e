// GET /mdm/ddm/profiles/<declaration>/<device>/<signature>: the ProfileURL of a legacy-profile
// declaration that carries a library profile. Outside the admin API; errors are plain text as
// on the rest of the device surface, and never 401 (a device that gets 401 unenrolls).
import type { FastifyInstance } from 'fastify'
import { toOrchardError } from '../http/problem.js'
import { legacyProfilePath } from './legacy-profile-urls.js'
import type { LegacyProfiles } from './legacy-profiles.js'

export interface LegacyProfileRoutesOptions {
  profiles: LegacyProfiles
}

export async function legacyProfileRoutes(app: FastifyInstance, options: LegacyProfileRoutesOptions): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    const orchardError = toOrchardError(error)
    const status = orchardError.status === 401 ? 400 : orchardError.status
    if (status >= 500) request.log.error({ err: error, code: orchardError.code }, 'legacy profile request failed')
    else request.log.warn({ code: orchardError.code, reason: orchardError.message }, 'legacy profile request refused')
    return reply.code(status).type('text/plain; charset=utf-8').send(`${orchardError.code}: ${orchardError.message}\n`)
  })

  app.get<{ Params: { declarationId: string; deviceId: string; signature: string } }>(legacyProfilePath, async (request, reply) => {
    const { declarationId, deviceId, signature } = request.params
    const body = await options.profiles.profile(declarationId, deviceId, signature)
    return reply.code(200).type('application/x-apple-aspen-config').header('cache-control', 'no-store').send(body)
  })
}
