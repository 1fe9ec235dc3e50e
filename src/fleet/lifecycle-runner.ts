// How a lifecycle action that sends commands runs: the action is recorded (audited), its
// commands are queued in order for the device, and the device is pushed once. Shared by the
// single actions (lifecycle-actions.ts) and offboarding (offboarding.ts).
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { LifecycleCommandRef } from '../db/schema.js'
import type { LifecycleActionKind, LifecycleState } from '../model/devices.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { LifecycleActionView, LifecycleDevice, LifecycleStore } from './lifecycle-store.js'
import type { PlannedCommand } from './lifecycle-policy.js'

/** The actions of which a device has at most one pending (migration 0022: one wipe at a time). */
export const wipeActions: readonly LifecycleActionKind[] = ['erase', 'selective_wipe', 'reinstall', 'offboard']

export function notApplicable(detail: string, reason: string): OrchardError {
  return new OrchardError('not_applicable', detail, { details: { reason } })
}

export interface RunOptions {
  state?: LifecycleState
  /** The state the device goes back to when the first command cannot be queued. */
  restoreState?: LifecycleState
  details?: Record<string, unknown>
  priority?: number
}

export interface LifecycleRunner {
  /** The device, in scope and enrolled (not_found, conflict otherwise). */
  enrolledDevice(scope: AccessScope, deviceId: string): Promise<LifecycleDevice>
  /**
   * Records the action, then queues its commands in order (the first is the one that
   * matters: if the device cannot take it, the action fails and nothing stays queued
   * for it), then pushes once.
   */
  run(scope: AccessScope, device: LifecycleDevice, action: LifecycleActionKind, planned: PlannedCommand[], options: RunOptions): Promise<LifecycleActionView>
}

export interface LifecycleRunnerDeps {
  store: Pick<LifecycleStore, 'device' | 'begin' | 'pendingOfDevice' | 'finish' | 'attachCommands'>
  dispatcher: Pick<CommandDispatcher, 'dispatch' | 'pushOnly'>
  /** The action as recorded (not_found when it is not the device's or not in scope). */
  view(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView>
  log: Logger
  now: () => Date
}

export function createLifecycleRunner(deps: LifecycleRunnerDeps): LifecycleRunner {
  const { store, view, log, now } = deps
  return {
    async enrolledDevice(scope, deviceId) {
      const device = await store.device(scope, deviceId)
      if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
      if (!device.enrolled)
        throw new OrchardError('conflict', `device ${deviceId} is not enrolled (it checked out, was wiped or retired, or has not finished enrolling)`)
      return device
    },

    async run(scope, device, action, planned, options) {
      const id = randomUUID()
      const begun = await store.begin(
        scope,
        {
          id,
          deviceId: device.id,
          tenantId: device.tenantId,
          action,
          ...(options.state ? { state: options.state } : {}),
          ...(options.details ? { details: options.details } : {}),
        },
        now(),
      )
      if (begun === 'busy') {
        const [pending] = await store.pendingOfDevice(device.id, wipeActions)
        throw new OrchardError(
          'conflict',
          `device ${device.id} already has a pending ${pending?.action ?? 'wipe'} (${pending?.id ?? 'unknown'}): cancel it first or wait for it`,
        )
      }
      const queued: LifecycleCommandRef[] = []
      const skipped: Array<{ request_type: string; detail: string }> = []
      for (const [index, command] of planned.entries()) {
        const result = await deps.dispatcher.dispatch(scope, {
          targets: { enrollmentIds: [device.id] },
          command: { kind: 'built', requestType: command.requestType, keys: command.keys },
          ...(options.priority !== undefined ? { priority: options.priority } : {}),
          push: false,
        })
        const target = result.targets[0]!
        if (target.result === 'queued') {
          queued.push({ command_uuid: result.commandUuid, request_type: command.requestType, ...(command.item !== undefined ? { item: command.item } : {}) })
          continue
        }
        const detail =
          target.result === 'not_applicable' ? target.detail : `the device is ${target.result === 'enrollment_disabled' ? 'not enrolled' : 'unknown'}`
        if (index === 0) {
          await store.finish(id, 'failed', now(), { ...(options.restoreState ? { state: options.restoreState } : {}), details: { error: detail } })
          throw notApplicable(
            `${command.requestType} cannot go to device ${device.id}: ${detail}`,
            target.result === 'not_applicable' ? target.reason : target.result,
          )
        }
        skipped.push({ request_type: command.requestType, detail })
      }
      await store.attachCommands(id, queued, skipped.length > 0 ? { skipped } : undefined)
      const push = await deps.dispatcher.pushOnly(scope, [device.id])
      log.info(
        {
          device_id: device.id,
          action,
          lifecycle_action_id: id,
          commands: queued.length,
          skipped: skipped.length,
          push: 'error' in push ? push.error : 'sent',
        },
        `lifecycle: ${action}`,
      )
      return view(scope, device.id, id)
    },
  }
}
