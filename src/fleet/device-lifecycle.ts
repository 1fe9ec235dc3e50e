// Device lifecycle actions: lost, found, locate, wipe (erase for corporate devices, selective
// wipe for personal ones), reinstall through ADE, retire, and the device's kind. Each action
// is one call, audited, recorded with the commands it queued, and completed from the
// device's answers (command results, check-out, re-enrollment).
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { PlistDict } from '../mdm/plist.js'
import type { AccessScope } from '../model/access.js'
import type { LifecycleActionRow, LifecycleActionView, LifecycleDevice, LifecycleStore, LocationRow } from './lifecycle-store.js'
import type { LifecycleCommandRef } from '../db/schema.js'
import type { DeviceKind, LifecycleActionKind, LifecycleState } from '../model/devices.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
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

export interface DeviceLifecycleDeps {
  store: LifecycleStore
  dispatcher: Pick<CommandDispatcher, 'dispatch' | 'pushOnly'>
  /** Disowning from ABM/ASM when a device is retired. */
  disown?: (scope: AccessScope, tokenId: string, serials: string[]) => Promise<Record<string, string>>
  /** The PayloadIdentifier of our enrollment profiles (removing it ends management). */
  mdmProfileIdentifier: string
  /** Device-side events for the device's timeline (wiped). */
  deviceEvent?: (deviceId: string, action: 'wiped', details: Record<string, unknown>) => Promise<void>
  logger: Logger
  now?: () => Date
}

export interface CommandResultEvent {
  deviceId: string
  enrollmentId: string
  requestType: string
  commandUuid: string
  status: 'Acknowledged' | 'Error' | 'CommandFormatError'
  report: PlistDict
}

export interface DeviceLifecycle {
  lost(scope: AccessScope, deviceId: string, input: LostInput): Promise<LifecycleActionView>
  found(scope: AccessScope, deviceId: string): Promise<LifecycleActionView>
  locate(scope: AccessScope, deviceId: string): Promise<LifecycleActionView>
  /** EraseDevice for a work or function device; refused for a personal one. */
  erase(scope: AccessScope, deviceId: string, input: EraseInput): Promise<LifecycleActionView>
  /** The right wipe for the device's kind: erase (work, function) or selective wipe (personal). */
  wipe(scope: AccessScope, deviceId: string, input: EraseInput): Promise<LifecycleActionView>
  reinstall(scope: AccessScope, deviceId: string, input: EraseInput): Promise<LifecycleActionView>
  retire(scope: AccessScope, deviceId: string, options: { disown: boolean }): Promise<LifecycleActionView>
  /**
   * A User Enrollment stays personal; any other personal device leaves `personal` only for
   * an owner in central IT (`centralOwner`) who gives a reason.
   */
  setKind(scope: AccessScope, deviceId: string, kind: DeviceKind, options?: { reason?: string; centralOwner?: boolean }): Promise<'changed' | 'unchanged'>
  cancel(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView>
  listActions(scope: AccessScope, deviceId: string): Promise<LifecycleActionView[]>
  getAction(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView>
  listLocations(scope: AccessScope, deviceId: string, limit: number): Promise<LocationRow[]>
  /** 'stop': the device acknowledged an erase and gets nothing more. */
  commandResult(event: CommandResultEvent): Promise<'stop' | undefined>
  deviceEnrolled(deviceId: string): Promise<void>
  deviceCheckedOut(deviceId: string): Promise<void>
}

const wipeActions: readonly LifecycleActionKind[] = ['erase', 'selective_wipe', 'reinstall']

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

function notApplicable(detail: string, reason: string): OrchardError {
  return new OrchardError('not_applicable', detail, { details: { reason } })
}

function factsOf(device: LifecycleDevice): LifecycleDeviceFacts {
  return { kind: device.kind, productName: device.productName, model: device.model, supervised: device.supervised, userEnrollment: device.userEnrollment }
}

const num = (dict: PlistDict, key: string): number | null => (typeof dict[key] === 'number' ? dict[key] : null)

export function createDeviceLifecycle(deps: DeviceLifecycleDeps): DeviceLifecycle {
  const log = deps.logger.child({ service: 'lifecycle' })
  const now = deps.now ?? (() => new Date())

  async function enrolledDevice(scope: AccessScope, deviceId: string): Promise<LifecycleDevice> {
    const device = await deps.store.device(scope, deviceId)
    if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
    if (!device.enrolled)
      throw new OrchardError('conflict', `device ${deviceId} is not enrolled (it checked out, was wiped or retired, or has not finished enrolling)`)
    return device
  }

  async function view(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView> {
    const action = await deps.store.getAction(scope, deviceId, actionId)
    if (!action) throw new OrchardError('not_found', `no lifecycle action ${actionId} on device ${deviceId}`)
    return action
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
    const begun = await deps.store.begin(
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
      const [pending] = await deps.store.pendingOfDevice(device.id, wipeActions)
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
        await deps.store.finish(id, 'failed', now(), { ...(options.restoreState ? { state: options.restoreState } : {}), details: { error: detail } })
        throw notApplicable(
          `${command.requestType} cannot go to device ${device.id}: ${detail}`,
          target.result === 'not_applicable' ? target.reason : target.result,
        )
      }
      skipped.push({ request_type: command.requestType, detail })
    }
    await deps.store.attachCommands(id, queued, skipped.length > 0 ? { skipped } : undefined)
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
    const inventory = await deps.store.inventory(device.id)
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

  // The device acknowledged EraseDevice: it is wiping itself and will not talk to us again
  // with this enrollment (no CheckOut comes).
  async function wiped(event: CommandResultEvent, actionId: string | null): Promise<void> {
    await deps.store.markWiped(event.deviceId, now())
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
          await deps.store.finish(action.id, 'failed', at, { state: 'active', details: { error: `the device answered ${event.status}` } })
          return undefined
        }
        await wiped(event, action.id)
        // A reinstall ends when the device is back through its PreStage.
        if (action.action === 'erase') await deps.store.finish(action.id, 'completed', at)
        log.info({ device_id: event.deviceId, lifecycle_action_id: action.id }, 'device acknowledged the erase')
        return 'stop'
      }
      case 'selective_wipe': {
        if (event.commandUuid !== last?.command_uuid) return undefined
        await deps.store.finish(action.id, 'completed', at, { state: 'wiped' })
        if (ok) await deps.deviceEvent?.(event.deviceId, 'wiped', { selective: true, lifecycle_action_id: action.id })
        return undefined
      }
      case 'lost':
      case 'found':
      case 'locate': {
        if (event.commandUuid !== primary?.command_uuid) return undefined
        const state = action.action === 'found' ? (ok ? 'active' : 'lost') : action.action === 'lost' && !ok ? 'active' : undefined
        await deps.store.finish(action.id, ok ? 'completed' : 'failed', at, {
          ...(state ? { state } : {}),
          ...(ok ? {} : { details: { error: `the device answered ${event.status}` } }),
        })
        return undefined
      }
      default:
        return undefined
    }
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
        await deps.store.record(scope, { id, deviceId, tenantId: device.tenantId, action: 'found', state: 'active', details: { lost_mode: false } }, now())
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

    async retire(scope, deviceId, options) {
      const device = await deps.store.device(scope, deviceId)
      if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
      if (device.state === 'retired') throw new OrchardError('conflict', `device ${deviceId} is retired already`)
      let disowned: Record<string, string> | null = null
      if (options.disown) {
        if (!device.depTokenId || !device.serialNumber || !deps.disown)
          throw notApplicable(`device ${deviceId} is not an ABM/ASM device of ours: nothing to disown`, 'not_ade')
        // Audited once, as this retire (with Apple's answer in its details), not as a token write.
        const quiet: AccessScope = scope.kind === 'all' ? { kind: 'all' } : { kind: 'tenants', ids: scope.ids }
        disowned = await deps.disown(quiet, device.depTokenId, [device.serialNumber])
      }
      const id = randomUUID()
      await deps.store.retire(
        scope,
        {
          id,
          deviceId,
          tenantId: device.tenantId,
          action: 'retire',
          details: { disown: options.disown, ...(disowned ? { disowned: disowned[device.serialNumber!] ?? null } : {}) },
        },
        now(),
      )
      log.info({ device_id: deviceId, lifecycle_action_id: id, disowned }, 'device retired')
      return view(scope, deviceId, id)
    },

    async setKind(scope, deviceId, kind, options = {}) {
      // A personal device may be erased, located and put in Lost Mode once it is not personal:
      // that step is for central IT's owners, with a reason kept in the audit trail.
      const leavePersonal = options.centralOwner === true && options.reason !== undefined ? { reason: options.reason } : undefined
      const outcome = await deps.store.setKind(scope, deviceId, kind, randomUUID(), now(), leavePersonal ? { leavePersonal } : {})
      if (outcome === 'not_found') throw new OrchardError('not_found', `no device ${deviceId}`)
      if (outcome === 'user_enrollment') {
        const detail = 'a User Enrollment is always personal'
        throw new OrchardError('validation_failed', `kind: ${detail}`, { details: { errors: [{ pointer: '/kind', detail }] } })
      }
      if (outcome === 'leaving_personal') {
        if (options.centralOwner !== true) {
          throw new OrchardError('forbidden', `device ${deviceId} is personal: only an owner in central IT may change its kind (it would become erasable)`)
        }
        const detail = 'a reason is needed to change the kind of a personal device'
        throw new OrchardError('validation_failed', `reason: ${detail}`, { details: { errors: [{ pointer: '/reason', detail }] } })
      }
      if (outcome === 'ok') log.info({ device_id: deviceId, kind, reason: options.reason ?? null }, 'device kind changed')
      return outcome === 'ok' ? 'changed' : 'unchanged'
    },

    async cancel(scope, deviceId, actionId) {
      const action = await view(scope, deviceId, actionId)
      if (action.status !== 'pending') throw new OrchardError('conflict', `lifecycle action ${actionId} is ${action.status}`)
      const outcome = await deps.store.cancelCommands(scope, action, 'lifecycle action cancelled')
      if (outcome.fetched > 0)
        throw new OrchardError('conflict', `the device has fetched the command already (${outcome.fetched}); it may be running and cannot be cancelled`)
      await deps.store.finish(actionId, 'cancelled', now(), { state: action.action === 'found' || action.action === 'locate' ? 'lost' : 'active' })
      return view(scope, deviceId, actionId)
    },

    listActions: (scope, deviceId) => deps.store.listActions(scope, deviceId),
    getAction: (scope, deviceId, actionId) => view(scope, deviceId, actionId),
    async listLocations(scope, deviceId, limit) {
      if (!(await deps.store.device(scope, deviceId))) throw new OrchardError('not_found', `no device ${deviceId}`)
      return deps.store.listLocations(scope, deviceId, limit)
    },

    async commandResult(event) {
      if (event.enrollmentId !== event.deviceId) return undefined
      if (event.requestType === 'DeviceLocation' && event.status === 'Acknowledged') {
        const latitude = num(event.report, 'Latitude')
        const longitude = num(event.report, 'Longitude')
        if (latitude !== null && longitude !== null && Math.abs(latitude) <= 90 && Math.abs(longitude) <= 180) {
          const stamp = typeof event.report['Timestamp'] === 'string' ? new Date(event.report['Timestamp']) : null
          await deps.store.recordLocation({
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
      const action = await deps.store.pendingForCommand(event.deviceId, event.commandUuid)
      if (action) return onActionResult(action, event)
      // An EraseDevice queued as a plain command wipes the device just the same.
      if (event.requestType === 'EraseDevice' && event.status === 'Acknowledged') {
        await wiped(event, null)
        return 'stop'
      }
      return undefined
    },

    async deviceEnrolled(deviceId) {
      const at = now()
      // Back after an erase (a reinstall through its PreStage, or any re-enrollment): the
      // pending erase or reinstall is done and the device is managed again.
      for (const action of await deps.store.pendingOfDevice(deviceId, ['erase', 'reinstall'])) {
        await deps.store.finish(action.id, 'completed', at, { details: { re_enrolled_at: at.toISOString() } })
      }
      const device = await deps.store.device({ kind: 'all' }, deviceId)
      if (device && device.state !== 'active' && device.state !== 'lost') await deps.store.setState(deviceId, 'active', at)
    },

    async deviceCheckedOut(deviceId) {
      // A personal device leaving management after a selective wipe (the MDM profile is gone).
      for (const action of await deps.store.pendingOfDevice(deviceId, ['selective_wipe'])) {
        await deps.store.finish(action.id, 'completed', now(), { state: 'wiped', details: { checked_out: true } })
      }
    },
  }
}
