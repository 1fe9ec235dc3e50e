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

/** Tables where every device request or fleet-wide action leaves dead rows behind: bloat without autovacuum. */
export const churningTables = ['enrollments', 'command_targets', 'commands', 'devices', 'device_status_items', 'webhook_deliveries'] as const

export interface AutovacuumState {
  /** The server setting `autovacuum` (and `track_counts`, without which it does nothing). */
  server: boolean
  /** Churning tables with autovacuum_enabled=false in their storage options. */
  tablesOff: string[]
}

export interface ReadinessStore {
  /** Sealed values in the database, counted by the master key that sealed them. */
  sealedSecretsByKey(): Promise<SealedSecretCount[]>
  autovacuum(): Promise<AutovacuumState>
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
    async autovacuum() {
      const { rows } = await sql<{ server: boolean; tables_off: string[] | null }>`
        select current_setting('autovacuum')::boolean and current_setting('track_counts')::boolean as server,
          (select array_agg(relname::text order by relname) from pg_class
            where relnamespace = current_schema()::regnamespace and relkind = 'r'
              and relname = any(${sql.val([...churningTables])}::text[])
              and 'autovacuum_enabled=false' = any(coalesce(reloptions, '{}'))) as tables_off`.execute(db)
      return { server: rows[0]!.server, tablesOff: rows[0]!.tables_off ?? [] }
    },
  }
}
