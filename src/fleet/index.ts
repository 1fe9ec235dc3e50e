// The fleet as main.ts composes it: devices as the admin sees them (the directory), device
// lifecycle (lost, wipe, retire, kinds) and blueprints (desired profiles and apps).
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { ProfileSigner } from '../crypto/profile-signing.js'
import type { DatabaseHandle } from '../db/database.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { AppLicensing } from './convergence.js'
import type { AuditStore } from '../tenancy/audit-store.js'
import type { SecretBox } from '../crypto/secret-box.js'
import { createActivationLock } from './activation-lock.js'
import { createActivationLockStore } from './activation-lock-store.js'
import { createAppUpdateStore } from './app-update-store.js'
import { createAppUpdates } from './app-updates.js'
import { createBlueprintStore } from './blueprint-store.js'
import { createBlueprintService } from './blueprints.js'
import { createDeviceDirectory } from './device-directory.js'
import { createDeviceDirectoryStore } from './device-directory-store.js'
import { createDeviceLifecycle } from './device-lifecycle.js'
import { createInventoryRefresh } from './inventory-refresh.js'
import { createInventoryRefreshStore } from './inventory-refresh-store.js'
import { createLifecycleStore } from './lifecycle-store.js'

export { activationLockHandlers } from './activation-lock-api.js'
export { withBypassCodeStatus } from './activation-lock.js'
export { appUpdateHandlers } from './app-updates-api.js'
export { blueprintHandlers } from './blueprints-api.js'
export { deviceHandlers } from './devices-api.js'
export { lifecycleHandlers } from './lifecycle-api.js'

/** Activation Lock bypass codes of supervised devices, collected and kept sealed with `secretBox`. */
export function createActivationLockFeature(deps: { db: DatabaseHandle['db']; dispatcher: CommandDispatcher; secretBox: SecretBox | null; logger: Logger }) {
  return createActivationLock({ store: createActivationLockStore(deps.db), dispatcher: deps.dispatcher, secretBox: deps.secretBox, logger: deps.logger })
}

/** The devices' store alone: the dispatcher and the queue need it before lifecycle and blueprints exist. */
export function createFleetDirectory(db: DatabaseHandle['db']) {
  const store = createDeviceDirectoryStore(db)
  return { store, directory: createDeviceDirectory(store) }
}

export function createFleetFeature(deps: {
  config: Config
  db: DatabaseHandle['db']
  dispatcher: CommandDispatcher
  signer: ProfileSigner | null
  audit: Pick<AuditStore, 'appendDeviceEvent'>
  /** Disowning retired devices in ABM/ASM. */
  disown: (scope: AccessScope, tokenId: string, serials: string[]) => Promise<Record<string, string>>
  /** Apps and Books device licences for blueprint apps. */
  licences: AppLicensing
  /** Blueprints carrying declarations changed for a tenant's devices. */
  declarationsChanged?: (tenantId: string | null) => Promise<void>
  /** A library profile has a new version: the declarations carrying it change. */
  profileReplaced?: (profileId: string) => Promise<void>
  logger: Logger
}) {
  const { db, dispatcher, logger } = deps
  const lifecycleStore = createLifecycleStore(db)
  const lifecycle = createDeviceLifecycle({
    store: lifecycleStore,
    dispatcher,
    disown: deps.disown,
    mdmProfileIdentifier: deps.config.enrollmentProfileIdentifier,
    deviceEvent: (deviceId, action, details) => deps.audit.appendDeviceEvent({ deviceId, action, details, at: new Date() }),
    logger,
  })
  const appUpdateStore = createAppUpdateStore(db)
  const blueprints = createBlueprintService({
    store: createBlueprintStore(db),
    dispatcher,
    ...(deps.signer ? { signer: deps.signer } : {}),
    deviceState: async (deviceId) => (await lifecycleStore.device(fullAccess, deviceId))?.state,
    licences: deps.licences,
    appVersions: appUpdateStore,
    ...(deps.declarationsChanged ? { declarationsChanged: deps.declarationsChanged } : {}),
    ...(deps.profileReplaced ? { profileReplaced: deps.profileReplaced } : {}),
    logger,
  })
  const appUpdates = createAppUpdates({ store: appUpdateStore, dispatcher, log: logger.child({ service: 'app-updates' }) })
  const inventory = createInventoryRefresh({ dispatcher, store: createInventoryRefreshStore(db), log: logger.child({ service: 'inventory-refresh' }) })
  return { lifecycle, blueprints, appUpdates, inventory }
}
