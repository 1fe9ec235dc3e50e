// The profile library: .mobileconfig files uploaded per tenant, validated against Apple's
// profile schema. A profile's version is its content (the sha256 of the uploaded bytes), not
// its PayloadUUID; a new version asks the devices of every blueprint using it for their lists.
import { createHash, randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { kioskIdentifierPrefix } from './kiosk-profile.js'
import { decodePlist, isPlistDict } from '../mdm/plist.js'
import { validateProfile } from '../mdm/profile-validation.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { RefreshTenant } from './convergence-triggers.js'
import type { LibraryProfileRow, ProfileLibraryStore } from './profile-library-store.js'

export interface ProfileLibrary {
  listProfiles(scope: AccessScope): Promise<LibraryProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<LibraryProfileRow>
  uploadProfile(scope: AccessScope, body: Buffer, tenantId: string | null | undefined): Promise<LibraryProfileRow>
  replaceProfile(scope: AccessScope, id: string, body: Buffer): Promise<LibraryProfileRow>
  deleteProfile(scope: AccessScope, id: string): Promise<void>
}

export interface ProfileLibraryDeps {
  store: ProfileLibraryStore
  /** A new version goes to the devices of every blueprint that carries it. */
  refreshTenant: RefreshTenant
  /** A new version reaches the devices of the legacy-profile declarations carrying it. */
  profileReplaced?: (profileId: string) => Promise<void>
  log: Logger
}

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
  if (identifier.startsWith(kioskIdentifierPrefix)) {
    throw new OrchardError(
      'validation_failed',
      `PayloadIdentifiers starting with ${kioskIdentifierPrefix} are the kiosk profiles Orchard writes for blueprints (set a blueprint's kiosk instead)`,
    )
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

const sha256Of = (body: Buffer) => createHash('sha256').update(body).digest('hex')

export function createProfileLibrary(deps: ProfileLibraryDeps): ProfileLibrary {
  const { store, refreshTenant, log } = deps

  async function profile(scope: AccessScope, id: string) {
    const row = await store.getProfile(scope, id)
    if (!row) throw new OrchardError('not_found', `no profile ${id}`)
    return row
  }

  return {
    listProfiles: (scope) => store.listProfiles(scope),
    getProfile: profile,

    async uploadProfile(scope, body, requestedTenant) {
      const parsed = parseLibraryProfile(body)
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const row = await store.insertProfile(scope, { id: randomUUID(), tenantId, ...parsed, content: body, sha256: sha256Of(body) })
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
      const row = await store.replaceProfile(scope, id, { ...parsed, content: body, sha256: sha256Of(body) })
      if (!row) throw new OrchardError('not_found', `no profile ${id}`)
      if (row === 'identifier_changed')
        throw new OrchardError('validation_failed', `a new version keeps the PayloadIdentifier; upload ${parsed.identifier} as a new profile instead`)
      for (const tenantId of await store.blueprintTenantsOfProfile(id)) await refreshTenant(scope, tenantId, false)
      if (deps.profileReplaced) await deps.profileReplaced(id)
      return row
    },

    async deleteProfile(scope, id) {
      const outcome = await store.deleteProfile(scope, id)
      if (outcome === 'not_found') throw new OrchardError('not_found', `no profile ${id}`)
      if (outcome === 'in_use')
        throw new OrchardError(
          'conflict',
          `profile ${id} is part of a blueprint, carried by a declaration or the Wi-Fi of Return to Service: take it out of them first`,
        )
    },
  }
}
