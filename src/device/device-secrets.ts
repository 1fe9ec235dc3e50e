// Device secrets: the UnlockToken (clears a forgotten passcode) and the BootstrapToken
// (macOS: grants SecureToken to new users) are escrowed sealed with ORCHARD_SECRET_KEYS,
// never in clear. Without a master key they are not kept at all: a secret we cannot
// protect is better dropped (the device sends the BootstrapToken again when asked).
// https://developer.apple.com/documentation/devicemanagement/token-update
// https://developer.apple.com/documentation/devicemanagement/set-bootstrap-token
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { DeviceSecretStore } from './device-secret-store.js'

export interface EscrowedSecrets {
  deviceId: string
  unlockToken: Buffer | null
  bootstrapToken: Buffer | null
}

export interface DeviceSecrets {
  /** The sealed form of a TokenUpdate's UnlockToken for its channel; undefined without a master key. */
  sealUnlockToken(enrollmentId: string, token: Buffer): Buffer | undefined
  setBootstrapToken(deviceId: string, token: Buffer | undefined): Promise<void>
  getBootstrapToken(deviceId: string): Promise<Buffer | undefined>
  /** Opens a device's escrowed secrets for an admin; the read is audited. */
  reveal(scope: AccessScope, deviceId: string): Promise<EscrowedSecrets>
  /** The device channel's UnlockToken, opened, for ClearPasscode; null when none is escrowed. */
  unlockTokenFor(scope: AccessScope, deviceId: string): Promise<Buffer | null>
  /** Seals what the legacy clear columns still hold (rows written before sealing existed). */
  sealClearSecrets(): Promise<{ sealed: number; left: number }>
}

const unlockLabel = (enrollmentId: string) => `unlock-token:${enrollmentId}`
const bootstrapLabel = (deviceId: string) => `bootstrap-token:${deviceId}`

export function createDeviceSecrets(deps: { store: DeviceSecretStore; secretBox: SecretBox | null; logger: Logger }): DeviceSecrets {
  const log = deps.logger.child({ service: 'device-secrets' })
  let warnedNoKey = false
  const box = (what: string): SecretBox | null => {
    if (!deps.secretBox && !warnedNoKey) {
      warnedNoKey = true
      log.warn(`no master key (ORCHARD_SECRET_KEYS): the ${what} a device sends is not kept, since it cannot be sealed at rest`)
    }
    return deps.secretBox
  }
  const open = (sealed: Buffer | null | undefined, label: string): Buffer | null => {
    if (!sealed) return null
    if (!deps.secretBox) throw new OrchardError('not_ready', 'no master key (ORCHARD_SECRET_KEYS): escrowed device secrets cannot be opened')
    return deps.secretBox.open(sealed, label)
  }

  return {
    sealUnlockToken(enrollmentId, token) {
      return box('UnlockToken')?.seal(token, unlockLabel(enrollmentId))
    },

    async setBootstrapToken(deviceId, token) {
      if (!token || token.length === 0) return deps.store.setBootstrapToken(deviceId, undefined)
      const secretBox = box('BootstrapToken')
      if (secretBox) await deps.store.setBootstrapToken(deviceId, secretBox.seal(token, bootstrapLabel(deviceId)))
    },

    async getBootstrapToken(deviceId) {
      return open(await deps.store.getBootstrapToken(deviceId), bootstrapLabel(deviceId)) ?? undefined
    },

    async reveal(scope, deviceId) {
      const row = await deps.store.readForAdmin(scope, deviceId, { revealed: ['unlock_token', 'bootstrap_token'] })
      if (!row) throw new OrchardError('not_found', `no device ${deviceId}`)
      log.warn({ device_id: deviceId, principal_id: scope.actor?.principalId }, 'escrowed device secrets revealed to an admin')
      return {
        deviceId,
        unlockToken: open(row.unlockTokenSealed, unlockLabel(deviceId)),
        bootstrapToken: open(row.bootstrapTokenSealed, bootstrapLabel(deviceId)),
      }
    },

    async unlockTokenFor(scope, deviceId) {
      const row = await deps.store.unlockToken(scope, deviceId)
      if (!row) throw new OrchardError('not_found', `no device ${deviceId}`)
      return open(row.sealed, unlockLabel(deviceId))
    },

    async sealClearSecrets() {
      if (!deps.secretBox) {
        const left = (await deps.store.clearSecrets(1)).length
        if (left > 0) log.error('device secrets are stored in clear and no master key (ORCHARD_SECRET_KEYS) is configured to seal them')
        return { sealed: 0, left }
      }
      let sealed = 0
      const done = new Set<string>()
      for (;;) {
        // A row seen twice was not replaced (changed meanwhile): the next start takes it.
        const rows = (await deps.store.clearSecrets(500)).filter((row) => !done.has(`${row.table}:${row.id}`))
        if (rows.length === 0) break
        for (const row of rows) {
          done.add(`${row.table}:${row.id}`)
          const label = row.table === 'enrollments' ? unlockLabel(row.id) : bootstrapLabel(row.id)
          await deps.store.replaceClearSecret(row, deps.secretBox.seal(row.value, label))
          sealed++
        }
      }
      if (sealed > 0) log.info({ sealed }, 'sealed device secrets that were stored in clear')
      return { sealed, left: 0 }
    },
  }
}
