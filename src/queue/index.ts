// The command queue as main.ts composes it: the queue store (what devices fetch), enqueueing,
// the dispatcher (typed commands, targets, applicability, the guard on destructive commands),
// command administration and retention.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DatabaseHandle } from '../db/database.js'
import type { DeviceDirectory } from '../fleet/device-directory.js'
import type { DeviceDirectoryStore } from '../fleet/device-directory-store.js'
import type { TenantTree } from '../access/access-control.js'
import type { ServerSettingsStore } from '../ops/server-settings-store.js'
import type { PushService } from '../push/push-service.js'
import type { JobStarter } from '../jobs/job-service.js'
import { fullAccess } from '../model/access.js'
import { bulkCommandJobKind, createBulkCommandJobs } from './bulk-command-job.js'
import { createCommandAdmin } from './command-admin.js'
import { createCommandChunkStore } from './command-chunk-store.js'
import { createCommandAdminStore } from './command-admin-store.js'
import { createCommandQueueStore } from './command-queue-store.js'
import { confirmationKeyFrom, createConfirmationTokens } from './destructive-guard.js'
import { createCommandDispatcher } from './dispatch.js'
import { createCommandEnqueuer } from './enqueue.js'
import { createRetentionService } from './retention.js'
import { backgroundInventoryPriority, inventoryRequestTypes } from '../fleet/inventory-refresh.js'

export { commandHandlers } from './api.js'
export { enrollmentCommandHandlers } from './enrollment-command-api.js'

export function createQueueFeature(deps: {
  config: Config
  db: DatabaseHandle['db']
  directory: DeviceDirectoryStore
  requireEnrollment: DeviceDirectory['requireEnrollment']
  push: PushService
  tenants: TenantTree
  settings: ServerSettingsStore
  logger: Logger
}) {
  const { config, logger } = deps
  const queue = createCommandQueueStore(deps.db, { repushAfterSeconds: config.repush.afterSeconds })
  const adminStore = createCommandAdminStore(deps.db)
  const tokens = createConfirmationTokens({ key: confirmationKeyFrom(config.secretKeys) })
  const dispatcher = createCommandDispatcher({
    enqueuer: createCommandEnqueuer({ queue, logger }),
    directory: deps.directory,
    push: deps.push,
    tenants: deps.tenants,
    destructive: { mdmProfileIdentifier: config.enrollmentProfileIdentifier, tokens, ownerLimit: config.destructiveOwnerLimit },
    logger,
  })
  const commands = createCommandAdmin({ store: adminStore, requireEnrollment: deps.requireEnrollment })
  const retention = createRetentionService({
    settings: deps.settings,
    commandAdmin: adminStore,
    ownResults: { requestTypes: inventoryRequestTypes, priority: backgroundInventoryPriority, days: config.inventoryResultRetentionDays },
    logger,
  })
  // Commands to more than ORCHARD_JOB_THRESHOLD targets: queued by a bulk_command job.
  const chunks = createCommandChunkStore(deps.db, { repushAfterSeconds: config.repush.afterSeconds })
  const bulk = {
    kind: bulkCommandJobKind({ chunks, push: (enrollmentIds) => dispatcher.pushOnly(fullAccess, enrollmentIds) }),
    jobs: (jobs: JobStarter) => createBulkCommandJobs({ jobs, chunks, threshold: config.jobThreshold }),
  }
  return { queue, dispatcher, commands, retention, tokens, bulk }
}
