// Offboarding's own storage: a person's devices (the leavers action), an offboarding ending
// with the device retired, the progress kept in the action's details, and the audit row of a
// bulk call. The lifecycle actions themselves are lifecycle-action-store.ts's rows.
import { sql, type Kysely } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database } from '../db/schema.js'
import { createLifecycleDeviceStore } from './lifecycle-device-store.js'
import { setLifecycleState } from './lifecycle-shared-store.js'

/** How a device was found to be the person's. */
export type PersonMatch = 'user_email' | 'managed_apple_id' | 'user_channel'

export interface OffboardingStore {
  /**
   * The devices in scope that belong to `person`: its user_email, the Managed Apple ID of the
   * User Enrollment link it came through, or a user channel of that user (UserID or
   * UserShortName; not on function devices, which many people share). Case-insensitive.
   */
  personDevices(scope: AccessScope, person: string): Promise<Array<{ deviceId: string; matchedBy: PersonMatch }>>
  /** Ends a pending offboarding (completed, or failed) with the device retired and no longer managed; false when it was not pending. */
  retireOffboarded(actionId: string, status: 'completed' | 'failed', at: Date, details: Record<string, unknown>): Promise<boolean>
  /** Merges progress into a pending action's details. */
  updateDetails(actionId: string, details: Record<string, unknown>): Promise<void>
  /** The audit row of a bulk offboarding call itself (its targets and outcomes). */
  recordBulk(scope: AccessScope, tenantId: string | null, details: Record<string, unknown>): Promise<void>
}

/** Most devices one person is expected to have; more is a sign the identifier is not a person's. */
export const personDeviceLimit = 500

const mergedDetails = (details: Record<string, unknown>) => sql`coalesce(details, '{}'::jsonb) || ${JSON.stringify(details)}::jsonb` as never

export function createOffboardingStore(db: Kysely<Database>): OffboardingStore {
  const devices = createLifecycleDeviceStore(db)
  return {
    async personDevices(scope, person) {
      const key = person.toLowerCase()
      const rows = await db
        .selectFrom('devices as d')
        .leftJoin('enrollment_links as l', 'l.id', 'd.enrollment_link_id')
        .select([
          'd.id',
          sql<PersonMatch>`case when lower(d.user_email) = ${key} then 'user_email'
            when lower(l.managed_apple_id) = ${key} then 'managed_apple_id' else 'user_channel' end`.as('matched_by'),
        ])
        .where(inScope(scope, 'd.tenant_id'))
        .where((eb) =>
          eb.or([
            eb(sql`lower(d.user_email)`, '=', key),
            eb(sql`lower(l.managed_apple_id)`, '=', key),
            eb.and([
              eb('d.kind', '<>', 'function'),
              eb.exists(
                eb
                  .selectFrom('enrollments as e')
                  .select('e.id')
                  .whereRef('e.device_id', '=', 'd.id')
                  .where('e.channel', '=', 'user')
                  .where((inner) => inner.or([inner('e.user_id', '=', person), inner(sql`lower(e.user_short_name)`, '=', key)])),
              ),
            ]),
          ]),
        )
        .orderBy('d.id')
        .limit(personDeviceLimit + 1)
        .execute()
      return rows.map((row) => ({ deviceId: row.id, matchedBy: row.matched_by }))
    },

    async retireOffboarded(actionId, status, at, details) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('lifecycle_actions')
          .set({ status, completed_at: at, details: mergedDetails(details) })
          .where('id', '=', actionId)
          .where('status', '=', 'pending')
          .returning('device_id')
          .executeTakeFirst()
        if (!row) return false
        await trx.updateTable('devices').set({ retired_at: at }).where('id', '=', row.device_id).execute()
        await setLifecycleState(trx, row.device_id, 'retired', at)
        await devices.stopManaging(trx, row.device_id, at, 'device offboarded')
        return true
      })
    },

    async updateDetails(actionId, details) {
      await db
        .updateTable('lifecycle_actions')
        .set({ details: mergedDetails(details) })
        .where('id', '=', actionId)
        .where('status', '=', 'pending')
        .execute()
    },

    async recordBulk(scope, tenantId, details) {
      await db.transaction().execute((trx) => recordAdminWrite(trx, scope, { type: 'offboarding', id: null, tenantId, details }))
    },
  }
}
