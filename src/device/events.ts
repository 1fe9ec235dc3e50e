// What other features learn from devices leaves the device pipeline as typed events: the
// check-in and report services emit them, and main.ts lists each event's listeners (audit,
// lifecycle, blueprints, ADE, webhooks) in one place. Listeners run in the order given and
// are awaited: an event is handled before the device gets its answer.
import type { Channel } from '../mdm/identity.js'
import type { PlistDict } from '../mdm/plist.js'
import type { CommandReport } from '../mdm/report.js'
import type { AcceptedBecause, RefusedBecause } from './reenrollment-policy.js'

/** A new identity certificate meeting a device bound to another one. */
export interface IdentityChange {
  deviceId: string
  presentedSha256: string
  boundSha256: string | null
  enrollmentPath: string
  reportedSerialNumber: string | null
}

/** The fields of an identity change as the audit log and webhooks show them. */
export function identityChangeJson(change: IdentityChange) {
  return {
    identity_sha256: change.presentedSha256,
    bound_identity_sha256: change.boundSha256,
    enrollment_path: change.enrollmentPath,
    reported_serial_number: change.reportedSerialNumber,
  }
}

export type DeviceEvent =
  /** The first TokenUpdate after an Authenticate: the channel is newly enrolled. */
  | { type: 'enrolled'; channel: Channel; awaitingConfiguration: boolean }
  | { type: 'checked_out'; deviceId: string }
  /** Authenticate with a certificate issued to renew this device's identity. */
  | { type: 'identity_renewed'; deviceId: string; certificateSha256: string; notAfter: Date | null }
  /** A new identity took over an enrollment bound to another certificate, on the ground `because`. */
  | ({ type: 'reenrolled'; because: AcceptedBecause } & IdentityChange)
  /** A new identity claimed an enrollment bound to another certificate and was refused; nothing changed. */
  | ({ type: 'identity_conflict'; because: RefusedBecause; detail: string; tenantId: string | null } & IdentityChange)
  /** The identity came through another tenant's enrollment path: the device stays in its tenant. */
  | { type: 'foreign_enrollment_path'; deviceId: string; enrollmentPath: string; pathTenantId: string | null; tenantId: string | null }
  /** Any check-in message the device got an answer to. */
  | { type: 'checkin'; messageType: string; channel: Channel; raw: PlistDict }
  /** A device's final answer to a command was stored (see CommandResultListener). */
  | {
      type: 'command_result'
      deviceId: string
      enrollmentId: string
      requestType: string
      commandUuid: string
      status: 'Acknowledged' | 'Error' | 'CommandFormatError'
      report: PlistDict
    }
  /** Any report that is not Idle (NotNow and unrecorded repeats included), after it was handled. */
  | { type: 'report'; report: CommandReport }

export type DeviceEventType = DeviceEvent['type']
export type DeviceEventOf<T extends DeviceEventType> = Extract<DeviceEvent, { type: T }>

/**
 * A command result listener may answer 'more' (it queued commands for this channel: they go
 * out in this same exchange) or 'stop' (the device is gone, e.g. it acknowledged an erase: it
 * gets nothing more, and later listeners are not called).
 */
export type CommandResultListener = (event: DeviceEventOf<'command_result'>) => Promise<'more' | 'stop' | void>

export type DeviceEventListeners = {
  readonly [T in Exclude<DeviceEventType, 'command_result'>]?: ReadonlyArray<(event: DeviceEventOf<T>) => unknown>
} & { readonly command_result?: readonly CommandResultListener[] }

export interface DeviceEvents {
  emit(event: Exclude<DeviceEvent, { type: 'command_result' }>): Promise<void>
  /** 'stop' when a listener said so, 'more' when one queued commands, else undefined. */
  commandResult(event: DeviceEventOf<'command_result'>): Promise<'more' | 'stop' | undefined>
}

export function createDeviceEvents(listeners: DeviceEventListeners): DeviceEvents {
  return {
    async emit(event) {
      const list = (listeners[event.type] ?? []) as ReadonlyArray<(event: DeviceEvent) => unknown>
      for (const listener of list) await listener(event)
    },
    async commandResult(event) {
      let more = false
      for (const listener of listeners.command_result ?? []) {
        const answer = await listener(event)
        if (answer === 'stop') return 'stop'
        if (answer === 'more') more = true
      }
      return more ? 'more' : undefined
    },
  }
}

/** Devices whose events nobody listens to (tests of a single service). */
export const noDeviceEvents: DeviceEvents = createDeviceEvents({})
