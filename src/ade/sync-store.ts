// The ABM/ASM device sync of a token: which tokens are due, the lease that keeps one
// instance syncing a token, the fetch/sync cursor, and applying the device records of a page.
import type { Kysely } from 'kysely'
import type { AbmDevice } from './abm-client.js'
import type { Database } from '../db/schema.js'
import { leaseFreeFor } from '../db/lease-sql.js'
import type { DepTokenRow } from './shared-store.js'

export interface SyncCursorState {
  phase: 'fetch' | 'sync'
  cursor: string | null
  fetchCompletedAt?: Date
  syncedAt?: Date
}

export interface SyncStore {
  /** Tokens with credentials whose retry_after (if any) has passed. */
  tokensToSync(now: Date): Promise<DepTokenRow[]>
  /** Takes (or renews) the token's sync lease for `owner` unless another owner holds a live one. */
  claimSyncLease(id: string, owner: string, now: Date, until: Date): Promise<DepTokenRow | undefined>
  releaseSyncLease(id: string, owner: string): Promise<void>
  /** Saves the cursor while `owner` holds the lease; false when the lease was lost. */
  saveCursor(id: string, owner: string, state: SyncCursorState): Promise<boolean>
  /** Applies fetched or synced records; returns the serials this token did not have before (or had removed). */
  applyDevices(tokenId: string, devices: readonly AbmDevice[], now: Date): Promise<string[]>
}

const date = (value: string | undefined): Date | null => {
  if (!value) return null
  const parsed = new Date(value)
  return Number.isNaN(parsed.getTime()) ? null : parsed
}
const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value.slice(0, 500) : null)

/** Sync may repeat a serial: the record with the latest op_date is its state (Apple's rule). */
function latestBySerial(devices: readonly AbmDevice[]): Map<string, AbmDevice> {
  const latest = new Map<string, AbmDevice>()
  for (const device of devices) {
    const seen = latest.get(device.serial_number)
    if (!seen || (date(device.op_date)?.getTime() ?? 0) >= (date(seen.op_date)?.getTime() ?? 0)) latest.set(device.serial_number, device)
  }
  return latest
}

/** One dep_devices row of an Apple device record. */
function deviceRow(tokenId: string, device: AbmDevice, now: Date) {
  return {
    serial_number: device.serial_number,
    token_id: tokenId,
    model: text(device.model),
    description: text(device.description),
    color: text(device.color),
    asset_tag: text(device.asset_tag),
    os: text(device.os),
    device_family: text(device.device_family),
    profile_status: text(device.profile_status),
    profile_uuid: text(device.profile_uuid),
    profile_assign_time: date(device.profile_assign_time),
    profile_push_time: date(device.profile_push_time),
    device_assigned_by: text(device.device_assigned_by),
    device_assigned_date: date(device.device_assigned_date),
    op_type: device.op_type ?? null,
    op_date: date(device.op_date),
    removed_at: null,
    raw: JSON.stringify(device),
    updated_at: now,
  }
}

export function createSyncStore(db: Kysely<Database>): SyncStore {
  return {
    async tokensToSync(now) {
      return db
        .selectFrom('dep_tokens')
        .selectAll()
        .where('credentials_sealed', 'is not', null)
        .where((eb) => eb.or([eb('retry_after', 'is', null), eb('retry_after', '<=', now)]))
        .orderBy('id')
        .execute()
    },

    async claimSyncLease(id, owner, now, until) {
      return db
        .updateTable('dep_tokens')
        .set({ sync_lease_owner: owner, sync_lease_until: until })
        .where('id', '=', id)
        .where(leaseFreeFor(owner, now))
        .returningAll()
        .executeTakeFirst()
    },

    async releaseSyncLease(id, owner) {
      await db
        .updateTable('dep_tokens')
        .set({ sync_lease_owner: null, sync_lease_until: null })
        .where('id', '=', id)
        .where('sync_lease_owner', '=', owner)
        .execute()
    },

    async saveCursor(id, owner, state) {
      const updated = await db
        .updateTable('dep_tokens')
        .set({
          sync_phase: state.phase,
          cursor: state.cursor,
          ...(state.fetchCompletedAt ? { last_fetch_completed_at: state.fetchCompletedAt } : {}),
          ...(state.syncedAt ? { last_sync_at: state.syncedAt } : {}),
          updated_at: new Date(),
        })
        .where('id', '=', id)
        .where('sync_lease_owner', '=', owner)
        .returning('id')
        .execute()
      return updated.length > 0
    },

    async applyDevices(tokenId, devices, now) {
      if (devices.length === 0) return []
      const latest = latestBySerial(devices)
      const serials = [...latest.keys()]
      return db.transaction().execute(async (trx) => {
        const before = await trx
          .selectFrom('dep_devices')
          .select(['serial_number', 'token_id', 'removed_at'])
          .where('serial_number', 'in', serials)
          .forUpdate()
          .execute()
        const known = new Map(before.map((row) => [row.serial_number, row]))
        const records = [...latest.values()]
        // Only the token that has a device can lose it (it may have moved to another already).
        const deleted = records.filter((device) => device.op_type === 'deleted' && known.get(device.serial_number)?.token_id === tokenId)
        const present = records.filter((device) => device.op_type !== 'deleted')
        const added = present.filter((device) => {
          const previous = known.get(device.serial_number)
          return !previous || previous.token_id !== tokenId || previous.removed_at !== null
        })
        for (const device of deleted) {
          await trx
            .updateTable('dep_devices')
            .set({ op_type: 'deleted', op_date: date(device.op_date), removed_at: now, raw: JSON.stringify(device), updated_at: now })
            .where('serial_number', '=', device.serial_number)
            .execute()
        }
        if (present.length > 0) {
          // One statement per page: a full fetch of a large organisation is thousands of rows.
          await trx
            .insertInto('dep_devices')
            .values(present.map((device) => deviceRow(tokenId, device, now)))
            .onConflict((oc) =>
              oc.column('serial_number').doUpdateSet((eb) => ({
                token_id: eb.ref('excluded.token_id'),
                model: eb.ref('excluded.model'),
                description: eb.ref('excluded.description'),
                color: eb.ref('excluded.color'),
                asset_tag: eb.ref('excluded.asset_tag'),
                os: eb.ref('excluded.os'),
                device_family: eb.ref('excluded.device_family'),
                profile_status: eb.ref('excluded.profile_status'),
                profile_uuid: eb.ref('excluded.profile_uuid'),
                profile_assign_time: eb.ref('excluded.profile_assign_time'),
                profile_push_time: eb.ref('excluded.profile_push_time'),
                device_assigned_by: eb.ref('excluded.device_assigned_by'),
                device_assigned_date: eb.ref('excluded.device_assigned_date'),
                op_type: eb.ref('excluded.op_type'),
                op_date: eb.ref('excluded.op_date'),
                removed_at: eb.ref('excluded.removed_at'),
                raw: eb.ref('excluded.raw'),
                updated_at: eb.ref('excluded.updated_at'),
              })),
            )
            .execute()
        }
        return added.map((device) => device.serial_number)
      })
    },
  }
}
