// OS updates as main.ts composes it: the catalogue of Apple's OS releases (fetched or imported)
// and which releases apply to which device models.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DatabaseHandle } from '../db/database.js'
import { createOsCatalogue } from './os-catalogue.js'
import { createOsReleaseStore } from './os-release-store.js'

export { osReleaseHandlers } from './api.js'
export type { OsCatalogue } from './os-catalogue.js'

export function createUpdatesFeature(deps: { config: Config; db: DatabaseHandle['db']; version: string; logger: Logger; now?: () => Date }) {
  const catalogue = createOsCatalogue({
    store: createOsReleaseStore(deps.db),
    url: deps.config.osCatalogueUrl,
    scheduleSeconds: deps.config.osCatalogueSeconds,
    client: { userAgent: `Orchard/${deps.version}` },
    log: deps.logger.child({ service: 'os-catalogue' }),
    now: deps.now ?? (() => new Date()),
  })
  return { catalogue }
}
