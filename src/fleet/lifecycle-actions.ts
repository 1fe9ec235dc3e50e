// The lifecycle actions that queue commands: lost, found, locate, and wipe (erase for
// corporate devices, selective wipe for personal ones), erase and reinstall through ADE. Each
// is one call, audited, recorded with the commands it queued (completed from the device's
// answers: lifecycle-results.ts). What each sends is lifecycle-policy.ts.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
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
} from './lifecycle-policy.js'
import { createLifecycleRunner, notApplicable } from './lifecycle-runner.js'
import type { ReturnToService } from './return-to-service.js'

export { notApplicable } from './lifecycle-runner.js'

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
  /** Whether an erase carries Return to Service (absent: never, and asking for it is refused). */
  returnToService?: Pick<ReturnToService, 'planFor'>
  /** The action as recorded (not_found when it is not the device's or not in scope). */
  view(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView>
  log: Logger
  now: () => Date
}

function factsOf(device: LifecycleDevice): LifecycleDeviceFacts {
  return { kind: device.kind, productName: device.productName, model: device.model, supervised: device.supervised, userEnrollment: device.userEnrollment }
}

/** The managed profiles and apps a selective wipe removes, and the MDM profile it removes last. */
export async function selectiveWipeItems(store: Pick<LifecycleStore, 'inventory'>, deviceId: string, mdmProfileIdentifier: string) {
  const inventory = await store.inventory(deviceId)
  const mdmProfile = inventory.profiles.find((profile) => profile.payloadTypes.includes('com.apple.mdm'))?.identifier ?? mdmProfileIdentifier
  return {
    profiles: inventory.profiles
      .filter((profile) => profile.isManaged === true && profile.identifier !== mdmProfile && !profile.payloadTypes.includes('com.apple.mdm'))
      .map((profile) => profile.identifier),
    applications: inventory.applications.filter((app) => app.isManaged === true).map((app) => app.identifier),
    mdmProfile,
  }
}

/** The ReturnToService keys of an erase, or none; asking for it without the service is refused. */
export async function returnToServiceOf(deps: Pick<LifecycleActionsDeps, 'returnToService'>, device: LifecycleDevice, requested: boolean | undefined) {
  if (deps.returnToService) return deps.returnToService.planFor(device, requested)
  if (requested === true) throw notApplicable(`device ${device.id} cannot return to service: it is not set up on this server`, 'no_wifi_profile')
  return null
}

export function createLifecycleActions(deps: LifecycleActionsDeps): LifecycleActions {
  const { store, view, now } = deps
  const { run, enrolledDevice } = createLifecycleRunner(deps)

  async function erase(scope: AccessScope, device: LifecycleDevice, input: EraseInput, action: 'erase' | 'reinstall') {
    if (device.kind === 'personal') {
      throw notApplicable(
        `device ${device.id} is a personal device: it is never erased; POST /api/v1/devices/${device.id}/wipe removes only what the organisation installed`,
        'not_for_personal_device',
      )
    }
    const returnToService = await returnToServiceOf(deps, device, input.returnToService)
    // Before everything else queued: a stolen device should not first install an app.
    return run(scope, device, action, [eraseCommand(input, returnToService?.keys)], {
      state: 'wipe_pending',
      restoreState: device.state,
      priority: 100,
      ...(returnToService ? { details: { return_to_service: returnToService.details } } : {}),
    })
  }

  async function selectiveWipe(scope: AccessScope, device: LifecycleDevice) {
    const items = await selectiveWipeItems(store, device.id, deps.mdmProfileIdentifier)
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
      if (device.kind === 'personal' && input.returnToService === true)
        throw notApplicable(`device ${deviceId} cannot return to service: it is a personal device: it is never erased`, 'not_for_personal_device')
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
