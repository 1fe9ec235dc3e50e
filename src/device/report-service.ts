// The device side of the command queue: a report (Idle, or the result of the last command)
// comes in, the next command goes out. Results update the inventory and leave as a
// command_result event, whose listeners may queue more for this channel or stop it.
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { inventoryFromReport } from '../mdm/inventory.js'
import { compareVersions } from '../model/app-version.js'
import { platformOf } from '../model/os-update.js'
import type { CommandReport } from '../mdm/report.js'
import type { Metrics } from '../ops/metrics.js'
import type { CommandQueueStore } from '../queue/command-queue-store.js'
import type { DeviceEvents } from './events.js'
import type { InventoryStore } from './inventory-store.js'
import type { DeviceIdentity } from './mdm-types.js'

export interface ReportService {
  /** Handles a report (Idle or a result) and returns the next command's bytes, or null for the empty 200. */
  handleReport(report: CommandReport, identity: DeviceIdentity, body: Buffer): Promise<Buffer | null>
}

export interface ReportServiceDeps {
  queue: Pick<CommandQueueStore, 'processReport'>
  inventory: InventoryStore
  events: DeviceEvents
  metrics: Metrics
  logger: Logger
  /** Warn once when a device has answered NotNow to the same command this many times. */
  notNowAlertAfter: number
}

/** Where Apple's "unrecognized device" 403 makes a device unenroll; older devices only know 401. */
const unrecognizedDeviceSince: Record<string, string> = { iOS: '17.0', macOS: '14.0', tvOS: '17.0', watchOS: '10.0', visionOS: '1.1' }

/**
 * A retired device that still reports is told to unenroll: ErrorUnrecognizedDevice (403) where
 * its OS has it, else 401, which every version treats as "unenroll".
 * https://developer.apple.com/documentation/devicemanagement/errorunrecognizeddevice
 */
export function retiredDeviceError(deviceId: string, productName: string | null, osVersion: string | null): OrchardError {
  const since = unrecognizedDeviceSince[platformOf(productName) ?? '']
  const knowsThe403 = since !== undefined && osVersion !== null && compareVersions(osVersion, since) >= 0
  return new OrchardError(knowsThe403 ? 'unrecognized_device' : 'device_retired', `device ${deviceId} is retired: it is told to unenroll`)
}

export function createReportService(deps: ReportServiceDeps): ReportService {
  const log = deps.logger.child({ service: 'reports' })

  async function nextAfter(report: CommandReport, identity: DeviceIdentity, body: Buffer): Promise<Buffer | null> {
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
      // Its device channel: the whole device leaves management (a user channel only gets the refusal).
      if (outcome.reason === 'retired' && channel.kind === 'device') throw retiredDeviceError(channel.deviceId, outcome.productName, outcome.osVersion)
      throw new OrchardError(
        'unknown_enrollment',
        `enrollment ${channel.enrollmentId} is ${outcome.reason === 'unknown_enrollment' ? 'unknown' : 'not enabled'}`,
      )
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
      if (report.commandUuid && (status === 'Acknowledged' || status === 'Error' || status === 'CommandFormatError')) {
        const after = await deps.events.commandResult({
          type: 'command_result',
          deviceId: channel.deviceId,
          enrollmentId: channel.enrollmentId,
          requestType: result.requestType,
          commandUuid: report.commandUuid,
          status,
          report: report.raw,
        })
        // The next command was picked with the result; a listener cancelled it (wiped).
        if (after === 'stop') return null
        if (after === 'more' && !next) {
          // What the answer made us queue (convergence) goes out now, as after an Idle.
          const again = await deps.queue.processReport({
            enrollmentId: channel.enrollmentId,
            deviceId: channel.deviceId,
            certificateSha256: identity.certificateSha256,
            status: 'Idle',
            raw: body,
          })
          if (again.accepted) next = again.next
        }
      }
    }
    if (!next) return null
    deps.metrics.mdmCommandsDelivered.inc({ request_type: next.requestType })
    return next.payload
  }

  return {
    async handleReport(report, identity, body) {
      const next = await nextAfter(report, identity, body)
      if (report.status !== 'Idle') await deps.events.emit({ type: 'report', report })
      return next
    },
  }
}
