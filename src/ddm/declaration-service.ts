// Declarations per tenant: written by admins (checked against Apple's schema, with a ServerToken
// that changes exactly when the content changes), carried by blueprints; each change recomputes
// the sets of the devices it may reach. A device's view: each declaration of its set with what
// the device last reported of it, and its latest status items.
import { randomUUID } from 'node:crypto'
import { invalidField, OrchardError } from '../errors.js'
import type { DeclarationChannel, DeclarationSetItem } from '../db/schema-ddm.js'
import {
  declarationKind,
  legacyProfileTypes,
  serverTokenOf,
  userChannelsOfType,
  userPlaceholderAt,
  validateDeclaration,
  type DeclarationKind,
  type UserChannelPlatform,
} from '../mdm/declarations.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { DeclarationSetStore, SetScope } from './declaration-set-store.js'
import type { DeclarationSets } from './declaration-sets.js'
import type { DeclarationRow, DeclarationStore } from './declaration-store.js'
import type { DeclarationStatusRow, StatusItemRow, StatusStore } from './status-store.js'
import type { UserChannelStore } from './user-channel-store.js'

export interface DeclarationInput {
  identifier: string
  type: string
  name?: string | null
  payload: Record<string, unknown>
  /** A library profile for a legacy-profile declaration: Orchard fills in ProfileURL per device. */
  profileId?: string | null
  /** 'user': for the user channels of the devices its blueprints reach (default 'device'). */
  channel?: DeclarationChannel
}

export type DeviceDeclarationState = 'active' | 'inactive' | 'invalid' | 'pending'

export interface DeviceDeclarationView {
  identifier: string
  type: string
  kind: DeclarationKind
  serverToken: string
  declarationId: string | null
  state: DeviceDeclarationState
  reasons: unknown
  reportedAt: Date | null
}

/** A user channel of the device: its set and what it reported of each declaration. */
export interface UserChannelDeclarationsView {
  enrollmentId: string
  userShortName: string | null
  userLongName: string | null
  platform: UserChannelPlatform
  declarationsToken: string
  sentToken: string | null
  items: DeviceDeclarationView[]
}

export interface DeclarationService {
  list(scope: AccessScope, filter: { tenantId?: string | null; kind?: DeclarationKind }): Promise<DeclarationRow[]>
  get(scope: AccessScope, id: string): Promise<DeclarationRow>
  create(scope: AccessScope, tenantId: string | null | undefined, input: DeclarationInput): Promise<DeclarationRow>
  update(scope: AccessScope, id: string, input: DeclarationInput): Promise<DeclarationRow>
  remove(scope: AccessScope, id: string): Promise<void>
  deviceDeclarations(
    scope: AccessScope,
    deviceId: string,
  ): Promise<{ declarationsToken: string | null; sentToken: string | null; items: DeviceDeclarationView[]; userChannels: UserChannelDeclarationsView[] }>
  statusItems(
    scope: AccessScope,
    deviceId: string,
  ): Promise<{ items: StatusItemRow[]; userChannels: Array<{ enrollmentId: string; userShortName: string | null; items: StatusItemRow[] }> }>
  /** A library profile has a new version: the sets of the devices its declarations may reach. */
  profileReplaced(profileId: string): Promise<void>
}

/** The devices a tenant's change may reach: its own and its departments' (central IT's: all). */
export const reachOf = (tenantId: string | null): SetScope => (tenantId === null ? { all: true } : { tenantId })

/** Stands in for the ProfileURL Orchard fills in when the payload is checked. */
const servedProfileUrl = 'https://orchard.invalid/profile'

function checked(input: DeclarationInput, servesProfiles: boolean) {
  const kind = declarationKind(input.type)
  if (!kind) throw invalidField('/type', `${JSON.stringify(input.type)} is not a declaration type of Apple's schema`)
  const profileId = input.profileId ?? null
  if (profileId !== null) {
    if (!legacyProfileTypes.has(input.type))
      throw invalidField('/profile_id', `only ${[...legacyProfileTypes].join(' and ')} declarations carry a library profile`)
    if ('ProfileURL' in input.payload) throw invalidField('/payload/ProfileURL', 'Orchard serves the profile named by profile_id: leave ProfileURL out')
    if (!servesProfiles)
      throw new OrchardError(
        'conflict',
        'serving library profiles to devices needs ORCHARD_SECRET_KEYS: each device gets a URL signed with a key derived from them',
      )
  }
  const problems = validateDeclaration(input.type, profileId === null ? input.payload : { ...input.payload, ProfileURL: servedProfileUrl })
  if (problems.length > 0) {
    const errors = problems.map((line) => {
      const [path, ...detail] = line.split(': ')
      return {
        pointer: `/${(path ?? '')
          .replace(/^Payload/, 'payload')
          .replace(/\[(\d+)\]/g, '.$1')
          .split('.')
          .join('/')}`,
        detail: detail.join(': ') || line,
      }
    })
    throw new OrchardError('validation_failed', `payload: ${problems.slice(0, 5).join('; ')}`, { details: { errors } })
  }
  const channel = input.channel ?? 'device'
  if (channel === 'user' && userChannelsOfType(input.type).length === 0)
    throw invalidField('/type', `${input.type} is for the device channel only: Apple's schema allows it on no user channel (macOS user, Shared iPad user)`)
  const userValue = channel === 'device' ? userPlaceholderAt(input.payload) : undefined
  if (userValue !== undefined)
    throw invalidField(
      `/payload${userValue}`,
      'a device-channel declaration has no user: {{user_short_name}}, {{user_full_name}} and {{user_email}} need channel user',
    )
  return {
    identifier: input.identifier,
    type: input.type,
    kind,
    channel,
    name: input.name ?? null,
    payload: input.payload,
    // A library profile's token names the profile; its version joins in at set time (effectiveServerToken).
    serverToken: serverTokenOf(input.type, profileId === null ? input.payload : { ...input.payload, ProfileURL: `orchard:profile:${profileId}` }),
    profileId,
  }
}

/** Each declaration of a channel's set with the state the channel last reported of this version of it. */
function viewOf(items: readonly DeclarationSetItem[], statuses: readonly DeclarationStatusRow[]): DeviceDeclarationView[] {
  const reported = new Map(statuses.map((row) => [row.identifier, row]))
  return items.map((item): DeviceDeclarationView => {
    const status = reported.get(item.identifier)
    const current = status !== undefined && status.serverToken === item.server_token
    const state: DeviceDeclarationState = !current ? 'pending' : status.valid === 'invalid' ? 'invalid' : status.active ? 'active' : 'inactive'
    return {
      identifier: item.identifier,
      type: item.type,
      kind: item.kind,
      serverToken: item.server_token,
      declarationId: item.declaration_id,
      state,
      reasons: current ? status.reasons : null,
      reportedAt: status?.updatedAt ?? null,
    }
  })
}

export function createDeclarationService(deps: {
  store: DeclarationStore
  sets: DeclarationSets
  setStore: Pick<DeclarationSetStore, 'set'>
  status: Pick<StatusStore, 'deviceInScope' | 'statusItems' | 'declarationStatuses'>
  userStore: Pick<UserChannelStore, 'setsOfDevice' | 'declarationStatuses' | 'statusItemsOfDevice'>
  /** Whether Orchard can sign the URLs of library profiles (a secret key is configured). */
  servesProfiles: boolean
}): DeclarationService {
  const { store } = deps
  const outcome = <T>(result: T | 'identifier_taken' | 'unknown_tenant' | 'profile_not_usable', identifier: string): T => {
    if (result === 'identifier_taken') throw new OrchardError('conflict', `a declaration with identifier ${identifier} exists already in this tenant`)
    if (result === 'unknown_tenant') throw invalidField('/tenant_id', 'no such tenant')
    if (result === 'profile_not_usable')
      throw invalidField('/profile_id', "no such profile in the library (a declaration carries its tenant's, its organisation's or central IT's profiles)")
    return result
  }
  return {
    list: (scope, filter) => store.list(scope, filter),
    async get(scope, id) {
      const row = await store.get(scope, id)
      if (!row) throw new OrchardError('not_found', `no declaration ${id}`)
      return row
    },
    async create(scope, requestedTenant, input) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const row = outcome(await store.create(scope, randomUUID(), tenantId, checked(input, deps.servesProfiles)), input.identifier)
      return row
    },
    async update(scope, id, input) {
      const before = await store.get(scope, id)
      if (!before) throw new OrchardError('not_found', `no declaration ${id}`)
      const content = checked(input, deps.servesProfiles)
      if (content.kind !== before.kind) throw invalidField('/type', `a ${before.kind} cannot become a ${content.kind}: create a new declaration`)
      const row = outcome(await store.update(scope, id, content), input.identifier)
      if (!row) throw new OrchardError('not_found', `no declaration ${id}`)
      if (row.server_token !== before.server_token || row.identifier !== before.identifier || row.channel !== before.channel)
        await deps.sets.recompute(reachOf(row.tenant_id))
      return row
    },
    async remove(scope, id) {
      const result = await store.remove(scope, id)
      if (result === 'in_use') throw new OrchardError('conflict', `declaration ${id} is carried by a blueprint: take it out of the blueprint first`)
      if (!result) throw new OrchardError('not_found', `no declaration ${id}`)
    },
    async deviceDeclarations(scope, deviceId) {
      if (!(await deps.status.deviceInScope(scope, deviceId))) throw new OrchardError('not_found', `no device ${deviceId}`)
      const set = await deps.setStore.set(deviceId)
      const items = viewOf(set?.items ?? [], await deps.status.declarationStatuses(deviceId))
      const userChannels: UserChannelDeclarationsView[] = []
      for (const channel of await deps.userStore.setsOfDevice(deviceId))
        userChannels.push({
          enrollmentId: channel.enrollmentId,
          userShortName: channel.userShortName,
          userLongName: channel.userLongName,
          platform: channel.platform,
          declarationsToken: channel.token,
          sentToken: channel.sentToken,
          items: viewOf(channel.items, await deps.userStore.declarationStatuses(channel.enrollmentId)),
        })
      return { declarationsToken: set?.token ?? null, sentToken: set?.sentToken ?? null, items, userChannels }
    },
    async statusItems(scope, deviceId) {
      const rows = await deps.status.statusItems(scope, deviceId)
      if (!rows) throw new OrchardError('not_found', `no device ${deviceId}`)
      return { items: rows, userChannels: await deps.userStore.statusItemsOfDevice(deviceId) }
    },
    async profileReplaced(profileId) {
      for (const tenantId of await store.tenantsOfProfile(profileId)) await deps.sets.recompute(reachOf(tenantId))
    },
  }
}
