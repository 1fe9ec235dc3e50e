// Apps and Books content tokens: the sealed sToken, the location Apple reports for it, the
// status an admin acts on, and the sync lease that keeps one replica syncing a token.
import type { Kysely, Selectable } from 'kysely'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'
import type { Database } from '../db/schema.js'
import type { VppTokenStatus, VppTokensTable } from '../db/schema-apps.js'
import { inScope } from '../db/scope-sql.js'
import { leaseFreeFor } from '../db/lease-sql.js'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'

export type VppTokenRow = Selectable<VppTokensTable>

export interface NewVppToken {
  id: string
  tenantId: string | null
  name: string
  tokenSealed: Buffer
  orgName: string | null
  expiresAt: Date | null
  servesSubTenants: boolean
}

/** The location as Apple's client configuration describes it. */
export interface VppLocation {
  uid: string
  name: string | null
  countryCode: string | null
  clientContext: string | null
}

export type CreateVppTokenOutcome = { created: VppTokenRow } | { error: 'no_tenant' | 'name_taken' }

export interface VppTokenStore {
  createToken(scope: AccessScope, token: NewVppToken): Promise<CreateVppTokenOutcome>
  listTokens(scope: AccessScope): Promise<VppTokenRow[]>
  getToken(scope: AccessScope, id: string): Promise<VppTokenRow | undefined>
  /** The token (any tenant) that holds this location already. */
  tokenOfLocation(locationUid: string): Promise<VppTokenRow | undefined>
  deleteToken(scope: AccessScope, id: string): Promise<boolean>
  /** A renewal: the new sToken and its expiry for the same location. */
  replaceToken(scope: AccessScope, id: string, tokenSealed: Buffer, expiresAt: Date | null, orgName: string | null, now: Date): Promise<void>
  updateSettings(scope: AccessScope, id: string, settings: { name?: string; servesSubTenants?: boolean }): Promise<'updated' | 'not_found' | 'name_taken'>
  /** false when another token row holds the location already. */
  storeLocation(id: string, location: VppLocation, now: Date): Promise<boolean>
  setStatus(id: string, status: VppTokenStatus, detail: string | null, now: Date, retryAfter?: Date | null): Promise<void>
  /** A complete sync: status ok and last_sync_at. */
  markSynced(id: string, detail: string, now: Date): Promise<void>
  /** Tokens whose retry_after (if any) has passed and that are not blocked on an admin. */
  tokensToSync(now: Date): Promise<VppTokenRow[]>
  /** Takes (or renews) the sync lease for `owner` unless another owner holds a live one. */
  claimSyncLease(id: string, owner: string, now: Date, until: Date): Promise<VppTokenRow | undefined>
  releaseSyncLease(id: string, owner: string): Promise<void>
}

export function createVppTokenStore(db: Kysely<Database>): VppTokenStore {
  return {
    async createToken(scope, token) {
      try {
        const created = await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('vpp_tokens')
            .values({
              id: token.id,
              tenant_id: token.tenantId,
              name: token.name,
              token_sealed: token.tokenSealed,
              org_name: token.orgName,
              expires_at: token.expiresAt,
              serves_sub_tenants: token.servesSubTenants,
            })
            .returningAll()
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, { type: 'vpp_token', id: row.id, tenantId: row.tenant_id, details: { name: row.name } })
          return row
        })
        return { created }
      } catch (error) {
        if (isReferenceViolation(error)) return { error: 'no_tenant' }
        if (isUniqueViolation(error)) return { error: 'name_taken' }
        throw error
      }
    },

    async listTokens(scope) {
      return db.selectFrom('vpp_tokens').selectAll().where(inScope(scope, 'tenant_id')).orderBy('created_at').orderBy('id').execute()
    },

    async getToken(scope, id) {
      return db.selectFrom('vpp_tokens').selectAll().where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
    },

    async tokenOfLocation(locationUid) {
      return db.selectFrom('vpp_tokens').selectAll().where('location_uid', '=', locationUid).executeTakeFirst()
    },

    async deleteToken(scope, id) {
      return db.transaction().execute(async (trx) => {
        const deleted = await trx
          .deleteFrom('vpp_tokens')
          .where('id', '=', id)
          .where(inScope(scope, 'tenant_id'))
          .returning(['id', 'tenant_id'])
          .executeTakeFirst()
        if (!deleted) return false
        await recordAdminWrite(trx, scope, { type: 'vpp_token', id, tenantId: deleted.tenant_id })
        return true
      })
    },

    async replaceToken(scope, id, tokenSealed, expiresAt, orgName, now) {
      await db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('vpp_tokens')
          .set({
            token_sealed: tokenSealed,
            expires_at: expiresAt,
            org_name: orgName,
            status: 'pending',
            status_detail: 'renewed; checking with Apple',
            status_at: now,
            retry_after: null,
            updated_at: now,
          })
          .where('id', '=', id)
          .returning('tenant_id')
          .executeTakeFirst()
        if (row) await recordAdminWrite(trx, scope, { type: 'vpp_token', id, tenantId: row.tenant_id, details: { renewed: true, expires_at: expiresAt } })
      })
    },

    async updateSettings(scope, id, settings) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .updateTable('vpp_tokens')
            .set({
              ...(settings.name !== undefined ? { name: settings.name } : {}),
              ...(settings.servesSubTenants !== undefined ? { serves_sub_tenants: settings.servesSubTenants } : {}),
              updated_at: new Date(),
            })
            .where('id', '=', id)
            .where(inScope(scope, 'tenant_id'))
            .returning('tenant_id')
            .executeTakeFirst()
          if (!row) return 'not_found'
          await recordAdminWrite(trx, scope, { type: 'vpp_token', id, tenantId: row.tenant_id, details: settings })
          return 'updated'
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken'
        throw error
      }
    },

    async storeLocation(id, location, now) {
      try {
        await db
          .updateTable('vpp_tokens')
          .set({
            location_uid: location.uid,
            location_name: location.name?.slice(0, 500) ?? null,
            country_code: location.countryCode?.slice(0, 10) ?? null,
            client_context: location.clientContext?.slice(0, 4000) ?? null,
            updated_at: now,
          })
          .where('id', '=', id)
          .execute()
        return true
      } catch (error) {
        if (isUniqueViolation(error)) return false
        throw error
      }
    },

    async setStatus(id, status, detail, now, retryAfter = null) {
      await db
        .updateTable('vpp_tokens')
        .set({ status, status_detail: detail?.slice(0, 2000) ?? null, status_at: now, retry_after: retryAfter, updated_at: now })
        .where('id', '=', id)
        .execute()
    },

    async markSynced(id, detail, now) {
      await db
        .updateTable('vpp_tokens')
        .set({ status: 'ok', status_detail: detail.slice(0, 2000), status_at: now, retry_after: null, last_sync_at: now, updated_at: now })
        .where('id', '=', id)
        .execute()
    },

    async tokensToSync(now) {
      return db
        .selectFrom('vpp_tokens')
        .selectAll()
        .where('status', 'not in', ['claimed_elsewhere', 'token_revoked'])
        .where((eb) => eb.or([eb('retry_after', 'is', null), eb('retry_after', '<=', now)]))
        .orderBy('id')
        .execute()
    },

    async claimSyncLease(id, owner, now, until) {
      return db
        .updateTable('vpp_tokens')
        .set({ sync_lease_owner: owner, sync_lease_until: until })
        .where('id', '=', id)
        .where(leaseFreeFor(owner, now))
        .returningAll()
        .executeTakeFirst()
    },

    async releaseSyncLease(id, owner) {
      await db
        .updateTable('vpp_tokens')
        .set({ sync_lease_owner: null, sync_lease_until: null })
        .where('id', '=', id)
        .where('sync_lease_owner', '=', owner)
        .execute()
    },
  }
}
