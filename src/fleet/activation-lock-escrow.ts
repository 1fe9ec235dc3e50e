// Organization-linked Activation Lock of ADE devices (ORCHARD_ADE_ACTIVATION_LOCK): once a
// supervised ADE device has reported its own bypass code, Orchard creates a second, server
// code (Apple's algorithm, src/crypto/bypass-code.ts), seals it, and sends its escrow key
// through ABM/ASM (POST /device/activationlock): Apple then keeps the device locked to the
// organization, also after an erase, until Orchard unlocks it with that code (or an ABM/ASM
// administrator turns the lock off). Never inside the device's report: the report marks the
// row due, and the periodic run sends it, retrying failures with backoff.
// https://developer.apple.com/documentation/devicemanagement/creating-and-using-bypass-codes
import type { Logger } from 'pino'
import type { AbmActivationLockOutcome } from '../ade/dep-service.js'
import { createServerBypassCode, escrowKeyOf } from '../crypto/bypass-code.js'
import type { SecretBox } from '../crypto/secret-box.js'
import type { ActivationLockAppleStore, ClaimedEscrow } from './activation-lock-apple-store.js'

export interface ActivationLockEscrow {
  /** The device's own code was just stored: an ADE device's organization-linked lock is due (when enabled). */
  codeReceived(deviceId: string): Promise<void>
  /** Sends the escrow keys that are due; what came of them. */
  escrowDue(): Promise<{ escrowed: number; failed: number; refused: number }>
}

export const serverCodeLabel = (deviceId: string) => `activation-lock-server-code:${deviceId}`

/** A row is leased this long while its request is under way (another replica skips it). */
const leaseMs = 10 * 60_000
const batch = 100

/** 5 minutes after the first failure, doubling, at most a day. */
export function escrowBackoffMs(attempts: number): number {
  return Math.min(86_400_000, 5 * 60_000 * 2 ** Math.min(Math.max(attempts - 1, 0), 20))
}

export function createActivationLockEscrow(deps: {
  store: ActivationLockAppleStore
  secretBox: SecretBox | null
  /** ORCHARD_ADE_ACTIVATION_LOCK. */
  enabled: boolean
  /** The ADE feature's POST /device/activationlock. */
  lockAtApple: (serialNumber: string, escrowKey: string) => Promise<AbmActivationLockOutcome>
  logger: Logger
  now?: () => Date
}): ActivationLockEscrow {
  const { store } = deps
  const now = deps.now ?? (() => new Date())
  const log = deps.logger.child({ service: 'activation-lock-escrow' })

  /** The device's server code, created and sealed first when it has none yet (a retry reuses it). */
  async function serverCode(claimed: ClaimedEscrow, box: SecretBox): Promise<string> {
    if (claimed.serverCodeSealed) return box.open(claimed.serverCodeSealed, serverCodeLabel(claimed.deviceId)).toString('utf8')
    const { code } = await createServerBypassCode()
    // Kept before its key leaves: without the code the lock could not be taken off again.
    await store.storeServerCode(claimed.deviceId, box.seal(Buffer.from(code, 'utf8'), serverCodeLabel(claimed.deviceId)))
    return code
  }

  async function send(claimed: ClaimedEscrow): Promise<AbmActivationLockOutcome> {
    if (!deps.secretBox)
      return { outcome: 'refused', appleStatus: null, detail: 'no master key (ORCHARD_SECRET_KEYS): the server bypass code could not be kept' }
    if (!claimed.serialNumber) return { outcome: 'refused', appleStatus: null, detail: 'the serial number of the device is not known' }
    const code = await serverCode(claimed, deps.secretBox)
    const escrowKey = await escrowKeyOf(code)
    if (!escrowKey) return { outcome: 'refused', appleStatus: null, detail: 'the stored server bypass code is not one Orchard created' }
    return deps.lockAtApple(claimed.serialNumber, escrowKey)
  }

  return {
    async codeReceived(deviceId) {
      if (!deps.enabled) return
      if (await store.markEscrowDue(deviceId, now())) log.info({ device_id: deviceId }, 'organization-linked Activation Lock due (ABM/ASM)')
    },

    async escrowDue() {
      const counts = { escrowed: 0, failed: 0, refused: 0 }
      if (!deps.enabled) return counts
      for (let round = 0; round < 10; round++) {
        const at = now()
        const claimed = await store.claimEscrows(at, new Date(at.getTime() + leaseMs), batch)
        for (const row of claimed) {
          const fields = { device_id: row.deviceId, attempt: row.attempts }
          let outcome: AbmActivationLockOutcome
          try {
            outcome = await send(row)
          } catch (error) {
            log.error({ ...fields, err: error }, 'sending the organization-linked Activation Lock failed')
            outcome = { outcome: 'failed', detail: `internal error: ${(error as Error).message}`, retryAfterSeconds: null }
          }
          const done = now()
          if (outcome.outcome === 'locked') {
            counts.escrowed++
            await store.recordEscrow(row.deviceId, 'escrowed', { detail: null, retryAt: null, at: done })
          } else if (outcome.outcome === 'refused') {
            counts.refused++
            await store.recordEscrow(row.deviceId, 'refused', { detail: outcome.detail, retryAt: null, at: done })
          } else {
            counts.failed++
            const waitMs = outcome.retryAfterSeconds !== null ? outcome.retryAfterSeconds * 1000 : escrowBackoffMs(row.attempts)
            const retryAt = new Date(done.getTime() + waitMs)
            await store.recordEscrow(row.deviceId, 'failed', { detail: outcome.detail, retryAt, at: done })
            log.warn({ ...fields, retry_at: retryAt }, `organization-linked Activation Lock not sent: ${outcome.detail}`)
          }
        }
        if (claimed.length < batch) break
      }
      return counts
    },
  }
}
