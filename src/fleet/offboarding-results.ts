// Completing offboardings from what the device says (lifecycle-results.ts hands them over):
// an acknowledged erase (wiped, then retired; or, returned to service, awaited back), the
// acknowledged removal of the enrollment profile of a personal device (retired), a check-out,
// and the device enrolling again.
import type { Logger } from 'pino'
import type { LifecycleActionRow, LifecycleStore } from './lifecycle-store.js'
import type { OffboardingStore } from './offboarding-store.js'
import { offboardSteps, type OffboardMethod } from './offboarding-plan.js'

/** What an offboarding reads of a command result (lifecycle-results.ts passes its event). */
interface CommandResultEvent {
  deviceId: string
  requestType: string
  commandUuid: string
  status: 'Acknowledged' | 'Error' | 'CommandFormatError'
}

export interface OffboardingResults {
  /** A result of one of a pending offboarding's commands; 'stop' after an acknowledged erase. */
  commandResult(action: LifecycleActionRow, event: CommandResultEvent): Promise<'stop' | undefined>
  deviceEnrolled(deviceId: string): Promise<void>
  deviceCheckedOut(deviceId: string): Promise<void>
}

export interface OffboardingResultsDeps {
  store: Pick<LifecycleStore, 'markWiped' | 'finish' | 'pendingOfDevice'>
  offboarding: Pick<OffboardingStore, 'retireOffboarded' | 'updateDetails'>
  deviceEvent?: (deviceId: string, action: 'wiped', details: Record<string, unknown>) => Promise<void>
  log: Logger
  now: () => Date
}

type CommandMethod = Exclude<OffboardMethod, 'retire'>

const methodOf = (action: LifecycleActionRow): CommandMethod | undefined => {
  const method = (action.details as { method?: unknown } | null)?.method
  return method === 'erase' || method === 'return_to_service' || method === 'selective_wipe' ? method : undefined
}

export function createOffboardingResults(deps: OffboardingResultsDeps): OffboardingResults {
  const { store, offboarding, log, now } = deps

  async function failed(action: LifecycleActionRow, method: CommandMethod, done: number, error: string) {
    await store.finish(action.id, 'failed', now(), { state: 'active', details: { error, steps: offboardSteps(method, done, true) } })
    log.warn({ device_id: action.device_id, lifecycle_action_id: action.id, error }, 'offboarding failed')
  }

  async function retired(action: LifecycleActionRow, method: CommandMethod, details: Record<string, unknown> = {}) {
    const steps = offboardSteps(method, method === 'selective_wipe' ? 3 : 2)
    if (await offboarding.retireOffboarded(action.id, 'completed', now(), { ...details, steps }))
      log.info({ device_id: action.device_id, lifecycle_action_id: action.id, method }, 'offboarded: device retired')
  }

  return {
    async commandResult(action, event) {
      const method = methodOf(action)
      if (!method) return undefined
      const ok = event.status === 'Acknowledged'
      if (method === 'selective_wipe') {
        const last = action.commands[action.commands.length - 1]
        if (event.commandUuid !== last?.command_uuid) return undefined
        if (!ok) {
          await failed(action, method, 1, `the device answered ${event.status} to the removal of the enrollment profile`)
          return undefined
        }
        await deps.deviceEvent?.(event.deviceId, 'wiped', { selective: true, lifecycle_action_id: action.id })
        await retired(action, method)
        return undefined
      }
      if (event.requestType !== 'EraseDevice') return undefined
      if (!ok) {
        await failed(action, method, 0, `the device answered ${event.status} to the erase`)
        return undefined
      }
      // Wiping itself: not managed any more, and it gets nothing more (no CheckOut comes).
      const at = now()
      await store.markWiped(event.deviceId, at)
      await deps.deviceEvent?.(event.deviceId, 'wiped', { command_uuid: event.commandUuid, lifecycle_action_id: action.id })
      if (method === 'erase') await retired(action, method, { erased_at: at.toISOString() })
      else await offboarding.updateDetails(action.id, { erased_at: at.toISOString(), steps: offboardSteps(method, 1) })
      log.info({ device_id: event.deviceId, lifecycle_action_id: action.id, method }, 'device acknowledged the offboarding erase')
      return 'stop'
    },

    async deviceEnrolled(deviceId) {
      const at = now()
      for (const action of await store.pendingOfDevice(deviceId, ['offboard'])) {
        const method = methodOf(action)
        if (method === 'return_to_service') {
          // Back from Return to Service: in the pool again.
          await store.finish(action.id, 'completed', at, { details: { re_enrolled_at: at.toISOString(), steps: offboardSteps(method, 2) } })
          log.info({ device_id: deviceId, lifecycle_action_id: action.id }, 'returned to service: the device enrolled again')
        } else if (method) {
          // A new enrollment cancels what was queued: this offboarding cannot finish.
          await failed(action, method, 0, 'the device enrolled again before the offboarding finished: offboard it again')
        }
      }
    },

    async deviceCheckedOut(deviceId) {
      for (const action of await store.pendingOfDevice(deviceId, ['offboard'])) {
        const method = methodOf(action)
        if (method === 'selective_wipe') {
          // The enrollment profile is gone: what we installed went with it.
          await retired(action, method, { checked_out: true })
        } else if (method && (action.details as { erased_at?: unknown } | null)?.erased_at === undefined) {
          // Left management before the erase: retired, but its data was not erased.
          await offboarding.retireOffboarded(action.id, 'failed', now(), {
            checked_out: true,
            error: 'the device left management (CheckOut) before it erased itself: its data was not erased',
            steps: offboardSteps(method, 0, true),
          })
        }
      }
    },
  }
}
