// What Apple holds for each content token as of its last sync: the assets with their licence
// counts, and which serial numbers hold a licence of which asset. A sync writes pages as they
// come, stamped with the sync's time; rows a finished sync did not see are gone at Apple.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'

export interface VppAssetRecord {
  adamId: string
  pricingParam: string
  productType: string
  totalCount: number
  assignedCount: number
  availableCount: number
  retiredCount: number
  deviceAssignable: boolean
  revocable: boolean
  supportedPlatforms: string[]
}

export interface VppAssignmentRecord {
  adamId: string
  pricingParam: string
  serialNumber: string
}

export interface VppAssetView extends VppAssetRecord {
  tokenId: string
  tokenName: string
  tenantId: string | null
  locationName: string | null
  syncedAt: Date
}

export interface VppAssetFilter {
  tokenId?: string
  adamId?: string
  tenantId?: string | null
}

export interface VppAssetStore {
  saveAssets(tokenId: string, assets: readonly VppAssetRecord[], syncedAt: Date): Promise<void>
  saveAssignments(tokenId: string, assignments: readonly VppAssignmentRecord[], syncedAt: Date): Promise<void>
  /** After a complete sync: drops what the sync started at `syncedAt` did not see. */
  dropUnseen(tokenId: string, syncedAt: Date): Promise<{ assets: number; assignments: number }>
  listAssets(scope: AccessScope, filter: VppAssetFilter): Promise<VppAssetView[]>
  /** The serials holding licences of the tokens in scope (as synced), with the device Orchard knows by that serial. */
  licenceHolders(
    scope: AccessScope,
    filter: VppAssetFilter,
  ): Promise<Array<{ tokenId: string; adamId: string; pricingParam: string; serialNumber: string; deviceId: string | null }>>
  /** Device assignments per asset of the token, as synced. */
  assignmentCounts(tokenId: string): Promise<Map<string, number>>
}

/** Rows per insert statement: well under PostgreSQL's 65,535 bind parameters. */
const chunkRows = 1000

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += chunkRows) out.push(items.slice(i, i + chunkRows))
  return out
}

export function createVppAssetStore(db: Kysely<Database>): VppAssetStore {
  return {
    async saveAssets(tokenId, assets, syncedAt) {
      for (const part of chunks(assets)) {
        await db
          .insertInto('vpp_assets')
          .values(
            part.map((asset) => ({
              token_id: tokenId,
              adam_id: asset.adamId,
              pricing_param: asset.pricingParam,
              product_type: asset.productType,
              total_count: asset.totalCount,
              assigned_count: asset.assignedCount,
              available_count: asset.availableCount,
              retired_count: asset.retiredCount,
              device_assignable: asset.deviceAssignable,
              revocable: asset.revocable,
              supported_platforms: JSON.stringify(asset.supportedPlatforms),
              synced_at: syncedAt,
            })),
          )
          .onConflict((oc) =>
            oc.columns(['token_id', 'adam_id', 'pricing_param']).doUpdateSet((eb) => ({
              product_type: eb.ref('excluded.product_type'),
              total_count: eb.ref('excluded.total_count'),
              assigned_count: eb.ref('excluded.assigned_count'),
              available_count: eb.ref('excluded.available_count'),
              retired_count: eb.ref('excluded.retired_count'),
              device_assignable: eb.ref('excluded.device_assignable'),
              revocable: eb.ref('excluded.revocable'),
              supported_platforms: eb.ref('excluded.supported_platforms'),
              synced_at: eb.ref('excluded.synced_at'),
            })),
          )
          .execute()
      }
    },

    async saveAssignments(tokenId, assignments, syncedAt) {
      for (const part of chunks(assignments)) {
        await db
          .insertInto('vpp_assignments')
          .values(
            part.map((a) => ({ token_id: tokenId, adam_id: a.adamId, pricing_param: a.pricingParam, serial_number: a.serialNumber, synced_at: syncedAt })),
          )
          .onConflict((oc) => oc.columns(['token_id', 'adam_id', 'pricing_param', 'serial_number']).doUpdateSet({ synced_at: syncedAt }))
          .execute()
      }
    },

    async dropUnseen(tokenId, syncedAt) {
      return db.transaction().execute(async (trx) => {
        const assignments = await trx.deleteFrom('vpp_assignments').where('token_id', '=', tokenId).where('synced_at', '<', syncedAt).executeTakeFirst()
        const assets = await trx.deleteFrom('vpp_assets').where('token_id', '=', tokenId).where('synced_at', '<', syncedAt).executeTakeFirst()
        return { assets: Number(assets.numDeletedRows), assignments: Number(assignments.numDeletedRows) }
      })
    },

    async listAssets(scope, filter) {
      let query = db
        .selectFrom('vpp_assets as a')
        .innerJoin('vpp_tokens as t', 't.id', 'a.token_id')
        .selectAll('a')
        .select(['t.name as token_name', 't.tenant_id', 't.location_name'])
        .where(inScope(scope, 't.tenant_id'))
      if (filter.tokenId !== undefined) query = query.where('a.token_id', '=', filter.tokenId)
      if (filter.adamId !== undefined) query = query.where('a.adam_id', '=', filter.adamId)
      if (filter.tenantId !== undefined)
        query = filter.tenantId === null ? query.where('t.tenant_id', 'is', null) : query.where('t.tenant_id', '=', filter.tenantId)
      const rows = await query.orderBy('t.tenant_id').orderBy('a.token_id').orderBy('a.adam_id').orderBy('a.pricing_param').execute()
      return rows.map((row) => ({
        tokenId: row.token_id,
        tokenName: row.token_name,
        tenantId: row.tenant_id,
        locationName: row.location_name,
        adamId: row.adam_id,
        pricingParam: row.pricing_param,
        productType: row.product_type,
        totalCount: row.total_count,
        assignedCount: row.assigned_count,
        availableCount: row.available_count,
        retiredCount: row.retired_count,
        deviceAssignable: row.device_assignable,
        revocable: row.revocable,
        supportedPlatforms: row.supported_platforms,
        syncedAt: row.synced_at,
      }))
    },

    async licenceHolders(scope, filter) {
      let query = db
        .selectFrom('vpp_assignments as a')
        .innerJoin('vpp_tokens as t', 't.id', 'a.token_id')
        .select(['a.token_id', 'a.adam_id', 'a.pricing_param', 'a.serial_number'])
        .select((eb) =>
          eb.selectFrom('devices as d').select('d.id').whereRef('d.serial_number', '=', 'a.serial_number').orderBy('d.id').limit(1).as('device_id'),
        )
        .where(inScope(scope, 't.tenant_id'))
      if (filter.tokenId !== undefined) query = query.where('a.token_id', '=', filter.tokenId)
      if (filter.adamId !== undefined) query = query.where('a.adam_id', '=', filter.adamId)
      if (filter.tenantId !== undefined)
        query = filter.tenantId === null ? query.where('t.tenant_id', 'is', null) : query.where('t.tenant_id', '=', filter.tenantId)
      const rows = await query.orderBy('a.token_id').orderBy('a.adam_id').orderBy('a.pricing_param').orderBy('a.serial_number').execute()
      return rows.map((row) => ({
        tokenId: row.token_id,
        adamId: row.adam_id,
        pricingParam: row.pricing_param,
        serialNumber: row.serial_number,
        deviceId: row.device_id,
      }))
    },

    async assignmentCounts(tokenId) {
      const rows = await db
        .selectFrom('vpp_assignments')
        .select(['adam_id', 'pricing_param', (eb) => eb.fn.countAll<string>().as('count')])
        .where('token_id', '=', tokenId)
        .groupBy(['adam_id', 'pricing_param'])
        .execute()
      return new Map(rows.map((row) => [`${row.adam_id}:${row.pricing_param}`, Number(row.count)]))
    },
  }
}
