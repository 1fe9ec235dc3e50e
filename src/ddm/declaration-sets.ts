// Each device's declaration set, and each of its user channels' (user-channel-sets.ts), computed
// when something that shapes it changes (a declaration, a blueprint, an enrollment, the periodic
// check) and stored, so a DDM check-in is one indexed read. A channel whose set changed is sent
// DeclarativeManagement with the new SyncTokens (one command per distinct token, pushed): it
// then fetches what changed.
// https://developer.apple.com/documentation/devicemanagement/declarativemanagementcommand
import type { Logger } from 'pino'
import type { DeclarationSetItem } from '../db/schema-ddm.js'
import {
  buildDeclarationSet,
  declarationItems,
  defaultActivationIdentifier,
  hasPlaceholders,
  made,
  serverTokenOf,
  statusSubscriptionsIdentifier,
  substitute,
  syncTimestamp,
  updateEnforcementIdentifier,
  type DeviceSubstitutions,
  type SetDeclaration,
} from '../mdm/declarations.js'
import { compareVersions } from '../model/app-version.js'
import { catalogueModel, latestReleasesFor, policyTarget, updatePath, type LatestRelease, type LatestReleaseLookup } from '../model/os-update.js'
import { fullAccess } from '../model/access.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { DeclarationForSet, DeclarationSetStore, DeviceDeclarations, SetScope } from './declaration-set-store.js'
import { setOfUserChannel } from './user-channel-sets.js'
import type { UserChannelStore } from './user-channel-store.js'

/** What every DDM device gets: it does not turn DDM on by itself. */
const orchardOwn = new Set([statusSubscriptionsIdentifier, defaultActivationIdentifier])

export interface RecomputeResult {
  devices: number
  /** Devices whose set changed. */
  changed: number
  /** Channels (devices and user channels) sent DeclarativeManagement. */
  notified: number
  /** User channels of those devices, and those whose set changed. */
  userChannels: number
  changedUserChannels: number
}

export interface DeclarationSets {
  recompute(scope: SetScope): Promise<RecomputeResult>
}

/** The values a device's declarations put in place of their placeholders. */
export function substitutionsOf(device: Pick<DeviceDeclarations, 'deviceId' | 'serialNumber' | 'deviceName' | 'tenantId'>): DeviceSubstitutions {
  return { udid: device.deviceId, serial_number: device.serialNumber, device_name: device.deviceName, tenant_id: device.tenantId }
}

/** The device's own ServerToken for a declaration with placeholders: its content differs per device. */
function deviceServerToken(declaration: DeclarationForSet, device: DeviceDeclarations): string {
  if (!hasPlaceholders(declaration.payload)) return declaration.serverToken
  return serverTokenOf(declaration.type, substitute(declaration.payload, substitutionsOf(device)))
}

/**
 * The enforcement declaration of the device's update policy, when the device takes the
 * declarative path and is not at the target yet.
 */
export function enforcementOf(device: DeviceDeclarations, latest: ReadonlyMap<string, LatestRelease>): SetDeclaration | undefined {
  const policy = device.policy
  // Enforcement is not allowed in User Enrollment (nor are the MDM update commands).
  if (!policy || device.userEnrollment || updatePath(device.productName, device.osVersion) !== 'ddm') return undefined
  const target = policyTarget(policy, catalogueModel(device), latest)
  if (!target || (device.osVersion && compareVersions(device.osVersion, target.version) >= 0)) return undefined
  return made(updateEnforcementIdentifier, 'com.apple.configuration.softwareupdate.enforcement.specific', 'configuration', {
    TargetOSVersion: target.version,
    ...(target.build ? { TargetBuildVersion: target.build } : {}),
    TargetLocalDateTime: target.deadline,
    ...(target.detailsUrl ? { DetailsURL: target.detailsUrl } : {}),
  })
}

export function setOfDevice(
  device: DeviceDeclarations,
  declarations: ReadonlyMap<string, DeclarationForSet>,
  latest: ReadonlyMap<string, LatestRelease> = new Map(),
): { token: string; items: DeclarationSetItem[] } {
  const wanted: SetDeclaration[] = []
  const enforcement = enforcementOf(device, latest)
  if (enforcement) wanted.push(enforcement)
  const activations = new Map<string, Record<string, unknown>>()
  for (const id of device.declarationIds) {
    const declaration = declarations.get(id)
    // User-channel declarations go to the device's user channels (user-channel-sets.ts), never to it.
    if (!declaration || declaration.channel !== 'device') continue
    wanted.push({
      identifier: declaration.identifier,
      type: declaration.type,
      kind: declaration.kind,
      declarationId: id,
      serverToken: deviceServerToken(declaration, device),
    })
    if (declaration.kind === 'activation' && !activations.has(declaration.identifier)) activations.set(declaration.identifier, declaration.payload)
  }
  const set = buildDeclarationSet(wanted, activations, { userEnrollment: device.userEnrollment })
  return {
    token: declarationItems(set).token,
    items: set.map((d) => ({
      identifier: d.identifier,
      type: d.type,
      kind: d.kind,
      server_token: d.serverToken,
      declaration_id: d.declarationId,
      ...(d.declarationId === null && d.payload ? { payload: d.payload } : {}),
    })),
  }
}

export function createDeclarationSets(deps: {
  store: DeclarationSetStore
  /** The user channels of the devices: their own sets (user-channel declarations). */
  userStore: Pick<UserChannelStore, 'channelsOf' | 'writeSets' | 'markSent'>
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  /** The newest release a model can install (the OS catalogue), for "latest" update policies. */
  latestRelease?: LatestReleaseLookup
  log: Logger
  now: () => Date
}): DeclarationSets {
  const { store, log } = deps
  return {
    async recompute(scope) {
      const devices = await store.devicesIn(scope)
      const declarations = await store.declarations([...new Set(devices.flatMap((device) => device.declarationIds))])
      const latest = await latestReleasesFor(devices, deps.latestRelease)
      const at = deps.now()
      const sets = devices.map((device) => ({ deviceId: device.deviceId, ...setOfDevice(device, declarations, latest) }))
      const changedDevices = await store.writeSets(sets, at)
      // Each user channel of these devices: its own set, its own token.
      const deviceOf = new Map(devices.map((device) => [device.deviceId, device]))
      const userSets = (await deps.userStore.channelsOf(devices.map((device) => device.deviceId))).map((channel) => ({
        enrollmentId: channel.enrollmentId,
        deviceId: channel.deviceId,
        ...setOfUserChannel(channel, deviceOf.get(channel.deviceId)!, declarations),
      }))
      const changedUsers = await deps.userStore.writeSets(userSets, at)
      const changed = [...changedDevices.map(({ deviceId, sentToken }) => ({ enrollmentId: deviceId, sentToken })), ...changedUsers]
      // One DeclarativeManagement per distinct token: the SyncTokens are the same for its channels.
      // DDM is turned on for a channel when the first declaration of an admin reaches it; after
      // that (sent before) every change is sent, the last declaration leaving too.
      const all = [...sets.map((set) => ({ ...set, enrollmentId: set.deviceId })), ...userSets]
      const tokenOf = new Map(all.map((set) => [set.enrollmentId, set.token]))
      const declared = new Set(all.filter((set) => set.items.some((item) => !orchardOwn.has(item.identifier))).map((set) => set.enrollmentId))
      const byToken = new Map<string, string[]>()
      for (const { enrollmentId, sentToken } of changed) {
        if (sentToken === null && !declared.has(enrollmentId)) continue
        const token = tokenOf.get(enrollmentId)!
        const group = byToken.get(token)
        if (group) group.push(enrollmentId)
        else byToken.set(token, [enrollmentId])
      }
      let notified = 0
      const sent: string[] = []
      const send = async (deviceIds: string[], keys: { Data?: Buffer }) => {
        const result = await deps.dispatcher.dispatch(fullAccess, {
          targets: { enrollmentIds: deviceIds },
          command: { kind: 'built', requestType: 'DeclarativeManagement', keys },
        })
        const queued = result.targets.filter((target) => target.result === 'queued').map((target) => target.enrollmentId)
        notified += queued.length
        sent.push(...queued)
      }
      // Devices whose set is their own (per-device content) share one command without Data: the
      // optional SyncTokens would make one command per device; without it the device asks for
      // its tokens, one indexed read. https://developer.apple.com/documentation/devicemanagement/declarativemanagementcommand/command
      const alone: string[] = []
      for (const [token, deviceIds] of byToken) {
        if (deviceIds.length === 1 && byToken.size > 1) {
          alone.push(...deviceIds)
          continue
        }
        await send(deviceIds, { Data: Buffer.from(JSON.stringify({ SyncTokens: { DeclarationsToken: token, Timestamp: syncTimestamp(at) } })) })
      }
      if (alone.length > 0) await send(alone, {})
      const userChannels = new Set(userSets.map((set) => set.enrollmentId))
      await store.markSent(
        sent.filter((id) => !userChannels.has(id)),
        at,
      )
      await deps.userStore.markSent(
        sent.filter((id) => userChannels.has(id)),
        at,
      )
      if (changed.length > 0)
        log.info({ devices: devices.length, userChannels: userSets.length, changed: changed.length, notified }, 'declaration sets changed')
      return { devices: devices.length, changed: changedDevices.length, notified, userChannels: userSets.length, changedUserChannels: changedUsers.length }
    },
  }
}
