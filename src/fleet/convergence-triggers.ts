// What starts a convergence: enrollment, a blueprint or profile change, the periodic check
// and an admin's sync. Each asks the device for its ProfileList (and InstalledApplicationList
// when apps are involved); the answers drive the convergence (convergence.ts).
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { ConvergenceStore } from './convergence-store.js'

/** The detail of an item an admin's sync set to be tried again (convergence reads it). */
export const retryingDetail = 'retrying'

export interface ConvergenceTriggers {
  /** Asks the device for its lists now; failed items are tried again. */
  syncDevice(scope: AccessScope, deviceId: string): Promise<void>
  /** Asks every enrolled device with desired configuration for its lists (the periodic check). */
  checkAll(): Promise<number>
  deviceEnrolled(deviceId: string): Promise<void>
  /** Devices whose app licences arrived: asks them for their app list (pushed). */
  devicesLicensed(deviceIds: readonly string[]): Promise<void>
}

/** A tenant's blueprints changed: asks the devices they may reach for their lists. */
export type RefreshTenant = (scope: AccessScope, tenantId: string | null, withApps: boolean) => Promise<void>

export interface ConvergenceTriggersDeps {
  store: Pick<ConvergenceStore, 'device' | 'enrolledDevicesOfTenant' | 'configurationOf' | 'states' | 'putState'>
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  log: Logger
}

export function createConvergenceTriggers(deps: ConvergenceTriggersDeps): ConvergenceTriggers & { refreshTenant: RefreshTenant } {
  const { store, log } = deps

  /** Asks devices for the lists named; the answers drive convergence. */
  async function askFor(scope: AccessScope, deviceIds: readonly string[], lists: ReadonlyArray<'ProfileList' | 'InstalledApplicationList'>): Promise<void> {
    if (deviceIds.length === 0) return
    for (const requestType of lists) {
      await deps.dispatcher.dispatch(scope, {
        targets: { enrollmentIds: deviceIds },
        command: { kind: 'built', requestType, keys: requestType === 'InstalledApplicationList' ? { ManagedAppsOnly: true } : {} },
      })
    }
  }

  const askForLists = (scope: AccessScope, deviceIds: readonly string[], withApps: boolean) =>
    askFor(scope, deviceIds, withApps ? ['ProfileList', 'InstalledApplicationList'] : ['ProfileList'])

  const hasConfiguration = (deviceId: string) => store.configurationOf(deviceId)

  return {
    async refreshTenant(scope, tenantId, withApps) {
      const devices = await store.enrolledDevicesOfTenant(tenantId)
      await askForLists(scope, devices, withApps)
      log.info({ tenant_id: tenantId, devices: devices.length }, 'blueprint changed: devices asked for their lists')
    },

    async syncDevice(scope, deviceId) {
      const device = await store.device(scope, deviceId)
      if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
      if (!device.enrolled) throw new OrchardError('conflict', `device ${deviceId} is not enrolled`)
      // An admin's sync tries failed items again once the lists are in.
      for (const state of await store.states(deviceId)) {
        if (state.status === 'failed')
          await store.putState(deviceId, state.item_type, state.identifier, {
            profileId: state.profile_id,
            version: state.version,
            status: 'installing',
            commandUuid: null,
            detail: retryingDetail,
          })
      }
      await askForLists(scope, [deviceId], (await hasConfiguration(deviceId)).apps)
    },

    async checkAll() {
      const candidates = await store.enrolledDevicesOfTenant(null)
      const due: string[] = []
      const withApps: string[] = []
      for (const deviceId of candidates) {
        const config = await hasConfiguration(deviceId)
        if (!config.any) continue
        ;(config.apps ? withApps : due).push(deviceId)
      }
      await askForLists(fullAccess, due, false)
      await askForLists(fullAccess, withApps, true)
      return due.length + withApps.length
    },

    async devicesLicensed(deviceIds) {
      await askFor(fullAccess, deviceIds, ['InstalledApplicationList'])
    },

    async deviceEnrolled(deviceId) {
      const config = await hasConfiguration(deviceId)
      if (config.any) await askForLists(fullAccess, [deviceId], config.apps)
    },
  }
}
