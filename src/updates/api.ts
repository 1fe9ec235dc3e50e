// Admin API: the OS release catalogue, which releases apply to the caller's device models, its
// import (sites without access to Apple) and refresh, and the status of its last fetch.
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import type { CatalogueFetch, CatalogueUpdate, OsCatalogue, ReleaseView } from './os-catalogue.js'

function releaseJson(release: ReleaseView) {
  return {
    platform: release.platform,
    set: release.set,
    product_version: release.productVersion,
    build: release.build,
    posting_date: release.postingDate,
    expiration_date: release.expirationDate,
    expired: release.expired,
    supported_devices: release.supportedDevices,
    models: release.models,
    devices: release.devices,
  }
}

function fetchJson(fetch: CatalogueFetch | undefined) {
  if (!fetch) return null
  return {
    source: fetch.source,
    fetched_at: fetch.fetchedAt.toISOString(),
    outcome: fetch.outcome,
    release_count: fetch.releaseCount,
    skipped_count: fetch.skippedCount,
    document_sha256: fetch.documentSha256,
    error: fetch.error,
  }
}

function updateJson(update: CatalogueUpdate) {
  return {
    source: update.source,
    fetched_at: update.fetchedAt.toISOString(),
    release_count: update.releaseCount,
    skipped_count: update.skippedCount,
    problems: update.problems,
    ignored_platforms: update.ignoredPlatforms,
    document_sha256: update.documentSha256,
  }
}

export function osReleaseHandlers(deps: { catalogue: OsCatalogue }): OperationHandlers {
  const { catalogue } = deps
  return {
    async listOsReleases(request) {
      const query = request.query
      const view = await catalogue.view(accessOf(request), {
        ...(query.platform !== undefined ? { platform: query.platform } : {}),
        ...(query.model !== undefined ? { model: query.model } : {}),
      })
      return { catalogue: fetchJson(view.catalogue), items: view.releases.map(releaseJson), latest: view.latest.map(releaseJson) }
    },
    async importOsCatalogue(request) {
      return updateJson(await catalogue.importDocument(accessOf(request), request.body))
    },
    async refreshOsCatalogue() {
      return updateJson(await catalogue.refresh())
    },
    async getOsCatalogueStatus() {
      const status = await catalogue.status()
      return {
        url: status.url,
        schedule_seconds: status.scheduleSeconds,
        last_attempt: fetchJson(status.lastAttempt),
        last_success: fetchJson(status.lastSuccess),
      }
    },
  }
}
