// Convergence: a device's ProfileList (or InstalledApplicationList) answer is compared with
// what its blueprints want, and InstallProfile/RemoveProfile (InstallApplication/
// RemoveApplication) are queued for the difference, never twice while one is in flight; the
// device's answers to those commands record each item's state. A profile's version is its
// content (the sha256 of the uploaded bytes), not its PayloadUUID.
import type { Logger } from 'pino'
import { signProfile, type ProfileSigner } from '../crypto/profile-signing.js'
import { isPlistDict, type PlistDict } from '../mdm/plist.js'
import { fullAccess } from '../model/access.js'
import type { BlueprintApplication, ConfigItemType } from '../db/schema.js'
import { compareVersions, newestVersion } from '../model/app-version.js'
import { devicePurchase, installKeys } from './app-install-keys.js'
import { installAnswerOutcome, installingPrefix, managedAppOutcome, managedAppStatuses, type ManagedAppOutcome } from './managed-app-status.js'
import type { AppVersionStore } from './app-update-store.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { ConfigStateRow, ConvergenceStore } from './convergence-store.js'
import { retryingDetail } from './convergence-triggers.js'
import type { CommandResultEvent } from './lifecycle-results.js'

export interface Convergence {
  /** True when it queued commands for the device (convergence). */
  commandResult(event: CommandResultEvent): Promise<boolean>
}

/**
 * Apps and Books licences (apps/vpp-licences.ts): a device needs its licence for an asset before
 * InstallApplication can install it without an Apple Account.
 */
export interface AppLicensing {
  licence(deviceId: string, adamId: string, retry: boolean): Promise<{ state: 'assigned' } | { state: 'waiting' | 'failed'; detail: string }>
  /** The device's blueprints want these assets only: its other licences are released. */
  keepOnly(deviceId: string, adamIds: readonly string[]): Promise<void>
}

export interface ConvergenceDeps {
  store: ConvergenceStore
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  /** Profiles are signed on delivery when a signing identity is configured. */
  signer?: ProfileSigner
  /** Lifecycle states in which a device is converged (not while it is being wiped or retired). */
  deviceState: (deviceId: string) => Promise<string | undefined>
  licences?: AppLicensing
  /** The newest app versions devices reported, for apps that update themselves. */
  appVersions?: AppVersionStore
  log: Logger
  now: () => Date
}

interface DesiredItem {
  identifier: string
  /** The version wanted: a profile's content hash (library_profiles.sha256); null for apps. */
  version: string | null
  /** What the device lists when it has it: a profile's PayloadUUID; null for apps (listed is enough). */
  reported: string | null
  profileId: string | null
  /** Why it is installed again when the device lists another version than `reported`. */
  driftDetail: (reported: string | null) => string
  /**
   * The command that installs it; undefined when the item changed meanwhile (its change asks
   * again); `hold` when it cannot be installed yet (a licence being assigned) or at all.
   */
  install(state: ConfigStateRow | undefined): Promise<{ requestType: string; keys: PlistDict } | { hold: 'waiting' | 'failed'; detail: string } | undefined>
}

function errorDetail(report: PlistDict, status: string): string {
  const chain = report['ErrorChain']
  if (Array.isArray(chain)) {
    const first = chain.find((entry) => isPlistDict(entry))
    const description = first?.['USEnglishDescription'] ?? first?.['LocalizedDescription']
    if (typeof description === 'string') return `${status}: ${description}`
  }
  return `the device answered ${status}`
}

export function createConvergence(deps: ConvergenceDeps): Convergence {
  const { store, log, now } = deps

  async function queue(deviceId: string, requestType: string, keys: PlistDict): Promise<string | null> {
    // Convergence runs while the device is talking to us: it gets the command in this very
    // exchange, no push needed.
    const result = await deps.dispatcher.dispatch(fullAccess, {
      targets: { enrollmentIds: [deviceId] },
      command: { kind: 'built', requestType, keys },
      push: false,
    })
    const target = result.targets[0]
    if (target?.result === 'queued') return result.commandUuid
    log.warn({ device_id: deviceId, request_type: requestType, result: target }, 'convergence command not queued')
    return null
  }

  async function converging(deviceId: string): Promise<boolean> {
    const state = await deps.deviceState(deviceId)
    return state === 'active' || state === 'lost'
  }

  /**
   * One device's items of one type against what it reported (identifier -> PayloadUUID): installs
   * what is missing or outdated, removes what a blueprint put there and no blueprint wants,
   * never while a command for the item is in flight, and leaves failures for a sync.
   *
   * A profile is in sync when the device lists its identifier with the desired PayloadUUID AND
   * the state records that the device acknowledged an InstallProfile of the desired content
   * (its sha256). A PayloadUUID says nothing about content (an edited profile may keep it), so:
   * - listed with the desired PayloadUUID but no acknowledged install of this content (none
   *   recorded, an older version, a row from before versions were hashes, whose version is a
   *   PayloadUUID): we cannot tell what is on the device, so it is installed once;
   * - listed with another PayloadUUID (installed by hand, or an older version): not ours, the
   *   blueprint's version is installed over it (a device keeps one profile per identifier).
   */
  async function converge(
    deviceId: string,
    type: ConfigItemType,
    desired: readonly DesiredItem[],
    installedList: () => Promise<ReadonlyMap<string, string | null>>,
    removeRequestType: string,
    options: { retryFailed: boolean },
  ): Promise<boolean> {
    let queued = false
    const states = new Map((await store.states(deviceId)).filter((row) => row.item_type === type).map((row) => [row.identifier, row]))
    // Nothing wanted and nothing of ours there (most devices, most answers): the list is not read.
    if (desired.length === 0 && states.size === 0) return false
    const installed = await installedList()
    const inFlight = async (state: ConfigStateRow) => state.command_uuid !== null && (await store.commandOpen(deviceId, state.command_uuid))
    for (const wanted of desired) {
      const state = states.get(wanted.identifier)
      const reported = installed.get(wanted.identifier)
      const listed = installed.has(wanted.identifier) && (wanted.reported === null || reported === wanted.reported)
      const acknowledged = state?.status === 'installed' && state.version === wanted.version
      // An app listed (at the wanted version or later) is there, whoever installed it; a
      // profile's content is known only from an acknowledged install of it.
      if (listed && (wanted.version === null || acknowledged || type === 'app')) {
        if (!acknowledged || state.detail !== null || state.profile_id !== wanted.profileId) {
          await store.putState(deviceId, type, wanted.identifier, {
            profileId: wanted.profileId,
            version: wanted.version,
            status: 'installed',
            commandUuid: null,
            detail: null,
          })
        }
        continue
      }
      if (state && state.version === wanted.version) {
        if (state.status === 'installing' && (await inFlight(state))) continue
        if (state.status === 'failed' && !options.retryFailed) continue
      }
      // Only a versioned item tells a lost (or replaced) install from a new version; an app
      // listed at an older version than an auto-update target is being updated.
      const drifted = wanted.version !== null && (acknowledged || (type === 'app' && installed.has(wanted.identifier)))
      const driftDetail = installed.has(wanted.identifier) ? wanted.driftDetail(reported ?? null) : 'the device no longer reported it: installing it again'
      const command = await wanted.install(state)
      if (!command) continue
      if ('hold' in command) {
        if (state?.status !== (command.hold === 'waiting' ? 'installing' : 'failed') || state.detail !== command.detail || state.command_uuid !== null)
          await store.putState(deviceId, type, wanted.identifier, {
            profileId: wanted.profileId,
            version: wanted.version,
            status: command.hold === 'waiting' ? 'installing' : 'failed',
            commandUuid: null,
            detail: command.detail,
          })
        continue
      }
      const { requestType, keys } = command
      const uuid = await queue(deviceId, requestType, keys)
      queued ||= uuid !== null
      await store.putState(deviceId, type, wanted.identifier, {
        profileId: wanted.profileId,
        version: wanted.version,
        status: uuid ? 'installing' : 'failed',
        commandUuid: uuid,
        detail: uuid ? (drifted ? driftDetail : null) : `${requestType} could not be queued for this device`,
      })
    }
    const wantedIds = new Set(desired.map((wanted) => wanted.identifier))
    for (const state of states.values()) {
      if (wantedIds.has(state.identifier)) continue
      if (!installed.has(state.identifier)) {
        if (state.status !== 'installing' || !(await inFlight(state))) await store.deleteState(deviceId, type, state.identifier)
        continue
      }
      if (state.status === 'removing' && (await inFlight(state))) continue
      // A failed removal (no profile wanted any more) waits for a sync.
      if (state.status === 'failed' && state.profile_id === null && !options.retryFailed) continue
      const uuid = await queue(deviceId, removeRequestType, { Identifier: state.identifier })
      queued ||= uuid !== null
      await store.putState(deviceId, type, state.identifier, {
        profileId: null,
        version: null,
        status: uuid ? 'removing' : 'failed',
        commandUuid: uuid,
        detail: uuid ? null : `${removeRequestType} could not be queued`,
      })
    }
    return queued
  }

  async function convergeProfiles(deviceId: string, options: { retryFailed: boolean }): Promise<boolean> {
    const desired = (await store.desiredProfiles(deviceId)).map((wanted) => ({
      identifier: wanted.identifier,
      version: wanted.sha256,
      reported: wanted.payloadUuid,
      profileId: wanted.profileId,
      driftDetail: (reported: string | null) => `the device reported another version of it (PayloadUUID ${String(reported)}): installing it again`,
      async install() {
        const content = await store.profileVersionContent(wanted.profileId, wanted.sha256)
        return content && { requestType: 'InstallProfile', keys: { Payload: deps.signer ? signProfile(content, deps.signer, now()) : content } }
      },
    }))
    return converge(deviceId, 'profile', desired, () => store.installedProfiles(deviceId), 'RemoveProfile', options)
  }

  /**
   * The version each auto-update app should be at: the newest any device reported (app_versions),
   * raised first when this device reports a newer one. Apps without auto_update want none.
   */
  async function targetVersions(
    deviceId: string,
    apps: readonly BlueprintApplication[],
    listed: ReadonlyMap<string, string | null>,
  ): Promise<Map<string, string>> {
    const store = deps.appVersions
    const updating = apps.filter((app) => app.auto_update === true).map((app) => app.bundle_id)
    if (!store || updating.length === 0) return new Map()
    const known = await store.knownVersions(updating)
    for (const bundleId of updating) {
      const reported = listed.get(bundleId)
      const newest = newestVersion([known.get(bundleId), reported])
      if (reported && newest === reported && known.get(bundleId) !== reported) {
        await store.raiseKnownVersion(bundleId, reported, known.get(bundleId), deviceId)
        known.set(bundleId, reported)
      }
    }
    return known
  }

  /** Apps the device said it is still installing and does not list yet are asked about with ManagedApplicationList. */
  async function convergeApplications(deviceId: string, options: { retryFailed: boolean }): Promise<boolean> {
    const apps = await store.desiredApplications(deviceId)
    const underway: string[] = []
    // Read once, when needed: for the apps wanted here, or for what convergence removes.
    let listedNow: Promise<Map<string, string | null>> | undefined
    const installedApps = () => (listedNow ??= store.installedApplications(deviceId))
    const listed = apps.length > 0 ? await installedApps() : new Map<string, string | null>()
    const targets = await targetVersions(deviceId, apps, listed)
    const desired = apps.map((app) => {
      const target = targets.get(app.bundle_id) ?? null
      return {
        identifier: app.bundle_id,
        // An auto-update app is in sync at the newest known version or later (older: installed again).
        version: target,
        reported: target,
        profileId: null,
        driftDetail: (reported: string | null) => `the device reported version ${reported ?? 'unknown'}, ${target ?? 'a newer one'} is known: updating it`,
        async install(state: ConfigStateRow | undefined) {
          // The device took the install and is still at it: ask how it goes, do not send it again.
          if (state?.status === 'installing' && state.detail?.startsWith(installingPrefix) === true) {
            underway.push(app.bundle_id)
            return { hold: 'waiting' as const, detail: state.detail }
          }
          const keys = installKeys(app)
          if (app.vpp_asset === undefined) return { requestType: 'InstallApplication', keys }
          if (!deps.licences) return { hold: 'failed' as const, detail: 'Apps and Books is not available in this installation' }
          // A failed licence is asked for again on a blueprint check or an admin's sync only.
          const retry = options.retryFailed || state?.detail === retryingDetail
          const licence = await deps.licences.licence(deviceId, app.vpp_asset, retry)
          if (licence.state !== 'assigned') return { hold: licence.state, detail: licence.detail }
          return { requestType: 'InstallApplication', keys: { ...keys, Options: devicePurchase } }
        },
      }
    })
    if (deps.licences) {
      const assets = apps.flatMap((app) => (app.vpp_asset !== undefined ? [app.vpp_asset] : []))
      await deps.licences.keepOnly(deviceId, assets)
      // An app the device has keeps its licence (a moved device gets one from its new tenant).
      for (const app of apps) if (app.vpp_asset !== undefined && listed.has(app.bundle_id)) await deps.licences.licence(deviceId, app.vpp_asset, false)
    }
    // A device at a newer version than the target is in sync too (and one that reports no
    // version cannot be compared: it is left alone).
    const installed = async () =>
      new Map(
        [...(await installedApps())].map(([identifier, version]) => {
          const target = targets.get(identifier)
          return [identifier, target !== undefined && (version === null || compareVersions(version, target) >= 0) ? target : version]
        }),
      )
    const queued = await converge(deviceId, 'app', desired, installed, 'RemoveApplication', options)
    if (underway.length === 0) return queued
    const uuid = await queue(deviceId, 'ManagedApplicationList', { Identifiers: underway })
    if (uuid === null) return queued
    const states = new Map((await store.states(deviceId)).filter((row) => row.item_type === 'app').map((row) => [row.identifier, row]))
    for (const identifier of underway) {
      const state = states.get(identifier)
      if (state)
        await store.putState(deviceId, 'app', identifier, {
          profileId: null,
          version: state.version,
          status: 'installing',
          commandUuid: uuid,
          detail: state.detail,
        })
    }
    return true
  }

  /** The device's word on its managed apps (ManagedApplicationList): each app asked about or listed gets its state. */
  async function managedAppsReported(event: CommandResultEvent): Promise<boolean> {
    const statuses = managedAppStatuses(event.report)
    for (const state of await store.states(event.deviceId)) {
      if (state.item_type !== 'app' || state.status === 'removing') continue
      const asked = state.command_uuid === event.commandUuid
      if (!asked && !statuses.has(state.identifier)) continue
      const outcome = statuses.has(state.identifier) ? managedAppOutcome(statuses.get(state.identifier)) : { kind: 'missing' as const }
      // No managed app by that name on the device: installed again at its next app list.
      if (outcome.kind === 'missing') await store.deleteState(event.deviceId, 'app', state.identifier)
      else await putOutcome(event.deviceId, state, outcome, null)
    }
    // Nothing is queued from this answer: the app list (not this one) says what is installed.
    return false
  }

  async function putOutcome(deviceId: string, state: ConfigStateRow, outcome: Exclude<ManagedAppOutcome, { kind: 'missing' }>, commandUuid: string | null) {
    const status = outcome.kind
    const detail = outcome.kind === 'installed' ? null : outcome.detail
    if (state.status === status && state.detail === detail && state.command_uuid === commandUuid) return
    await store.putState(deviceId, state.item_type, state.identifier, { profileId: state.profile_id, version: state.version, status, commandUuid, detail })
    if (outcome.kind === 'failed') log.warn({ device_id: deviceId, identifier: state.identifier, detail }, 'blueprint app failed on the device')
  }

  return {
    async commandResult(event) {
      if (event.enrollmentId !== event.deviceId) return false
      const ok = event.status === 'Acknowledged'
      if (ok && (event.requestType === 'ProfileList' || event.requestType === 'InstalledApplicationList')) {
        if (!(await converging(event.deviceId))) return false
        return event.requestType === 'ProfileList'
          ? convergeProfiles(event.deviceId, { retryFailed: false })
          : convergeApplications(event.deviceId, { retryFailed: false })
      }
      if (ok && event.requestType === 'ManagedApplicationList') return (await converging(event.deviceId)) && managedAppsReported(event)
      if (!['InstallProfile', 'RemoveProfile', 'InstallApplication', 'RemoveApplication'].includes(event.requestType)) return false
      const state = await store.stateOfCommand(event.deviceId, event.commandUuid)
      if (!state) return false
      const removal = event.requestType.startsWith('Remove')
      if (ok && removal) await store.deleteState(event.deviceId, state.item_type, state.identifier)
      else if (ok && event.requestType === 'InstallApplication') {
        // Acknowledged: the device took it; its State says whether the app is there yet.
        const outcome = installAnswerOutcome(event.report)
        await putOutcome(event.deviceId, state, outcome.kind === 'missing' ? { kind: 'installed' } : outcome, null)
      } else if (ok)
        await store.putState(event.deviceId, state.item_type, state.identifier, {
          profileId: state.profile_id,
          version: state.version,
          status: 'installed',
          commandUuid: null,
          detail: null,
        })
      else {
        const detail = errorDetail(event.report, event.status)
        await store.putState(event.deviceId, state.item_type, state.identifier, {
          profileId: state.profile_id,
          version: state.version,
          status: 'failed',
          commandUuid: event.commandUuid,
          detail,
        })
        log.warn({ device_id: event.deviceId, identifier: state.identifier, request_type: event.requestType, detail }, 'blueprint item failed on the device')
      }
      return false
    },
  }
}
