// App updates an admin asks for: InstallApplication again, in one command, for the devices of a
// tenant (or of a blueprint) whose installed version of an app is older than the version given,
// or than the newest any device reported. Orchard has no App Store metadata (that needs a
// developer token): the versions it knows are the ones devices report (InstalledApplicationList).
// An Apps and Books app is installed again with the device's licence (PurchaseMethod 1), so a
// device without an assigned licence is left out and counted.
// https://developer.apple.com/documentation/devicemanagement/installapplicationcommand/command
import type { Logger } from 'pino'
import { invalidField, OrchardError } from '../errors.js'
import { scopeIncludes, type AccessScope } from '../model/access.js'
import { compareVersions, newestVersion } from '../model/app-version.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import { devicePurchase, installKeys } from './app-install-keys.js'
import type { AppUpdateStore } from './app-update-store.js'

export interface AppUpdateRequest {
  adamId: string
  /** The devices of this tenant only (null: central IT's own); all in scope when absent. */
  tenantId?: string | null
  /** The devices this blueprint reaches only. */
  blueprintId?: string
  /** How devices report the app; read from a blueprint app naming the adamId when absent. */
  bundleId?: string
  /** The version to reach; the newest one devices reported when absent. */
  version?: string
  dryRun?: boolean
}

export interface AppUpdateResult {
  adamId: string
  bundleId: string
  targetVersion: string
  /** Learned from devices, or given by the admin. */
  versionSource: 'given' | 'reported'
  /** Null when nothing was queued (or a dry run). */
  commandUuid: string | null
  /** Devices sent InstallApplication (a dry run: would be). */
  updating: string[]
  upToDate: number
  /** Devices that report the app without a version. */
  versionUnknown: number
  /** Apps and Books devices without an assigned licence for the asset. */
  withoutLicence: string[]
  /** Devices the queue refused (not enrolled any more, or cannot run it). */
  notQueued: number
}

export interface AppUpdates {
  update(scope: AccessScope, request: AppUpdateRequest): Promise<AppUpdateResult>
}

export function createAppUpdates(deps: { store: AppUpdateStore; dispatcher: Pick<CommandDispatcher, 'dispatch'>; log: Logger }): AppUpdates {
  const { store, log } = deps
  return {
    async update(scope, request) {
      const { adamId } = request
      if (request.tenantId !== undefined && !scopeIncludes(scope, request.tenantId)) {
        const detail = request.tenantId === null ? "only central IT can update central IT's devices" : `${request.tenantId} is not a tenant you manage`
        throw invalidField('/tenant_id', detail)
      }
      if (request.blueprintId !== undefined && !(await store.blueprintExists(scope, request.blueprintId)))
        throw new OrchardError('not_found', `no blueprint ${request.blueprintId}`)
      const apps = await store.blueprintApps(scope, adamId, request.blueprintId)
      const bundleId = request.bundleId ?? apps[0]?.app.bundle_id
      if (bundleId === undefined)
        throw new OrchardError(
          'validation_failed',
          `no blueprint${request.blueprintId !== undefined ? ' of those given' : ''} installs app ${adamId}: give its bundle_id`,
        )
      const devices = await store.devicesWithApp(scope, {
        bundleId,
        adamId,
        ...(request.tenantId !== undefined ? { tenantId: request.tenantId } : {}),
        ...(request.blueprintId !== undefined ? { blueprintId: request.blueprintId } : {}),
      })
      const known = (await store.knownVersions([bundleId])).get(bundleId)
      const reported = newestVersion([known, ...devices.map((device) => device.version)])
      if (reported !== undefined && reported !== known && devices.length > 0) {
        const by = devices.find((device) => device.version === reported)
        if (by) await store.raiseKnownVersion(bundleId, reported, known, by.deviceId)
      }
      const targetVersion = request.version ?? reported
      if (targetVersion === undefined) throw new OrchardError('conflict', `no device has reported a version of ${bundleId}: give the version to update to`)

      const app = apps.find((entry) => entry.app.bundle_id === bundleId)?.app
      const viaAppsAndBooks = app?.vpp_asset === adamId || (app === undefined && devices.some((device) => device.licensed))
      const outdated = devices.filter((device) => device.version !== null && compareVersions(device.version, targetVersion) < 0)
      const withoutLicence = viaAppsAndBooks ? outdated.filter((device) => !device.licensed).map((device) => device.deviceId) : []
      const updating = outdated.filter((device) => !viaAppsAndBooks || device.licensed).map((device) => device.deviceId)
      const result: AppUpdateResult = {
        adamId,
        bundleId,
        targetVersion,
        versionSource: request.version !== undefined ? 'given' : 'reported',
        commandUuid: null,
        updating,
        upToDate: devices.filter((device) => device.version !== null && compareVersions(device.version, targetVersion) >= 0).length,
        versionUnknown: devices.filter((device) => device.version === null).length,
        withoutLicence,
        notQueued: 0,
      }
      if (request.dryRun === true || updating.length === 0) return result

      // The blueprint's flags, configuration and attributes go with the update, as with the install.
      const base = app
        ? installKeys({ ...app, manifest_url: undefined, vpp_asset: undefined, itunes_store_id: Number(adamId) })
        : { iTunesStoreID: Number(adamId) }
      const keys = viaAppsAndBooks ? { ...base, Options: devicePurchase } : base
      const dispatched = await deps.dispatcher.dispatch(scope, {
        targets: { enrollmentIds: updating },
        command: { kind: 'built', requestType: 'InstallApplication', keys },
      })
      const queued = new Set(dispatched.targets.filter((target) => target.result === 'queued').map((target) => target.enrollmentId))
      result.commandUuid = queued.size > 0 ? dispatched.commandUuid : null
      result.updating = updating.filter((deviceId) => queued.has(deviceId))
      result.notQueued = updating.length - result.updating.length
      log.info(
        { adam_id: adamId, bundle_id: bundleId, target_version: targetVersion, updating: result.updating.length, without_licence: withoutLicence.length },
        'app update queued',
      )
      return result
    },
  }
}
