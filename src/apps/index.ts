// Apps and Books (VPP) as main.ts composes it: content tokens per tenant, their claim on the
// location, and the sync of assets and device assignments.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DatabaseHandle } from '../db/database.js'
import { createVppAccess } from './vpp-access.js'
import { createVppAssetStore } from './vpp-asset-store.js'
import { createVppLicenceStore } from './vpp-licence-store.js'
import { createVppLicences } from './vpp-licences.js'
import { createVppSync } from './vpp-sync.js'
import { createVppTokenStore } from './vpp-token-store.js'
import { createVppTokens } from './vpp-tokens.js'

export { vppHandlers } from './api.js'
export { vppTokenWarningDays } from './vpp-tokens.js'

export function createAppsFeature(deps: {
  config: Config
  db: DatabaseHandle['db']
  secretBox: SecretBox | null
  installationId: string
  version: string
  logger: Logger
  /** Tests: no wall-clock waits on Retry-After. */
  sleep?: (ms: number) => Promise<void>
  now?: () => Date
}) {
  const { config } = deps
  const log = deps.logger.child({ service: 'vpp' })
  const now = deps.now ?? (() => new Date())
  const store = createVppTokenStore(deps.db)
  const assets = createVppAssetStore(deps.db)
  const access = createVppAccess({
    store,
    secretBox: deps.secretBox,
    vppUrl: config.vppUrl,
    installationId: deps.installationId,
    version: deps.version,
    publicUrl: config.publicUrl ?? '',
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
    log,
    now,
  })
  const tokens = createVppTokens({ store, assets, access, log, now })
  const sync = createVppSync({ store, assets, access, instanceId: randomUUID(), log, now })
  const licences = createVppLicences({ store: createVppLicenceStore(deps.db), tokens: store, access, log, now })
  return { tokens, sync, licences }
}
