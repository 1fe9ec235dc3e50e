// ABM/ASM server tokens: the key pair Apple encrypts to, the sealed OAuth credentials, the
// account Apple reports, the status an admin acts on and the default PreStage.
import type { Kysely } from 'kysely'
import { fullAccess, type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database, DepTokenStatus } from '../db/schema.js'
import { isReferenceViolation } from '../db/pg-errors.js'
import { tenantOfToken, type DepTokenRow } from './shared-store.js'

export interface NewDepToken {
  id: string
  name: string
  tenantId: string | null
  exchangeCertificateDer: Buffer
  exchangePrivateKeySealed: Buffer
}

export interface DepAccount {
  serverName: string | null
  serverUuid: string | null
  orgName: string | null
  raw: unknown
}

export interface TokenStore {
  /** undefined: the tenant does not exist. */
  createToken(scope: AccessScope, token: NewDepToken): Promise<DepTokenRow | undefined>
  listTokens(scope: AccessScope): Promise<DepTokenRow[]>
  getToken(scope: AccessScope, id: string): Promise<DepTokenRow | undefined>
  /** Deletes the token with its profiles and device records. */
  deleteToken(scope: AccessScope, id: string): Promise<boolean>
  storeServerToken(id: string, credentialsSealed: Buffer, accessTokenExpiry: Date | null, now: Date, scope?: AccessScope): Promise<void>
  storeAccount(id: string, account: DepAccount): Promise<void>
  setStatus(id: string, status: DepTokenStatus, detail: string | null, now: Date, retryAfter?: Date | null): Promise<void>
  setDefaultProfile(id: string, profileId: string | null, scope?: AccessScope): Promise<void>
}

export function createTokenStore(db: Kysely<Database>): TokenStore {
  return {
    async createToken(scope, token) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('dep_tokens')
            .values({
              id: token.id,
              name: token.name,
              tenant_id: token.tenantId,
              exchange_certificate_der: token.exchangeCertificateDer,
              exchange_private_key_sealed: token.exchangePrivateKeySealed,
            })
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
        const token = await trx
          .selectFrom('dep_tokens')
          .select(['id', 'tenant_id'])
          .where('id', '=', id)
          .where(inScope(scope, 'tenant_id'))
          .forUpdate()
          .executeTakeFirst()
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
          .set({
            credentials_sealed: credentialsSealed,
            access_token_expiry: accessTokenExpiry,
            token_uploaded_at: now,
            status: 'ok',
            status_detail: 'server token uploaded; the first sync is pending',
            status_at: now,
            retry_after: null,
            updated_at: now,
          })
          .where('id', '=', id)
          .execute()
        await recordAdminWrite(trx, scope, {
          type: 'dep_token',
          id,
          tenantId: await tenantOfToken(trx, id),
          details: { access_token_expiry: accessTokenExpiry },
        })
      })
    },

    async storeAccount(id, account) {
      await db
        .updateTable('dep_tokens')
        .set({
          server_name: account.serverName,
          server_uuid: account.serverUuid,
          org_name: account.orgName,
          account: JSON.stringify(account.raw),
          updated_at: new Date(),
        })
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
  }
}
