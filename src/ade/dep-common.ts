// What the ADE service parts share: Apple's batch size, the error shapes they answer with,
// and the lookups that turn a missing row into not_found.
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import { AbmError } from './abm-client.js'
import type { ProfileStore } from './profile-store.js'
import type { DepProfileRow, DepTokenRow } from './shared-store.js'
import type { TokenStore } from './token-store.js'

/** Apple takes at most 1000 serials per assign/remove/disown call and 1000 devices per page. */
export const batchSize = 1000

export function validation(pointer: string, detail: string): OrchardError {
  return new OrchardError('validation_failed', `${pointer} ${detail}`, { details: { errors: [{ pointer, detail }] } })
}

/** Apple refusing an admin's request is a 502 with Apple's reason, never an opaque 500. */
export function asApiError(error: unknown): unknown {
  if (!(error instanceof AbmError)) return error
  if (error.code === 'throttled')
    return new OrchardError('not_ready', error.message, { cause: error, details: { apple_code: error.details.appleCode ?? null } })
  return new OrchardError('upstream_failed', error.message, { cause: error, details: { apple_code: error.details.appleCode ?? null } })
}

export async function requireToken(store: Pick<TokenStore, 'getToken'>, scope: AccessScope, id: string): Promise<DepTokenRow> {
  const row = await store.getToken(scope, id)
  if (!row) throw new OrchardError('not_found', `no ABM/ASM token ${id}`)
  return row
}

export async function requireProfile(store: Pick<ProfileStore, 'getProfile'>, scope: AccessScope, id: string): Promise<DepProfileRow> {
  const row = await store.getProfile(scope, id)
  if (!row) throw new OrchardError('not_found', `no PreStage profile ${id}`)
  return row
}
