// Declarations per tenant: written by admins (checked against Apple's schema, with a ServerToken
// that changes exactly when the content changes), carried by blueprints; each change recomputes
// the sets of the devices it may reach. A device's view: each declaration of its set with what
// the device last reported of it, and its latest status items.
import { randomUUID } from 'node:crypto'
import { invalidField, OrchardError } from '../errors.js'
import { declarationKind, legacyProfileTypes, serverTokenOf, validateDeclaration, type DeclarationKind } from '../mdm/declarations.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { DeclarationSetStore, SetScope } from './declaration-set-store.js'
import type { DeclarationSets } from './declaration-sets.js'
import type { DeclarationRow, DeclarationStore } from './declaration-store.js'
import type { StatusItemRow, StatusStore } from './status-store.js'

export interface DeclarationInput {
  identifier: string
  type: string
  name?: string | null
  payload: Record<string, unknown>
  /** A library profile for a legacy-profile declaration: Orchard fills in ProfileURL per device. */
  profileId?: string | null
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

export interface DeclarationService {
  list(scope: AccessScope, filter: { tenantId?: string | null; kind?: DeclarationKind }): Promise<DeclarationRow[]>
  get(scope: AccessScope, id: string): Promise<DeclarationRow>
  create(scope: AccessScope, tenantId: string | null | undefined, input: DeclarationInput): Promise<DeclarationRow>
  update(scope: AccessScope, id: string, input: DeclarationInput): Promise<DeclarationRow>
  remove(scope: AccessScope, id: string): Promise<void>
  deviceDeclarations(
    scope: AccessScope,
    deviceId: string,
  ): Promise<{ declarationsToken: string | null; sentToken: string | null; items: DeviceDeclarationView[] }>
  statusItems(scope: AccessScope, deviceId: string): Promise<StatusItemRow[]>
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
  return {
    identifier: input.identifier,
    type: input.type,
    kind,
    name: input.name ?? null,
    payload: input.payload,
    // A library profile's token names the profile; its version joins in at set time (effectiveServerToken).
    serverToken: serverTokenOf(input.type, profileId === null ? input.payload : { ...input.payload, ProfileURL: `orchard:profile:${profileId}` }),
    profileId,
  }
}

export function createDeclarationService(deps: {
  store: DeclarationStore
  sets: DeclarationSets
  setStore: Pick<DeclarationSetStore, 'set'>
  status: Pick<StatusStore, 'deviceInScope' | 'statusItems' | 'declarationStatuses'>
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
      if (row.server_token !== before.server_token || row.identifier !== before.identifier) await deps.sets.recompute(reachOf(row.tenant_id))
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
      const reported = new Map((await deps.status.declarationStatuses(deviceId)).map((row) => [row.identifier, row]))
      const items = (set?.items ?? []).map((item): DeviceDeclarationView => {
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
      return { declarationsToken: set?.token ?? null, sentToken: set?.sentToken ?? null, items }
    },
    async statusItems(scope, deviceId) {
      const rows = await deps.status.statusItems(scope, deviceId)
      if (!rows) throw new OrchardError('not_found', `no device ${deviceId}`)
      return rows
    },
    async profileReplaced(profileId) {
      for (const tenantId of await store.tenantsOfProfile(profileId)) await deps.sets.recompute(reachOf(tenantId))
    },
  }
}
