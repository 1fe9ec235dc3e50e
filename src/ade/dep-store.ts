// ABM/ASM server tokens, PreStage (DEP) profiles and the devices Apple assigned to us.
import { sql, type Kysely, type Selectable } from 'kysely'
import type { AbmDevice } from './abm-client.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import { afterCursor, decodeCursor, orderFor, pageOf, type Page } from '../db/pagination.js'
import type { Database, DepAssignStatus, DepDevicesTable, DepProfilesTable, DepTokensTable, DepTokenStatus } from '../db/schema.js'
import { isReferenceViolation } from '../db/pg-errors.js'

export type DepTokenRow = Selectable<DepTokensTable>
export type DepProfileRow = Selectable<DepProfilesTable> & {
  /** The PreStage is its token's default for new devices. */
  is_default: boolean
}
export type DepDeviceRow = Selectable<DepDevicesTable>

export interface NewDepProfile {
  id: string
  tokenId: string
  name: string
  profile: Record<string, unknown>
  deviceKind: 'work' | 'function'
  minimumOsVersion: string | null
  enrollmentCommands: unknown[]
}

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

export interface DepStore {
  /** undefined: the tenant does not exist. */
  createToken(scope: AccessScope, token: { id: string; name: string; tenantId: string | null; exchangeCertificateDer: Buffer; exchangePrivateKeySealed: Buffer }): Promise<DepTokenRow | undefined>
  listTokens(scope: AccessScope): Promise<DepTokenRow[]>
  getToken(scope: AccessScope, id: string): Promise<DepTokenRow | undefined>
  /** Deletes the token with its profiles and device records. */
  deleteToken(scope: AccessScope, id: string): Promise<boolean>
  storeServerToken(id: string, credentialsSealed: Buffer, accessTokenExpiry: Date | null, now: Date, scope?: AccessScope): Promise<void>
  storeAccount(id: string, account: { serverName: string | null; serverUuid: string | null; orgName: string | null; raw: unknown }): Promise<void>
  setStatus(id: string, status: DepTokenStatus, detail: string | null, now: Date, retryAfter?: Date | null): Promise<void>
  setDefaultProfile(id: string, profileId: string | null, scope?: AccessScope): Promise<void>
  /** Tokens with credentials whose retry_after (if any) has passed. */
  tokensToSync(now: Date): Promise<DepTokenRow[]>
  /** Takes (or renews) the token's sync lease for `owner` unless another owner holds a live one. */
  claimSyncLease(id: string, owner: string, now: Date, until: Date): Promise<DepTokenRow | undefined>
  releaseSyncLease(id: string, owner: string): Promise<void>
  /** Saves the cursor while `owner` holds the lease; false when the lease was lost. */
  saveCursor(id: string, owner: string, state: { phase: 'fetch' | 'sync'; cursor: string | null; fetchCompletedAt?: Date; syncedAt?: Date }): Promise<boolean>

  createProfile(profile: NewDepProfile, scope?: AccessScope): Promise<void>
  updateProfile(id: string, changes: Partial<Omit<NewDepProfile, 'id' | 'tokenId'>>, scope?: AccessScope): Promise<void>
  listProfiles(scope: AccessScope, tokenId?: string): Promise<DepProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<DepProfileRow | undefined>
  deleteProfile(scope: AccessScope, id: string): Promise<boolean>
  recordDefinition(id: string, outcome: { profileUuid: string; at: Date } | { error: string }, scope?: AccessScope): Promise<void>

  /** Applies fetched or synced records; returns the serials this token did not have before (or had removed). */
  applyDevices(tokenId: string, devices: readonly AbmDevice[], now: Date): Promise<string[]>
  listDevices(scope: AccessScope, filter: DepDeviceFilter, page: { limit: number; cursor?: string }): Promise<Page<DepDeviceRow>>
  getDevice(scope: AccessScope, serialNumber: string): Promise<DepDeviceRow | undefined>
  /** Of these serials, the ones still ours that have no profile from Apple and none being assigned. */
  withoutProfile(tokenId: string, serials: readonly string[]): Promise<string[]>
  recordAssignments(profileId: string | null, outcomes: readonly AssignOutcome[], now: Date, profileUuid: string | null, scope?: AccessScope, tokenId?: string): Promise<void>
  /** Throttled assignments whose retry time has come. */
  dueAssignRetries(now: Date, limit: number): Promise<Array<{ serialNumber: string; tokenId: string; profileId: string }>>
  markRemoved(serials: readonly string[], now: Date, scope?: AccessScope, tokenId?: string): Promise<void>
  /** The ABM/ASM token each serial is recorded under (serials we have not synced are absent). */
  tokensOfSerials(serials: readonly string[]): Promise<Map<string, string>>
  adeLookup(serialNumber: string): Promise<AdeDeviceLookup | undefined>
  profileForDevice(deviceId: string): Promise<DepProfileRow | undefined>
  /** Devices each token has now (removed ones aside). */
  deviceCounts(scope: AccessScope, tokenId?: string): Promise<Map<string, number>>
}

const date = (value: string | undefined): Date | null => {
  if (!value) return null
  const parsed = new Date(value)
  return Number.isNaN(parsed.getTime()) ? null : parsed
}
const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value.slice(0, 500) : null)

export function createDepStore(db: Kysely<Database>): DepStore {
  const profiles = (scope: AccessScope = fullAccess) =>
    db
      .selectFrom('dep_profiles as p')
      .innerJoin('dep_tokens as t', 't.id', 'p.token_id')
      .selectAll('p')
      .select(sql<boolean>`coalesce(t.default_profile_id = p.id, false)`.as('is_default'))
      .where(inScope(scope, 't.tenant_id'))

  // The tenant of a token (profiles and devices are its), for audit rows.
  const tenantOfToken = async (trx: Kysely<Database>, tokenId: string) =>
    (await trx.selectFrom('dep_tokens').select('tenant_id').where('id', '=', tokenId).executeTakeFirst())?.tenant_id ?? null
  const tenantOfProfile = async (trx: Kysely<Database>, profileId: string) =>
    (await trx.selectFrom('dep_profiles as p').innerJoin('dep_tokens as t', 't.id', 'p.token_id').select('t.tenant_id').where('p.id', '=', profileId).executeTakeFirst())?.tenant_id ?? null

  return {
    async createToken(scope, token) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('dep_tokens')
            .values({ id: token.id, name: token.name, tenant_id: token.tenantId, exchange_certificate_der: token.exchangeCertificateDer, exchange_private_key_sealed: token.exchangePrivateKeySealed })
            .returningAll()
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, { type: 'dep_token', id: row.id, tenantId: row.tenant_id, details: { name: row.name } })
          return row
        })
      } catch (error) {
        if (isReferenceViolation(error)) return undefined
        throw error
      }
    },

    async listTokens(scope) {
      return db.selectFrom('dep_tokens').selectAll().where(inScope(scope, 'tenant_id')).orderBy('created_at').orderBy('id').execute()
    },

    async getToken(scope, id) {
      return db.selectFrom('dep_tokens').selectAll().where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
    },

    async deleteToken(scope, id) {
      return db.transaction().execute(async (trx) => {
        const token = await trx.selectFrom('dep_tokens').select(['id', 'tenant_id']).where('id', '=', id).where(inScope(scope, 'tenant_id')).forUpdate().executeTakeFirst()
        if (!token) return false
        // Profiles reference the token and the token its default profile: clear that first.
        await trx.updateTable('dep_tokens').set({ default_profile_id: null }).where('id', '=', id).execute()
        const deleted = await trx.deleteFrom('dep_tokens').where('id', '=', id).returning('id').execute()
        await recordAdminWrite(trx, scope, { type: 'dep_token', id, tenantId: token.tenant_id })
        return deleted.length > 0
      })
    },

    async storeServerToken(id, credentialsSealed, accessTokenExpiry, now, scope = fullAccess) {
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('dep_tokens')
          .set({ credentials_sealed: credentialsSealed, access_token_expiry: accessTokenExpiry, token_uploaded_at: now, status: 'ok', status_detail: 'server token uploaded; the first sync is pending', status_at: now, retry_after: null, updated_at: now })
          .where('id', '=', id)
          .execute()
        await recordAdminWrite(trx, scope, { type: 'dep_token', id, tenantId: await tenantOfToken(trx, id), details: { access_token_expiry: accessTokenExpiry } })
      })
    },

    async storeAccount(id, account) {
      await db
        .updateTable('dep_tokens')
        .set({ server_name: account.serverName, server_uuid: account.serverUuid, org_name: account.orgName, account: JSON.stringify(account.raw), updated_at: new Date() })
        .where('id', '=', id)
        .execute()
    },

    async setStatus(id, status, detail, now, retryAfter = null) {
      await db
        .updateTable('dep_tokens')
        .set({ status, status_detail: detail?.slice(0, 2000) ?? null, status_at: now, retry_after: retryAfter, updated_at: now })
        .where('id', '=', id)
        .execute()
    },

    async setDefaultProfile(id, profileId, scope = fullAccess) {
      await db.transaction().execute(async (trx) => {
        await trx.updateTable('dep_tokens').set({ default_profile_id: profileId, updated_at: new Date() }).where('id', '=', id).execute()
        await recordAdminWrite(trx, scope, { type: 'dep_token', id, tenantId: await tenantOfToken(trx, id), details: { default_profile_id: profileId } })
      })
    },

    async tokensToSync(now) {
      return db
        .selectFrom('dep_tokens')
        .selectAll()
        .where('credentials_sealed', 'is not', null)
        .where((eb) => eb.or([eb('retry_after', 'is', null), eb('retry_after', '<=', now)]))
        .orderBy('id')
        .execute()
    },

    async claimSyncLease(id, owner, now, until) {
      return db
        .updateTable('dep_tokens')
        .set({ sync_lease_owner: owner, sync_lease_until: until })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('sync_lease_owner', 'is', null), eb('sync_lease_owner', '=', owner), eb('sync_lease_until', '<', now)]))
        .returningAll()
        .executeTakeFirst()
    },

    async releaseSyncLease(id, owner) {
      await db.updateTable('dep_tokens').set({ sync_lease_owner: null, sync_lease_until: null }).where('id', '=', id).where('sync_lease_owner', '=', owner).execute()
    },

    async saveCursor(id, owner, state) {
      const updated = await db
        .updateTable('dep_tokens')
        .set({
          sync_phase: state.phase,
          cursor: state.cursor,
          ...(state.fetchCompletedAt ? { last_fetch_completed_at: state.fetchCompletedAt } : {}),
          ...(state.syncedAt ? { last_sync_at: state.syncedAt } : {}),
          updated_at: new Date(),
        })
        .where('id', '=', id)
        .where('sync_lease_owner', '=', owner)
        .returning('id')
        .execute()
      return updated.length > 0
    },

    async createProfile(profile, scope = fullAccess) {
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('dep_profiles')
          .values({
            id: profile.id,
            token_id: profile.tokenId,
            name: profile.name,
            profile: JSON.stringify(profile.profile),
            device_kind: profile.deviceKind,
            minimum_os_version: profile.minimumOsVersion,
            enrollment_commands: JSON.stringify(profile.enrollmentCommands),
          })
          .execute()
        await recordAdminWrite(trx, scope, { type: 'dep_profile', id: profile.id, tenantId: await tenantOfToken(trx, profile.tokenId), details: { name: profile.name } })
      })
    },

    async updateProfile(id, changes, scope = fullAccess) {
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('dep_profiles')
          .set({
            ...(changes.name !== undefined ? { name: changes.name } : {}),
            ...(changes.profile !== undefined ? { profile: JSON.stringify(changes.profile) } : {}),
            ...(changes.deviceKind !== undefined ? { device_kind: changes.deviceKind } : {}),
            ...(changes.minimumOsVersion !== undefined ? { minimum_os_version: changes.minimumOsVersion } : {}),
            ...(changes.enrollmentCommands !== undefined ? { enrollment_commands: JSON.stringify(changes.enrollmentCommands) } : {}),
            updated_at: new Date(),
          })
          .where('id', '=', id)
          .execute()
        await recordAdminWrite(trx, scope, { type: 'dep_profile', id, tenantId: await tenantOfProfile(trx, id) })
      })
    },

    async listProfiles(scope, tokenId) {
      let query = profiles(scope).orderBy('p.created_at').orderBy('p.id')
      if (tokenId) query = query.where('p.token_id', '=', tokenId)
      return query.execute()
    },

    async getProfile(scope, id) {
      return profiles(scope).where('p.id', '=', id).executeTakeFirst()
    },

    async deleteProfile(scope, id) {
      return db.transaction().execute(async (trx) => {
        const tenantId = await tenantOfProfile(trx, id)
        const deleted = await trx
          .deleteFrom('dep_profiles')
          .where('id', '=', id)
          .where('token_id', 'in', (eb) => eb.selectFrom('dep_tokens as t').select('t.id').where(inScope(scope, 't.tenant_id')))
          .returning('id')
          .execute()
        if (deleted.length > 0) await recordAdminWrite(trx, scope, { type: 'dep_profile', id, tenantId })
        return deleted.length > 0
      })
    },

    async recordDefinition(id, outcome, scope = fullAccess) {
      const now = new Date()
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('dep_profiles')
          .set('error' in outcome ? { define_error: outcome.error.slice(0, 2000), updated_at: now } : { profile_uuid: outcome.profileUuid, defined_at: outcome.at, define_error: null, updated_at: now })
          .where('id', '=', id)
          .execute()
        await recordAdminWrite(trx, scope, { type: 'dep_profile', id, tenantId: await tenantOfProfile(trx, id), details: 'error' in outcome ? { define_error: outcome.error.slice(0, 500) } : { profile_uuid: outcome.profileUuid } })
      })
    },

    async applyDevices(tokenId, devices, now) {
      if (devices.length === 0) return []
      // Sync may repeat a serial: the record with the latest op_date is its state (Apple's rule).
      const latest = new Map<string, AbmDevice>()
      for (const device of devices) {
        const seen = latest.get(device.serial_number)
        if (!seen || (date(device.op_date)?.getTime() ?? 0) >= (date(seen.op_date)?.getTime() ?? 0)) latest.set(device.serial_number, device)
      }
      const serials = [...latest.keys()]
      return db.transaction().execute(async (trx) => {
        const before = await trx.selectFrom('dep_devices').select(['serial_number', 'token_id', 'removed_at']).where('serial_number', 'in', serials).forUpdate().execute()
        const known = new Map(before.map((row) => [row.serial_number, row]))
        const records = [...latest.values()]
        // Only the token that has a device can lose it (it may have moved to another already).
        const deleted = records.filter((device) => device.op_type === 'deleted' && known.get(device.serial_number)?.token_id === tokenId)
        const present = records.filter((device) => device.op_type !== 'deleted')
        const added = present.filter((device) => {
          const previous = known.get(device.serial_number)
          return !previous || previous.token_id !== tokenId || previous.removed_at !== null
        })
        for (const device of deleted) {
          await trx.updateTable('dep_devices').set({ op_type: 'deleted', op_date: date(device.op_date), removed_at: now, raw: JSON.stringify(device), updated_at: now }).where('serial_number', '=', device.serial_number).execute()
        }
        if (present.length > 0) {
          // One statement per page: a full fetch of a large organisation is thousands of rows.
          await trx
            .insertInto('dep_devices')
            .values(
              present.map((device) => ({
                serial_number: device.serial_number,
                token_id: tokenId,
                model: text(device.model),
                description: text(device.description),
                color: text(device.color),
                asset_tag: text(device.asset_tag),
                os: text(device.os),
                device_family: text(device.device_family),
                profile_status: text(device.profile_status),
                profile_uuid: text(device.profile_uuid),
                profile_assign_time: date(device.profile_assign_time),
                profile_push_time: date(device.profile_push_time),
                device_assigned_by: text(device.device_assigned_by),
                device_assigned_date: date(device.device_assigned_date),
                op_type: device.op_type ?? null,
                op_date: date(device.op_date),
                removed_at: null,
                raw: JSON.stringify(device),
                updated_at: now,
              })),
            )
            .onConflict((oc) =>
              oc.column('serial_number').doUpdateSet((eb) => ({
                token_id: eb.ref('excluded.token_id'),
                model: eb.ref('excluded.model'),
                description: eb.ref('excluded.description'),
                color: eb.ref('excluded.color'),
                asset_tag: eb.ref('excluded.asset_tag'),
                os: eb.ref('excluded.os'),
                device_family: eb.ref('excluded.device_family'),
                profile_status: eb.ref('excluded.profile_status'),
                profile_uuid: eb.ref('excluded.profile_uuid'),
                profile_assign_time: eb.ref('excluded.profile_assign_time'),
                profile_push_time: eb.ref('excluded.profile_push_time'),
                device_assigned_by: eb.ref('excluded.device_assigned_by'),
                device_assigned_date: eb.ref('excluded.device_assigned_date'),
                op_type: eb.ref('excluded.op_type'),
                op_date: eb.ref('excluded.op_date'),
                removed_at: eb.ref('excluded.removed_at'),
                raw: eb.ref('excluded.raw'),
                updated_at: eb.ref('excluded.updated_at'),
              })),
            )
            .execute()
        }
        return added.map((device) => device.serial_number)
      })
    },

    async listDevices(scope, filter, page) {
      const sort = 'serial_number'
      let query = db.selectFrom('dep_devices').selectAll().where('token_id', 'in', (eb) => eb.selectFrom('dep_tokens as t').select('t.id').where(inScope(scope, 't.tenant_id')))
      if (filter.tokenId) query = query.where('token_id', '=', filter.tokenId)
      if (filter.profileId) query = query.where('assigned_profile_id', '=', filter.profileId)
      if (filter.assignStatus) query = query.where('assign_status', '=', filter.assignStatus)
      if (!filter.includeRemoved) query = query.where('removed_at', 'is', null)
      if (page.cursor) {
        const cursor = decodeCursor(page.cursor, sort, { value: 'text', id: 'text' })
        query = query.where(afterCursor('serial_number', 'serial_number', 'asc', cursor, 'text'))
      }
      const rows = await query.orderBy(orderFor('serial_number', 'serial_number', 'asc')).limit(page.limit + 1).execute()
      return pageOf(rows, page.limit, sort, (row) => ({ value: row.serial_number, id: row.serial_number }), (row) => row)
    },

    async getDevice(scope, serialNumber) {
      return db
        .selectFrom('dep_devices')
        .selectAll()
        .where('serial_number', '=', serialNumber)
        .where('token_id', 'in', (eb) => eb.selectFrom('dep_tokens as t').select('t.id').where(inScope(scope, 't.tenant_id')))
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
      // One update per distinct answer (Apple mostly answers the same for a whole batch).
      const groups = new Map<string, { outcome: AssignOutcome; serials: string[] }>()
      for (const outcome of outcomes) {
        const key = JSON.stringify([outcome.status, outcome.detail, outcome.retryAt?.getTime() ?? null])
        const group = groups.get(key) ?? { outcome, serials: [] }
        group.serials.push(outcome.serialNumber)
        groups.set(key, group)
      }
      await db.transaction().execute(async (trx) => {
        for (const { outcome, serials } of groups.values()) {
          await trx
            .updateTable('dep_devices')
            .set({
              assigned_profile_id: profileId,
              assign_status: outcome.status,
              assign_detail: outcome.detail,
              assigned_at: now,
              assign_retry_at: outcome.status === 'THROTTLED' ? outcome.retryAt ?? now : null,
              // What Apple now holds for the device, until the next sync says otherwise.
              ...(outcome.status === 'SUCCESS' ? { profile_uuid: profileUuid, profile_status: profileUuid ? 'assigned' : 'removed', profile_assign_time: now } : {}),
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
        await recordAdminWrite(trx, scope, { type: profileId ? 'dep_profile' : 'dep_token', id: profileId ?? tokenId ?? null, tenantId, details: { devices: outcomes.length, ...counts } })
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

    async tokensOfSerials(serials) {
      const out = new Map<string, string>()
      for (let i = 0; i < serials.length; i += 5000) {
        const rows = await db.selectFrom('dep_devices').select(['serial_number', 'token_id']).where('serial_number', 'in', serials.slice(i, i + 5000)).execute()
        for (const row of rows) out.set(row.serial_number, row.token_id)
      }
      return out
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
        await recordAdminWrite(trx, scope, { type: 'dep_token', id: tokenId ?? null, tenantId: tokenId ? await tenantOfToken(trx, tokenId) : null, details: { removed: serials.length } })
      })
    },

    async adeLookup(serialNumber) {
      const device = await db.selectFrom('dep_devices').selectAll().where('serial_number', '=', serialNumber).where('removed_at', 'is', null).executeTakeFirst()
      if (!device) return undefined
      const token = await db.selectFrom('dep_tokens').selectAll().where('id', '=', device.token_id).executeTakeFirstOrThrow()
      // The PreStage we assigned, else the one whose Apple UUID the device carries, else the token's default.
      const profile =
        (device.assigned_profile_id && device.assign_status === 'SUCCESS' ? await profiles().where('p.id', '=', device.assigned_profile_id).executeTakeFirst() : undefined) ??
        (device.profile_uuid ? await profiles().where('p.profile_uuid', '=', device.profile_uuid).where('p.token_id', '=', device.token_id).executeTakeFirst() : undefined) ??
        (token.default_profile_id ? await profiles().where('p.id', '=', token.default_profile_id).executeTakeFirst() : undefined)
      return { device, profile, token }
    },

    async profileForDevice(deviceId) {
      return profiles()
        .where('p.id', '=', (eb) => eb.selectFrom('devices').select('dep_profile_id').where('id', '=', deviceId))
        .executeTakeFirst()
    },

    async deviceCounts(scope, tokenId) {
      let query = db
        .selectFrom('dep_devices')
        .select(['token_id', sql<number>`count(*)::int`.as('count')])
        .where('removed_at', 'is', null)
        .where('token_id', 'in', (eb) => eb.selectFrom('dep_tokens as t').select('t.id').where(inScope(scope, 't.tenant_id')))
      if (tokenId) query = query.where('token_id', '=', tokenId)
      const rows = await query.groupBy('token_id').execute()
      return new Map(rows.map((row) => [row.token_id, row.count]))
    },
  }
}

