// Device secrets at rest: the UnlockToken of a TokenUpdate (enrollments.unlock_token_sealed)
// and the BootstrapToken (bootstrap_tokens.token_sealed). Values arrive and leave sealed:
// this store never sees a clear secret, except the legacy clear columns it empties.
import { sql, type Kysely } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database } from '../db/schema.js'

export interface SealedDeviceSecrets {
  deviceId: string
  tenantId: string | null
  /** The device channel's UnlockToken, sealed with `unlock-token:<device id>`. */
  unlockTokenSealed: Buffer | null
  /** Sealed with `bootstrap-token:<device id>`. */
  bootstrapTokenSealed: Buffer | null
}

/** A clear value still in a legacy column, to be sealed by the caller. */
export interface ClearSecretRow {
  table: 'enrollments' | 'bootstrap_tokens'
  /** enrollments.id or bootstrap_tokens.device_id. */
  id: string
  value: Buffer
}

export interface DeviceSecretStore {
  /** Stores (sealed) or deletes (undefined) the device's BootstrapToken. */
  setBootstrapToken(deviceId: string, sealed: Buffer | undefined): Promise<void>
  getBootstrapToken(deviceId: string): Promise<Buffer | undefined>
  /**
   * The device's sealed secrets, read for an admin: the read is recorded in the audit log
   * (the scope's actor) in the same transaction. undefined: no such device in scope.
   */
  readForAdmin(scope: AccessScope, deviceId: string, details: Record<string, unknown>): Promise<SealedDeviceSecrets | undefined>
  /** The sealed UnlockToken of the device channel, for a command that carries it. */
  unlockToken(scope: AccessScope, deviceId: string): Promise<{ tenantId: string | null; sealed: Buffer | null } | undefined>
  /** Up to `limit` rows still holding a clear secret in a legacy column. */
  clearSecrets(limit: number): Promise<ClearSecretRow[]>
  /** Replaces a clear value by its sealed form, if the row still holds that clear value. */
  replaceClearSecret(row: ClearSecretRow, sealed: Buffer): Promise<void>
}

export function createDeviceSecretStore(db: Kysely<Database>): DeviceSecretStore {
  return {
    async setBootstrapToken(deviceId, sealed) {
      if (!sealed) {
        await db.deleteFrom('bootstrap_tokens').where('device_id', '=', deviceId).execute()
        return
      }
      await db
        .insertInto('bootstrap_tokens')
        .values({ device_id: deviceId, token: null, token_sealed: sealed })
        .onConflict((oc) => oc.column('device_id').doUpdateSet({ token: null, token_sealed: sealed, updated_at: sql`now()` }))
        .execute()
    },

    async getBootstrapToken(deviceId) {
      const row = await db.selectFrom('bootstrap_tokens').select('token_sealed').where('device_id', '=', deviceId).executeTakeFirst()
      return row?.token_sealed ?? undefined
    },

    async readForAdmin(scope, deviceId, details) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('devices as d')
          .leftJoin('enrollments as e', (join) => join.onRef('e.id', '=', 'd.id').on('e.channel', '=', 'device'))
          .leftJoin('bootstrap_tokens as b', 'b.device_id', 'd.id')
          .select(['d.id', 'd.tenant_id', 'e.unlock_token_sealed', 'b.token_sealed'])
          .where('d.id', '=', deviceId)
          .where(inScope(scope, 'd.tenant_id'))
          .executeTakeFirst()
        if (!row) return undefined
        await recordAdminWrite(trx, scope, { type: 'device', id: deviceId, tenantId: row.tenant_id, deviceId, details })
        return { deviceId: row.id, tenantId: row.tenant_id, unlockTokenSealed: row.unlock_token_sealed, bootstrapTokenSealed: row.token_sealed }
      })
    },

    async unlockToken(scope, deviceId) {
      const row = await db
        .selectFrom('devices as d')
        .leftJoin('enrollments as e', (join) => join.onRef('e.id', '=', 'd.id').on('e.channel', '=', 'device'))
        .select(['d.tenant_id', 'e.unlock_token_sealed'])
        .where('d.id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      return row ? { tenantId: row.tenant_id, sealed: row.unlock_token_sealed } : undefined
    },

    async clearSecrets(limit) {
      const { rows } = await sql<ClearSecretRow>`
        (select 'enrollments' as "table", id, unlock_token as value from enrollments where unlock_token is not null limit ${limit})
        union all
        (select 'bootstrap_tokens' as "table", device_id as id, token as value from bootstrap_tokens where token is not null limit ${limit})`.execute(db)
      return rows.slice(0, limit)
    },

    async replaceClearSecret(row, sealed) {
      if (row.table === 'enrollments') {
        await db
          .updateTable('enrollments')
          .set({ unlock_token: null, unlock_token_sealed: sealed })
          .where('id', '=', row.id)
          .where('unlock_token', '=', row.value)
          .execute()
      } else {
        await db
          .updateTable('bootstrap_tokens')
          .set({ token: null, token_sealed: sealed })
          .where('device_id', '=', row.id)
          .where('token', '=', row.value)
          .execute()
      }
    },
  }
}
