// The command queue as devices and operators see it: results in, next command out, and
// enqueueing for one or many enrollments.
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
import type { AccessScope } from '../model/access.js'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { buildCommand, type EncodedCommand } from '../mdm/command.js'
import { inventoryFromReport } from '../mdm/inventory.js'
import type { PlistDict } from '../mdm/plist.js'
import type { CommandReport } from '../mdm/report.js'
import type { Metrics } from '../ops/metrics.js'
import type { CommandQueueStore, TargetOutcome } from '../queue/command-queue-store.js'
import type { InventoryStore } from './inventory-store.js'
import type { DeviceIdentity } from './mdm-types.js'

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

export interface CommandService {
  /** Handles a report (Idle or a result) and returns the next command's bytes, or null for the empty 200. */
  handleReport(report: CommandReport, identity: DeviceIdentity, body: Buffer): Promise<Buffer | null>
  enqueueCommand(targets: readonly string[], command: CommandInput, options?: EnqueueOptions): Promise<EnqueueResult>
}

export interface CommandServiceDeps {
  queue: CommandQueueStore
  inventory: InventoryStore
  metrics: Metrics
  logger: Logger
  /** Warn once when a device has answered NotNow to the same command this many times. */
  notNowAlertAfter: number
  /**
   * After a device's final answer to a command is stored (Acknowledged, Error,
   * CommandFormatError). 'more': it queued commands for this channel, which go out in this
   * same exchange when nothing else was next; 'stop': the device is gone (it acknowledged an
   * erase), so it gets nothing more.
   */
  resultRecorded?(event: { deviceId: string; enrollmentId: string; requestType: string; commandUuid: string; status: 'Acknowledged' | 'Error' | 'CommandFormatError'; report: PlistDict }): Promise<'more' | 'stop' | void>
}

export function createCommandService(deps: CommandServiceDeps): CommandService {
  const log = deps.logger.child({ service: 'commands' })

  return {
    async handleReport(report, identity, body) {
      const { channel, status } = report
      const fields = { enrollment_id: channel.enrollmentId, status, command_uuid: report.commandUuid }
      const outcome = await deps.queue.processReport({
        enrollmentId: channel.enrollmentId,
        deviceId: channel.deviceId,
        certificateSha256: identity.certificateSha256,
        status,
        commandUuid: report.commandUuid,
        raw: body,
        errorChain: report.errorChain,
      })
      if (!outcome.accepted) {
        if (outcome.reason === 'identity_mismatch') {
          throw new OrchardError('identity_rejected', `the certificate is not the one bound to device ${channel.deviceId}`)
        }
        throw new OrchardError('unknown_enrollment', `enrollment ${channel.enrollmentId} is ${outcome.reason === 'enrollment_disabled' ? 'not enabled' : 'unknown'}`)
      }
      deps.metrics.mdmCommandReports.inc({ status })
      if (outcome.expired > 0) log.info({ ...fields, expired: outcome.expired }, 'commands expired')

      let next = outcome.next
      const result = outcome.result
      if (result && !result.recorded) {
        // A repeated result, or one for a command never sent to this channel: noted, and
        // the next command goes out rather than trapping the device in an error loop.
        log.warn({ ...fields, reason: result.reason }, 'result not recorded')
      } else if (result?.recorded) {
        log.debug({ ...fields, request_type: result.requestType, error_chain: report.errorChain }, 'command result')
        if (status === 'NotNow' && result.notNowCount === deps.notNowAlertAfter) {
          log.warn({ ...fields, request_type: result.requestType, not_now_count: result.notNowCount }, 'device keeps refusing a command (NotNow)')
        }
        if (status === 'Acknowledged') {
          const update = inventoryFromReport(result.requestType, report.raw)
          if (update) await deps.inventory.applyInventory(channel.deviceId, channel.enrollmentId, update)
        }
        if (deps.resultRecorded && report.commandUuid && (status === 'Acknowledged' || status === 'Error' || status === 'CommandFormatError')) {
          const after = await deps.resultRecorded({ deviceId: channel.deviceId, enrollmentId: channel.enrollmentId, requestType: result.requestType, commandUuid: report.commandUuid, status, report: report.raw })
          // The next command was picked with the result; the hook cancelled it (wiped).
          if (after === 'stop') return null
          if (after === 'more' && !next) {
            // What the answer made us queue (convergence) goes out now, as after an Idle.
            const again = await deps.queue.processReport({ enrollmentId: channel.enrollmentId, deviceId: channel.deviceId, certificateSha256: identity.certificateSha256, status: 'Idle', raw: body })
            if (again.accepted) next = again.next
          }
        }
      }

      if (!next) return null
      deps.metrics.mdmCommandsDelivered.inc({ request_type: next.requestType })
      return next.payload
    },

    async enqueueCommand(targets, input, options = {}) {
      const command = 'payload' in input ? input : buildCommand(input.requestType, input.keys, input.uuid)
      const priority = options.priority ?? 0
      if (!Number.isInteger(priority) || priority < -100 || priority > 100) {
        throw new OrchardError('validation_failed', 'priority must be a whole number from -100 to 100')
      }
      if (targets.length === 0) throw new OrchardError('validation_failed', 'at least one enrollment ID is needed')
      const outcome = await deps.queue.insertCommand(
        { uuid: command.uuid, requestType: command.requestType, payload: command.payload, priority, expiresAt: options.expiresAt ?? null, tenantId: options.tenantId ?? null },
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
