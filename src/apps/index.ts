// Apps and Books (VPP) as main.ts composes it: content tokens per tenant, their claim on the
// location, the sync of assets and device assignments, device licences, and Apple's notifications.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DatabaseHandle } from '../db/database.js'
import { createVppAccess } from './vpp-access.js'
import { createVppAssetStore } from './vpp-asset-store.js'
import { createVppLicenceStore } from './vpp-licence-store.js'
import { createVppLicences } from './vpp-licences.js'
import { createVppNotificationEndpoint } from './vpp-notification-endpoint.js'
import { createVppNotifications } from './vpp-notifications.js'
import { createVppSync } from './vpp-sync.js'
import { createVppTokenStore } from './vpp-token-store.js'
import { createVppTokens } from './vpp-tokens.js'
import { createVppUnmanaged } from './vpp-unmanaged.js'
import { createVppUnmanagedStore } from './vpp-unmanaged-store.js'

export { vppHandlers } from './api.js'
export { vppSyncJobKind } from './sync-job.js'
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
  const endpoint = createVppNotificationEndpoint({ baseUrl: config.vppNotificationUrl, publicUrl: config.publicUrl, masterKeys: config.secretKeys })
  const access = createVppAccess({
    store,
    secretBox: deps.secretBox,
    vppUrl: config.vppUrl,
    installationId: deps.installationId,
    version: deps.version,
    publicUrl: config.publicUrl ?? '',
    notifications: endpoint,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
    log,
    now,
  })
  const tokens = createVppTokens({ store, assets, access, log, now })
  const sync = createVppSync({ store, assets, access, instanceId: randomUUID(), log, now })
  const licenceStore = createVppLicenceStore(deps.db)
  const licences = createVppLicences({ store: licenceStore, tokens: store, access, notifying: endpoint.notifying, log, now })
  const notifications = createVppNotifications({ tokens: store, licences: licenceStore, assets, access, endpoint, log, now })
  const unmanaged = createVppUnmanaged({ store: createVppUnmanagedStore(deps.db), tokens: store, access, log })
  return { tokens, sync, licences, notifications, unmanaged }
}
