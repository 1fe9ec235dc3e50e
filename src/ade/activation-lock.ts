// Organization-linked Activation Lock through ABM/ASM (POST /device/activationlock): Apple
// locks the device to the organization with the escrow key of a bypass code the caller
// created and kept; that code unlocks it later (escrowKeyUnlock), or an ABM/ASM
// administrator does. Sent in the name of the token the serial is synced under.
// https://developer.apple.com/documentation/devicemanagement/activation-lock-devices
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { AbmError } from './abm-client.js'
import type { AbmAccess } from './abm-access.js'
import type { DeviceStore } from './device-store.js'

export type AbmActivationLockOutcome =
  | { outcome: 'locked' }
  /** Apple's final answer for this device: sending it again changes nothing. */
  | { outcome: 'refused'; appleStatus: string | null; detail: string }
  /** Worth another try later (Apple's FAILED, throttling, the service or the token). */
  | { outcome: 'failed'; detail: string; retryAfterSeconds: number | null }

export interface DepActivationLock {
  activationLockDevice(serialNumber: string, escrowKey: string): Promise<AbmActivationLockOutcome>
}

const refusals: Record<string, string> = {
  NOT_ACCESSIBLE: 'the device is not accessible with this ABM/ASM token',
  ORG_NOT_SUPPORTED: "the organization's Apple Business/School Manager does not support Activation Lock through the device management service",
  DEVICE_NOT_SUPPORTED: 'the device type does not support organization-linked Activation Lock',
  DEVICE_ALREADY_LOCKED: 'the device is Activation Locked already (by an earlier request, or by someone else)',
}

export function createDepActivationLock(deps: { store: Pick<DeviceStore, 'adeLookup'>; abm: AbmAccess; log: Logger }): DepActivationLock {
  const { store, abm, log } = deps
  return {
    async activationLockDevice(serialNumber, escrowKey) {
      const lookup = await store.adeLookup(serialNumber)
      if (!lookup) return { outcome: 'refused', appleStatus: null, detail: 'not a device of any ABM/ASM token (never synced, or removed from this MDM server)' }
      const { token } = lookup
      const fields = { dep_token_id: token.id, serial_number: serialNumber }
      try {
        const answer = await abm.client(token).activationLock({ device: serialNumber, escrow_key: escrowKey })
        if (answer.status === 'SUCCESS') {
          log.info(fields, 'organization-linked Activation Lock enabled at Apple')
          return { outcome: 'locked' }
        }
        if (answer.status === 'FAILED') {
          return { outcome: 'failed', detail: 'Apple answered FAILED (retried later; if it persists, contact Apple)', retryAfterSeconds: null }
        }
        const detail = `Apple answered ${answer.status.slice(0, 100)}: ${refusals[answer.status] ?? 'not a status Apple documents'}`
        log.warn({ ...fields, response_status: answer.status }, `organization-linked Activation Lock refused: ${detail}`)
        return { outcome: 'refused', appleStatus: answer.status.slice(0, 100), detail }
      } catch (error) {
        if (error instanceof AbmError) {
          // What the token itself needs (terms, a new server token) shows on the token too.
          if (error.code === 'terms_not_signed' || error.code === 'token_rejected' || error.code === 'token_expired') await abm.recordFailure(token, error)
          return { outcome: 'failed', detail: error.message, retryAfterSeconds: error.details.retryAfterSeconds ?? null }
        }
        if (error instanceof OrchardError) return { outcome: 'failed', detail: error.message, retryAfterSeconds: null }
        throw error
      }
    },
  }
}
