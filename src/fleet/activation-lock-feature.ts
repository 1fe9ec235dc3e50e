// Activation Lock as main.ts composes it: the device's own bypass code (activation-lock.ts),
// the organization-linked lock of ADE devices through ABM/ASM (activation-lock-escrow.ts),
// turning the lock off at Apple with a held code (activation-lock-clear.ts) and the status
// of all three (activation-lock-status.ts).
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { AbmActivationLockOutcome } from '../ade/dep-service.js'
import type { Config } from '../config.js'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DatabaseHandle } from '../db/database.js'
import type { DeviceEventOf } from '../device/events.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import { createActivationLock } from './activation-lock.js'
import { createActivationLockAppleStore } from './activation-lock-apple-store.js'
import { createActivationLockClearing } from './activation-lock-clear.js'
import { createActivationLockEscrow } from './activation-lock-escrow.js'
import { createActivationLockStatus } from './activation-lock-status.js'
import { createActivationLockStore } from './activation-lock-store.js'
import { createEscrowKeyUnlockClient, type TlsIdentity } from './escrow-key-unlock.js'

export interface ActivationLockFeatureDeps {
  db: DatabaseHandle['db']
  dispatcher: CommandDispatcher
  secretBox: SecretBox | null
  config: Pick<Config, 'adeActivationLock' | 'activationLockUnlockUrl' | 'activationLockUnlockCaFile' | 'organization'>
  /** The ADE feature's POST /device/activationlock (organization-linked lock). */
  lockAtApple: (serialNumber: string, escrowKey: string) => Promise<AbmActivationLockOutcome>
  /** The push feature's certificate and key of a topic. */
  pushIdentity: (topic: string) => Promise<TlsIdentity | undefined>
  logger: Logger
}

export function createActivationLockFeature(deps: ActivationLockFeatureDeps) {
  const { config, logger, secretBox, dispatcher } = deps
  const appleStore = createActivationLockAppleStore(deps.db)
  const escrow = createActivationLockEscrow({ store: appleStore, secretBox, enabled: config.adeActivationLock, lockAtApple: deps.lockAtApple, logger })
  const deviceCodes = createActivationLock({
    store: createActivationLockStore(deps.db),
    dispatcher,
    secretBox,
    codeReceived: (deviceId) => escrow.codeReceived(deviceId),
    logger,
  })
  const unlock = createEscrowKeyUnlockClient({
    url: config.activationLockUnlockUrl,
    ca: config.activationLockUnlockCaFile ? readFileSync(config.activationLockUnlockCaFile, 'utf8') : undefined,
  })
  const clearing = createActivationLockClearing({
    store: appleStore,
    secretBox,
    unlock,
    pushIdentity: deps.pushIdentity,
    dispatcher,
    organization: config.organization,
    logger,
  })
  const { status: lockStatus } = createActivationLockStatus({ store: appleStore })
  return {
    ...deviceCodes,
    /** The device's answers: its code (and DeviceInformation), and ClearActivationLockBypassCode. */
    async commandResult(event: DeviceEventOf<'command_result'>) {
      await clearing.commandResult(event)
      return deviceCodes.commandResult(event)
    },
    clear: clearing.clear,
    /** Everything about the device's Activation Lock but the codes (GET .../activation-lock). */
    lockStatus,
    /** The periodic run of ADE organization-linked locks due (ORCHARD_ADE_ACTIVATION_LOCK). */
    escrowDue: escrow.escrowDue,
  }
}

export type ActivationLockFeature = ReturnType<typeof createActivationLockFeature>
