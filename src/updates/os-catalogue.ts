// The OS release catalogue: Apple's software lookup document fetched from
// ORCHARD_OS_CATALOGUE_URL (scheduled, or on an admin's request) or imported by an admin (sites
// without Internet access), stored whole in one transaction; what fails to fetch or parse
// changes nothing. It answers which releases exist per platform, the latest one a model
// identifier can install, and which releases apply to the device models of a tenant.
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import { CatalogueFetchError, fetchCatalogueDocument, type CatalogueClientOptions, type CatalogueDocument } from './catalogue-client.js'
import type { CatalogueFetch, OsReleaseStore, ReleaseFilter } from './os-release-store.js'
import { CatalogueFormatError, parsePmvDocument, type OsRelease } from './pmv-document.js'

export type { CatalogueFetch } from './os-release-store.js'
export type { OsPlatform, OsRelease } from './pmv-document.js'

export interface CatalogueUpdate {
  source: string
  fetchedAt: Date
  releaseCount: number
  skippedCount: number
  problems: Array<{ pointer: string; detail: string }>
  ignoredPlatforms: string[]
  documentSha256: string
}

export interface ModelCount {
  /** As the catalogue lists it: the model identifier (iPad13,1), a Mac's SoftwareUpdateDeviceID (J413AP). */
  model: string
  devices: number
}

export interface ReleaseView extends OsRelease {
  /** ExpirationDate has passed: Apple no longer offers it. */
  expired: boolean
  /** The scope's device models it supports, and their managed devices. */
  models: ModelCount[]
  devices: number
}

export interface CatalogueView {
  /** The fetch the stored releases come from; undefined before the first. */
  catalogue: CatalogueFetch | undefined
  releases: ReleaseView[]
  /** Per platform, the newest release still offered (the newest at all when every one expired). */
  latest: ReleaseView[]
}

export interface CatalogueStatus {
  /** null: ORCHARD_OS_CATALOGUE_URL is off. */
  url: string | null
  scheduleSeconds: number
  lastAttempt: CatalogueFetch | undefined
  lastSuccess: CatalogueFetch | undefined
}

export interface OsCatalogue {
  /** Fetches the document now; throws OrchardError upstream_failed (502) and keeps the catalogue when that fails. */
  refresh(): Promise<CatalogueUpdate>
  /** Replaces the catalogue with an uploaded document; validation_failed (400) with a pointer when it is not usable. */
  importDocument(scope: AccessScope, document: unknown): Promise<CatalogueUpdate>
  releases(filter: ReleaseFilter): Promise<OsRelease[]>
  /** The newest release a model (iPad13,1; a Mac's SoftwareUpdateDeviceID, J413AP) can install, on any platform. */
  latestFor(model: string): Promise<OsRelease | undefined>
  /** The releases with the scope's device models each supports. */
  view(scope: AccessScope, filter: ReleaseFilter): Promise<CatalogueView>
  status(): Promise<CatalogueStatus>
  /** The scheduled refresh: fetches when the last success is older than the schedule (or there is none). */
  refreshIfStale(): Promise<void>
}

export interface OsCatalogueDeps {
  store: OsReleaseStore
  /** 'off': no fetching. */
  url: string
  scheduleSeconds: number
  client?: CatalogueClientOptions
  /** The catalogue was replaced: "latest" update policies may have a newer target. */
  replaced?: () => Promise<void>
  log: Logger
  now: () => Date
}

const today = (now: Date) => now.toISOString().slice(0, 10)

/** Per platform, the first (newest) release still offered, else the newest. */
function latestPerPlatform<T extends OsRelease & { expired: boolean }>(releases: readonly T[]): T[] {
  const latest = new Map<string, T>()
  for (const release of releases) {
    const held = latest.get(release.platform)
    if (!held || (held.expired && !release.expired)) latest.set(release.platform, release)
  }
  return [...latest.values()]
}

export function createOsCatalogue(deps: OsCatalogueDeps): OsCatalogue {
  const { store, log, now } = deps
  const url = deps.url === 'off' ? null : deps.url
  const expiredOn = (day: string) => (release: OsRelease) => release.expirationDate !== null && release.expirationDate < day

  async function replaceFrom(source: string, document: unknown, sha256: string, scope: AccessScope | null): Promise<CatalogueUpdate> {
    const parsed = parsePmvDocument(document)
    const fetchedAt = now()
    await store.replaceReleases(
      parsed.releases,
      { source, fetchedAt, releaseCount: parsed.releases.length, skippedCount: parsed.skipped, documentSha256: sha256 },
      scope,
    )
    const update = {
      source,
      fetchedAt,
      releaseCount: parsed.releases.length,
      skippedCount: parsed.skipped,
      problems: parsed.problems,
      ignoredPlatforms: parsed.ignoredPlatforms,
      documentSha256: sha256,
    }
    log.info(
      { source, releases: update.releaseCount, skipped: update.skippedCount, ignored_platforms: update.ignoredPlatforms },
      'OS release catalogue replaced',
    )
    if (parsed.skipped > 0) log.warn({ source, skipped: parsed.skipped, problems: parsed.problems.slice(0, 5) }, 'OS release catalogue: entries skipped')
    await deps.replaced?.()
    return update
  }

  async function refresh(): Promise<CatalogueUpdate> {
    if (url === null) throw new OrchardError('conflict', 'ORCHARD_OS_CATALOGUE_URL is off: import the document instead (POST /api/v1/os-releases/import)')
    let fetched: CatalogueDocument
    try {
      fetched = await fetchCatalogueDocument(url, deps.client)
      return await replaceFrom(url, fetched.document, fetched.sha256, null)
    } catch (error) {
      if (!(error instanceof CatalogueFetchError || error instanceof CatalogueFormatError)) throw error
      const reason =
        error instanceof CatalogueFormatError
          ? `GET ${url}: not Apple's software lookup document: ${error.message}${error.pointer ? ` (at ${error.pointer})` : ''}`
          : error.message
      await store.recordFailure(url, reason, now())
      log.warn({ source: url, err: error }, `OS release catalogue not refreshed: ${reason}`)
      throw new OrchardError('upstream_failed', `the OS release catalogue was not refreshed (the stored one is kept): ${reason}`, { cause: error })
    }
  }

  return {
    refresh,

    async importDocument(scope, document) {
      try {
        return await replaceFrom('import', document, createHash('sha256').update(JSON.stringify(document)).digest('hex'), scope)
      } catch (error) {
        if (!(error instanceof CatalogueFormatError)) throw error
        const detail = `not Apple's software lookup document (gdmf.apple.com/v2/pmv): ${error.message}`
        throw new OrchardError('validation_failed', `${detail}${error.pointer ? ` (at ${error.pointer})` : ''}; nothing was changed`, {
          details: { errors: [{ pointer: error.pointer, detail: error.message }] },
        })
      }
    },

    releases: (filter) => store.listReleases(filter),

    async latestFor(model) {
      const expired = expiredOn(today(now()))
      const candidates = (await store.listReleases({ model })).map((release) => ({ ...release, expired: expired(release) }))
      // Newest version first across platforms (a model has one platform; its releases are sorted).
      return latestPerPlatform(candidates)[0]
    },

    async view(scope, filter) {
      const [releases, models, { lastSuccess }] = await Promise.all([
        store.listReleases(filter),
        store.deviceModels(scope, filter.model !== undefined ? { model: filter.model } : {}),
        store.lastFetches(),
      ])
      const expired = expiredOn(today(now()))
      const views = releases.map((release): ReleaseView => {
        const supported = new Set(release.supportedDevices)
        const applicable = models.filter((entry) => supported.has(entry.model))
        return { ...release, expired: expired(release), models: applicable, devices: applicable.reduce((sum, entry) => sum + entry.devices, 0) }
      })
      return { catalogue: lastSuccess, releases: views, latest: latestPerPlatform(views) }
    },

    async status() {
      const { lastAttempt, lastSuccess } = await store.lastFetches()
      return { url, scheduleSeconds: deps.scheduleSeconds, lastAttempt, lastSuccess }
    },

    async refreshIfStale() {
      if (url === null || deps.scheduleSeconds <= 0) return
      const { lastSuccess } = await store.lastFetches()
      if (lastSuccess && now().getTime() - lastSuccess.fetchedAt.getTime() < deps.scheduleSeconds * 1000) return
      await refresh().catch((error: unknown) => {
        // Logged and recorded by refresh(); the next round tries again.
        if (!(error instanceof OrchardError)) throw error
      })
    },
  }
}
