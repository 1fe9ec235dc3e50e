// Composition root: loadConfig -> logger -> database -> migrations -> stores -> services
// -> buildApp -> listen. Everything is wired here by hand, top to bottom; tests build the
// app through createOrchard too, so they run the same wiring.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import { ConfigError, describeConfig, HelpRequested, loadConfig, type Config } from './config.js'
import { createDeviceCertificateVerifier } from './crypto/device-identity.js'
import { certificatesFromPem } from './crypto/pem.js'
import { adminHandlers } from './http/api/admin-handlers.js'
import { commandHandlers } from './http/api/command-handlers.js'
import { deviceHandlers } from './http/api/device-handlers.js'
import { pushHandlers } from './http/api/push-handlers.js'
import { createLogger } from './logger.js'
import { createMetrics, registerDatabaseMetrics, registerInfoMetric, type Metrics } from './metrics.js'
import { createApiKeyService } from './services/api-key-service.js'
import { createCheckinService } from './services/checkin-service.js'
import { createCommandDispatcher } from './services/command-dispatch.js'
import { createRetentionService, type RetentionService } from './services/retention.js'
import { withCheckinEvents, withCommandResultEvents } from './services/webhook-events.js'
import { createWebhookService, type WebhookService } from './services/webhook-service.js'
import { createApiKeyStore } from './storage/api-key-store.js'
import { createCommandAdminStore } from './storage/command-admin-store.js'
import { createDeviceDirectoryStore } from './storage/device-directory-store.js'
import { createWebhookStore } from './storage/webhook-store.js'
import { createCommandService, type CommandService } from './services/command-service.js'
import { createEmptyDeclarativeManagement } from './services/declarative-management.js'
import { createIdentityResolver } from './services/identity-resolver.js'
import { startPeriodicTask, type PeriodicTask } from './services/periodic-task.js'
import { createPushCertificateService, type PushCertificateService } from './services/push-certificates.js'
import { createPushService, type PushService } from './services/push-service.js'
import { createApnsSender } from './push/apns-client.js'
import { createSecretBox } from './crypto/secret-box.js'
import { createPushStore } from './storage/push-store.js'
import { createReadinessCheck } from './services/readiness.js'
import { createGracefulShutdown } from './shutdown.js'
import { openDatabase, type DatabaseHandle } from './storage/database.js'
import { createCommandQueueStore } from './storage/command-queue-store.js'
import { createDdmStatusStore } from './storage/ddm-store.js'
import { createEnrollmentStore } from './storage/enrollment-store.js'
import { createInventoryStore } from './storage/inventory-store.js'
import { migrateToLatest, migrationStatus } from './storage/migrations.js'
import { createServerSettingsStore } from './storage/server-settings-store.js'
import { version } from './version.js'

export interface RunningServer {
  app: FastifyInstance
  database: DatabaseHandle
  /** Where the server listens, e.g. http://127.0.0.1:8080. */
  address: string
  /** Stops accepting, waits for in-flight requests, then closes the database. */
  close(): Promise<void>
}

export interface Orchard {
  app: FastifyInstance
  metrics: Metrics
  commands: CommandService
  push: PushService
  webhooks: WebhookService
  retention: RetentionService
}

/**
 * The re-push loop, the daily push-certificate expiry warning, the daily pruning of old
 * command results, and webhook delivery; all stop with the app.
 */
function startBackgroundWork(deps: { config: Config; push: PushService; pushCertificates: PushCertificateService; retention: RetentionService; webhooks: WebhookService; logger: Logger }) {
  const tasks: PeriodicTask[] = []
  tasks.push(startPeriodicTask('command result pruning', 86_400_000, async () => void (await deps.retention.prune()), deps.logger))
  // Emitting an event wakes the webhook worker at once; the interval only picks up retries.
  if (deps.config.webhookWorker) {
    deps.webhooks.start(5_000)
    tasks.push({ stop: () => deps.webhooks.stop() })
  }
  const seconds = deps.config.repush.loopIntervalSeconds
  if (seconds > 0) {
    tasks.push(startPeriodicTask('re-push', seconds * 1000, async () => void (await deps.push.repushDue()), deps.logger))
  }
  const warnExpiring = async () => {
    for (const certificate of await deps.pushCertificates.expiring(30)) {
      deps.logger.warn({ topic: certificate.topic, not_after: certificate.notAfter, days_left: certificate.daysLeft }, `push certificate for ${certificate.topic} expires in ${certificate.daysLeft} days: renew it in the Apple Push Certificates Portal with the same Apple Account`)
    }
  }
  void warnExpiring().catch((error: unknown) => deps.logger.error({ err: error }, 'push certificate expiry check failed'))
  tasks.push(startPeriodicTask('push certificate expiry check', 86_400_000, warnExpiring, deps.logger))
  return { stop: async () => void (await Promise.all(tasks.map((task) => task.stop()))) }
}

/** Wires stores, services and HTTP surfaces over an open, migrated database. */
export async function createOrchard(config: Config, database: DatabaseHandle, logger: Logger): Promise<Orchard> {
  const db = database.db
  const settings = createServerSettingsStore(db)
  const enrollments = createEnrollmentStore(db)
  const queue = createCommandQueueStore(db, { repushAfterSeconds: config.repush.afterSeconds })
  const inventory = createInventoryStore(db)
  const ddmStatus = createDdmStatusStore(db)

  const metrics = createMetrics()
  // Only a metric label: an unmigrated database (readiness then says so) must not stop the app.
  const installationId = String((await settings.getSetting('installation_id').catch(() => undefined)) ?? 'unknown')
  registerInfoMetric(metrics, { version, installation_id: installationId, database: database.kind })
  registerDatabaseMetrics(metrics, database.kind, database.poolStats)

  const trustedDeviceCas = config.deviceCaFiles.flatMap((file) => certificatesFromPem(readFileSync(file, 'utf8'), file))
  if (trustedDeviceCas.length === 0) logger.warn('no ORCHARD_DEVICE_CA_FILES: no device can enroll until a device CA is configured')
  const resolveIdentity = createIdentityResolver(createDeviceCertificateVerifier({ trustedCas: trustedDeviceCas }))

  const secretBox = config.secretKeys.length > 0 ? createSecretBox(config.secretKeys) : null
  const webhookStore = createWebhookStore(db)
  const webhooks = createWebhookService({ store: webhookStore, secretBox, logger })

  const coreCheckin = createCheckinService({
    enrollments,
    declarativeManagement: createEmptyDeclarativeManagement(ddmStatus),
    tokenServices: {},
    userAuthentication: config.userAuthenticate,
    events: {},
    logger,
  })
  const checkin = withCheckinEvents(coreCheckin, webhooks)
  const commands = withCommandResultEvents(createCommandService({ queue, inventory, metrics, logger, notNowAlertAfter: config.notNowAlertAfter }), webhooks)

  const pushStore = createPushStore(db)
  const pushCertificates = createPushCertificateService({
    store: pushStore,
    secretBox,
    logger,
  })
  const apnsCa = config.apnsCaFile ? readFileSync(config.apnsCaFile, 'utf8') : undefined
  const push = createPushService({
    store: pushStore,
    createSender: (certificate) =>
      createApnsSender({
        topic: certificate.topic,
        certificatePem: certificate.certificatePem,
        privateKeyPem: pushCertificates.privateKeyPem(certificate),
        endpoint: config.apnsUrl,
        ca: apnsCa,
        logger,
      }),
    schedule: config.repush,
    metrics,
    logger,
  })
  const directory = createDeviceDirectoryStore(db)
  const commandAdmin = createCommandAdminStore(db)
  const retention = createRetentionService({ settings, commandAdmin, logger })
  const dispatcher = createCommandDispatcher({ commands, directory, push, logger })
  const apiKeys = createApiKeyService({ store: createApiKeyStore(db), configKeys: config.apiKeys, logger })
  const background = startBackgroundWork({ config, push, pushCertificates, retention, webhooks, logger })

  const checkReadiness = createReadinessCheck({
    ping: database.ping,
    migrationStatus: () => migrationStatus(db),
    expiringPushCertificates: () => pushCertificates.expiring(30),
    timeoutMs: 5_000,
  })
  const tls = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), requestClientCertificate: trustedDeviceCas.length > 0 }
    : null
  const app = await buildApp({
    logger,
    metrics,
    checkReadiness,
    tls,
    mdm: {
      resolveIdentity,
      checkin,
      commands,
      metrics,
      bodyLimit: config.mdmBodyLimit,
      clientCertificateHeader: config.clientCertHeader,
    },
    api: {
      authenticate: (token) => apiKeys.authenticate(token),
      responseValidation: config.apiResponseValidation,
      handlers: {
        ...deviceHandlers({ directory, dispatcher }),
        ...commandHandlers({ dispatcher, commandAdmin, directory }),
        ...pushHandlers({ push, certificates: pushCertificates }),
        ...adminHandlers({ apiKeys, webhooks, retention }),
      },
    },
  })
  app.addHook('onClose', async () => {
    await background.stop()
    await push.close()
  })
  return { app, metrics, commands, push, webhooks, retention }
}

export async function startOrchard(config: Config, logger: Logger): Promise<RunningServer> {
  const database = await openDatabase(config, logger)
  try {
    const applied = await migrateToLatest(database.db)
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated')
    const { app } = await createOrchard(config, database, logger)
    const address = await app.listen({ host: config.host, port: config.port })
    return {
      app,
      database,
      address,
      async close() {
        await app.close()
        await database.close()
      },
    }
  } catch (error) {
    await database.close()
    throw error
  }
}

async function runMain(): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env, process.argv.slice(2))
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.message}\n`)
      process.exit(0)
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`orchard: invalid configuration: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }

  const logger = createLogger({ level: config.logLevel, pretty: process.stdout.isTTY === true })
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection')
    process.exit(1)
  })

  let server: RunningServer
  try {
    logger.info({ version, config: describeConfig(config) }, 'starting Orchard')
    server = await startOrchard(config, logger)
  } catch (error) {
    logger.fatal({ err: error }, `cannot start: ${(error as Error).message}`)
    process.exit(1)
  }
  logger.info({ address: server.address, public_url: config.publicUrl }, `Orchard listening on ${server.address}`)

  const shutdown = createGracefulShutdown({
    logger,
    timeoutMs: config.shutdownTimeoutMs,
    close: server.close,
    exit: (code) => process.exit(code),
  })
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runMain()
}
