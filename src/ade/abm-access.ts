// Calling Apple in a token's name: one ABM client per token (its OAuth credentials opened
// from the secret box), what an Apple failure means for the token's stored status, reading
// the account, and assigning a PreStage in Apple's batches with the outcome per serial.
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DepAssignStatus, DepTokenStatus } from '../db/schema.js'
import { OrchardError } from '../errors.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import { AbmError, createAbmClient, type AbmClient } from './abm-client.js'
import { batchSize } from './dep-common.js'
import type { AssignOutcome, DeviceStore } from './device-store.js'
import type { OAuth1Credentials } from './oauth1.js'
import type { DepProfileRow, DepTokenRow } from './shared-store.js'
import type { TokenStore } from './token-store.js'

export interface AssignReport {
  profileUuid: string | null
  results: AssignOutcome[]
}

export interface AbmAccess {
  /** The secret box that seals token keys and credentials; not_ready without a master key. */
  secretBox(): SecretBox
  sealCredentials(tokenId: string, credentials: OAuth1Credentials): Buffer
  /** The client for a token with uploaded credentials (conflict before the .p7m is uploaded). */
  client(token: DepTokenRow): AbmClient
  /** Drops the cached client of a deleted token. */
  forget(tokenId: string): void
  /** Stores what an Apple failure means for the token; returns the status. */
  recordFailure(token: DepTokenRow, error: unknown): Promise<{ status: DepTokenStatus; detail: string }>
  /** Reads the account (server name and UUID, organisation) Apple has for the token and stores it. */
  readAccount(token: DepTokenRow): Promise<void>
  /** Assigns the (defined) PreStage to the serials in Apple's batches and stores each answer. */
  assign(token: DepTokenRow, profile: DepProfileRow, serials: readonly string[], scope?: AccessScope): Promise<AssignReport>
}

export interface AbmAccessDeps {
  store: Pick<TokenStore, 'setStatus' | 'storeAccount'> & Pick<DeviceStore, 'recordAssignments'>
  secretBox: SecretBox | null
  abmUrl: string
  log: Logger
  now: () => Date
}

const assignStatuses = new Set<string>(['SUCCESS', 'NOT_ACCESSIBLE', 'FAILED', 'THROTTLED'])

/** Apple's answer per serial, as stored outcomes. */
export function outcomesOf(answer: Record<string, string>, serials: readonly string[], retryAfterSeconds: number | null, now: Date): AssignOutcome[] {
  const retryAt = new Date(now.getTime() + (retryAfterSeconds ?? 60) * 1000)
  return serials.map((serialNumber) => {
    const given = answer[serialNumber]
    const status = (given && assignStatuses.has(given) ? given : 'FAILED') as DepAssignStatus
    const detail = given && !assignStatuses.has(given) ? `Apple answered ${given.slice(0, 200)}` : given ? null : 'Apple did not answer for this serial'
    return { serialNumber, status, detail, retryAt: status === 'THROTTLED' ? retryAt : null }
  })
}

function tokenStatusOf(error: AbmError): DepTokenStatus {
  switch (error.code) {
    case 'terms_not_signed':
    case 'token_rejected':
    case 'token_expired':
    case 'throttled':
      return error.code
    default:
      return 'error'
  }
}

const credentialsAad = (id: string) => `dep-token-credentials:${id}`

export function createAbmAccess(deps: AbmAccessDeps): AbmAccess {
  const { store, log, now } = deps
  const clients = new Map<string, { sealed: Buffer; client: AbmClient }>()

  function secretBox(): SecretBox {
    if (!deps.secretBox) throw new OrchardError('not_ready', 'no master key (ORCHARD_SECRET_KEYS): ABM/ASM token keys and credentials cannot be sealed')
    return deps.secretBox
  }

  function client(token: DepTokenRow): AbmClient {
    if (!token.credentials_sealed) throw new OrchardError('conflict', `ABM/ASM token "${token.name}" has no server token yet: upload the .p7m from Apple first`)
    const cached = clients.get(token.id)
    if (cached && cached.sealed.equals(token.credentials_sealed)) return cached.client
    const sealed = token.credentials_sealed
    const created = createAbmClient({
      baseUrl: deps.abmUrl,
      credentials: async () => JSON.parse(secretBox().open(sealed, credentialsAad(token.id)).toString('utf8')) as OAuth1Credentials,
      now,
    })
    clients.set(token.id, { sealed, client: created })
    return created
  }

  async function recordFailure(token: DepTokenRow, error: unknown): Promise<{ status: DepTokenStatus; detail: string }> {
    const at = now()
    if (error instanceof AbmError) {
      const status = tokenStatusOf(error)
      const retryAfter = status === 'throttled' ? new Date(at.getTime() + (error.details.retryAfterSeconds ?? 60) * 1000) : null
      await store.setStatus(token.id, status, error.message, at, retryAfter)
      const fields = { dep_token_id: token.id, status, apple_code: error.details.appleCode, http_status: error.details.status, retry_after: retryAfter }
      log.warn(fields, `ABM/ASM token "${token.name}": ${error.message}`)
      return { status, detail: error.message }
    }
    const detail = `internal error: ${(error as Error).message}`
    await store.setStatus(token.id, 'error', detail, at)
    log.error({ err: error, dep_token_id: token.id }, `ABM/ASM token "${token.name}": sync failed`)
    return { status: 'error', detail }
  }

  return {
    secretBox,
    client,
    recordFailure,

    sealCredentials(tokenId, credentials) {
      const { consumerKey, consumerSecret, accessToken, accessSecret } = credentials
      return secretBox().seal(Buffer.from(JSON.stringify({ consumerKey, consumerSecret, accessToken, accessSecret })), credentialsAad(tokenId))
    },

    forget(tokenId) {
      clients.delete(tokenId)
    },

    async readAccount(token) {
      const account = await client(token).account()
      await store.storeAccount(token.id, {
        serverName: typeof account.server_name === 'string' ? account.server_name : null,
        serverUuid: typeof account.server_uuid === 'string' ? account.server_uuid : null,
        orgName: typeof account.org_name === 'string' ? account.org_name : null,
        raw: account,
      })
    },

    async assign(token, profile, serials, scope = fullAccess) {
      if (!profile.profile_uuid) {
        const lastAttempt = profile.define_error ? ` (last attempt: ${profile.define_error})` : ''
        throw new OrchardError(
          'conflict',
          `PreStage profile "${profile.name}" is not defined at Apple yet${lastAttempt}: POST /api/v1/dep/profiles/${profile.id}/define`,
        )
      }
      const abm = client(token)
      const results: AssignOutcome[] = []
      for (let i = 0; i < serials.length; i += batchSize) {
        const batch = serials.slice(i, i + batchSize)
        const answer = await abm.assignProfile(profile.profile_uuid, batch)
        const outcomes = outcomesOf(answer.devices, batch, answer.retryAfterSeconds, now())
        await store.recordAssignments(profile.id, outcomes, now(), profile.profile_uuid, scope, token.id)
        results.push(...outcomes)
      }
      const counts = results.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {})
      log.info(
        { dep_token_id: token.id, dep_profile_id: profile.id, profile_uuid: profile.profile_uuid, ...counts },
        `PreStage "${profile.name}" assigned to ${serials.length} device(s)`,
      )
      return { profileUuid: profile.profile_uuid, results }
    },
  }
}
