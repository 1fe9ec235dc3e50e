// Completing lifecycle actions from what the device says: its command results (an erase
// acknowledged, Lost Mode enabled, a location reported...), its re-enrollment after an erase
// or a reinstall, and its check-out after a selective wipe.
import type { Logger } from 'pino'
import type { PlistDict } from '../mdm/plist.js'
import type { LifecycleActionRow, LifecycleStore } from './lifecycle-store.js'
import type { OffboardingResults } from './offboarding-results.js'

export interface CommandResultEvent {
  deviceId: string
  enrollmentId: string
  requestType: string
  commandUuid: string
  status: 'Acknowledged' | 'Error' | 'CommandFormatError'
  report: PlistDict
}

export interface LifecycleResults {
  /** 'stop': the device acknowledged an erase and gets nothing more. */
  commandResult(event: CommandResultEvent): Promise<'stop' | undefined>
  deviceEnrolled(deviceId: string): Promise<void>
  deviceCheckedOut(deviceId: string): Promise<void>
}

export interface LifecycleResultsDeps {
  store: Pick<LifecycleStore, 'markWiped' | 'finish' | 'recordLocation' | 'pendingForCommand' | 'pendingOfDevice' | 'device' | 'setState'>
  /** Device-side events for the device's timeline (wiped). */
  deviceEvent?: (deviceId: string, action: 'wiped', details: Record<string, unknown>) => Promise<void>
  /** Offboardings (offboarding-results.ts). */
  offboarding?: OffboardingResults
  log: Logger
  now: () => Date
}

/** The RequestTypes lifecycle actions queue: results of other commands skip the lookup (hot path). */
const lifecycleRequestTypes: ReadonlySet<string> = new Set([
  'EnableLostMode',
  'DeviceLocation',
  'PlayLostModeSound',
  'DisableLostMode',
  'DeviceLock',
  'EraseDevice',
  'RemoveApplication',
  'RemoveProfile',
])

const num = (dict: PlistDict, key: string): number | null => (typeof dict[key] === 'number' ? dict[key] : null)

export function createLifecycleResults(deps: LifecycleResultsDeps): LifecycleResults {
  const { store, log, now } = deps

  // The device acknowledged EraseDevice: it is wiping itself and will not talk to us again
  // with this enrollment (no CheckOut comes).
  async function wiped(event: CommandResultEvent, actionId: string | null): Promise<void> {
    await store.markWiped(event.deviceId, now())
    await deps.deviceEvent?.(event.deviceId, 'wiped', { command_uuid: event.commandUuid, lifecycle_action_id: actionId })
  }

  /** Completes or fails the pending action a command result belongs to; 'stop' after an acknowledged erase. */
  async function onActionResult(action: LifecycleActionRow, event: CommandResultEvent): Promise<'stop' | undefined> {
    const at = now()
    const ok = event.status === 'Acknowledged'
    const last = action.commands[action.commands.length - 1]
    const primary = action.commands[0]
    switch (action.action) {
      case 'erase':
      case 'reinstall': {
        if (event.requestType !== 'EraseDevice') return undefined
        if (!ok) {
          await store.finish(action.id, 'failed', at, { state: 'active', details: { error: `the device answered ${event.status}` } })
          return undefined
        }
        await wiped(event, action.id)
        // A reinstall ends when the device is back through its PreStage.
        if (action.action === 'erase') await store.finish(action.id, 'completed', at)
        log.info({ device_id: event.deviceId, lifecycle_action_id: action.id }, 'device acknowledged the erase')
        return 'stop'
      }
      case 'selective_wipe': {
        if (event.commandUuid !== last?.command_uuid) return undefined
        await store.finish(action.id, 'completed', at, { state: 'wiped' })
        if (ok) await deps.deviceEvent?.(event.deviceId, 'wiped', { selective: true, lifecycle_action_id: action.id })
        return undefined
      }
      case 'lost':
      case 'found':
      case 'locate': {
        if (event.commandUuid !== primary?.command_uuid) return undefined
        const state = action.action === 'found' ? (ok ? 'active' : 'lost') : action.action === 'lost' && !ok ? 'active' : undefined
        await store.finish(action.id, ok ? 'completed' : 'failed', at, {
          ...(state ? { state } : {}),
          ...(ok ? {} : { details: { error: `the device answered ${event.status}` } }),
        })
        return undefined
      }
      case 'offboard':
        return deps.offboarding?.commandResult(action, event)
      default:
        return undefined
    }
  }

  return {
    async commandResult(event) {
      if (event.enrollmentId !== event.deviceId) return undefined
      if (event.requestType === 'DeviceLocation' && event.status === 'Acknowledged') {
        const latitude = num(event.report, 'Latitude')
        const longitude = num(event.report, 'Longitude')
        if (latitude !== null && longitude !== null && Math.abs(latitude) <= 90 && Math.abs(longitude) <= 180) {
          const stamp = typeof event.report['Timestamp'] === 'string' ? new Date(event.report['Timestamp']) : null
          await store.recordLocation({
            deviceId: event.deviceId,
            commandUuid: event.commandUuid,
            latitude,
            longitude,
            horizontalAccuracy: num(event.report, 'HorizontalAccuracy'),
            verticalAccuracy: num(event.report, 'VerticalAccuracy'),
            altitude: num(event.report, 'Altitude'),
            speed: num(event.report, 'Speed'),
            course: num(event.report, 'Course'),
            locatedAt: stamp && !Number.isNaN(stamp.getTime()) ? stamp : null,
          })
        } else {
          log.warn({ device_id: event.deviceId, command_uuid: event.commandUuid }, 'DeviceLocation answer without a usable Latitude/Longitude')
        }
      }
      if (!lifecycleRequestTypes.has(event.requestType)) return undefined
      const action = await store.pendingForCommand(event.deviceId, event.commandUuid)
      if (action) return onActionResult(action, event)
      // An EraseDevice queued as a plain command wipes the device just the same.
      if (event.requestType === 'EraseDevice' && event.status === 'Acknowledged') {
        await wiped(event, null)
        return 'stop'
      }
      return undefined
    },

    async deviceEnrolled(deviceId) {
      await deps.offboarding?.deviceEnrolled(deviceId)
      const at = now()
      // Back after an erase (a reinstall through its PreStage, or any re-enrollment): the
      // pending erase or reinstall is done and the device is managed again.
      for (const action of await store.pendingOfDevice(deviceId, ['erase', 'reinstall'])) {
        await store.finish(action.id, 'completed', at, { details: { re_enrolled_at: at.toISOString() } })
      }
      const device = await store.device({ kind: 'all' }, deviceId)
      if (device && device.state !== 'active' && device.state !== 'lost') await store.setState(deviceId, 'active', at)
    },

    async deviceCheckedOut(deviceId) {
      await deps.offboarding?.deviceCheckedOut(deviceId)
      // A personal device leaving management after a selective wipe (the MDM profile is gone).
      for (const action of await store.pendingOfDevice(deviceId, ['selective_wipe'])) {
        await store.finish(action.id, 'completed', now(), { state: 'wiped', details: { checked_out: true } })
      }
    },
  }
}
