// The devices Apple assigned to our tokens (dep_devices): listing, the PreStage assignment
// outcomes per serial, throttled retries, disowned devices, and what ADE enrollment looks up.
import { sql, type Kysely } from 'kysely'
import { fullAccess, type AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import { afterCursor, decodeCursor, orderFor, pageOf, type Page } from '../db/pagination.js'
import type { Database, DepAssignStatus } from '../db/schema.js'
import { profilesInScope, tenantOfProfile, tenantOfToken, tokenIdsInScope, type DepDeviceRow, type DepProfileRow, type DepTokenRow } from './shared-store.js'

export interface AssignOutcome {
  serialNumber: string
  status: DepAssignStatus
  detail: string | null
  retryAt: Date | null
}

export interface DepDeviceFilter {
  tokenId?: string
  profileId?: string
  assignStatus?: DepAssignStatus
  includeRemoved: boolean
}

/** What ADE enrollment needs about a serial: its record and the PreStage it should get. */
export interface AdeDeviceLookup {
  device: DepDeviceRow
  profile: DepProfileRow | undefined
  token: DepTokenRow
}

export interface DeviceStore {
  listDevices(scope: AccessScope, filter: DepDeviceFilter, page: { limit: number; cursor?: string }): Promise<Page<DepDeviceRow>>
  getDevice(scope: AccessScope, serialNumber: string): Promise<DepDeviceRow | undefined>
  /** Of these serials, the ones still ours that have no profile from Apple and none being assigned. */
  withoutProfile(tokenId: string, serials: readonly string[]): Promise<string[]>
  recordAssignments(
    profileId: string | null,
    outcomes: readonly AssignOutcome[],
    now: Date,
    profileUuid: string | null,
    scope?: AccessScope,
    tokenId?: string,
  ): Promise<void>
  /** Throttled assignments whose retry time has come. */
  dueAssignRetries(now: Date, limit: number): Promise<Array<{ serialNumber: string; tokenId: string; profileId: string }>>
  markRemoved(serials: readonly string[], now: Date, scope?: AccessScope, tokenId?: string): Promise<void>
  /** The ABM/ASM token each serial is recorded under (serials we have not synced are absent). */
  tokensOfSerials(serials: readonly string[]): Promise<Map<string, string>>
  adeLookup(serialNumber: string): Promise<AdeDeviceLookup | undefined>
  /** Devices each token has now (removed ones aside). */
  deviceCounts(scope: AccessScope, tokenId?: string): Promise<Map<string, number>>
}

/** The outcomes grouped by answer: Apple mostly answers the same for a whole batch. */
function byAnswer(outcomes: readonly AssignOutcome[]): Array<{ outcome: AssignOutcome; serials: string[] }> {
  const groups = new Map<string, { outcome: AssignOutcome; serials: string[] }>()
  for (const outcome of outcomes) {
    const key = JSON.stringify([outcome.status, outcome.detail, outcome.retryAt?.getTime() ?? null])
    const group = groups.get(key) ?? { outcome, serials: [] }
    group.serials.push(outcome.serialNumber)
    groups.set(key, group)
  }
  return [...groups.values()]
}

export function createDeviceStore(db: Kysely<Database>): DeviceStore {
  return {
    async listDevices(scope, filter, page) {
      const sort = 'serial_number'
      let query = db.selectFrom('dep_devices').selectAll().where('token_id', 'in', tokenIdsInScope(db, scope))
      if (filter.tokenId) query = query.where('token_id', '=', filter.tokenId)
      if (filter.profileId) query = query.where('assigned_profile_id', '=', filter.profileId)
      if (filter.assignStatus) query = query.where('assign_status', '=', filter.assignStatus)
      if (!filter.includeRemoved) query = query.where('removed_at', 'is', null)
      if (page.cursor) {
        const cursor = decodeCursor(page.cursor, sort, { value: 'text', id: 'text' })
        query = query.where(afterCursor('serial_number', 'serial_number', 'asc', cursor, 'text'))
      }
      const rows = await query
        .orderBy(orderFor('serial_number', 'serial_number', 'asc'))
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sort,
        (row) => ({ value: row.serial_number, id: row.serial_number }),
        (row) => row,
      )
    },

    async getDevice(scope, serialNumber) {
      return db
        .selectFrom('dep_devices')
        .selectAll()
        .where('serial_number', '=', serialNumber)
        .where('token_id', 'in', tokenIdsInScope(db, scope))
        .executeTakeFirst()
    },

    async withoutProfile(tokenId, serials) {
      if (serials.length === 0) return []
      const rows = await db
        .selectFrom('dep_devices')
        .select('serial_number')
        .where('token_id', '=', tokenId)
        .where('serial_number', 'in', serials)
        .where('removed_at', 'is', null)
        .where((eb) => eb.or([eb('profile_uuid', 'is', null), eb('profile_status', 'in', ['empty', 'removed'])]))
        .where((eb) => eb.or([eb('assign_status', 'is', null), eb('assign_status', '<>', 'THROTTLED')]))
        .orderBy('serial_number')
        .execute()
      return rows.map((row) => row.serial_number)
    },

    async recordAssignments(profileId, outcomes, now, profileUuid, scope = fullAccess, tokenId) {
      // Nothing to record, unless an admin's request must still leave its audit row.
      if (outcomes.length === 0 && !scope.actor) return
      await db.transaction().execute(async (trx) => {
        for (const { outcome, serials } of byAnswer(outcomes)) {
          await trx
            .updateTable('dep_devices')
            .set({
              assigned_profile_id: profileId,
              assign_status: outcome.status,
              assign_detail: outcome.detail,
              assigned_at: now,
              assign_retry_at: outcome.status === 'THROTTLED' ? (outcome.retryAt ?? now) : null,
              // What Apple now holds for the device, until the next sync says otherwise.
              ...(outcome.status === 'SUCCESS'
                ? { profile_uuid: profileUuid, profile_status: profileUuid ? 'assigned' : 'removed', profile_assign_time: now }
                : {}),
              updated_at: now,
            })
            .where('serial_number', 'in', serials)
            // Only this token's records: a serial of another token is not ours to mark.
            .where((eb) => (tokenId ? eb('token_id', '=', tokenId) : eb.lit(true)))
            .execute()
        }
        const tenantId = profileId ? await tenantOfProfile(trx, profileId) : tokenId ? await tenantOfToken(trx, tokenId) : null
        const counts: Record<string, number> = {}
        for (const outcome of outcomes) counts[outcome.status] = (counts[outcome.status] ?? 0) + 1
        await recordAdminWrite(trx, scope, {
          type: profileId ? 'dep_profile' : 'dep_token',
          id: profileId ?? tokenId ?? null,
          tenantId,
          details: { devices: outcomes.length, ...counts },
        })
      })
    },

    async dueAssignRetries(now, limit) {
      const rows = await db
        .selectFrom('dep_devices')
        .select(['serial_number', 'token_id', 'assigned_profile_id'])
        .where('assign_retry_at', 'is not', null)
        .where('assign_retry_at', '<=', now)
        .where('assigned_profile_id', 'is not', null)
        .where('removed_at', 'is', null)
        .orderBy('assign_retry_at')
        .limit(limit)
        .execute()
      return rows.map((row) => ({ serialNumber: row.serial_number, tokenId: row.token_id, profileId: row.assigned_profile_id! }))
    },

    async markRemoved(serials, now, scope = fullAccess, tokenId) {
      if (serials.length === 0 && !scope.actor) return
      await db.transaction().execute(async (trx) => {
        if (serials.length > 0) {
          await trx
            .updateTable('dep_devices')
            .set({ removed_at: now, updated_at: now })
            .where('serial_number', 'in', serials)
            .where((eb) => (tokenId ? eb('token_id', '=', tokenId) : eb.lit(true)))
            .execute()
        }
        await recordAdminWrite(trx, scope, {
          type: 'dep_token',
          id: tokenId ?? null,
          tenantId: tokenId ? await tenantOfToken(trx, tokenId) : null,
          details: { removed: serials.length },
        })
      })
    },

    async tokensOfSerials(serials) {
      const out = new Map<string, string>()
      for (let i = 0; i < serials.length; i += 5000) {
        const rows = await db
          .selectFrom('dep_devices')
          .select(['serial_number', 'token_id'])
          .where('serial_number', 'in', serials.slice(i, i + 5000))
          .execute()
        for (const row of rows) out.set(row.serial_number, row.token_id)
      }
      return out
    },

    async adeLookup(serialNumber) {
      const device = await db.selectFrom('dep_devices').selectAll().where('serial_number', '=', serialNumber).where('removed_at', 'is', null).executeTakeFirst()
      if (!device) return undefined
      const token = await db.selectFrom('dep_tokens').selectAll().where('id', '=', device.token_id).executeTakeFirstOrThrow()
      const profiles = () => profilesInScope(db)
      // The PreStage we assigned, else the one whose Apple UUID the device carries, else the token's default.
      const profile =
        (device.assigned_profile_id && device.assign_status === 'SUCCESS'
          ? await profiles().where('p.id', '=', device.assigned_profile_id).executeTakeFirst()
          : undefined) ??
        (device.profile_uuid
          ? await profiles().where('p.profile_uuid', '=', device.profile_uuid).where('p.token_id', '=', device.token_id).executeTakeFirst()
          : undefined) ??
        (token.default_profile_id ? await profiles().where('p.id', '=', token.default_profile_id).executeTakeFirst() : undefined)
      return { device, profile, token }
    },

    async deviceCounts(scope, tokenId) {
      let query = db
        .selectFrom('dep_devices')
        .select(['token_id', sql<number>`count(*)::int`.as('count')])
        .where('removed_at', 'is', null)
        .where('token_id', 'in', tokenIdsInScope(db, scope))
      if (tokenId) query = query.where('token_id', '=', tokenId)
      const rows = await query.groupBy('token_id').execute()
      return new Map(rows.map((row) => [row.token_id, row.count]))
    },
  }
}
