// OS updates as main.ts composes it: the catalogue of Apple's OS releases (fetched or imported)
// and which releases apply to which device models.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DatabaseHandle } from '../db/database.js'
import { createOsCatalogue } from './os-catalogue.js'
import type { Metrics } from '../ops/metrics.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import { registerOsComplianceMetrics } from './compliance-metrics.js'
import { createOsReleaseStore } from './os-release-store.js'
import { osUpdateResults } from './os-update-results.js'
import { createUpdatePolicies } from './update-policies.js'
import { createUpdatePolicyStore } from './update-policy-store.js'

export { osReleaseHandlers } from './api.js'
export { updatePolicyHandlers } from './policy-api.js'
export type { OsCatalogue } from './os-catalogue.js'

export function createUpdatesFeature(deps: {
  config: Config
  db: DatabaseHandle['db']
  version: string
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  /** A policy changed for the devices a tenant's policies may reach (their DDM sets). */
  policiesChanged: (tenantId: string | null) => Promise<void>
  metrics?: Metrics
  logger: Logger
  now?: () => Date
}) {
  const now = deps.now ?? (() => new Date())
  const catalogue = createOsCatalogue({
    store: createOsReleaseStore(deps.db),
    url: deps.config.osCatalogueUrl,
    scheduleSeconds: deps.config.osCatalogueSeconds,
    client: { userAgent: `Orchard/${deps.version}` },
    // Apple published a release: "latest" policies re-target (central IT's reach: every device).
    replaced: () => deps.policiesChanged(null),
    log: deps.logger.child({ service: 'os-catalogue' }),
    now,
  })
  const policyStore = createUpdatePolicyStore(deps.db)
  const latestRelease = async (model: string) => {
    const release = await catalogue.latestFor(model)
    return release && { productVersion: release.productVersion, build: release.build, postingDate: release.postingDate }
  }
  const policies = createUpdatePolicies({
    store: policyStore,
    latestRelease,
    policiesChanged: deps.policiesChanged,
    dispatcher: deps.dispatcher,
    log: deps.logger.child({ service: 'update-policies' }),
    now,
  })
  if (deps.metrics) registerOsComplianceMetrics(deps.metrics, policies, now)
  return { catalogue, policies, latestRelease, commandResult: osUpdateResults({ store: policyStore, now }) }
}
