// Admin API keys (table api_keys). Only the SHA-256 of a key is stored; it is written
// here and used for the lookup, and never read back out of this module.
import { sql, type Kysely, type Selectable } from 'kysely'
import { preparedStatement } from './database.js'
import type { ApiKeyScope, ApiKeysTable, Database } from './schema.js'

export interface ApiKeyRow {
  id: string
  name: string
  scopes: ApiKeyScope[]
  createdAt: Date
  lastUsedAt: Date | null
  expiresAt: Date | null
  revokedAt: Date | null
}

export interface NewApiKey {
  id: string
  name: string
  scopes: ApiKeyScope[]
  /** SHA-256 of the whole key string `orchard_<id>_<secret>`. */
  keySha256: Buffer
  createdAt: Date
  expiresAt: Date | null
}

export type RevokeResult = 'revoked' | 'already_revoked' | 'not_found'

export interface ApiKeyStore {
  insertKey(key: NewApiKey): Promise<ApiKeyRow>
  /** The key with this digest, unless it is revoked or expired at `now`. */
  findActiveBySha256(digest: Buffer, now: Date): Promise<ApiKeyRow | undefined>
  /** Oldest first; revoked keys only when asked for. */
  listKeys(options: { includeRevoked: boolean }): Promise<ApiKeyRow[]>
  getKey(id: string): Promise<ApiKeyRow | undefined>
  revokeKey(id: string, now: Date): Promise<RevokeResult>
  /** Sets last_used_at to `now`; never moves it backwards (replicas race). */
  touchLastUsed(id: string, now: Date): Promise<void>
}

const columns = ['id', 'name', 'scopes', 'created_at', 'last_used_at', 'expires_at', 'revoked_at'] as const

type KeyColumns = Pick<Selectable<ApiKeysTable>, (typeof columns)[number]>

const toRow = (r: KeyColumns): ApiKeyRow => ({
  id: r.id,
  name: r.name,
  scopes: r.scopes,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
})

export function createApiKeyStore(db: Kysely<Database>): ApiKeyStore {
  return {
    async insertKey(key) {
      const row = await db
        .insertInto('api_keys')
        .values({
          id: key.id,
          name: key.name,
          scopes: key.scopes,
          key_sha256: key.keySha256,
          created_at: key.createdAt,
          expires_at: key.expiresAt,
        })
        .returning(columns)
        .executeTakeFirstOrThrow()
      return toRow(row)
    },

    async findActiveBySha256(digest, now) {
      // Served by the unique index api_keys_key_sha256_key; runs on every authenticated
      // request that misses the service's cache, so it is prepared once per connection.
      const { rows } = await sql<KeyColumns>`${sql.raw(preparedStatement)}
        select id, name, scopes, created_at, last_used_at, expires_at, revoked_at
        from api_keys
        where key_sha256 = ${digest} and revoked_at is null and (expires_at is null or expires_at > ${now})`.execute(db)
      const row = rows[0]
      return row ? toRow(row) : undefined
    },

    async listKeys(options) {
      let query = db.selectFrom('api_keys').select(columns).orderBy('created_at').orderBy('id')
      if (!options.includeRevoked) query = query.where('revoked_at', 'is', null)
      return (await query.execute()).map(toRow)
    },

    async getKey(id) {
      const row = await db.selectFrom('api_keys').select(columns).where('id', '=', id).executeTakeFirst()
      return row ? toRow(row) : undefined
    },

    async revokeKey(id, now) {
      const updated = await db
        .updateTable('api_keys')
        .set({ revoked_at: now })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returning('id')
        .executeTakeFirst()
      if (updated) return 'revoked'
      // Keys are never deleted, so a miss is either an earlier revocation or no such key.
      const existing = await db.selectFrom('api_keys').select('id').where('id', '=', id).executeTakeFirst()
      return existing ? 'already_revoked' : 'not_found'
    },

    async touchLastUsed(id, now) {
      await db
        .updateTable('api_keys')
        .set({ last_used_at: now })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', now)]))
        .execute()
    },
  }
}
