// POST /api/v1/enqueue/{ids}: queue a raw command plist for one or more enrollments
// (comma-separated IDs). The minimal operator entry point until the full admin API.
import type { FastifyInstance } from 'fastify'
import { OrchardError } from '../errors.js'
import { readCommandPlist } from '../mdm/command.js'
import type { CommandService } from '../services/command-service.js'
import type { PushService } from '../services/push-service.js'
import type { ApiKeyCheck } from './api-auth.js'
import { pushReportJson } from './push-routes.js'

export interface EnqueueRoutesOptions {
  commands: CommandService
  /** Pushes the queued targets unless the caller passes push=false. */
  push: PushService
  checkApiKey: ApiKeyCheck
  bodyLimit: number
}

const plistTypes = ['application/x-apple-plist', 'application/xml', 'text/xml', 'application/octet-stream']

export async function enqueueRoutes(app: FastifyInstance, options: EnqueueRoutesOptions): Promise<void> {
  app.addContentTypeParser(plistTypes, { parseAs: 'buffer', bodyLimit: options.bodyLimit }, (_request, body, done) => done(null, body))
  app.addHook('onRequest', options.checkApiKey)

  app.post<{ Params: { ids: string }; Querystring: { priority?: string; expires_at?: string; push?: string } }>('/api/v1/enqueue/:ids', async (request) => {
    const ids = request.params.ids
      .split(',')
      .map((id) => id.trim())
      .filter((id) => id !== '')
    if (ids.length === 0) throw new OrchardError('validation_failed', 'name at least one enrollment ID in the path')
    if (!Buffer.isBuffer(request.body) || request.body.length === 0) {
      throw new OrchardError('validation_failed', `the body must be a command plist (Content-Type ${plistTypes[0]})`)
    }
    let priority: number | undefined
    if (request.query.priority !== undefined) {
      priority = Number(request.query.priority)
      if (!Number.isInteger(priority)) throw new OrchardError('validation_failed', 'priority must be a whole number from -100 to 100')
    }
    let expiresAt: Date | null = null
    if (request.query.expires_at !== undefined) {
      expiresAt = new Date(request.query.expires_at)
      if (Number.isNaN(expiresAt.getTime())) throw new OrchardError('validation_failed', 'expires_at must be an ISO 8601 date-time')
    }
    const result = await options.commands.enqueueCommand(ids, readCommandPlist(request.body), { priority, expiresAt })
    const queued = result.targets.filter((t) => t.outcome === 'queued').map((t) => t.enrollmentId)
    let push: ReturnType<typeof pushReportJson> | { error: string } | null = null
    if (request.query.push !== 'false' && queued.length > 0) {
      // The command is stored: a failing push must not turn the answer into an error (a
      // client retrying would then queue it twice). The re-push loop tries again later.
      try {
        push = pushReportJson(await options.push.pushEnrollments(queued))
      } catch (error) {
        request.log.error({ err: error, command_uuid: result.commandUuid }, 'push after enqueue failed')
        push = { error: `push failed: ${(error as Error).message}` }
      }
    }
    return {
      command_uuid: result.commandUuid,
      request_type: result.requestType,
      stored: result.stored,
      targets: result.targets.map((t) => ({ enrollment_id: t.enrollmentId, result: t.outcome })),
      push,
    }
  })
}
