// The devices Apple assigned to our tokens: which PreStage they get (assigned, removed, or
// the devices disowned for good), and the records an admin lists. Serials Orchard knows
// under another token never leave for Apple in this token's name.
import type { Logger } from 'pino'
import type { Page } from '../db/pagination.js'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import { AbmError } from './abm-client.js'
import { outcomesOf, type AbmAccess, type AssignReport } from './abm-access.js'
import { asApiError, batchSize, requireProfile, requireToken } from './dep-common.js'
import type { AssignOutcome, DepDeviceFilter, DeviceStore } from './device-store.js'
import type { ProfileStore } from './profile-store.js'
import type { DepDeviceRow, DepTokenRow } from './shared-store.js'
import type { TokenStore } from './token-store.js'

export interface DepDevices {
  assignProfile(scope: AccessScope, profileId: string, serials: readonly string[]): Promise<AssignReport>
  removeProfile(scope: AccessScope, tokenId: string, serials: readonly string[]): Promise<AssignReport>
  disownDevices(scope: AccessScope, tokenId: string, serials: readonly string[]): Promise<Record<string, string>>
  listDevices(scope: AccessScope, filter: DepDeviceFilter, page: { limit: number; cursor?: string }): Promise<Page<DepDeviceRow>>
  getDevice(scope: AccessScope, serialNumber: string): Promise<DepDeviceRow>
}

export interface DepDevicesDeps {
  store: DeviceStore & Pick<TokenStore, 'getToken'> & Pick<ProfileStore, 'getProfile'>
  abm: AbmAccess
  log: Logger
  now: () => Date
}

export function createDepDevices(deps: DepDevicesDeps): DepDevices {
  const { store, abm, log, now } = deps

  /**
   * The serials to send to Apple for `token`, and the others answered here: serials Orchard
   * knows under another ABM/ASM token (another tenant's, maybe) never leave for Apple in this
   * token's name; with 'unless_own', neither do serials not synced for this token.
   */
  async function splitSerials(
    token: DepTokenRow,
    serials: readonly string[],
    rule: 'known_elsewhere' | 'unless_own',
  ): Promise<{ send: string[]; withheld: AssignOutcome[] }> {
    const tokens = await store.tokensOfSerials(serials)
    const send: string[] = []
    const withheld: AssignOutcome[] = []
    for (const serialNumber of serials) {
      const owner = tokens.get(serialNumber)
      const own = owner === token.id || (owner === undefined && rule === 'known_elsewhere')
      if (own) {
        send.push(serialNumber)
        continue
      }
      const detail = owner === undefined ? 'not a device of this ABM/ASM token (sync first)' : 'not a device of this ABM/ASM token'
      withheld.push({ serialNumber, status: 'NOT_ACCESSIBLE', detail, retryAt: null })
    }
    return { send, withheld }
  }

  /** An Apple failure is stored as the token's status, then answered as an API error. */
  async function failed(token: DepTokenRow, error: unknown): Promise<never> {
    if (error instanceof AbmError) await abm.recordFailure(token, error)
    throw asApiError(error)
  }

  return {
    async assignProfile(scope, profileId, serials) {
      const profile = await requireProfile(store, scope, profileId)
      const token = await requireToken(store, scope, profile.token_id)
      try {
        const { send, withheld } = await splitSerials(token, [...new Set(serials)], 'known_elsewhere')
        const report = send.length > 0 ? await abm.assign(token, profile, send, scope) : { profileUuid: profile.profile_uuid, results: [] }
        // Withheld serials are not this token's: nothing of them is updated, but a request that
        // sent nothing to Apple still leaves its audit row.
        await store.recordAssignments(profile.id, withheld, now(), profile.profile_uuid, scope, token.id)
        return { ...report, results: [...report.results, ...withheld] }
      } catch (error) {
        return failed(token, error)
      }
    },

    async removeProfile(scope, tokenId, serials) {
      const token = await requireToken(store, scope, tokenId)
      try {
        const { send: unique, withheld } = await splitSerials(token, [...new Set(serials)], 'known_elsewhere')
        const results: AssignOutcome[] = []
        for (let i = 0; i < unique.length; i += batchSize) {
          const batch = unique.slice(i, i + batchSize)
          const outcomes = outcomesOf(await abm.client(token).removeProfile(batch), batch, null, now())
          await store.recordAssignments(null, outcomes, now(), null, scope, token.id)
          results.push(...outcomes)
        }
        // As in assignProfile: the audit row of a request that sent nothing to Apple.
        await store.recordAssignments(null, withheld, now(), null, scope, token.id)
        return { profileUuid: null, results: [...results, ...withheld] }
      } catch (error) {
        return failed(token, error)
      }
    },

    async disownDevices(scope, tokenId, serials) {
      const token = await requireToken(store, scope, tokenId)
      // Disowning is permanent: only serials Apple listed for this very token are sent.
      const { send: unique, withheld } = await splitSerials(token, [...new Set(serials)], 'unless_own')
      const answer: Record<string, string> = Object.fromEntries(withheld.map((outcome) => [outcome.serialNumber, outcome.status]))
      try {
        for (let i = 0; i < unique.length; i += batchSize) Object.assign(answer, await abm.client(token).disownDevices(unique.slice(i, i + batchSize)))
      } catch (error) {
        return failed(token, error)
      }
      const disowned = unique.filter((serial) => answer[serial] === 'SUCCESS')
      await store.markRemoved(disowned, now(), scope, token.id)
      const warning = `devices disowned from "${token.name}" (permanent: they leave the organization in Apple Business/School Manager)`
      log.warn({ dep_token_id: tokenId, disowned: disowned.length, serials: disowned.slice(0, 20) }, warning)
      return answer
    },

    listDevices: (scope, filter, page) => store.listDevices(scope, filter, page),

    async getDevice(scope, serialNumber) {
      const row = await store.getDevice(scope, serialNumber)
      if (!row) throw new OrchardError('not_found', `no ADE device with serial number ${serialNumber}`)
      return row
    },
  }
}
