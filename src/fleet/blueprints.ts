// Desired configuration. Profiles are uploaded to a per-tenant library (validated against
// Apple's profile schema); blueprints assign profiles and apps to a tenant, device kinds,
// enrollment groups or devices. Orchard converges each device to its blueprints from what
// the device reports: a ProfileList (or InstalledApplicationList) answer is compared with
// what is desired, and InstallProfile/RemoveProfile (InstallApplication/RemoveApplication)
// are queued for the difference, never twice while one is in flight. A profile's version is
// its content (the sha256 of the uploaded bytes), not its PayloadUUID. Triggers: enrollment,
// a blueprint or profile change, a periodic check, and an admin's sync; each asks the device
// for its lists, and the answers drive the convergence.
import { createHash, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { signProfile, type ProfileSigner } from '../crypto/profile-signing.js'
import { OrchardError } from '../errors.js'
import { decodePlist, isPlistDict, type PlistDict } from '../mdm/plist.js'
import { validateProfile } from '../mdm/profile-validation.js'
import { fullAccess, tenantForNewRow, type AccessScope } from '../model/access.js'
import type { BlueprintInput, BlueprintRow, BlueprintStore, ConfigStateRow, LibraryProfileRow } from './blueprint-store.js'
import type { BlueprintApplication, ConfigItemType } from '../db/schema.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { CommandResultEvent } from './device-lifecycle.js'

export interface BlueprintServiceDeps {
  store: BlueprintStore
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  /** Profiles are signed on delivery when a signing identity is configured. */
  signer?: ProfileSigner
  /** Lifecycle states in which a device is converged (not while it is being wiped or retired). */
  deviceState: (deviceId: string) => Promise<string | undefined>
  logger: Logger
  now?: () => Date
}

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

export interface BlueprintService {
  listProfiles(scope: AccessScope): Promise<LibraryProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<LibraryProfileRow>
  uploadProfile(scope: AccessScope, body: Buffer, tenantId: string | null | undefined): Promise<LibraryProfileRow>
  replaceProfile(scope: AccessScope, id: string, body: Buffer): Promise<LibraryProfileRow>
  deleteProfile(scope: AccessScope, id: string): Promise<void>
  listBlueprints(scope: AccessScope): Promise<BlueprintRow[]>
  getBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow>
  createBlueprint(scope: AccessScope, tenantId: string | null | undefined, input: BlueprintInput): Promise<BlueprintRow>
  updateBlueprint(scope: AccessScope, id: string, input: BlueprintInput): Promise<BlueprintRow>
  deleteBlueprint(scope: AccessScope, id: string): Promise<void>
  deviceConfiguration(scope: AccessScope, deviceId: string): Promise<DeviceConfiguration>
  /** Asks the device for its lists now; failed items are tried again. */
  syncDevice(scope: AccessScope, deviceId: string): Promise<void>
  /** Asks every enrolled device with desired configuration for its lists (the periodic check). */
  checkAll(): Promise<number>
  /** True when it queued commands for the device (convergence). */
  commandResult(event: CommandResultEvent): Promise<boolean>
  deviceEnrolled(deviceId: string): Promise<void>
}

const validation = (pointer: string, detail: string) =>
  new OrchardError('validation_failed', `${pointer.replace(/^\//, '') || 'body'}: ${detail}`, { details: { errors: [{ pointer, detail }] } })

interface ParsedProfile {
  identifier: string
  payloadUuid: string
  name: string
  payloadTypes: string[]
}

/** A .mobileconfig as uploaded: an unsigned plist, valid against Apple's profile schema. */
export function parseLibraryProfile(body: Buffer): ParsedProfile {
  if (body.length === 0) throw new OrchardError('validation_failed', 'the body must be a .mobileconfig file')
  // DER SEQUENCE: a signed profile. Its content cannot be checked or re-signed.
  if (body[0] === 0x30)
    throw new OrchardError('validation_failed', 'upload the unsigned profile: Orchard checks it and signs it on delivery when a signing identity is configured')
  let profile: unknown
  try {
    profile = decodePlist(body)
  } catch (error) {
    throw new OrchardError('validation_failed', `the profile is not a property list: ${(error as Error).message}`)
  }
  if (!isPlistDict(profile)) throw new OrchardError('validation_failed', 'the profile must be a dictionary')
  const problems = validateProfile(profile, { anyApplePayloadType: true })
  if (problems.length > 0) {
    throw new OrchardError(
      'validation_failed',
      `the profile does not match Apple's schema: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`,
      { details: { errors: problems.map((detail) => ({ pointer: '/', detail })) } },
    )
  }
  const content = Array.isArray(profile['PayloadContent']) ? (profile['PayloadContent'] as unknown[]) : []
  const payloadTypes = content
    .map((payload) => (isPlistDict(payload) ? payload['PayloadType'] : undefined))
    .filter((type): type is string => typeof type === 'string')
  if (payloadTypes.includes('com.apple.mdm'))
    throw new OrchardError('validation_failed', 'an MDM payload cannot be part of a blueprint: devices enroll through enrollment links or ADE')
  const identifier = profile['PayloadIdentifier']
  const payloadUuid = profile['PayloadUUID']
  if (typeof identifier !== 'string' || identifier === '' || typeof payloadUuid !== 'string' || payloadUuid === '') {
    throw new OrchardError('validation_failed', 'the profile needs a PayloadIdentifier and a PayloadUUID')
  }
  const name = typeof profile['PayloadDisplayName'] === 'string' && profile['PayloadDisplayName'] !== '' ? profile['PayloadDisplayName'] : identifier
  // The columns' limits (migration 0009), in characters as PostgreSQL counts them.
  for (const [key, value, max] of [
    ['PayloadIdentifier', identifier, 500],
    ['PayloadUUID', payloadUuid, 200],
    ['PayloadDisplayName', name, 500],
  ] as const) {
    if (value.length > max && [...value].length > max) throw new OrchardError('validation_failed', `the profile's ${key} is longer than ${max} characters`)
  }
  return { identifier, payloadUuid, name, payloadTypes: [...new Set(payloadTypes)] }
}

function errorDetail(report: PlistDict, status: string): string {
  const chain = report['ErrorChain']
  if (Array.isArray(chain)) {
    const first = chain.find((entry) => isPlistDict(entry)) as PlistDict | undefined
    const description = first?.['USEnglishDescription'] ?? first?.['LocalizedDescription']
    if (typeof description === 'string') return `${status}: ${description}`
  }
  return `the device answered ${status}`
}

/** An item no blueprint wants any more: being removed, or its removal failed. */
const leftoverStatus = (status: string): ItemStatus => (status === 'failed' ? 'failed' : 'removing')

export function createBlueprintService(deps: BlueprintServiceDeps): BlueprintService {
  const log = deps.logger.child({ service: 'blueprints' })
  const now = deps.now ?? (() => new Date())

  async function profile(scope: AccessScope, id: string) {
    const row = await deps.store.getProfile(scope, id)
    if (!row) throw new OrchardError('not_found', `no profile ${id}`)
    return row
  }

  /** Asks devices for their profile (and app) lists; the answers drive convergence. */
  async function askForLists(scope: AccessScope, deviceIds: readonly string[], withApps: boolean): Promise<void> {
    if (deviceIds.length === 0) return
    for (const requestType of withApps ? ['ProfileList', 'InstalledApplicationList'] : ['ProfileList']) {
      await deps.dispatcher.dispatch(scope, {
        targets: { enrollmentIds: deviceIds },
        command: { kind: 'built', requestType, keys: requestType === 'InstalledApplicationList' ? { ManagedAppsOnly: true } : {} },
      })
    }
  }

  async function refreshTenant(scope: AccessScope, tenantId: string | null, withApps: boolean): Promise<void> {
    const devices = await deps.store.enrolledDevicesOfTenant(tenantId)
    await askForLists(scope, devices, withApps)
    log.info({ tenant_id: tenantId, devices: devices.length }, 'blueprint changed: devices asked for their lists')
  }

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

  interface DesiredItem {
    identifier: string
    /** The version wanted: a profile's content hash (library_profiles.sha256); null for apps. */
    version: string | null
    /** What the device lists when it has it: a profile's PayloadUUID; null for apps (listed is enough). */
    reported: string | null
    profileId: string | null
    /** The command that installs it; undefined when the item changed meanwhile (its change asks again). */
    install(): Promise<{ requestType: string; keys: PlistDict } | undefined>
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
    installed: ReadonlyMap<string, string | null>,
    removeRequestType: string,
    options: { retryFailed: boolean },
  ): Promise<boolean> {
    let queued = false
    const states = new Map((await deps.store.states(deviceId)).filter((row) => row.item_type === type).map((row) => [row.identifier, row]))
    const inFlight = async (state: ConfigStateRow) => state.command_uuid !== null && (await deps.store.commandOpen(deviceId, state.command_uuid))
    for (const wanted of desired) {
      const state = states.get(wanted.identifier)
      const reported = installed.get(wanted.identifier)
      const listed = installed.has(wanted.identifier) && (wanted.reported === null || reported === wanted.reported)
      const acknowledged = state?.status === 'installed' && state.version === wanted.version
      if (listed && (wanted.version === null || acknowledged)) {
        if (!acknowledged || state.detail !== null || state.profile_id !== wanted.profileId) {
          await deps.store.putState(deviceId, type, wanted.identifier, {
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
      // Only a versioned item tells a lost (or replaced) install from a new version.
      const drifted = acknowledged && wanted.version !== null
      const driftDetail = installed.has(wanted.identifier)
        ? `the device reported another version of it (PayloadUUID ${String(reported)}): installing it again`
        : 'the device no longer reported it: installing it again'
      const command = await wanted.install()
      if (!command) continue
      const { requestType, keys } = command
      const uuid = await queue(deviceId, requestType, keys)
      queued ||= uuid !== null
      await deps.store.putState(deviceId, type, wanted.identifier, {
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
        if (state.status !== 'installing' || !(await inFlight(state))) await deps.store.deleteState(deviceId, type, state.identifier)
        continue
      }
      if (state.status === 'removing' && (await inFlight(state))) continue
      // A failed removal (no profile wanted any more) waits for a sync.
      if (state.status === 'failed' && state.profile_id === null && !options.retryFailed) continue
      const uuid = await queue(deviceId, removeRequestType, { Identifier: state.identifier })
      queued ||= uuid !== null
      await deps.store.putState(deviceId, type, state.identifier, {
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
    const desired = (await deps.store.desiredProfiles(deviceId)).map((wanted) => ({
      identifier: wanted.identifier,
      version: wanted.sha256,
      reported: wanted.payloadUuid,
      profileId: wanted.profileId,
      async install() {
        const content = await deps.store.profileVersionContent(wanted.profileId, wanted.sha256)
        return content && { requestType: 'InstallProfile', keys: { Payload: deps.signer ? signProfile(content, deps.signer, now()) : content } }
      },
    }))
    return converge(deviceId, 'profile', desired, await deps.store.installedProfiles(deviceId), 'RemoveProfile', options)
  }

  async function convergeApplications(deviceId: string, options: { retryFailed: boolean }): Promise<boolean> {
    const desired = (await deps.store.desiredApplications(deviceId)).map((app) => ({
      identifier: app.bundle_id,
      version: null,
      reported: null,
      profileId: null,
      // ManagementFlags 1: the app goes when the device leaves management.
      install: async () => ({
        requestType: 'InstallApplication',
        keys: {
          ...(app.manifest_url !== undefined ? { ManifestURL: app.manifest_url } : { iTunesStoreID: app.itunes_store_id! }),
          ManagementFlags: 1,
        },
      }),
    }))
    const installed = new Map([...(await deps.store.installedApplications(deviceId))].map((identifier) => [identifier, null]))
    return converge(deviceId, 'app', desired, installed, 'RemoveApplication', options)
  }

  async function hasConfiguration(deviceId: string): Promise<{ any: boolean; apps: boolean }> {
    const [profiles, apps, states] = await Promise.all([
      deps.store.desiredProfiles(deviceId),
      deps.store.desiredApplications(deviceId),
      deps.store.states(deviceId),
    ])
    return { any: profiles.length > 0 || apps.length > 0 || states.length > 0, apps: apps.length > 0 || states.some((row) => row.item_type === 'app') }
  }

  function blueprintInputChecked(input: BlueprintInput): BlueprintInput {
    input.applications.forEach((app, index) => {
      if ((app.manifest_url === undefined) === (app.itunes_store_id === undefined))
        throw validation(`/applications/${index}`, 'give exactly one of manifest_url and itunes_store_id')
    })
    return input
  }

  function blueprintOutcome<T>(outcome: T | 'name_taken' | 'unknown_tenant' | { profileNotUsable: string }, name: string): T {
    if (outcome === 'name_taken') throw new OrchardError('conflict', `a blueprint called ${name} exists already in this tenant`)
    if (outcome === 'unknown_tenant') throw validation('/tenant_id', 'no such tenant')
    if (outcome && typeof outcome === 'object' && 'profileNotUsable' in outcome) {
      throw validation(
        '/profile_ids',
        `profile ${outcome.profileNotUsable} is not one this blueprint can carry (its tenant's, its organisation's or central IT's)`,
      )
    }
    return outcome
  }

  return {
    listProfiles: (scope) => deps.store.listProfiles(scope),
    getProfile: profile,

    async uploadProfile(scope, body, requestedTenant) {
      const parsed = parseLibraryProfile(body)
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const row = await deps.store.insertProfile(scope, {
        id: randomUUID(),
        tenantId,
        ...parsed,
        content: body,
        sha256: createHash('sha256').update(body).digest('hex'),
      })
      if (row === 'identifier_taken')
        throw new OrchardError('conflict', `the library has a profile ${parsed.identifier} already: upload the new version with PUT /api/v1/profiles/{id}`)
      if (row === 'unknown_tenant')
        throw new OrchardError('validation_failed', `parameter tenant_id: no tenant ${tenantId}`, {
          details: { errors: [{ parameter: 'tenant_id', detail: 'no such tenant' }] },
        })
      log.info({ profile_id: row.id, identifier: row.identifier, tenant_id: row.tenant_id }, 'profile added to the library')
      return row
    },

    async replaceProfile(scope, id, body) {
      const parsed = parseLibraryProfile(body)
      const row = await deps.store.replaceProfile(scope, id, { ...parsed, content: body, sha256: createHash('sha256').update(body).digest('hex') })
      if (!row) throw new OrchardError('not_found', `no profile ${id}`)
      if (row === 'identifier_changed')
        throw new OrchardError('validation_failed', `a new version keeps the PayloadIdentifier; upload ${parsed.identifier} as a new profile instead`)
      for (const tenantId of await deps.store.blueprintTenantsOfProfile(id)) await refreshTenant(scope, tenantId, false)
      return row
    },

    async deleteProfile(scope, id) {
      const outcome = await deps.store.deleteProfile(scope, id)
      if (outcome === 'not_found') throw new OrchardError('not_found', `no profile ${id}`)
      if (outcome === 'in_use') throw new OrchardError('conflict', `profile ${id} is part of a blueprint: take it out of the blueprint first`)
    },

    listBlueprints: (scope) => deps.store.listBlueprints(scope),
    async getBlueprint(scope, id) {
      const row = await deps.store.getBlueprint(scope, id)
      if (!row) throw new OrchardError('not_found', `no blueprint ${id}`)
      return row
    },

    async createBlueprint(scope, requestedTenant, input) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const row = blueprintOutcome(await deps.store.createBlueprint(scope, randomUUID(), tenantId, blueprintInputChecked(input)), input.name)
      await refreshTenant(scope, tenantId, row.applications.length > 0)
      return row
    },

    async updateBlueprint(scope, id, input) {
      const before = await deps.store.getBlueprint(scope, id)
      if (!before) throw new OrchardError('not_found', `no blueprint ${id}`)
      const row = blueprintOutcome(await deps.store.updateBlueprint(scope, id, blueprintInputChecked(input)), input.name)
      if (!row) throw new OrchardError('not_found', `no blueprint ${id}`)
      await refreshTenant(scope, row.tenant_id, row.applications.length > 0 || before.applications.length > 0)
      return row
    },

    async deleteBlueprint(scope, id) {
      const row = await deps.store.deleteBlueprint(scope, id)
      if (!row) throw new OrchardError('not_found', `no blueprint ${id}`)
      await refreshTenant(scope, row.tenant_id, row.applications.length > 0)
    },

    async deviceConfiguration(scope, deviceId) {
      if (!(await deps.store.device(scope, deviceId))) throw new OrchardError('not_found', `no device ${deviceId}`)
      const [desired, apps, states] = await Promise.all([
        deps.store.desiredProfiles(deviceId),
        deps.store.desiredApplications(deviceId),
        deps.store.states(deviceId),
      ])
      const byKey = new Map(states.map((row) => [`${row.item_type} ${row.identifier}`, row]))
      const statusOf = (state: ConfigStateRow | undefined, wanted: string | null): ItemStatus => {
        if (!state) return 'pending'
        if (state.status === 'failed') return 'failed'
        if (state.status === 'removing') return 'removing'
        return state.status === 'installed' && (wanted === null || state.version === wanted) ? 'in_sync' : 'pending'
      }
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

    async syncDevice(scope, deviceId) {
      const device = await deps.store.device(scope, deviceId)
      if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
      if (!device.enrolled) throw new OrchardError('conflict', `device ${deviceId} is not enrolled`)
      // An admin's sync tries failed items again once the lists are in.
      for (const state of await deps.store.states(deviceId)) {
        if (state.status === 'failed')
          await deps.store.putState(deviceId, state.item_type, state.identifier, {
            profileId: state.profile_id,
            version: state.version,
            status: 'installing',
            commandUuid: null,
            detail: 'retrying',
          })
      }
      await askForLists(scope, [deviceId], (await hasConfiguration(deviceId)).apps)
    },

    async checkAll() {
      const candidates = await deps.store.enrolledDevicesOfTenant(null)
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

    async commandResult(event) {
      if (event.enrollmentId !== event.deviceId) return false
      const ok = event.status === 'Acknowledged'
      if (ok && (event.requestType === 'ProfileList' || event.requestType === 'InstalledApplicationList')) {
        if (!(await converging(event.deviceId))) return false
        return event.requestType === 'ProfileList'
          ? convergeProfiles(event.deviceId, { retryFailed: false })
          : convergeApplications(event.deviceId, { retryFailed: false })
      }
      if (!['InstallProfile', 'RemoveProfile', 'InstallApplication', 'RemoveApplication'].includes(event.requestType)) return false
      const state = await deps.store.stateOfCommand(event.deviceId, event.commandUuid)
      if (!state) return false
      const removal = event.requestType.startsWith('Remove')
      if (ok && removal) await deps.store.deleteState(event.deviceId, state.item_type, state.identifier)
      else if (ok)
        await deps.store.putState(event.deviceId, state.item_type, state.identifier, {
          profileId: state.profile_id,
          version: state.version,
          status: 'installed',
          commandUuid: null,
          detail: null,
        })
      else {
        const detail = errorDetail(event.report, event.status)
        await deps.store.putState(event.deviceId, state.item_type, state.identifier, {
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

    async deviceEnrolled(deviceId) {
      const config = await hasConfiguration(deviceId)
      if (config.any) await askForLists(fullAccess, [deviceId], config.apps)
    },
  }
}
