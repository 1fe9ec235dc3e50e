// What each lifecycle action sends, by device kind and what is known of the device. Pure:
// no I/O. The rule that matters most: a personal device is never erased, located or put in
// Lost Mode; leaving management removes only what we installed (selective wipe).
import { platformFromProduct } from '../mdm/command-validation.js'
import type { PlistDict } from '../mdm/plist.js'
import type { DeviceKind } from '../model/devices.js'

/**
 * Commands never sent to a personal device, whatever the path (typed, raw plist, filter):
 * they destroy personal data, take the phone away from its owner, or track its owner.
 */
export const refusedForPersonal: ReadonlySet<string> = new Set(['EraseDevice', 'ClearPasscode', 'EnableLostMode', 'DeviceLocation', 'PlayLostModeSound'])

export function kindRefusal(requestType: string, kind: DeviceKind): string | undefined {
  if (kind === 'personal' && refusedForPersonal.has(requestType)) {
    return `${requestType} is never sent to a personal device; use POST /api/v1/devices/{id}/wipe for a selective wipe (only what the organisation installed is removed)`
  }
  return undefined
}

export interface LifecycleDeviceFacts {
  kind: DeviceKind
  productName: string | null
  model: string | null
  supervised: boolean | null
  userEnrollment: boolean
}

export interface PlannedCommand {
  requestType: string
  keys: PlistDict
  /** What it removes: a profile identifier or an app's bundle id. */
  item?: string
}

export interface LostInput {
  message?: string
  phoneNumber?: string
  footnote?: string
}

const isIos = (facts: LifecycleDeviceFacts) => platformFromProduct(facts.productName, facts.model) === 'iOS'

/** Lost Mode needs a supervised iOS/iPadOS device that is not personal. */
export function canUseLostMode(facts: LifecycleDeviceFacts): boolean {
  return facts.kind !== 'personal' && facts.supervised === true && isIos(facts)
}

/**
 * Lost: Lost Mode with the message, then a location request and a sound, on a supervised
 * corporate iOS device; a DeviceLock with the message and phone number on any other.
 */
export function lostCommands(facts: LifecycleDeviceFacts, input: LostInput): PlannedCommand[] {
  const text = {
    ...(input.message !== undefined ? { Message: input.message } : {}),
    ...(input.phoneNumber !== undefined ? { PhoneNumber: input.phoneNumber } : {}),
  }
  if (canUseLostMode(facts)) {
    return [
      // Apple: EnableLostMode needs at least a Message or a PhoneNumber.
      {
        requestType: 'EnableLostMode',
        keys: {
          ...(Object.keys(text).length > 0 ? text : { Message: 'This device has been reported lost.' }),
          ...(input.footnote !== undefined ? { Footnote: input.footnote } : {}),
        },
      },
      { requestType: 'DeviceLocation', keys: {} },
      { requestType: 'PlayLostModeSound', keys: {} },
    ]
  }
  // DeviceLock's Message/PhoneNumber show on iOS only; macOS would need a PIN we do not invent.
  return [{ requestType: 'DeviceLock', keys: isIos(facts) ? text : {} }]
}

export interface EraseInput {
  pin?: string
  preserveDataPlan?: boolean
  disallowProximitySetup?: boolean
  /** Return to Service asked for (true) or refused (false); undefined: the tenant's default (return-to-service.ts). */
  returnToService?: boolean
}

/** `returnToService`: the ReturnToService dictionary (return-to-service.ts), when the erase carries one. */
export function eraseCommand(input: EraseInput, returnToService?: PlistDict): PlannedCommand {
  return {
    requestType: 'EraseDevice',
    keys: {
      ...(input.pin !== undefined ? { PIN: input.pin } : {}),
      ...(input.preserveDataPlan !== undefined ? { PreserveDataPlan: input.preserveDataPlan } : {}),
      ...(input.disallowProximitySetup !== undefined ? { DisallowProximitySetup: input.disallowProximitySetup } : {}),
      ...(returnToService ? { ReturnToService: returnToService } : {}),
    },
  }
}

export interface InstalledItems {
  /** Managed profiles the device reported (ProfileList), without the MDM enrollment profile. */
  profiles: readonly string[]
  /** Managed apps the device reported (InstalledApplicationList, IsManaged). */
  applications: readonly string[]
  /** The MDM enrollment profile's identifier, when known. */
  mdmProfile: string | null
}

/**
 * Selective wipe: every managed profile and managed app we installed, one command each (so
 * the report says what went, item by item), and last the MDM enrollment profile: removing it
 * takes the device out of management and removes whatever managed content is left, with the
 * personal data untouched.
 */
export function selectiveWipeCommands(items: InstalledItems): PlannedCommand[] {
  return [
    ...items.applications.map((identifier) => ({ requestType: 'RemoveApplication', keys: { Identifier: identifier }, item: identifier })),
    ...items.profiles.map((identifier) => ({ requestType: 'RemoveProfile', keys: { Identifier: identifier }, item: identifier })),
    ...(items.mdmProfile !== null ? [{ requestType: 'RemoveProfile', keys: { Identifier: items.mdmProfile }, item: items.mdmProfile }] : []),
  ]
}
