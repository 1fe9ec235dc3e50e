// The sync of a content token: is the location still ours (another MDM may have claimed it
// since), then every page of assets and of device assignments, under a lease so one
// instance syncs a token at a time. Rows the finished sync did not see are dropped.
// https://developer.apple.com/documentation/devicemanagement/get-assets
// https://developer.apple.com/documentation/devicemanagement/get-assignments
import type { Logger } from 'pino'
import type { VppTokenStatus } from '../db/schema-apps.js'
import { OrchardError } from '../errors.js'
import type { VppAccess } from './vpp-access.js'
import type { VppAssetStore, VppAssignmentRecord } from './vpp-asset-store.js'
import type { VppClient, VppPage } from './vpp-client.js'
import type { VppTokenStore } from './vpp-token-store.js'

const leaseMs = 10 * 60_000
/** A location with more pages than this is refused rather than read for ever (Apple pages hold hundreds of rows). */
const maxPages = 10_000

export interface VppSyncReport {
  tokenId: string
  outcome: 'synced' | 'busy' | 'skipped' | 'failed'
  assets: number
  assignments: number
  /** Apple calls made, retries included. */
  requests: number
  status: VppTokenStatus
  detail: string | null
}

export interface VppSync {
  syncToken(id: string): Promise<VppSyncReport>
  /** Every token due; what the background loop runs. */
  syncAll(): Promise<VppSyncReport[]>
}

export interface VppSyncDeps {
  store: Pick<VppTokenStore, 'claimSyncLease' | 'releaseSyncLease' | 'getToken' | 'setStatus' | 'markSynced' | 'storeLocation' | 'tokensToSync'>
  assets: Pick<VppAssetStore, 'saveAssets' | 'saveAssignments' | 'dropUnseen'>
  access: VppAccess
  /** Identifies this process for the sync lease. */
  instanceId: string
  log: Logger
  now: () => Date
}

async function eachPage<T>(read: (pageIndex: number) => Promise<VppPage<T>>, use: (items: T[]) => Promise<void>): Promise<number> {
  let total = 0
  for (let pageIndex = 0, pages = 0; ; pages++) {
    if (pages >= maxPages) throw new Error(`more than ${maxPages} pages`)
    const page = await read(pageIndex)
    total += page.items.length
    await use(page.items)
    if (page.nextPageIndex === null || page.nextPageIndex <= pageIndex) return total
    pageIndex = page.nextPageIndex
  }
}

export function createVppSync(deps: VppSyncDeps): VppSync {
  const { store, access, log, now, instanceId } = deps

  async function syncPages(tokenId: string, client: VppClient, report: VppSyncReport): Promise<void> {
    const startedAt = now()
    report.assets = await eachPage(
      (index) => client.assets(index),
      (items) => deps.assets.saveAssets(tokenId, items, startedAt),
    )
    let assignments = 0
    await eachPage(
      (index) => client.assignments(index),
      async (items) => {
        // Device assignments only; a user-based one (clientUserId) is not Orchard's.
        const devices: VppAssignmentRecord[] = []
        for (const item of items) if (item.serialNumber) devices.push({ adamId: item.adamId, pricingParam: item.pricingParam, serialNumber: item.serialNumber })
        assignments += devices.length
        await deps.assets.saveAssignments(tokenId, devices, startedAt)
      },
    )
    report.assignments = assignments
    await deps.assets.dropUnseen(tokenId, startedAt)
  }

  async function syncToken(id: string): Promise<VppSyncReport> {
    const report: VppSyncReport = { tokenId: id, outcome: 'skipped', assets: 0, assignments: 0, requests: 0, status: 'pending', detail: null }
    const at = now()
    const token = await store.claimSyncLease(id, instanceId, at, new Date(at.getTime() + leaseMs))
    if (!token) {
      const current = await store.getToken({ kind: 'all' }, id)
      if (!current) throw new OrchardError('not_found', `no content token ${id}`)
      return { ...report, outcome: 'busy', status: current.status, detail: `another instance (${current.sync_lease_owner}) is syncing this token` }
    }
    const client = access.client(token)
    try {
      const config = await client.clientConfig()
      access.noteConfig(id, config)
      const other = access.otherManager(config)
      if (other) {
        const detail = `the location "${config.locationName ?? config.uId}" is managed by ${other} now: Orchard stopped syncing it; claim it back with POST /api/v1/vpp/tokens/${id}/claim`
        await store.setStatus(id, 'claimed_elsewhere', detail, now())
        log.warn({ vpp_token_id: id }, `content token "${token.name}": ${detail}`)
        return { ...report, outcome: 'failed', requests: client.requestsSent(), status: 'claimed_elsewhere', detail }
      }
      // Ours, but the notification endpoint is not (yet) what this installation sets: a token
      // claimed before, another public URL, a rotated master key. Polling covers a refusal.
      if (config.mdmInfo?.id === access.mdmInfo.id && !access.notificationsCurrent(id, config)) await access.claim(token, client)
      if (config.uId)
        await store.storeLocation(
          id,
          { uid: config.uId, name: config.locationName, countryCode: config.countryCode, clientContext: config.clientContext },
          now(),
        )
      await syncPages(id, client, report)
      const detail = `synced ${report.assets} asset(s) and ${report.assignments} device assignment(s)`
      await store.markSynced(id, detail, now())
      log.info(
        { vpp_token_id: id, assets: report.assets, assignments: report.assignments, requests: client.requestsSent() },
        `content token "${token.name}" synced`,
      )
      return { ...report, outcome: 'synced', requests: client.requestsSent(), status: 'ok', detail }
    } catch (error) {
      const failure = await access.recordFailure(token, error)
      return { ...report, outcome: 'failed', requests: client.requestsSent(), ...failure }
    } finally {
      await store.releaseSyncLease(id, instanceId)
    }
  }

  return {
    syncToken,
    async syncAll() {
      const reports: VppSyncReport[] = []
      for (const token of await store.tokensToSync(now())) reports.push(await syncToken(token.id))
      return reports
    },
  }
}
