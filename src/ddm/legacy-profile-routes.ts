// GET /mdm/ddm/profiles/<declaration>/<device>/<signature>: the ProfileURL of a legacy-profile
// declaration that carries a library profile. Outside the admin API; errors are those of the rest
// of the device surface (mdmErrorHandler): plain text, never 401 (a device that gets 401 unenrolls).
import type { FastifyInstance } from 'fastify'
import { mdmErrorHandler } from '../device/routes.js'
import { legacyProfilePath } from './legacy-profile-urls.js'
import type { LegacyProfiles } from './legacy-profiles.js'

export interface LegacyProfileRoutesOptions {
  profiles: LegacyProfiles
}

export async function legacyProfileRoutes(app: FastifyInstance, options: LegacyProfileRoutesOptions): Promise<void> {
  app.setErrorHandler(mdmErrorHandler)

  app.get<{ Params: { declarationId: string; deviceId: string; signature: string } }>(legacyProfilePath, async (request, reply) => {
    const { declarationId, deviceId, signature } = request.params
    const body = await options.profiles.profile(declarationId, deviceId, signature)
    return reply.code(200).type('application/x-apple-aspen-config').header('cache-control', 'no-store').send(body)
  })
}
