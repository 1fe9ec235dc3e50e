// Desired configuration. Profiles are uploaded to a per-tenant library (profile-library.ts,
// validated against Apple's profile schema); blueprints assign profiles and apps to a tenant,
// device kinds, enrollment groups or devices (blueprint-definitions.ts). Orchard converges each
// device to its blueprints from what the device reports (convergence.ts): a ProfileList (or
// InstalledApplicationList) answer is compared with what is desired, and the difference is
// queued. Triggers (convergence-triggers.ts): enrollment, a blueprint or profile change, a
// periodic check, and an admin's sync; each asks the device for its lists, and the answers
// drive the convergence. device-configuration.ts is where a device stands. This facade
// composes the parts over one store.
import type { Logger } from 'pino'
import { createBlueprintDefinitions, type BlueprintDefinitions } from './blueprint-definitions.js'
import type { BlueprintStore } from './blueprint-store.js'
import { createConvergence, type Convergence, type ConvergenceDeps } from './convergence.js'
import { createConvergenceTriggers, type ConvergenceTriggers } from './convergence-triggers.js'
import { createDeviceConfigurations, type DeviceConfigurations } from './device-configuration.js'
import { createProfileLibrary, type ProfileLibrary } from './profile-library.js'

export type { DeviceConfiguration, ItemStatus } from './device-configuration.js'
export { parseLibraryProfile } from './profile-library.js'

export interface BlueprintServiceDeps extends Pick<ConvergenceDeps, 'dispatcher' | 'signer' | 'deviceState' | 'licences' | 'appVersions'> {
  store: BlueprintStore
  declarationsChanged?: (tenantId: string | null) => Promise<void>
  /** A library profile has a new version (declarations may carry it). */
  profileReplaced?: (profileId: string) => Promise<void>
  logger: Logger
  now?: () => Date
}

export interface BlueprintService extends ProfileLibrary, BlueprintDefinitions, DeviceConfigurations, ConvergenceTriggers, Convergence {}

export function createBlueprintService(deps: BlueprintServiceDeps): BlueprintService {
  const { store, dispatcher } = deps
  const log = deps.logger.child({ service: 'blueprints' })
  const now = deps.now ?? (() => new Date())
  const { refreshTenant, ...triggers } = createConvergenceTriggers({ store, dispatcher, log })
  return {
    ...createProfileLibrary({ store, refreshTenant, ...(deps.profileReplaced ? { profileReplaced: deps.profileReplaced } : {}), log }),
    ...createBlueprintDefinitions({ store, refreshTenant, ...(deps.declarationsChanged ? { declarationsChanged: deps.declarationsChanged } : {}) }),
    ...createDeviceConfigurations({ store }),
    ...triggers,
    ...createConvergence({
      store,
      dispatcher,
      signer: deps.signer,
      deviceState: deps.deviceState,
      ...(deps.licences ? { licences: deps.licences } : {}),
      ...(deps.appVersions ? { appVersions: deps.appVersions } : {}),
      log,
      now,
    }),
  }
}
