// The OS release catalogue (table os_releases), replaced whole in one transaction, the log of
// its fetches (os_catalogue_fetches), and the device models of a scope the releases apply to.
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'
import { catalogueModel } from '../model/os-update.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { OsPlatform, OsRelease } from './pmv-document.js'

export interface CatalogueFetch {
  /** The URL fetched, or 'import'. */
  source: string
  fetchedAt: Date
  outcome: 'ok' | 'failed'
  releaseCount: number | null
  skippedCount: number | null
  /** Of the bytes fetched; of the JSON text for an import. */
  documentSha256: string | null
  error: string | null
}

export interface ReleaseFilter {
  platform?: OsPlatform
  /** Releases whose SupportedDevices hold this model identifier. */
  model?: string
}

export interface OsReleaseStore {
  /**
   * Replaces every release with `releases` and logs the fetch, in one transaction; with an
   * admin's scope (an import) the audit row too.
   */
  replaceReleases(releases: readonly OsRelease[], fetch: Omit<CatalogueFetch, 'outcome' | 'error'>, scope: AccessScope | null): Promise<void>
  /** Logs a fetch that changed nothing. */
  recordFailure(source: string, error: string, at: Date): Promise<void>
  /** By platform, newest version first (public before asset for the same version). */
  listReleases(filter: ReleaseFilter): Promise<OsRelease[]>
  /**
   * Managed devices (enrolled, not wiped or retired) in scope per model as the catalogue lists it
   * (catalogueModel: a Mac's SoftwareUpdateDeviceID, else the model identifier).
   */
  deviceModels(scope: AccessScope, filter: { model?: string }): Promise<Array<{ model: string; devices: number }>>
  lastFetches(): Promise<{ lastAttempt: CatalogueFetch | undefined; lastSuccess: CatalogueFetch | undefined }>
}

/** Rows per insert statement (7 parameters each, far below Postgres' 65,535). */
const insertBatch = 500
/** The fetch log keeps this many rows. */
const fetchLogRows = 200

export function createOsReleaseStore(db: Kysely<Database>): OsReleaseStore {
  const fetchColumns = [
    'source',
    'fetched_at as fetchedAt',
    'outcome',
    'release_count as releaseCount',
    'skipped_count as skippedCount',
    'document_sha256 as documentSha256',
    'error',
  ] as const

  async function pruneLog(executor: Kysely<Database>): Promise<void> {
    await sql`delete from os_catalogue_fetches where id not in (
      select id from os_catalogue_fetches order by fetched_at desc, id desc limit ${fetchLogRows})`.execute(executor)
  }

  return {
    async replaceReleases(releases, fetch, scope) {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('os_releases').execute()
        for (let i = 0; i < releases.length; i += insertBatch) {
          await trx
            .insertInto('os_releases')
            .values(
              releases.slice(i, i + insertBatch).map((release) => ({
                platform: release.platform,
                asset_set: release.set,
                product_version: release.productVersion,
                build: release.build,
                posting_date: release.postingDate,
                expiration_date: release.expirationDate,
                supported_devices: release.supportedDevices,
              })),
            )
            .execute()
        }
        await trx
          .insertInto('os_catalogue_fetches')
          .values({
            source: fetch.source,
            fetched_at: fetch.fetchedAt,
            outcome: 'ok',
            release_count: fetch.releaseCount,
            skipped_count: fetch.skippedCount,
            document_sha256: fetch.documentSha256,
            error: null,
          })
          .execute()
        await pruneLog(trx)
        if (scope)
          await recordAdminWrite(trx, scope, {
            type: 'os_catalogue',
            id: null,
            tenantId: null,
            details: { releases: fetch.releaseCount, skipped: fetch.skippedCount, sha256: fetch.documentSha256 },
          })
      })
    },

    async recordFailure(source, error, at) {
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('os_catalogue_fetches')
          .values({ source: source.slice(0, 2000), fetched_at: at, outcome: 'failed', error: error.slice(0, 2000) || 'failed' })
          .execute()
        await pruneLog(trx)
      })
    },

    async listReleases(filter) {
      let query = db
        .selectFrom('os_releases')
        .select([
          'platform',
          'asset_set as set',
          'product_version as productVersion',
          'build',
          sql<string>`posting_date::text`.as('postingDate'),
          sql<string | null>`expiration_date::text`.as('expirationDate'),
          'supported_devices as supportedDevices',
        ])
      if (filter.platform !== undefined) query = query.where('platform', '=', filter.platform)
      if (filter.model !== undefined) query = query.where(sql<boolean>`supported_devices @> array[${filter.model}]::text[]`)
      return query.orderBy('platform').orderBy('version_key', 'desc').orderBy('asset_set', 'desc').orderBy('build').execute()
    },

    async deviceModels(scope, filter) {
      const productName = sql<string>`coalesce(d.product_name, d.model)`
      let query = db
        .selectFrom('devices as d')
        .innerJoin('enrollments as e', (join) => join.onRef('e.id', '=', 'd.id').on('e.enabled', '=', true))
        .where(inScope(scope, 'd.tenant_id'))
        .where('d.lifecycle_state', 'not in', ['wiped', 'retired'])
        .where(sql<boolean>`${productName} is not null`)
      // Either may be the catalogue's key; catalogueModel below says which.
      if (filter.model !== undefined) query = query.where(sql<boolean>`(${productName} = ${filter.model} or d.software_update_device_id = ${filter.model})`)
      const rows = await query
        .select([productName.as('productName'), 'd.software_update_device_id as softwareUpdateDeviceId', sql<string>`count(*)`.as('devices')])
        .groupBy([sql`1`, sql`2`])
        .execute()
      const counts = new Map<string, number>()
      for (const row of rows) {
        const model = catalogueModel(row)!
        if (filter.model === undefined || model === filter.model) counts.set(model, (counts.get(model) ?? 0) + Number(row.devices))
      }
      return [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([model, devices]) => ({ model, devices }))
    },

    async lastFetches() {
      const [lastAttempt, lastSuccess] = await Promise.all([
        db.selectFrom('os_catalogue_fetches').select(fetchColumns).orderBy('fetched_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst(),
        db
          .selectFrom('os_catalogue_fetches')
          .select(fetchColumns)
          .where('outcome', '=', 'ok')
          .orderBy('fetched_at', 'desc')
          .orderBy('id', 'desc')
          .limit(1)
          .executeTakeFirst(),
      ])
      return { lastAttempt, lastSuccess }
    },
  }
}
