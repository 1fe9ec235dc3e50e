// The lifecycle actions that queue commands: lost, found, locate, and wipe (erase for
// corporate devices, selective wipe for personal ones), erase and reinstall through ADE. Each
// is one call, audited, recorded with the commands it queued (completed from the device's
// answers: lifecycle-results.ts). What each sends is lifecycle-policy.ts.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { LifecycleCommandRef } from '../db/schema.js'
import type { LifecycleActionKind, LifecycleState } from '../model/devices.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { LifecycleActionView, LifecycleDevice, LifecycleStore } from './lifecycle-store.js'
import {
  canUseLostMode,
  eraseCommand,
  lostCommands,
  selectiveWipeCommands,
  type EraseInput,
  type LifecycleDeviceFacts,
  type LostInput,
  type PlannedCommand,
} from './lifecycle-policy.js'

export interface LifecycleActions {
  lost(scope: AccessScope, deviceId: string, input: LostInput): Promise<LifecycleActionView>
  found(scope: AccessScope, deviceId: string): Promise<LifecycleActionView>
  locate(scope: AccessScope, deviceId: string): Promise<LifecycleActionView>
  /** EraseDevice for a work or function device; refused for a personal one. */
  erase(scope: AccessScope, deviceId: string, input: EraseInput): Promise<LifecycleActionView>
  /** The right wipe for the device's kind: erase (work, function) or selective wipe (personal). */
  wipe(scope: AccessScope, deviceId: string, input: EraseInput): Promise<LifecycleActionView>
  reinstall(scope: AccessScope, deviceId: string, input: EraseInput): Promise<LifecycleActionView>
}

export interface LifecycleActionsDeps {
  store: Pick<LifecycleStore, 'device' | 'inventory' | 'begin' | 'pendingOfDevice' | 'finish' | 'attachCommands' | 'record'>
  dispatcher: Pick<CommandDispatcher, 'dispatch' | 'pushOnly'>
  /** The PayloadIdentifier of our enrollment profiles (removing it ends management). */
  mdmProfileIdentifier: string
  /** The action as recorded (not_found when it is not the device's or not in scope). */
  view(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView>
  log: Logger
  now: () => Date
}

const wipeActions: readonly LifecycleActionKind[] = ['erase', 'selective_wipe', 'reinstall']

export function notApplicable(detail: string, reason: string): OrchardError {
  return new OrchardError('not_applicable', detail, { details: { reason } })
}

function factsOf(device: LifecycleDevice): LifecycleDeviceFacts {
  return { kind: device.kind, productName: device.productName, model: device.model, supervised: device.supervised, userEnrollment: device.userEnrollment }
}

export function createLifecycleActions(deps: LifecycleActionsDeps): LifecycleActions {
  const { store, view, log, now } = deps

  async function enrolledDevice(scope: AccessScope, deviceId: string): Promise<LifecycleDevice> {
    const device = await store.device(scope, deviceId)
    if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
    if (!device.enrolled)
      throw new OrchardError('conflict', `device ${deviceId} is not enrolled (it checked out, was wiped or retired, or has not finished enrolling)`)
    return device
  }

  /**
   * Records the action, then queues its commands in order (the first is the one that
   * matters: if the device cannot take it, the action fails and nothing stays queued
   * for it), then pushes once.
   */
  async function run(
    scope: AccessScope,
    device: LifecycleDevice,
    action: LifecycleActionKind,
    planned: PlannedCommand[],
    options: { state?: LifecycleState; restoreState?: LifecycleState; details?: Record<string, unknown>; priority?: number },
  ) {
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
      { device_id: device.id, action, lifecycle_action_id: id, commands: queued.length, skipped: skipped.length, push: 'error' in push ? push.error : 'sent' },
      `lifecycle: ${action}`,
    )
    return view(scope, device.id, id)
  }

  async function erase(scope: AccessScope, device: LifecycleDevice, input: EraseInput, action: 'erase' | 'reinstall') {
    if (device.kind === 'personal') {
      throw notApplicable(
        `device ${device.id} is a personal device: it is never erased; POST /api/v1/devices/${device.id}/wipe removes only what the organisation installed`,
        'not_for_personal_device',
      )
    }
    // Before everything else queued: a stolen device should not first install an app.
    return run(scope, device, action, [eraseCommand(input)], { state: 'wipe_pending', restoreState: device.state, priority: 100 })
  }

  async function selectiveWipe(scope: AccessScope, device: LifecycleDevice) {
    const inventory = await store.inventory(device.id)
    const mdmProfile = inventory.profiles.find((profile) => profile.payloadTypes.includes('com.apple.mdm'))?.identifier ?? deps.mdmProfileIdentifier
    const items = {
      profiles: inventory.profiles
        .filter((profile) => profile.isManaged === true && profile.identifier !== mdmProfile && !profile.payloadTypes.includes('com.apple.mdm'))
        .map((profile) => profile.identifier),
      applications: inventory.applications.filter((app) => app.isManaged === true).map((app) => app.identifier),
      mdmProfile,
    }
    return run(scope, device, 'selective_wipe', selectiveWipeCommands(items), {
      state: 'wipe_pending',
      restoreState: device.state,
      priority: 100,
      details: { removing: { applications: items.applications, profiles: items.profiles, mdm_profile: items.mdmProfile } },
    })
  }

  return {
    async lost(scope, deviceId, input) {
      const device = await enrolledDevice(scope, deviceId)
      if (device.kind === 'personal') {
        throw notApplicable(
          `device ${deviceId} is a personal device: it is never put in Lost Mode, located or locked as lost; its owner uses Find My, and POST /api/v1/devices/${deviceId}/wipe removes what the organisation installed`,
          'not_for_personal_device',
        )
      }
      return run(scope, device, 'lost', lostCommands(factsOf(device), input), {
        state: 'lost',
        restoreState: device.state,
        priority: 100,
        details: {
          lost_mode: canUseLostMode(factsOf(device)),
          message: input.message ?? null,
          phone_number: input.phoneNumber ?? null,
          footnote: input.footnote ?? null,
        },
      })
    },

    async found(scope, deviceId) {
      const device = await enrolledDevice(scope, deviceId)
      if (device.state !== 'lost') throw new OrchardError('conflict', `device ${deviceId} is not reported lost`)
      if (!canUseLostMode(factsOf(device))) {
        // A DeviceLock cannot be lifted remotely: the user unlocks with the passcode.
        const id = randomUUID()
        await store.record(scope, { id, deviceId, tenantId: device.tenantId, action: 'found', state: 'active', details: { lost_mode: false } }, now())
        return view(scope, deviceId, id)
      }
      return run(scope, device, 'found', [{ requestType: 'DisableLostMode', keys: {} }], { priority: 100, details: { lost_mode: true } })
    },

    async locate(scope, deviceId) {
      const device = await enrolledDevice(scope, deviceId)
      if (!canUseLostMode(factsOf(device)))
        throw notApplicable(
          `device ${deviceId} cannot be located: only supervised corporate iPhones and iPads in Lost Mode report their location`,
          'requires_supervision',
        )
      // Apple: DeviceLocation answers only while the device is in Lost Mode.
      if (device.state !== 'lost')
        throw new OrchardError('conflict', `device ${deviceId} is not in Lost Mode: report it lost first (POST /api/v1/devices/${deviceId}/lost)`)
      return run(scope, device, 'locate', [{ requestType: 'DeviceLocation', keys: {} }], { priority: 100 })
    },

    async erase(scope, deviceId, input) {
      return erase(scope, await enrolledDevice(scope, deviceId), input, 'erase')
    },

    async wipe(scope, deviceId, input) {
      const device = await enrolledDevice(scope, deviceId)
      return device.kind === 'personal' ? selectiveWipe(scope, device) : erase(scope, device, input, 'erase')
    },

    async reinstall(scope, deviceId, input) {
      const device = await enrolledDevice(scope, deviceId)
      if (device.kind === 'personal') throw notApplicable(`device ${deviceId} is a personal device: it is never erased`, 'not_for_personal_device')
      if (device.depTokenId === null) {
        throw notApplicable(
          `device ${deviceId} is not assigned to us in Apple Business/School Manager: after an erase it would not come back by itself; use /wipe and enroll it again`,
          'not_ade',
        )
      }
      return erase(scope, device, input, 'reinstall')
    },
  }
}
