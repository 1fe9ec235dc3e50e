// PreStage (DEP) profiles: validated here, defined at Apple (a new UUID per definition:
// Apple profiles cannot be edited, so an edit defines a new one and moves the devices over).
import { randomUUID, X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import { isUniqueViolation } from '../db/pg-errors.js'
import { OrchardError } from '../errors.js'
import { validateTypedCommand } from '../mdm/command-validation.js'
import { setupSkipKeys } from '../mdm/generated/setup-skip-keys.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import { AbmError } from './abm-client.js'
import type { AbmAccess } from './abm-access.js'
import { requireProfile, requireToken, validation } from './dep-common.js'
import type { DeviceStore } from './device-store.js'
import type { ProfileStore } from './profile-store.js'
import type { DepProfileRow, DepTokenRow } from './shared-store.js'
import type { TokenStore } from './token-store.js'

export interface DepProfileInput {
  tokenId: string
  name: string
  deviceKind?: 'work' | 'function'
  minimumOsVersion?: string | null
  enrollmentCommands?: unknown[]
  /** Apple's DEP profile keys (profile_name, url, is_supervised, skip_setup_items, ...). */
  settings: Record<string, unknown>
  isDefault?: boolean
}

export interface DepProfiles {
  createProfile(scope: AccessScope, input: DepProfileInput): Promise<DepProfileRow>
  updateProfile(scope: AccessScope, id: string, input: Partial<Omit<DepProfileInput, 'tokenId'>>): Promise<DepProfileRow>
  listProfiles(scope: AccessScope, tokenId?: string): Promise<DepProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<DepProfileRow>
  deleteProfile(scope: AccessScope, id: string): Promise<void>
  /** Defines the profile at Apple (again); the new UUID replaces the old one. */
  defineProfile(scope: AccessScope, id: string): Promise<DepProfileRow>
}

export interface DepProfilesDeps {
  store: ProfileStore & Pick<TokenStore, 'getToken' | 'setDefaultProfile'> & Pick<DeviceStore, 'listDevices'>
  abm: AbmAccess
  /** The PreStage's enrollment `url` unless its settings name another. */
  publicUrl: string
  log: Logger
  now: () => Date
}

/** Dotted numeric versions, compared numerically ("17.10" > "17.9"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((part) => Number.parseInt(part, 10) || 0)
  const pb = b.split('.').map((part) => Number.parseInt(part, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (diff !== 0) return diff
  }
  return 0
}

/** The profile sent to Apple: the admin's settings, checked, over Orchard's defaults. */
function appleProfile(name: string, settings: Record<string, unknown>, defaultUrl: string): Record<string, unknown> {
  const skip = settings['skip_setup_items']
  if (skip !== undefined) {
    if (!Array.isArray(skip)) throw validation('/settings/skip_setup_items', 'must be an array of Setup Assistant pane names')
    skip.forEach((item, index) => {
      if (typeof item !== 'string' || !(item in setupSkipKeys)) {
        throw validation(
          `/settings/skip_setup_items/${index}`,
          `${JSON.stringify(item)} is not a Setup Assistant skip key (known: ${Object.keys(setupSkipKeys).join(', ')})`,
        )
      }
    })
  }
  for (const key of ['anchor_certs', 'supervising_host_certs'] as const) {
    const list = settings[key]
    if (list === undefined) continue
    ;(list as unknown[]).forEach((item, index) => {
      try {
        new X509Certificate(Buffer.from(String(item), 'base64'))
      } catch {
        throw validation(`/settings/${key}/${index}`, 'is not a base64 DER certificate')
      }
    })
  }
  if (settings['is_mdm_removable'] === false && settings['is_supervised'] === false) {
    throw validation('/settings/is_mdm_removable', 'false needs a supervised device (is_supervised must not be false)')
  }
  // Supervised unless told otherwise (iOS 13+ ignores it and always supervises ADE devices).
  return { profile_name: name, url: defaultUrl, is_supervised: true, ...settings }
}

function checkCommands(commands: unknown[] | undefined): void {
  commands?.forEach((command, index) => {
    const checked = validateTypedCommand(command)
    if (!checked.ok) {
      const error = checked.errors[0]!
      throw validation(`/enrollment_commands/${index}${error.pointer}`, error.detail)
    }
  })
}

/** What the stored profile holds beyond the admin's settings (so an edit keeps only theirs). */
function stripDefaults(profile: Record<string, unknown>): Record<string, unknown> {
  const { profile_name: _name, ...rest } = profile
  return rest
}

export function createDepProfiles(deps: DepProfilesDeps): DepProfiles {
  const { store, abm, log, now } = deps
  const defaultUrl = `${deps.publicUrl}/enroll/ade`

  async function define(profile: DepProfileRow, scope: AccessScope = fullAccess): Promise<DepProfileRow> {
    const token = await requireToken(store, { kind: 'all' }, profile.token_id)
    try {
      const defined = await abm.client(token).defineProfile(profile.profile)
      await store.recordDefinition(profile.id, { profileUuid: defined.profileUuid, at: now() }, scope)
      log.info(
        { dep_profile_id: profile.id, profile_uuid: defined.profileUuid, previous_uuid: profile.profile_uuid },
        `PreStage "${profile.name}" defined at Apple`,
      )
    } catch (error) {
      if (!(error instanceof AbmError)) throw error
      await store.recordDefinition(profile.id, { error: error.message }, scope)
      await abm.recordFailure(token, error)
    }
    return (await store.getProfile({ kind: 'all' }, profile.id))!
  }

  /** Assigns the newly defined PreStage to the devices that had (or were getting) its previous definition. */
  async function moveDevices(token: DepTokenRow, defined: DepProfileRow, scope: AccessScope): Promise<void> {
    const assigned: string[] = []
    for (let cursor: string | undefined; ;) {
      const page = await store.listDevices(scope, { profileId: defined.id, includeRemoved: false }, { limit: 500, ...(cursor ? { cursor } : {}) })
      assigned.push(
        ...page.items.filter((device) => device.assign_status === 'SUCCESS' || device.assign_status === 'THROTTLED').map((device) => device.serial_number),
      )
      if (!page.nextCursor) break
      cursor = page.nextCursor
    }
    if (assigned.length === 0) return
    try {
      await abm.assign(token, defined, assigned, scope)
    } catch (error) {
      await abm.recordFailure(token, error)
    }
  }

  return {
    async createProfile(scope, input) {
      const token = await requireToken(store, scope, input.tokenId)
      checkCommands(input.enrollmentCommands)
      const profile = appleProfile(input.name, input.settings, defaultUrl)
      const id = randomUUID()
      const row = {
        id,
        tokenId: token.id,
        name: input.name,
        profile,
        deviceKind: input.deviceKind ?? 'work',
        minimumOsVersion: input.minimumOsVersion ?? null,
        enrollmentCommands: input.enrollmentCommands ?? [],
      }
      try {
        await store.createProfile(row, scope)
      } catch (error) {
        if (isUniqueViolation(error)) throw new OrchardError('conflict', `token "${token.name}" has a PreStage named "${input.name}" already`)
        throw error
      }
      if (input.isDefault) await store.setDefaultProfile(token.id, id, scope)
      const created = await requireProfile(store, scope, id)
      return token.credentials_sealed ? define(created, scope) : created
    },

    async updateProfile(scope, id, input) {
      const current = await requireProfile(store, scope, id)
      checkCommands(input.enrollmentCommands)
      const name = input.name ?? current.name
      const changesProfile = input.settings !== undefined || input.name !== undefined
      const profile = changesProfile ? appleProfile(name, input.settings ?? stripDefaults(current.profile), defaultUrl) : undefined
      const changes = {
        ...(input.name !== undefined ? { name } : {}),
        ...(profile ? { profile } : {}),
        ...(input.deviceKind !== undefined ? { deviceKind: input.deviceKind } : {}),
        ...(input.minimumOsVersion !== undefined ? { minimumOsVersion: input.minimumOsVersion } : {}),
        ...(input.enrollmentCommands !== undefined ? { enrollmentCommands: input.enrollmentCommands } : {}),
      }
      await store.updateProfile(id, changes, scope)
      if (input.isDefault === true) await store.setDefaultProfile(current.token_id, id, scope)
      const updated = await requireProfile(store, scope, id)
      if (!profile) return updated
      // Apple profiles cannot be edited: define a new one and move the devices over to it.
      const token = await requireToken(store, scope, current.token_id)
      if (!token.credentials_sealed) return updated
      const defined = await define(updated, scope)
      if (defined.profile_uuid && defined.profile_uuid !== current.profile_uuid) await moveDevices(token, defined, scope)
      return requireProfile(store, scope, id)
    },

    async listProfiles(scope, tokenId) {
      return store.listProfiles(scope, tokenId)
    },

    getProfile: (scope, id) => requireProfile(store, scope, id),

    async deleteProfile(scope, id) {
      if (!(await store.deleteProfile(scope, id))) throw new OrchardError('not_found', `no PreStage profile ${id}`)
    },

    async defineProfile(scope, id) {
      const row = await requireProfile(store, scope, id)
      const token = await requireToken(store, scope, row.token_id)
      if (!token.credentials_sealed)
        throw new OrchardError('conflict', `ABM/ASM token "${token.name}" has no server token yet: upload the .p7m from Apple first`)
      return define(row, scope)
    },
  }
}
