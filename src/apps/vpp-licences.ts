// Device-based licences (serial numbers, no Apple Account) for the apps blueprints install.
// Convergence asks for a device's licence; wanted licences are associated in Apple's batches
// per token and asset (never one call per device), from the device tenant's own token or its
// organisation's, never another tenant's; Apple's events are polled until they finish, with
// each serial's failure kept; devices whose licence arrived are handed back to converge.
// https://developer.apple.com/documentation/devicemanagement/associate-assets
// https://developer.apple.com/documentation/devicemanagement/get-assignment-status
import type { Logger } from 'pino'
import type { VppAccess } from './vpp-access.js'
import { VppError, type VppClient } from './vpp-client.js'
import type { LicenceSource, VppLicenceStore, WantedLicence } from './vpp-licence-store.js'
import type { VppTokenRow, VppTokenStore } from './vpp-token-store.js'

export type LicenceAnswer = { state: 'assigned' } | { state: 'waiting' | 'failed'; detail: string }

export interface VppLicences {
  /**
   * The device's licence for the asset: assigned (install it), waiting (asked for), failed (why).
   * Asks for one when there is none, or when `retry` and the last attempt failed.
   */
  licence(deviceId: string, adamId: string, retry: boolean): Promise<LicenceAnswer>
  /** The device's blueprints want these assets only: its other licences are released. */
  keepOnly(deviceId: string, adamIds: readonly string[]): Promise<void>
  /**
   * Releases licences devices no longer need (management ended, wiped, retired, moved to a tenant
   * that may not use the token, or the app left their blueprints), associates wanted licences,
   * and follows open events; returns the devices whose licence arrived or failed.
   */
  advance(): Promise<LicenceRound>
}

export interface LicenceRound {
  /** Devices with a newly assigned licence. */
  assigned: string[]
  /** Devices whose licence was assigned or failed this round: ask them for their app list, which settles the app. */
  settled: string[]
  requested: number
  failed: number
  /** Licences sent to be disassociated this round. */
  releasing: number
  released: number
  /** Apple events still running after this round. */
  open: number
  appleCalls: number
}

export interface VppLicencesDeps {
  store: VppLicenceStore
  tokens: Pick<VppTokenStore, 'getToken'>
  access: VppAccess
  /** Wanted licences taken per round. */
  batchLimit?: number
  /** Apple notifies this token's events (ASSET_MANAGEMENT): they are polled only once a notification is late. */
  notifying?: (tokenId: string) => boolean
  log: Logger
  now: () => Date
}

const waitingDetail = 'waiting for Apple to assign a licence'
/**
 * Apple: "If your MDM server doesn't receive a notification for an event within 5 minutes, check
 * the event status" (notifications are best effort, up to three tries over 1-5 minutes).
 * https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
 */
const notificationGraceMs = 5 * 60_000

export function createVppLicences(deps: VppLicencesDeps): VppLicences {
  const { store, access, log, now } = deps
  const batchLimit = deps.batchLimit ?? 50_000

  /** One client per token and round, with Apple's batch limit read once; `sent()` counts every call made. */
  function clientsFor() {
    const clients = new Map<string, { token: VppTokenRow; client: VppClient; maxSerials: number }>()
    const made: VppClient[] = []
    const get = async (tokenId: string) => {
      let entry = clients.get(tokenId)
      if (!entry) {
        const token = await deps.tokens.getToken({ kind: 'all' }, tokenId)
        if (!token) return undefined
        const client = access.client(token)
        made.push(client)
        try {
          const limits = await client.serviceLimits()
          entry = { token, client, maxSerials: limits.maxSerialNumbers }
        } catch (error) {
          // This token's licences wait for the next round; the others go on.
          await access.recordFailure(token, error)
          return undefined
        }
        clients.set(tokenId, entry)
      }
      return entry
    }
    return Object.assign(get, { sent: () => made.reduce((sum, client) => sum + client.requestsSent(), 0) })
  }

  function usable(source: LicenceSource, at: Date): boolean {
    if (source.status === 'ok') return true
    return source.status === 'throttled' && (source.retryAfter === null || source.retryAfter.getTime() <= at.getTime())
  }

  async function associateWanted(round: LicenceRound, client: ReturnType<typeof clientsFor>): Promise<void> {
    const wanted = await store.wanted(batchLimit)
    const groups = new Map<string, WantedLicence[]>()
    for (const row of wanted) {
      const key = `${row.tenantId ?? ''}\u0000${row.adamId}`
      const group = groups.get(key)
      if (group) group.push(row)
      else groups.set(key, [row])
    }
    // Licences handed out this round, per token and asset, before Apple's counts catch up.
    const taken = new Map<string, number>()
    for (const rows of groups.values()) {
      const { tenantId, adamId } = rows[0]!
      const at = now()
      const sources = (await store.sourcesFor(tenantId, adamId)).filter((source) => source.status !== 'claimed_elsewhere')
      if (sources.length === 0) {
        await store.markFailed(adamId, ids(rows), `no_licence: no content token of this device's tenant holds app ${adamId}`, at)
        round.failed += rows.length
        round.settled.push(...ids(rows))
        continue
      }
      if (!sources.some((source) => usable(source, at))) continue // throttled or being renewed: next round
      let pending = rows
      for (const source of sources.filter((s) => usable(s, at))) {
        if (pending.length === 0) break
        const used = taken.get(`${source.tokenId}:${adamId}`) ?? 0
        const available = Math.max(0, source.availableCount - used)
        if (available === 0) continue
        const share = pending.slice(0, available)
        pending = pending.slice(available)
        taken.set(`${source.tokenId}:${adamId}`, used + share.length)
        const entry = await client(source.tokenId)
        if (!entry) continue
        for (let i = 0; i < share.length; i += entry.maxSerials) {
          const batch = share.slice(i, i + entry.maxSerials)
          try {
            const eventId = await entry.client.associate([{ adamId, pricingParam: source.pricingParam }], serials(batch))
            await store.markAssigning(adamId, ids(batch), source.tokenId, source.pricingParam, eventId, now())
            round.requested += batch.length
          } catch (error) {
            if (error instanceof VppError && (error.code === 'throttled' || error.code === 'unreachable' || error.code === 'server_error')) {
              await access.recordFailure(entry.token, error)
              log.warn({ vpp_token_id: source.tokenId, adam_id: adamId, devices: batch.length }, `licences not requested yet: ${error.message}`)
              continue // stays wanted
            }
            await store.markFailed(adamId, ids(batch), error instanceof Error ? error.message : String(error), now())
            round.failed += batch.length
            round.settled.push(...ids(batch))
          }
        }
      }
      if (pending.length > 0) {
        const counts = sources.map((s) => `"${s.tokenName}": ${s.availableCount} of ${s.totalCount} available at its last sync`).join(', ')
        const detail = `no_licence: ${rows.length} device(s) want app ${adamId} and ${rows.length - pending.length} licence(s) were free (${counts})`
        await store.markFailed(adamId, ids(pending), detail, now())
        round.failed += pending.length
        round.settled.push(...ids(pending))
        log.warn({ adam_id: adamId, tenant_id: tenantId, short: pending.length }, detail)
      }
    }
  }

  async function disassociateReleasing(round: LicenceRound, client: ReturnType<typeof clientsFor>): Promise<void> {
    const groups = new Map<string, Array<{ deviceId: string; serialNumber: string; tokenId: string; adamId: string; pricingParam: string }>>()
    for (const row of await store.releasing(batchLimit)) {
      const key = `${row.tokenId}\u0000${row.adamId}\u0000${row.pricingParam}`
      const group = groups.get(key)
      if (group) group.push(row)
      else groups.set(key, [row])
    }
    for (const rows of groups.values()) {
      const { tokenId, adamId, pricingParam } = rows[0]!
      const entry = await client(tokenId)
      if (!entry) continue
      for (let i = 0; i < rows.length; i += entry.maxSerials) {
        const batch = rows.slice(i, i + entry.maxSerials)
        try {
          const eventId = await entry.client.disassociate(
            [{ adamId, pricingParam }],
            batch.map((row) => row.serialNumber),
          )
          await store.markRevoking(
            adamId,
            batch.map((row) => row.deviceId),
            eventId,
            now(),
          )
          round.releasing += batch.length
        } catch (error) {
          // Stays releasing: the next round tries again.
          log.warn({ vpp_token_id: tokenId, adam_id: adamId, devices: batch.length, err: error }, 'licences not released yet')
          if (error instanceof VppError) await access.recordFailure(entry.token, error)
        }
      }
    }
  }

  async function followEvents(round: LicenceRound, client: ReturnType<typeof clientsFor>): Promise<void> {
    for (const { tokenId, eventId, since } of await store.openEvents()) {
      if (deps.notifying?.(tokenId) && now().getTime() - since.getTime() < notificationGraceMs) {
        round.open++
        continue
      }
      const entry = await client(tokenId)
      if (!entry) continue
      let status
      try {
        status = await entry.client.eventStatus(eventId)
      } catch (error) {
        log.warn({ vpp_token_id: tokenId, event_id: eventId, err: error }, 'licence event status not read; next round')
        continue
      }
      if (status.eventStatus === 'PENDING') {
        round.open++
        continue
      }
      const rows = await store.eventRows(tokenId, eventId)
      const bySerial = new Map(rows.map((row) => [row.serial_number, row]))
      const failedBy = new Map<string, { adamId: string; deviceIds: string[] }>()
      for (const failure of status.failures) {
        const detail = `Apple error ${failure.errorNumber}: ${failure.errorMessage}`
        for (const serial of failure.serialNumbers) {
          const row = bySerial.get(serial)
          if (!row) continue
          const group = failedBy.get(detail) ?? { adamId: row.adam_id, deviceIds: [] }
          group.deviceIds.push(row.device_id)
          failedBy.set(detail, group)
        }
      }
      for (const [detail, group] of failedBy) {
        await store.markFailed(group.adamId, group.deviceIds, detail, now())
        round.failed += group.deviceIds.length
        round.settled.push(...group.deviceIds)
      }
      const assigned = await store.completeAssigning(tokenId, eventId, now())
      const released = await store.completeRevoking(tokenId, eventId)
      round.released += released
      const first = rows[0]
      if (first && assigned.length - released !== 0)
        await store.countAssigned(tokenId, first.adam_id, first.pricing_param ?? 'STDQ', assigned.length - released)
      round.assigned.push(...assigned)
      round.settled.push(...assigned)
    }
  }

  return {
    async licence(deviceId, adamId, retry) {
      const row = await store.licence(deviceId, adamId)
      if (row?.state === 'assigned') return { state: 'assigned' }
      if (row?.state === 'wanted' || row?.state === 'assigning') return { state: 'waiting', detail: waitingDetail }
      if (row?.state === 'failed' && !retry) return { state: 'failed', detail: row.detail ?? 'the licence could not be assigned' }
      const device = await store.deviceFacts(deviceId)
      if (!device?.serialNumber) return { state: 'failed', detail: 'the device has not reported its serial number: a device licence needs it' }
      // Apple may hold one already (assigned before Orchard, or by an earlier round).
      const held = await store.syncedAssignment(device.serialNumber, adamId, device.tenantId)
      if (held) {
        await store.markAssigned({ deviceId, adamId }, device.serialNumber, held.tokenId, held.pricingParam, now())
        return { state: 'assigned' }
      }
      await store.want({ deviceId, adamId }, device.serialNumber, now())
      return { state: 'waiting', detail: waitingDetail }
    },

    keepOnly: (deviceId, adamIds) => store.keepOnly(deviceId, adamIds, now()),

    async advance() {
      const round: LicenceRound = { assigned: [], settled: [], requested: 0, failed: 0, releasing: 0, released: 0, open: 0, appleCalls: 0 }
      const client = clientsFor()
      await store.releaseUnneeded(now())
      await disassociateReleasing(round, client)
      await associateWanted(round, client)
      await followEvents(round, client)
      round.appleCalls = client.sent()
      if (round.requested + round.failed + round.released + round.assigned.length > 0)
        log.info(
          { requested: round.requested, failed: round.failed, assigned: round.assigned.length, released: round.released, apple_calls: round.appleCalls },
          'licence round',
        )
      return round
    },
  }
}

const ids = (rows: readonly WantedLicence[]) => rows.map((row) => row.deviceId)
const serials = (rows: readonly WantedLicence[]) => rows.map((row) => row.serialNumber)
