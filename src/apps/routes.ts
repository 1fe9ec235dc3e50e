// Apple's Apps and Books notifications: POST /vpp/notifications/<token id>, outside the admin
// API (Apple authenticates with the bearer value Orchard set in client config, not an API key).
// Errors are problem+json; Apple only looks at the status (2xx: delivered, else retried).
// https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
import type { FastifyInstance } from 'fastify'
import { problemErrorHandler } from '../http/problem.js'
import type { VppNotifications } from './vpp-notifications.js'

export interface VppNotificationRoutesOptions {
  notifications: VppNotifications
  /** Devices whose licence was assigned or failed: asked for their app list, as after a licence round. */
  devicesLicensed(deviceIds: readonly string[]): Promise<void>
}

/** Apple sends at most 100 assignments per notification: a few KiB. */
const notificationBodyLimit = 1024 * 1024

export async function vppNotificationRoutes(app: FastifyInstance, options: VppNotificationRoutesOptions): Promise<void> {
  // The body as bytes whatever its Content-Type: the service parses it after the bearer check.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: notificationBodyLimit }, (_request, body, done) => done(null, body))
  app.setErrorHandler(problemErrorHandler)

  app.post<{ Params: { tokenId: string } }>('/vpp/notifications/:tokenId', { bodyLimit: notificationBodyLimit }, async (request, reply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : undefined
    const { settled } = await options.notifications.receive(request.params.tokenId, request.headers.authorization, body)
    if (settled.length > 0) {
      // The licences are settled already; a failure here must not make Apple retry (a retry
      // settles nothing): the periodic blueprint check asks these devices later.
      await options
        .devicesLicensed(settled)
        .catch((error: unknown) => request.log.error({ err: error, devices: settled.length }, 'licensed devices not asked for their apps'))
    }
    return reply.code(200).send()
  })
}
