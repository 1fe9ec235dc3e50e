// Inventory parsed from query responses (the raw reports stay in command_targets).
import { sql, type Kysely } from 'kysely'
import type { InventoryUpdate } from '../mdm/inventory.js'
import type { Database } from './schema.js'

export interface InventoryStore {
  /** Applies one query response's inventory to the device (device information, security) or channel (lists). */
  applyInventory(deviceId: string, enrollmentId: string, update: InventoryUpdate): Promise<void>
}

export function createInventoryStore(db: Kysely<Database>): InventoryStore {
  return {
    async applyInventory(deviceId, enrollmentId, update) {
      switch (update.kind) {
        case 'device_information': {
          const f = update.facts
          // Only the device channel's answer describes the device (a user channel's is about the user).
          if (deviceId !== enrollmentId) return
          await sql`
            update devices set
              device_name = coalesce(${f.deviceName ?? null}, device_name),
              os_version = coalesce(${f.osVersion ?? null}, os_version),
              build_version = coalesce(${f.buildVersion ?? null}, build_version),
              model = coalesce(${f.model ?? null}, model),
              model_name = coalesce(${f.modelName ?? null}, model_name),
              product_name = coalesce(${f.productName ?? null}, product_name),
              serial_number = coalesce(${f.serialNumber ?? null}, serial_number),
              imei = coalesce(${f.imei ?? null}, imei),
              meid = coalesce(${f.meid ?? null}, meid),
              is_supervised = coalesce(${f.isSupervised ?? null}::boolean, is_supervised),
              device_information = coalesce(device_information, '{}'::jsonb) || ${JSON.stringify(f.all)}::text::jsonb,
              device_information_at = now(),
              updated_at = now()
            where id = ${deviceId}`.execute(db)
          return
        }
        case 'security_info':
          if (deviceId !== enrollmentId) return
          await db
            .updateTable('devices')
            .set({ security_info: JSON.stringify(update.info), security_info_at: sql`now()`, updated_at: sql`now()` })
            .where('id', '=', deviceId)
            .execute()
          return
        case 'applications':
          await db.transaction().execute(async (trx) => {
            await trx.deleteFrom('installed_applications').where('enrollment_id', '=', enrollmentId).execute()
            const rows = dedupe(update.applications, (a) => a.identifier).map((a) => ({
              enrollment_id: enrollmentId,
              identifier: a.identifier,
              name: a.name ?? null,
              version: a.version ?? null,
              short_version: a.shortVersion ?? null,
              bundle_size: a.bundleSize ?? null,
              is_managed: a.isManaged ?? null,
              attributes: JSON.stringify(a.attributes),
            }))
            for (const chunk of chunks(rows, 500)) await trx.insertInto('installed_applications').values(chunk).execute()
          })
          return
        case 'profiles':
          await db.transaction().execute(async (trx) => {
            await trx.deleteFrom('installed_profiles').where('enrollment_id', '=', enrollmentId).execute()
            const rows = dedupe(update.profiles, (p) => p.identifier).map((p) => ({
              enrollment_id: enrollmentId,
              identifier: p.identifier,
              uuid: p.uuid ?? null,
              display_name: p.displayName ?? null,
              is_managed: p.isManaged ?? null,
              attributes: JSON.stringify(p.attributes),
            }))
            for (const chunk of chunks(rows, 500)) await trx.insertInto('installed_profiles').values(chunk).execute()
          })
          return
        case 'certificates':
          await db.transaction().execute(async (trx) => {
            await trx.deleteFrom('installed_certificates').where('enrollment_id', '=', enrollmentId).execute()
            const rows = dedupe(update.certificates, (c) => c.sha256).map((c) => ({
              enrollment_id: enrollmentId,
              sha256: c.sha256,
              common_name: c.commonName ?? null,
              is_identity: c.isIdentity ?? null,
              data: c.data,
            }))
            for (const chunk of chunks(rows, 500)) await trx.insertInto('installed_certificates').values(chunk).execute()
          })
          return
      }
    },
  }
}

function dedupe<T>(items: T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>()
  for (const item of items) seen.set(key(item), item)
  return [...seen.values()]
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
