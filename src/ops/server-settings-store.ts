// Installation-wide settings: one JSON value per key (table server_settings).
import { sql, type Kysely } from 'kysely'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database } from '../db/schema.js'

export interface ServerSettingsStore {
  /** undefined: no such setting. */
  getSetting(key: string): Promise<unknown>
  /** Writes the value and, for an admin caller, its audit row (installation-wide), in one transaction. */
  putSetting(scope: AccessScope, key: string, value: unknown): Promise<void>
}

export function createServerSettingsStore(db: Kysely<Database>): ServerSettingsStore {
  return {
    async getSetting(key) {
      const row = await db.selectFrom('server_settings').select('value').where('key', '=', key).executeTakeFirst()
      return row?.value
    },
    async putSetting(scope, key, value) {
      const json = JSON.stringify(value)
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('server_settings')
          .values({ key, value: json })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value: json, updated_at: sql<Date>`now()` }))
          .execute()
        await recordAdminWrite(trx, scope, { type: 'settings', id: key, tenantId: null, details: { [key]: value } })
      })
    },
  }
}
