// Admin API: a typed command for one channel, device or user (a Shared iPad user's
// `UDID:UserShortName`, a Mac user's `UDID:UserID`, a User Enrollment's EnrollmentUserID).
// Apple's schema says which commands a user channel takes; dispatch.ts checks it.
import { OrchardError } from '../errors.js'
import { scopeForRoles, type TenantTree } from '../access/access-control.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { dispatchResultJson } from './command-json.js'
import type { CommandDispatcher } from './dispatch.js'

export function enrollmentCommandHandlers(deps: { dispatcher: Pick<CommandDispatcher, 'dispatch'>; tenants: TenantTree }): OperationHandlers {
  return {
    async enqueueEnrollmentCommand(request, reply) {
      const { params, query, principal } = request
      if (!principal) throw new OrchardError('unauthorized', 'not authenticated')
      const enrollmentId = params.enrollment_id
      const result = await deps.dispatcher.dispatch(accessOf(request), {
        targets: { enrollmentIds: [enrollmentId] },
        command: { kind: 'typed', json: request.body, pointer: '' },
        ...(query.priority !== undefined ? { priority: query.priority } : {}),
        expiresAt: query.expires_at !== undefined ? new Date(query.expires_at) : null,
        push: query.push,
        // Destructive commands above ORCHARD_DESTRUCTIVE_OWNER_LIMIT are checked against the caller.
        caller: { principalId: principal.id, ownerScope: await scopeForRoles(principal, ['owner'], deps.tenants) },
      })
      const target = result.targets[0]!
      switch (target.result) {
        case 'queued':
          return reply.code(201).send(dispatchResultJson(result))
        case 'unknown_enrollment':
          throw new OrchardError('not_found', `no channel ${enrollmentId} (unknown, or not finished enrolling)`)
        case 'enrollment_disabled':
          throw new OrchardError('conflict', `channel ${enrollmentId} is not enrolled (it checked out or is re-enrolling)`)
        case 'not_applicable':
          throw new OrchardError('not_applicable', `${result.requestType} cannot go to channel ${enrollmentId}: ${target.detail}`, {
            details: { reason: target.reason },
          })
      }
    },
  }
}
