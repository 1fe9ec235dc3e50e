// The devices the scheduled inventory refresh asks again (inventory-refresh.ts).
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { openCommandStatuses } from '../model/commands.js'

export interface InventoryRefreshStore {
  /**
   * Enrolled, active devices whose DeviceInformation answer is older than `olderThan` (or
   * missing), oldest first, at most `limit`; leaves out a device that still has a
   * DeviceInformation open, or was asked for one since `olderThan` (it answered an error or
   * has not answered yet: asked again at the next period, not at every run).
   */
  staleDevices(olderThan: Date, limit: number): Promise<string[]>
}

export function createInventoryRefreshStore(db: Kysely<Database>): InventoryRefreshStore {
  return {
    async staleDevices(olderThan, limit) {
      const rows = await db
        .selectFrom('devices as d')
        .innerJoin('enrollments as e', 'e.id', 'd.id')
        .select('d.id')
        .where('e.enabled', '=', true)
        .where('d.lifecycle_state', '=', 'active')
        .where((eb) => eb.or([eb('d.device_information_at', 'is', null), eb('d.device_information_at', '<', olderThan)]))
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('command_targets as ct')
                .innerJoin('commands as c', 'c.uuid', 'ct.command_uuid')
                .select(sql.lit(1).as('one'))
                .whereRef('ct.enrollment_id', '=', 'd.id')
                .where('c.request_type', '=', 'DeviceInformation')
                .where((eb) => eb.or([eb('ct.status', 'in', openCommandStatuses), eb('ct.created_at', '>=', olderThan)])),
            ),
          ),
        )
        .orderBy(sql`d.device_information_at asc nulls first`)
        .orderBy('d.id')
        .limit(limit)
        .execute()
      return rows.map((row) => row.id)
    },
  }
}
