// The locations devices reported (DeviceLocation answers in Lost Mode), newest first.
import type { Kysely, Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import type { Database } from '../db/schema.js'

export interface LocationInput {
  deviceId: string
  commandUuid: string | null
  latitude: number
  longitude: number
  horizontalAccuracy: number | null
  verticalAccuracy: number | null
  altitude: number | null
  speed: number | null
  course: number | null
  locatedAt: Date | null
}

export type LocationRow = Selectable<Database['device_locations']>

export interface DeviceLocationStore {
  recordLocation(location: LocationInput): Promise<void>
  listLocations(scope: AccessScope, deviceId: string, limit: number): Promise<LocationRow[]>
}

export function createDeviceLocationStore(db: Kysely<Database>): DeviceLocationStore {
  return {
    async recordLocation(location) {
      await db
        .insertInto('device_locations')
        .values({
          device_id: location.deviceId,
          command_uuid: location.commandUuid,
          latitude: location.latitude,
          longitude: location.longitude,
          horizontal_accuracy: location.horizontalAccuracy,
          vertical_accuracy: location.verticalAccuracy,
          altitude: location.altitude,
          speed: location.speed,
          course: location.course,
          located_at: location.locatedAt,
        })
        .execute()
    },

    async listLocations(scope, deviceId, limit) {
      return db
        .selectFrom('device_locations as l')
        .innerJoin('devices as d', 'd.id', 'l.device_id')
        .selectAll('l')
        .where('l.device_id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .orderBy('l.id', 'desc')
        .limit(limit)
        .execute()
    },
  }
}
