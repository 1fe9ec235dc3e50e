// Installation-wide settings: one JSON value per key (table server_settings).
import { sql, type Kysely } from 'kysely'
import type { Database } from './schema.js'

export interface ServerSettingsStore {
  getSetting(key: string): Promise<unknown | undefined>
  putSetting(key: string, value: unknown): Promise<void>
}

export function createServerSettingsStore(db: Kysely<Database>): ServerSettingsStore {
  return {
    async getSetting(key) {
      const row = await db.selectFrom('server_settings').select('value').where('key', '=', key).executeTakeFirst()
      return row?.value
    },
    async putSetting(key, value) {
      const json = JSON.stringify(value)
      await db
        .insertInto('server_settings')
        .values({ key, value: json })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: json, updated_at: sql<Date>`now()` }))
        .execute()
    },
  }
}
