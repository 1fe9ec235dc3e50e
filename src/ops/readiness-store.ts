// What readiness reads from the database beyond the migrations: which master keys the sealed
// secrets at rest were sealed with (the key id is bytes 1..8 of every sealed value, see
// crypto/secret-box.ts). One aggregate over the sealed columns; no secret is read or opened.
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'

/** Every column holding a SecretBox-sealed value, as `table.column`. */
export const sealedColumns = [
  ['enrollments', 'unlock_token_sealed'],
  ['push_certificates', 'private_key_sealed'],
  ['bootstrap_tokens', 'token_sealed'],
  ['activation_lock_bypass_codes', 'code_sealed'],
  ['activation_lock_bypass_codes', 'server_code_sealed'],
  ['webhooks', 'secret_sealed'],
  ['certificate_authorities', 'private_key_sealed'],
  ['certificate_authorities', 'ra_private_key_sealed'],
  ['dep_tokens', 'exchange_private_key_sealed'],
  ['dep_tokens', 'credentials_sealed'],
  ['vpp_tokens', 'token_sealed'],
] as const

export interface SealedSecretCount {
  /** Hex id of the master key that sealed them (masterKeyId in crypto/secret-box.ts). */
  keyId: string
  count: number
}

export interface ReadinessStore {
  /** Sealed values in the database, counted by the master key that sealed them. */
  sealedSecretsByKey(): Promise<SealedSecretCount[]>
}

export function createReadinessStore(db: Kysely<Database>): ReadinessStore {
  return {
    async sealedSecretsByKey() {
      const parts = sealedColumns.map(
        ([table, column]) =>
          sql`select encode(substring(${sql.ref(column)} from 2 for 8), 'hex') as key_id from ${sql.table(table)} where ${sql.ref(column)} is not null`,
      )
      const { rows } = await sql<{ key_id: string; count: number }>`
        select key_id, count(*)::int as count from (${sql.join(parts, sql` union all `)}) sealed group by key_id order by key_id`.execute(db)
      return rows.map((row) => ({ keyId: row.key_id, count: row.count }))
    },
  }
}
