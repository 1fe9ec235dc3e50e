// Admin API keys (table api_keys). Only the SHA-256 of a key is stored; it is written
// here and used for the lookup, and never read back out of this module.
import { sql, type Kysely, type Selectable } from 'kysely'
import { preparedStatement } from '../db/statement-names.js'
import { type AccessScope, type Role } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { ApiKeysTable, Database } from '../db/schema.js'
import { isReferenceViolation } from '../db/pg-errors.js'

export interface ApiKeyRow {
  id: string
  name: string
  role: Role
  tenantId: string | null
  createdAt: Date
  lastUsedAt: Date | null
  expiresAt: Date | null
  revokedAt: Date | null
}

export interface NewApiKey {
  id: string
  name: string
  role: Role
  tenantId: string | null
  /** SHA-256 of the whole key string `orchard_<id>_<secret>`. */
  keySha256: Buffer
  createdAt: Date
  expiresAt: Date | null
}

export type RevokeResult = 'revoked' | 'already_revoked' | 'not_found'

export interface ApiKeyStore {
  /** undefined: the tenant does not exist. */
  insertKey(scope: AccessScope, key: NewApiKey): Promise<ApiKeyRow | undefined>
  /** The key with this digest, unless it is revoked or expired at `now`. */
  findActiveBySha256(digest: Buffer, now: Date): Promise<ApiKeyRow | undefined>
  /** Oldest first; revoked keys only when asked for. */
  listKeys(scope: AccessScope, options: { includeRevoked: boolean }): Promise<ApiKeyRow[]>
  getKey(scope: AccessScope, id: string): Promise<ApiKeyRow | undefined>
  revokeKey(scope: AccessScope, id: string, now: Date): Promise<RevokeResult>
  /** Sets last_used_at to `now`; never moves it backwards (replicas race). */
  touchLastUsed(id: string, now: Date): Promise<void>
  /**
   * True for exactly one caller in the life of an installation, and only while no API key was
   * ever created: the first start. Recorded in server_settings, so instances starting together
   * on one database agree (the second insert waits for the first and then finds the row).
   */
  claimFirstStart(): Promise<boolean>
}

const columns = ['id', 'name', 'role', 'tenant_id', 'created_at', 'last_used_at', 'expires_at', 'revoked_at'] as const

type KeyColumns = Pick<Selectable<ApiKeysTable>, (typeof columns)[number]>

const toRow = (r: KeyColumns): ApiKeyRow => ({
  id: r.id,
  name: r.name,
  role: r.role,
  tenantId: r.tenant_id,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
})

export function createApiKeyStore(db: Kysely<Database>): ApiKeyStore {
  return {
    async insertKey(scope, key) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('api_keys')
            .values({
              id: key.id,
              name: key.name,
              role: key.role,
              tenant_id: key.tenantId,
              key_sha256: key.keySha256,
              created_at: key.createdAt,
              expires_at: key.expiresAt,
            })
            .returning(columns)
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, { type: 'api_key', id: row.id, tenantId: row.tenant_id, details: { name: row.name, role: row.role } })
          return toRow(row)
        })
      } catch (error) {
        if (isReferenceViolation(error)) return undefined
        throw error
      }
    },

    async findActiveBySha256(digest, now) {
      // Served by the unique index api_keys_key_sha256_key; runs on every authenticated
      // request that misses the service's cache, so it is prepared once per connection.
      const { rows } = await sql<KeyColumns>`${sql.raw(preparedStatement)}
        select id, name, role, tenant_id, created_at, last_used_at, expires_at, revoked_at
        from api_keys
        where key_sha256 = ${digest} and revoked_at is null and (expires_at is null or expires_at > ${now})`.execute(db)
      const row = rows[0]
      return row ? toRow(row) : undefined
    },

    async listKeys(scope, options) {
      let query = db.selectFrom('api_keys').select(columns).where(inScope(scope, 'tenant_id')).orderBy('created_at').orderBy('id')
      if (!options.includeRevoked) query = query.where('revoked_at', 'is', null)
      return (await query.execute()).map(toRow)
    },

    async getKey(scope, id) {
      const row = await db.selectFrom('api_keys').select(columns).where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
      return row ? toRow(row) : undefined
    },

    async revokeKey(scope, id, now) {
      return db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('api_keys')
          .set({ revoked_at: now })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .where(inScope(scope, 'tenant_id'))
          .returning(['id', 'tenant_id'])
          .executeTakeFirst()
        if (updated) {
          await recordAdminWrite(trx, scope, { type: 'api_key', id, tenantId: updated.tenant_id })
          return 'revoked' as const
        }
        // Keys are never deleted, so a miss is either an earlier revocation or no such key.
        const existing = await trx.selectFrom('api_keys').select(['id', 'tenant_id']).where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
        if (!existing) return 'not_found' as const
        // Answered as a success (nothing to do), so audited as one.
        await recordAdminWrite(trx, scope, { type: 'api_key', id, tenantId: existing.tenant_id, details: { already_revoked: true } })
        return 'already_revoked' as const
      })
    },

    async touchLastUsed(id, now) {
      await db
        .updateTable('api_keys')
        .set({ last_used_at: now })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', now)]))
        .execute()
    },
    async claimFirstStart() {
      const { rows } = await sql<{ key: string }>`
        insert into server_settings (key, value)
        select 'bootstrap_owner_key', to_jsonb(now()) where not exists (select 1 from api_keys)
        on conflict (key) do nothing
        returning key`.execute(db)
      return rows.length === 1
    },
  }
}
