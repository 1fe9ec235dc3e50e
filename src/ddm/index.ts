// Declarative device management as main.ts composes it: declarations per tenant, each device's
// and each user channel's computed set served to its DDM check-ins, and the status channel.
import type { Logger } from 'pino'
import type { DatabaseHandle } from '../db/database.js'
import type { DeclarativeManagementHandler } from '../device/declarative-management.js'
import type { ProfileSigner } from '../crypto/profile-signing.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import { createDeclarativeCheckIn } from './check-in.js'
import { createDeclarationService } from './declaration-service.js'
import { createDeclarationSetStore } from './declaration-set-store.js'
import type { LatestReleaseLookup } from '../model/os-update.js'
import { createDeclarationSets } from './declaration-sets.js'
import { createDeclarationStore } from './declaration-store.js'
import { createLegacyProfileUrls } from './legacy-profile-urls.js'
import { createLegacyProfiles } from './legacy-profiles.js'
import { createStatusChannel, type StatusEmit } from './status-channel.js'
import { createStatusStore } from './status-store.js'
import { createUserChannelStore } from './user-channel-store.js'

export { declarationHandlers } from './api.js'
export { reachOf } from './declaration-service.js'
export { legacyProfileRoutes, type LegacyProfileRoutesOptions } from './legacy-profile-routes.js'

export function createDdmFeature(deps: {
  db: DatabaseHandle['db']
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  /** Status changes as webhook events. */
  emit?: StatusEmit
  /** The OS catalogue's newest release for a model ("latest" update policies). */
  latestRelease?: LatestReleaseLookup
  /** Library profiles carried by legacy-profile declarations: URLs signed with keys derived from these. */
  publicUrl: string
  secretKeys: readonly Buffer[]
  /** Signs served profiles, as InstallProfile's are. */
  signer: ProfileSigner | null
  logger: Logger
  now?: () => Date
}) {
  const log = deps.logger.child({ service: 'ddm' })
  const now = deps.now ?? (() => new Date())
  const setStore = createDeclarationSetStore(deps.db)
  const statusStore = createStatusStore(deps.db)
  const userStore = createUserChannelStore(deps.db)
  const sets = createDeclarationSets({
    store: setStore,
    userStore,
    dispatcher: deps.dispatcher,
    ...(deps.latestRelease ? { latestRelease: deps.latestRelease } : {}),
    log,
    now,
  })
  const status = createStatusChannel({ store: statusStore, userStore, ...(deps.emit ? { emit: deps.emit } : {}), log, now })
  const profileUrls = deps.secretKeys.length > 0 ? createLegacyProfileUrls(deps.publicUrl, deps.secretKeys) : null
  const declarations = createDeclarationService({
    store: createDeclarationStore(deps.db),
    sets,
    setStore,
    status: statusStore,
    userStore,
    servesProfiles: profileUrls !== null,
  })
  const legacyProfiles = createLegacyProfiles({ store: setStore, urls: profileUrls, signer: deps.signer, log, now })
  /** DeclarativeManagement check-ins of device and user channels; `fallback` answers a user channel that has no set. */
  const checkIn = (fallback: DeclarativeManagementHandler) => createDeclarativeCheckIn({ store: setStore, userStore, sets, status, fallback, profileUrls })
  return { sets, status, declarations, checkIn, legacyProfiles }
}
