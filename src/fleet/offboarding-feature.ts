// Offboarding and Return to Service as fleet/index.ts composes them: the stores, the Return
// to Service decisions erases consult, and the leavers action over the device lifecycle.
import type { Logger } from 'pino'
import type { DatabaseHandle } from '../db/database.js'
import { OrchardError } from '../errors.js'
import type { PlistDict } from '../mdm/plist.js'
import type { AccessScope } from '../model/access.js'
import type { ConfirmationTokens } from '../queue/destructive-guard.js'
import type { LifecycleStore } from './lifecycle-store.js'
import type { Offboarding } from './offboarding.js'
import { createOffboardingBulk, type OffboardingBulk } from './offboarding-bulk.js'
import { createOffboardingStore } from './offboarding-store.js'
import { createReturnToService, type ReturnToService } from './return-to-service.js'
import { createReturnToServiceStore } from './return-to-service-store.js'

export { offboardingHandlers } from './offboarding-api.js'

export interface OffboardingFeatureDeps {
  db: DatabaseHandle['db']
  lifecycleStore: Pick<LifecycleStore, 'device'>
  /** The enrollment profile an erase with Return to Service carries (enrollment-service.ts); absent: no Return to Service. */
  returnToServiceProfile?: (device: { topic: string | null }) => Promise<Buffer>
  /** The destructive-command guard's tokens (queue/destructive-guard.ts), and its owner limit. */
  tokens: ConfirmationTokens
  ownerLimit: number
  logger: Logger
}

export function createOffboardingFeature(deps: OffboardingFeatureDeps) {
  const log = deps.logger.child({ service: 'offboarding' })
  const store = createOffboardingStore(deps.db)
  const returnToService: ReturnToService | undefined = deps.returnToServiceProfile
    ? createReturnToService({ store: createReturnToServiceStore(deps.db), mdmProfile: deps.returnToServiceProfile, log })
    : undefined
  /** The ReturnToService keys of POST /devices/{id}/erase (devices-api.ts). */
  const eraseKeys = async (scope: AccessScope, deviceId: string, requested: boolean | undefined): Promise<PlistDict | null> => {
    if (!returnToService) return null
    const device = await deps.lifecycleStore.device(scope, deviceId)
    if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
    return (await returnToService.planFor(device, requested))?.keys ?? null
  }
  const leavers = (offboarding: Offboarding): OffboardingBulk =>
    createOffboardingBulk({ offboarding, store, tokens: deps.tokens, ownerLimit: deps.ownerLimit, log })
  return { store, returnToService, eraseKeys, leavers }
}
