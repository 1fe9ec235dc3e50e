// The device sync loop of a token: a full fetch with a cursor, then deltas (a full fetch
// again when Apple drops the cursor), under a lease so one instance syncs a token at a time.
// New devices get the token's default PreStage; throttled assignments are retried when due.
import type { Logger } from 'pino'
import type { DepTokenStatus } from '../db/schema.js'
import { OrchardError } from '../errors.js'
import { AbmError } from './abm-client.js'
import type { AbmAccess } from './abm-access.js'
import type { DeviceStore } from './device-store.js'
import type { ProfileStore } from './profile-store.js'
import type { DepTokenRow } from './shared-store.js'
import type { SyncStore } from './sync-store.js'
import type { TokenStore } from './token-store.js'

const leaseMs = 10 * 60_000

export interface SyncReport {
  tokenId: string
  outcome: 'synced' | 'busy' | 'skipped' | 'failed'
  pages: number
  devices: number
  added: number
  restartedFetch: boolean
  status: DepTokenStatus
  detail: string | null
}

export interface DepSync {
  syncToken(id: string): Promise<SyncReport>
  /** Every token due; what the background loop runs. */
  syncAll(): Promise<SyncReport[]>
  /** Throttled assignments whose retry_after has passed. */
  retryThrottled(): Promise<number>
}

export interface DepSyncDeps {
  store: SyncStore & Pick<TokenStore, 'getToken' | 'setStatus'> & Pick<ProfileStore, 'getProfile'> & Pick<DeviceStore, 'withoutProfile' | 'dueAssignRetries'>
  abm: AbmAccess
  /** Devices per fetch/sync page. */
  pageSize: number
  /** Identifies this process for the sync lease. */
  instanceId: string
  log: Logger
  now: () => Date
}

export function createDepSync(deps: DepSyncDeps): DepSync {
  const { store, abm, log, now, pageSize, instanceId } = deps

  async function syncPages(token: DepTokenRow, report: SyncReport): Promise<string[]> {
    const client = abm.client(token)
    let phase: 'fetch' | 'sync' = token.sync_phase === 'sync' && token.cursor ? 'sync' : 'fetch'
    let cursor = token.cursor
    const added: string[] = []
    for (;;) {
      let page
      try {
        page = phase === 'fetch' ? await client.fetchDevices(cursor, pageSize) : await client.syncDevices(cursor!, pageSize)
      } catch (error) {
        if (error instanceof AbmError && error.code === 'exhausted_cursor' && phase === 'fetch' && cursor) {
          phase = 'sync'
          await store.saveCursor(token.id, instanceId, { phase, cursor, fetchCompletedAt: now() })
          continue
        }
        if (error instanceof AbmError && (error.code === 'expired_cursor' || error.code === 'invalid_cursor') && !report.restartedFetch) {
          // Apple forgot where we were: the only way back is a full fetch.
          log.warn({ dep_token_id: token.id, apple_code: error.details.appleCode }, `ABM/ASM token "${token.name}": ${error.message}; starting a full fetch`)
          report.restartedFetch = true
          phase = 'fetch'
          cursor = null
          await store.saveCursor(token.id, instanceId, { phase, cursor })
          continue
        }
        throw error
      }
      report.pages++
      report.devices += page.devices.length
      added.push(...(await store.applyDevices(token.id, page.devices, now())))
      cursor = page.cursor
      const fetchDone = phase === 'fetch' && !page.moreToFollow
      if (fetchDone) phase = 'sync'
      const kept = await store.saveCursor(token.id, instanceId, {
        phase,
        cursor,
        ...(fetchDone ? { fetchCompletedAt: now() } : {}),
        ...(!page.moreToFollow ? { syncedAt: now() } : {}),
      })
      if (!kept) throw new Error('the sync lease was lost to another instance')
      if (!page.moreToFollow) break
      await store.claimSyncLease(token.id, instanceId, now(), new Date(now().getTime() + leaseMs))
    }
    report.added = added.length
    return added
  }

  async function autoAssign(token: DepTokenRow, added: string[]): Promise<void> {
    if (!token.default_profile_id || added.length === 0) return
    const profile = await store.getProfile({ kind: 'all' }, token.default_profile_id)
    if (!profile?.profile_uuid) {
      log.warn(
        { dep_token_id: token.id, dep_profile_id: token.default_profile_id },
        `the default PreStage of "${token.name}" is not defined at Apple: ${added.length} new device(s) left unassigned`,
      )
      return
    }
    const serials = await store.withoutProfile(token.id, added)
    if (serials.length > 0) await abm.assign(token, profile, serials)
  }

  async function retryDue(tokenId?: string): Promise<number> {
    const due = (await store.dueAssignRetries(now(), 10_000)).filter((row) => !tokenId || row.tokenId === tokenId)
    const groups = new Map<string, { tokenId: string; serials: string[] }>()
    for (const row of due) {
      const group = groups.get(row.profileId) ?? { tokenId: row.tokenId, serials: [] }
      group.serials.push(row.serialNumber)
      groups.set(row.profileId, group)
    }
    let retried = 0
    for (const [profileId, group] of groups) {
      const token = await store.getToken({ kind: 'all' }, group.tokenId)
      const profile = await store.getProfile({ kind: 'all' }, profileId)
      if (!token || !profile) continue
      try {
        await abm.assign(token, profile, group.serials)
        retried += group.serials.length
      } catch (error) {
        await abm.recordFailure(token, error)
      }
    }
    return retried
  }

  async function syncToken(id: string): Promise<SyncReport> {
    const report: SyncReport = {
      tokenId: id,
      outcome: 'skipped',
      pages: 0,
      devices: 0,
      added: 0,
      restartedFetch: false,
      status: 'awaiting_token',
      detail: null,
    }
    const at = now()
    const token = await store.claimSyncLease(id, instanceId, at, new Date(at.getTime() + leaseMs))
    if (!token) {
      const current = await store.getToken({ kind: 'all' }, id)
      if (!current) throw new OrchardError('not_found', `no ABM/ASM token ${id}`)
      return { ...report, outcome: 'busy', status: current.status, detail: `another instance (${current.sync_lease_owner}) is syncing this token` }
    }
    try {
      if (!token.credentials_sealed) return { ...report, status: token.status, detail: 'no server token uploaded yet' }
      if (token.access_token_expiry && token.access_token_expiry.getTime() <= at.getTime()) {
        const detail = `the server token expired on ${token.access_token_expiry.toISOString()}: download a new one from Apple Business/School Manager and upload it`
        await store.setStatus(id, 'token_expired', detail, at)
        return { ...report, outcome: 'failed', status: 'token_expired', detail }
      }
      try {
        if (!token.server_uuid) await abm.readAccount(token)
        const added = await syncPages(token, report)
        const fresh = (await store.getToken({ kind: 'all' }, id))!
        await autoAssign(fresh, added)
        await retryDue(id)
        const detail = `synced ${report.devices} device record(s) in ${report.pages} page(s)${report.restartedFetch ? ' (the cursor had expired: full fetch)' : ''}`
        await store.setStatus(id, 'ok', detail, now())
        log.info(
          { dep_token_id: id, pages: report.pages, devices: report.devices, added: report.added, restarted_fetch: report.restartedFetch },
          `ABM/ASM token "${token.name}" synced`,
        )
        return { ...report, outcome: 'synced', status: 'ok', detail }
      } catch (error) {
        const failure = await abm.recordFailure(token, error)
        return { ...report, outcome: 'failed', ...failure }
      }
    } finally {
      await store.releaseSyncLease(id, instanceId)
    }
  }

  return {
    syncToken,

    async syncAll() {
      const reports: SyncReport[] = []
      for (const token of await store.tokensToSync(now())) reports.push(await syncToken(token.id))
      return reports
    },

    retryThrottled: () => retryDue(),
  }
}
