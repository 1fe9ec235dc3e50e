// The fleet as main.ts composes it: devices as the admin sees them (the directory), device
// lifecycle (lost, wipe, retire, kinds) and blueprints (desired profiles and apps).
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { ProfileSigner } from '../crypto/profile-signing.js'
import type { DatabaseHandle } from '../db/database.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { CommandAdmin } from '../queue/command-admin.js'
import type { ConfirmationTokens } from '../queue/destructive-guard.js'
import type { AppLicensing } from './convergence.js'
import type { AuditStore } from '../tenancy/audit-store.js'
import { createAppUpdateStore } from './app-update-store.js'
import { createAppUpdates } from './app-updates.js'
import { createBlueprintStore } from './blueprint-store.js'
import { createBlueprintService } from './blueprints.js'
import { createDeviceDirectory } from './device-directory.js'
import { createDeviceDirectoryStore } from './device-directory-store.js'
import { createDeviceGroupStore } from './device-group-store.js'
import { createDeviceGroups } from './device-groups.js'
import { createDeviceLifecycle } from './device-lifecycle.js'
import { createInventoryRefresh } from './inventory-refresh.js'
import { createInventoryRefreshStore } from './inventory-refresh-store.js'
import { createLifecycleStore } from './lifecycle-store.js'
import { createOffboardingFeature, type OffboardingFeatureDeps } from './offboarding-feature.js'
import { createSharedIpadActions } from './shared-ipad-actions.js'
import { createSharedIpadUserStore } from './shared-ipad-user-store.js'
import { createSharedIpadUsers } from './shared-ipad-users.js'

export { activationLockHandlers } from './activation-lock-api.js'
export { withBypassCodeStatus } from './activation-lock.js'
export { appUpdateHandlers } from './app-updates-api.js'
export { blueprintHandlers } from './blueprints-api.js'
export { deviceHandlers } from './devices-api.js'
export { deviceGroupHandlers } from './device-groups-api.js'
export { lifecycleHandlers } from './lifecycle-api.js'
export { offboardingHandlers } from './offboarding-feature.js'
export { createOffboardingJobs, offboardingJobKind } from './offboarding-job.js'
export { sharedIpadHandlers } from './shared-ipad-api.js'

/** Activation Lock: bypass codes of supervised devices (sealed with `secretBox`), ADE organization-linked lock, unlocking at Apple. */
export { createActivationLockFeature } from './activation-lock-feature.js'

/** Shared iPad users (UserList, kept per device) and the actions on them: log out, delete, SharedDeviceConfiguration. */
export function createSharedIpadFeature(deps: {
  db: DatabaseHandle['db']
  dispatcher: CommandDispatcher
  tokens: ConfirmationTokens
  recordDryRun: CommandAdmin['recordDryRun']
  logger: Logger
}) {
  const store = createSharedIpadUserStore(deps.db)
  const users = createSharedIpadUsers({ store, dispatcher: deps.dispatcher, logger: deps.logger })
  const actions = createSharedIpadActions({ users, store, ...deps })
  return { users, actions }
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
  /** What targets one device may have changed (smart groups after an inventory answer): its declaration set. */
  deviceDeclarationsChanged: (deviceId: string) => Promise<void>
  /** A library profile has a new version: the declarations carrying it change. */
  profileReplaced?: (profileId: string) => Promise<void>
  /** Offboarding: the MDM profile of Return to Service erases, and the destructive-command guard's tokens. */
  offboarding: Pick<OffboardingFeatureDeps, 'returnToServiceProfile' | 'tokens'>
  logger: Logger
}) {
  const { db, dispatcher, logger } = deps
  const lifecycleStore = createLifecycleStore(db)
  const offboardingParts = createOffboardingFeature({ db, lifecycleStore, ...deps.offboarding, ownerLimit: deps.config.destructiveOwnerLimit, logger })
  const lifecycle = createDeviceLifecycle({
    store: lifecycleStore,
    offboardingStore: offboardingParts.store,
    ...(offboardingParts.returnToService ? { returnToService: offboardingParts.returnToService } : {}),
    dispatcher,
    disown: deps.disown,
    mdmProfileIdentifier: deps.config.enrollmentProfileIdentifier,
    deviceEvent: (deviceId, action, details) => deps.audit.appendDeviceEvent({ deviceId, action, details, at: new Date() }),
    logger,
  })
  const offboarding = { leavers: offboardingParts.leavers(lifecycle), returnToService: offboardingParts.returnToService, eraseKeys: offboardingParts.eraseKeys }
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
  const groups = createDeviceGroups({
    store: createDeviceGroupStore(db),
    targetsChanged: (scope, tenantId, withApps) => blueprints.targetsChanged(scope, tenantId, withApps),
    deviceTargetsChanged: deps.deviceDeclarationsChanged,
  })
  return { lifecycle, blueprints, appUpdates, inventory, groups, offboarding }
}
