// App updates: the newest version of each app that devices reported (app_versions), the
// blueprint apps naming an App Store id, and which devices have an app at which version.
import { sql, type Kysely } from 'kysely'
import type { BlueprintApplication, Database } from '../db/schema.js'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'
import { blueprintAppliesTo } from './blueprint-targeting-sql.js'

export interface AppVersionStore {
  /** The newest version devices reported, per bundle id (none: never reported). */
  knownVersions(bundleIds: readonly string[]): Promise<Map<string, string>>
  /**
   * Records `version` as the newest known when the known one is still `previous` (undefined:
   * none known yet); a concurrent newer report is not overwritten.
   */
  raiseKnownVersion(bundleId: string, version: string, previous: string | undefined, deviceId: string): Promise<void>
}

export interface DeviceWithApp {
  deviceId: string
  /** ShortVersion as the device reported it, else Version; null when it reported neither. */
  version: string | null
  /** The device holds an assigned Apps and Books licence for the asset. */
  licensed: boolean
}

export interface AppUpdateStore extends AppVersionStore {
  /** Blueprint apps in scope that install this App Store id (as vpp_asset or itunes_store_id). */
  blueprintApps(scope: AccessScope, adamId: string, blueprintId?: string): Promise<Array<{ blueprintId: string; app: BlueprintApplication }>>
  blueprintExists(scope: AccessScope, blueprintId: string): Promise<boolean>
  /**
   * Enrolled, active or lost devices in scope that report the app, narrowed to a tenant (null:
   * central IT's own) or to the devices a blueprint reaches.
   */
  devicesWithApp(scope: AccessScope, filter: { bundleId: string; adamId: string; tenantId?: string | null; blueprintId?: string }): Promise<DeviceWithApp[]>
}

export function createAppUpdateStore(db: Kysely<Database>): AppUpdateStore {
  return {
    async knownVersions(bundleIds) {
      if (bundleIds.length === 0) return new Map()
      const rows = await db.selectFrom('app_versions').select(['bundle_id', 'version']).where('bundle_id', 'in', bundleIds).execute()
      return new Map(rows.map((row) => [row.bundle_id, row.version]))
    },

    async raiseKnownVersion(bundleId, version, previous, deviceId) {
      const values = { version, reported_by: deviceId, learned_at: new Date() }
      if (previous === undefined) {
        await db
          .insertInto('app_versions')
          .values({ bundle_id: bundleId, ...values })
          .onConflict((oc) => oc.column('bundle_id').doNothing())
          .execute()
        return
      }
      await db.updateTable('app_versions').set(values).where('bundle_id', '=', bundleId).where('version', '=', previous).execute()
    },

    async blueprintApps(scope, adamId, blueprintId) {
      let query = db.selectFrom('blueprints as b').select(['b.id', 'b.applications']).where(inScope(scope, 'b.tenant_id'))
        .where(sql<boolean>`exists (select 1 from jsonb_array_elements(b.applications) as app
          where app ->> 'vpp_asset' = ${adamId} or app ->> 'itunes_store_id' = ${adamId})`)
      if (blueprintId !== undefined) query = query.where('b.id', '=', blueprintId)
      const rows = await query.orderBy('b.updated_at', 'desc').execute()
      return rows.flatMap((row) =>
        row.applications.filter((app) => app.vpp_asset === adamId || String(app.itunes_store_id) === adamId).map((app) => ({ blueprintId: row.id, app })),
      )
    },

    async blueprintExists(scope, blueprintId) {
      const row = await db.selectFrom('blueprints as b').select('b.id').where('b.id', '=', blueprintId).where(inScope(scope, 'b.tenant_id')).executeTakeFirst()
      return row !== undefined
    },

    async devicesWithApp(scope, filter) {
      let query = db
        .selectFrom('installed_applications as ia')
        .innerJoin('enrollments as e', (join) => join.onRef('e.id', '=', 'ia.enrollment_id').on('e.enabled', '=', true))
        .innerJoin('devices as d', 'd.id', 'ia.enrollment_id')
        .select([
          'd.id as deviceId',
          sql<string | null>`coalesce(ia.short_version, ia.version)`.as('version'),
          sql<boolean>`exists (select 1 from vpp_licences l where l.device_id = d.id and l.adam_id = ${filter.adamId} and l.state = 'assigned')`.as('licensed'),
        ])
        .where('ia.identifier', '=', filter.bundleId)
        .where('d.lifecycle_state', 'in', ['active', 'lost'])
        .where(inScope(scope, 'd.tenant_id'))
      if (filter.tenantId !== undefined) query = query.where('d.tenant_id', filter.tenantId === null ? 'is' : '=', filter.tenantId)
      if (filter.blueprintId !== undefined)
        query = query.where(sql<boolean>`exists (select 1 from blueprints b where b.id = ${filter.blueprintId} and ${blueprintAppliesTo})`)
      return query.orderBy('d.id').execute()
    },
  }
}
