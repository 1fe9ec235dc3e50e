// What Orchard knows and did about a device's Activation Lock, without any code: its own
// bypass code (held or why not), the organization-linked lock of an ADE device (ABM/ASM), the
// last unlock at Apple and ClearActivationLockBypassCode sent with it.
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { ActivationLockAppleStore, EscrowState } from './activation-lock-apple-store.js'
import type { BypassCodeState } from './activation-lock-store.js'

export interface ActivationLockStatus {
  deviceId: string
  deviceCode: { held: boolean; receivedAt: Date | null; requestState: BypassCodeState | null; detail: string | null }
  organizationLock: {
    /** null: never sent (not an ADE device, ORCHARD_ADE_ACTIVATION_LOCK off, or no device code yet). */
    state: EscrowState | null
    detail: string | null
    attempts: number
    attemptedAt: Date | null
    nextAttemptAt: Date | null
    escrowedAt: Date | null
    serverCodeHeld: boolean
  }
  lastUnlock: { unlockedAt: Date | null; codeUsed: 'device' | 'server' | null; detail: string | null }
  deviceClear: { state: 'requested' | 'cleared' | 'failed' | null; commandUuid: string | null; detail: string | null }
}

export function createActivationLockStatus(deps: { store: Pick<ActivationLockAppleStore, 'unlockFacts'> }) {
  return {
    async status(scope: AccessScope, deviceId: string): Promise<ActivationLockStatus> {
      const facts = await deps.store.unlockFacts(scope, deviceId)
      if (!facts) throw new OrchardError('not_found', `no device ${deviceId}`)
      const row = facts.row
      const pendingOrFailed = row?.escrow_state === 'pending' || row?.escrow_state === 'failed'
      return {
        deviceId,
        deviceCode: {
          held: Boolean(row?.code_sealed),
          receivedAt: row?.code_received_at ?? null,
          requestState: row?.request_state ?? null,
          detail: row?.detail ?? null,
        },
        organizationLock: {
          state: row?.escrow_state ?? null,
          detail: row?.escrow_detail ?? null,
          attempts: row?.escrow_attempts ?? 0,
          attemptedAt: row?.escrow_attempted_at ?? null,
          nextAttemptAt: pendingOrFailed ? (row?.escrow_retry_at ?? null) : null,
          escrowedAt: row?.escrowed_at ?? null,
          serverCodeHeld: Boolean(row?.server_code_sealed),
        },
        lastUnlock: { unlockedAt: row?.unlocked_at ?? null, codeUsed: row?.unlocked_with ?? null, detail: row?.unlock_detail ?? null },
        deviceClear: { state: row?.device_clear_state ?? null, commandUuid: row?.device_clear_command_uuid ?? null, detail: row?.device_clear_detail ?? null },
      }
    },
  }
}
