// Putting a command in the queue of one or many enrollments (the admin side of the queue;
// the device side is device/report-service.ts). Validation of targets and keys happens
// before, in dispatch.ts.
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { buildCommand, type EncodedCommand } from '../mdm/command.js'
import type { AccessScope } from '../model/access.js'
import type { PlistDict } from '../mdm/plist.js'
import type { CommandQueueStore, TargetOutcome } from './command-queue-store.js'

export interface EnqueueOptions {
  /** Higher goes first; default 0 (range -100..100). */
  priority?: number
  /** After this moment an undelivered command is marked Expired and never sent. */
  expiresAt?: Date | null
  /** The tenant of all targets (null: central IT or mixed). */
  tenantId?: string | null
  /** The admin's scope, for the audit row written with the command. */
  scope?: AccessScope
}

export interface EnqueueResult {
  commandUuid: string
  requestType: string
  /** False when no target could take the command (nothing was stored). */
  stored: boolean
  targets: Array<{ enrollmentId: string; outcome: TargetOutcome }>
}

export type CommandInput = EncodedCommand | { requestType: string; keys?: PlistDict; uuid?: string }

export interface CommandEnqueuer {
  enqueueCommand(targets: readonly string[], command: CommandInput, options?: EnqueueOptions): Promise<EnqueueResult>
}

export function createCommandEnqueuer(deps: { queue: Pick<CommandQueueStore, 'insertCommand'>; logger: Logger }): CommandEnqueuer {
  const log = deps.logger.child({ service: 'enqueue' })
  return {
    async enqueueCommand(targets, input, options = {}) {
      const command = 'payload' in input ? input : buildCommand(input.requestType, input.keys, input.uuid)
      const priority = options.priority ?? 0
      if (!Number.isInteger(priority) || priority < -100 || priority > 100) {
        throw new OrchardError('validation_failed', 'priority must be a whole number from -100 to 100')
      }
      if (targets.length === 0) throw new OrchardError('validation_failed', 'at least one enrollment ID is needed')
      const outcome = await deps.queue.insertCommand(
        {
          uuid: command.uuid,
          requestType: command.requestType,
          payload: command.payload,
          priority,
          expiresAt: options.expiresAt ?? null,
          tenantId: options.tenantId ?? null,
        },
        targets,
        options.scope,
      )
      if (!outcome.ok) throw new OrchardError('conflict', `a command with CommandUUID ${command.uuid} already exists`)
      const queued = outcome.targets.filter((t) => t.outcome === 'queued').length
      log.info({ command_uuid: command.uuid, request_type: command.requestType, targets: targets.length, queued }, 'command enqueued')
      return { commandUuid: command.uuid, requestType: command.requestType, stored: outcome.stored, targets: outcome.targets }
    },
  }
}
