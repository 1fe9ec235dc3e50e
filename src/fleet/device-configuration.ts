// A device's configuration as an admin sees it: each profile and app its blueprints want, and
// each one a blueprint put there that is on its way out, with where convergence stands.
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { BlueprintApplication } from '../db/schema.js'
import type { ConfigStateRow, ConvergenceStore } from './convergence-store.js'

export type ItemStatus = 'in_sync' | 'pending' | 'removing' | 'failed'

export interface DeviceConfiguration {
  deviceId: string
  status: 'in_sync' | 'pending' | 'failed'
  profiles: Array<{
    identifier: string
    name: string | null
    profileId: string | null
    status: ItemStatus
    detail: string | null
    commandUuid: string | null
    updatedAt: Date | null
  }>
  applications: Array<{ bundleId: string; status: ItemStatus; detail: string | null; commandUuid: string | null; updatedAt: Date | null }>
}

export interface DeviceConfigurations {
  deviceConfiguration(scope: AccessScope, deviceId: string): Promise<DeviceConfiguration>
}

export interface DeviceConfigurationsDeps {
  store: Pick<ConvergenceStore, 'device' | 'desiredProfiles' | 'desiredApplications' | 'states'>
}

/** An item a blueprint wants: in sync once installed at the wanted version (`wanted` null: any). */
function statusOf(state: ConfigStateRow | undefined, wanted: string | null): ItemStatus {
  if (!state) return 'pending'
  if (state.status === 'failed') return 'failed'
  if (state.status === 'removing') return 'removing'
  return state.status === 'installed' && (wanted === null || state.version === wanted) ? 'in_sync' : 'pending'
}

/** An item no blueprint wants any more: being removed, or its removal failed. */
const leftoverStatus = (status: string): ItemStatus => (status === 'failed' ? 'failed' : 'removing')

export function createDeviceConfigurations(deps: DeviceConfigurationsDeps): DeviceConfigurations {
  const { store } = deps
  return {
    async deviceConfiguration(scope, deviceId) {
      if (!(await store.device(scope, deviceId))) throw new OrchardError('not_found', `no device ${deviceId}`)
      const [desired, apps, states] = await Promise.all([store.desiredProfiles(deviceId), store.desiredApplications(deviceId), store.states(deviceId)])
      const byKey = new Map(states.map((row) => [`${row.item_type} ${row.identifier}`, row]))
      const profiles = [
        ...desired.map((wanted) => {
          const state = byKey.get(`profile ${wanted.identifier}`)
          return {
            identifier: wanted.identifier,
            name: wanted.name,
            profileId: wanted.profileId,
            status: statusOf(state, wanted.sha256),
            detail: state?.detail ?? null,
            commandUuid: state?.command_uuid ?? null,
            updatedAt: state?.updated_at ?? null,
          }
        }),
        // Profiles on their way out (no longer desired).
        ...states
          .filter((row) => row.item_type === 'profile' && !desired.some((wanted) => wanted.identifier === row.identifier))
          .map((row) => ({
            identifier: row.identifier,
            name: null,
            profileId: row.profile_id,
            status: leftoverStatus(row.status),
            detail: row.detail,
            commandUuid: row.command_uuid,
            updatedAt: row.updated_at,
          })),
      ]
      const applications = [
        ...apps.map((app: BlueprintApplication) => {
          const state = byKey.get(`app ${app.bundle_id}`)
          return {
            bundleId: app.bundle_id,
            status: statusOf(state, null),
            detail: state?.detail ?? null,
            commandUuid: state?.command_uuid ?? null,
            updatedAt: state?.updated_at ?? null,
          }
        }),
        ...states
          .filter((row) => row.item_type === 'app' && !apps.some((app) => app.bundle_id === row.identifier))
          .map((row) => ({
            bundleId: row.identifier,
            status: leftoverStatus(row.status),
            detail: row.detail,
            commandUuid: row.command_uuid,
            updatedAt: row.updated_at,
          })),
      ]
      const all = [...profiles, ...applications]
      const status = all.some((item) => item.status === 'failed') ? 'failed' : all.every((item) => item.status === 'in_sync') ? 'in_sync' : 'pending'
      return { deviceId, status, profiles, applications }
    },
  }
}
