// Inventory parsed from query responses (the raw reports stay in command_targets).
import { createHash } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import type { InventoryUpdate } from '../mdm/inventory.js'
import { preparedStatement } from '../db/statement-names.js'
import type { Database } from '../db/schema.js'

export interface InventoryStore {
  /** Applies one query response's inventory to the device (device information, security) or channel (lists). */
  applyInventory(deviceId: string, enrollmentId: string, update: InventoryUpdate): Promise<void>
}

/** The device's phone numbers (device search), as its last DeviceInformation gave them. */
async function replacePhoneNumbers(db: Kysely<Database>, deviceId: string, numbers: readonly string[]): Promise<void> {
  await sql`
    with gone as (delete from device_phone_numbers where device_id = ${deviceId} and not (digits = any(${numbers}::text[])))
    insert into device_phone_numbers (device_id, digits)
    select ${deviceId}, n from unnest(${numbers}::text[]) n
    on conflict do nothing`.execute(db)
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
              software_update_device_id = coalesce(${f.softwareUpdateDeviceId ?? null}, software_update_device_id),
              serial_number = coalesce(${f.serialNumber ?? null}, serial_number),
              imei = coalesce(${f.imei ?? null}, imei),
              meid = coalesce(${f.meid ?? null}, meid),
              is_supervised = coalesce(${f.isSupervised ?? null}::boolean, is_supervised),
              device_information = coalesce(device_information, '{}'::jsonb) || ${JSON.stringify(f.all)}::text::jsonb,
              device_information_at = now(),
              updated_at = now()
            where id = ${deviceId}`.execute(db)
          if (f.phoneNumbers !== undefined) await replacePhoneNumbers(db, deviceId, f.phoneNumbers)
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
        case 'applications': {
          // One statement per list: write what differs from the stored rows, delete what the device no longer has.
          // A list repeats mostly what is stored, and an upsert that finds an unchanged row still writes it
          // (a new row version, its index entries and WAL: 150 apps cost ~5 ms of PostgreSQL per answer).
          const applications = JSON.stringify(dedupe(update.applications, (a) => a.identifier))
          await sql`${sql.raw(preparedStatement)}
            with ${listDigest(enrollmentId, 'applications', applications)},
            incoming as (
              select * from jsonb_to_recordset((select ${applications}::text::jsonb from digest))
                as x(identifier text, name text, version text, "shortVersion" text, "bundleSize" bigint, "isManaged" boolean, attributes jsonb)
            ),
            changed as (
              select i.* from incoming i
                left join installed_applications s on s.enrollment_id = ${enrollmentId}::text and s.identifier = i.identifier
              where s.identifier is null or (s.name, s.version, s.short_version, s.bundle_size, s.is_managed, s.attributes)
                is distinct from (i.name, i.version, i."shortVersion", i."bundleSize", i."isManaged", i.attributes)
            ),
            upserted as (
              insert into installed_applications (enrollment_id, identifier, name, version, short_version, bundle_size, is_managed, attributes)
              select ${enrollmentId}::text, identifier, name, version, "shortVersion", "bundleSize", "isManaged", attributes from changed
              on conflict (enrollment_id, identifier) do update set name = excluded.name, version = excluded.version,
                short_version = excluded.short_version, bundle_size = excluded.bundle_size, is_managed = excluded.is_managed,
                attributes = excluded.attributes, updated_at = now()
            )
            delete from installed_applications
            where enrollment_id = ${enrollmentId}::text and exists (select from digest) and identifier not in (select identifier from incoming)`.execute(db)
          return
        }
        case 'profiles': {
          const profiles = JSON.stringify(dedupe(update.profiles, (p) => p.identifier))
          await sql`${sql.raw(preparedStatement)}
            with ${listDigest(enrollmentId, 'profiles', profiles)},
            incoming as (
              select * from jsonb_to_recordset((select ${profiles}::text::jsonb from digest))
                as x(identifier text, uuid text, "displayName" text, "isManaged" boolean, attributes jsonb)
            ),
            changed as (
              select i.* from incoming i
                left join installed_profiles s on s.enrollment_id = ${enrollmentId}::text and s.identifier = i.identifier
              where s.identifier is null
                or (s.uuid, s.display_name, s.is_managed, s.attributes) is distinct from (i.uuid, i."displayName", i."isManaged", i.attributes)
            ),
            upserted as (
              insert into installed_profiles (enrollment_id, identifier, uuid, display_name, is_managed, attributes)
              select ${enrollmentId}::text, identifier, uuid, "displayName", "isManaged", attributes from changed
              on conflict (enrollment_id, identifier) do update set uuid = excluded.uuid, display_name = excluded.display_name,
                is_managed = excluded.is_managed, attributes = excluded.attributes, updated_at = now()
            )
            delete from installed_profiles
            where enrollment_id = ${enrollmentId}::text and exists (select from digest) and identifier not in (select identifier from incoming)`.execute(db)
          return
        }
        case 'certificates': {
          const certificates = JSON.stringify(dedupe(update.certificates, (c) => c.sha256).map((c) => ({ ...c, data: c.data.toString('base64') })))
          await sql`${sql.raw(preparedStatement)}
            with ${listDigest(enrollmentId, 'certificates', certificates)},
            incoming as (
              select * from jsonb_to_recordset((select ${certificates}::text::jsonb from digest))
                as x(sha256 text, "commonName" text, "isIdentity" boolean, data text)
            ),
            changed as (
              select i.* from incoming i
                left join installed_certificates s on s.enrollment_id = ${enrollmentId}::text and s.sha256 = i.sha256
              where s.sha256 is null or (s.common_name, s.is_identity) is distinct from (i."commonName", i."isIdentity")
            ),
            upserted as (
              insert into installed_certificates (enrollment_id, sha256, common_name, is_identity, data)
              select ${enrollmentId}::text, sha256, "commonName", "isIdentity", decode(data, 'base64') from changed
              on conflict (enrollment_id, sha256) do update set common_name = excluded.common_name,
                is_identity = excluded.is_identity, updated_at = now()
            )
            delete from installed_certificates
            where enrollment_id = ${enrollmentId}::text and exists (select from digest) and sha256 not in (select sha256 from incoming)`.execute(db)
          return
        }
      }
    },
  }
}

/**
 * The `digest` CTE of a list statement: the channel's list keeps the SHA-256 of the answer it
 * was last written from (migration 0029). A list sent again unchanged updates nothing and the
 * CTE has no row; the statement's other parts read the list from `(select ... from digest)` and
 * delete only when it has one, so they then do nothing, not even parse the JSON.
 */
function listDigest(enrollmentId: string, list: 'applications' | 'profiles' | 'certificates', json: string) {
  const digest = createHash('sha256').update(json).digest()
  return sql`digest as (
              insert into inventory_list_digests (enrollment_id, list, sha256) values (${enrollmentId}, ${list}, ${digest})
              on conflict (enrollment_id, list) do update set sha256 = excluded.sha256
                where inventory_list_digests.sha256 <> excluded.sha256
              returning 1
            )`
}

function dedupe<T>(items: T[], key: (item: T) => string): T[] {
  const seen = new Map<string, T>()
  for (const item of items) seen.set(key(item), item)
  return [...seen.values()]
}
