// The reconcile of licences against the fleet: Apple's assignments (as of each token's last
// sync) for serial numbers no enrolled device has. They are reported (the admin API and a daily
// log line per token) and freed only when an admin names the serials: a serial Orchard does not
// manage may be a device another MDM manages with this location's licences.
// https://developer.apple.com/documentation/devicemanagement/disassociate-assets
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { VppAccess } from './vpp-access.js'
import { VppError } from './vpp-client.js'
import type { VppTokenStore } from './vpp-token-store.js'
import type { UnmanagedLicence, UnmanagedLicenceFilter, VppUnmanagedStore } from './vpp-unmanaged-store.js'

export type { UnmanagedLicence } from './vpp-unmanaged-store.js'

export interface UnmanagedRelease {
  /** Licences sent to Apple to be disassociated. */
  released: number
  eventIds: string[]
  /** Serials named that hold no unmanaged licence of the token (managed now, or none held). */
  skipped: string[]
}

export interface VppUnmanaged {
  list(scope: AccessScope, filter: UnmanagedLicenceFilter, limit: number): Promise<{ items: UnmanagedLicence[]; total: number }>
  release(scope: AccessScope, request: { tokenId: string; serialNumbers: readonly string[]; adamId?: string }): Promise<UnmanagedRelease>
  /** Logs each token's count of unmanaged licences (the daily reconcile); returns the counts. */
  report(): Promise<Array<{ tokenId: string; count: number }>>
}

/** The most licences one release looks at (Apple batches them further). */
const releaseLimit = 100_000

export function createVppUnmanaged(deps: { store: VppUnmanagedStore; tokens: Pick<VppTokenStore, 'getToken'>; access: VppAccess; log: Logger }): VppUnmanaged {
  const { store, access, log } = deps
  return {
    list: (scope, filter, limit) => store.unmanaged(scope, filter, limit),

    async release(scope, request) {
      const token = await deps.tokens.getToken(scope, request.tokenId)
      if (!token) throw new OrchardError('not_found', `no content token ${request.tokenId}`)
      if (token.status === 'claimed_elsewhere')
        throw new OrchardError('conflict', 'another MDM holds this location: its licences are not ours to free (claim the location first)')
      const { items } = await store.unmanaged(
        scope,
        { tokenId: token.id, serialNumbers: request.serialNumbers, ...(request.adamId !== undefined ? { adamId: request.adamId } : {}) },
        releaseLimit,
      )
      const groups = new Map<string, UnmanagedLicence[]>()
      for (const item of items) {
        const key = `${item.adamId}\u0000${item.pricingParam}`
        const group = groups.get(key)
        if (group) group.push(item)
        else groups.set(key, [item])
      }
      const held = new Set(items.map((item) => item.serialNumber))
      const result: UnmanagedRelease = { released: 0, eventIds: [], skipped: [...new Set(request.serialNumbers)].filter((serial) => !held.has(serial)) }
      if (items.length === 0) return result
      const client = access.client(token)
      try {
        const { maxSerialNumbers } = await client.serviceLimits()
        for (const rows of groups.values()) {
          const { adamId, pricingParam } = rows[0]!
          for (let i = 0; i < rows.length; i += maxSerialNumbers) {
            const serials = rows.slice(i, i + maxSerialNumbers).map((row) => row.serialNumber)
            result.eventIds.push(await client.disassociate([{ adamId, pricingParam }], serials))
            await store.forget(token.id, adamId, pricingParam, serials)
            result.released += serials.length
          }
        }
      } catch (error) {
        if (!(error instanceof VppError)) throw error
        await access.recordFailure(token, error)
        const sent = result.released > 0 ? ` (${result.released} licences were sent before it)` : ''
        throw new OrchardError(error.code === 'throttled' ? 'not_ready' : 'upstream_failed', `Apple refused the release: ${error.message}${sent}`, {
          cause: error,
        })
      }
      log.info({ vpp_token_id: token.id, released: result.released, events: result.eventIds.length }, 'unmanaged licences released')
      return result
    },

    async report() {
      const counts = await store.countsByToken()
      for (const { tokenId, count } of counts)
        log.warn(
          { vpp_token_id: tokenId, unmanaged_licences: count },
          'licences are assigned to serial numbers Orchard does not manage (GET /api/v1/vpp/unmanaged-licences)',
        )
      return counts
    },
  }
}
