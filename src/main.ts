// Composition root: loadConfig -> logger -> database -> migrations -> stores -> services
// -> buildApp -> listen. Everything is wired here by hand, top to bottom; tests build the
// app through createOrchard too, so they run the same wiring.
import { createHmac, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import { ConfigError, describeConfig, HelpRequested, loadConfig, type Config } from './config.js'
import { createDeviceCertificateVerifier } from './crypto/device-identity.js'
import { certificatesFromPem } from './crypto/pem.js'
import { loadProfileSigner } from './crypto/profile-signing.js'
import { parseMasterKey } from './crypto/secret-box.js'
import { apiKeyHandlers } from './access/api.js'
import { webhookHandlers } from './webhooks/api.js'
import { settingsHandlers } from './ops/settings-api.js'
import { depHandlers, depTokenWarningDays } from './ade/api.js'
import { createAdeEnrollmentService, type AdeEnrollmentService } from './ade/ade-enrollment.js'
import { createDepService, type DepService } from './ade/dep-service.js'
import { createDepStore } from './ade/dep-store.js'
import { enrollmentHandlers } from './enrollment/api.js'
import { commandHandlers } from './queue/api.js'
import { deviceHandlers } from './fleet/devices-api.js'
import { pushHandlers } from './push/api.js'
import { createLogger } from './logger.js'
import { createMetrics, registerDatabaseMetrics, registerInfoMetric, type Metrics } from './ops/metrics.js'
import { createAdminAuthenticator } from './access/admin-authentication.js'
import { createApiKeyService } from './access/api-key-service.js'
import { createOidcVerifier } from './access/oidc-verifier.js'
import { createCertificateAuthorityService, type CertificateAuthorityService } from './enrollment/certificate-authority.js'
import { createEnrollmentService, type EnrollmentService } from './enrollment/enrollment-service.js'
import { createIdentityRenewalService, type IdentityRenewalService } from './enrollment/identity-renewal.js'
import { createScepService } from './enrollment/scep-service.js'
import { createCertificateAuthorityStore } from './enrollment/certificate-authority-store.js'
import { createEnrollmentLinkStore } from './enrollment/enrollment-link-store.js'
import { createIdentityStore } from './enrollment/identity-store.js'
import { createCheckinService, type IdentityChange } from './device/checkin-service.js'
import { createDeviceSecrets, type DeviceSecrets } from './device/device-secrets.js'
import { createDeviceSecretStore } from './device/device-secret-store.js'
import { createCommandDispatcher, type CommandDispatcher } from './queue/dispatch.js'
import { createConfirmationTokens } from './queue/destructive-guard.js'
import { createRetentionService, type RetentionService } from './queue/retention.js'
import { withCheckinEvents, withCommandResultEvents } from './webhooks/webhook-events.js'
import { createWebhookService, type WebhookService } from './webhooks/webhook-service.js'
import { fullAccess } from './model/access.js'
import { createAuditStore } from './tenancy/audit-store.js'
import { createTenantStore } from './tenancy/tenant-store.js'
import { createReportStore } from './tenancy/report-store.js'
import { createTenantReports } from './tenancy/tenant-reports.js'
import { tenantHandlers } from './tenancy/api.js'
import { lifecycleHandlers } from './fleet/lifecycle-api.js'
import { blueprintHandlers } from './fleet/blueprints-api.js'
import { createBlueprintService, type BlueprintService } from './fleet/blueprints.js'
import { createBlueprintStore } from './fleet/blueprint-store.js'
import { createDeviceLifecycle, type DeviceLifecycle } from './fleet/device-lifecycle.js'
import { createLifecycleStore } from './fleet/lifecycle-store.js'
import { createTenantTree } from './access/access-control.js'
import { createApiKeyStore } from './access/api-key-store.js'
import { createCommandAdminStore } from './queue/command-admin-store.js'
import { createDeviceDirectoryStore } from './fleet/device-directory-store.js'
import { createWebhookStore } from './webhooks/webhook-store.js'
import { createCommandService, type CommandService } from './device/command-service.js'
import { createEmptyDeclarativeManagement } from './device/declarative-management.js'
import { createIdentityResolver } from './device/identity-resolver.js'
import { startPeriodicTask, type PeriodicTask } from './ops/periodic-task.js'
import { createPushCertificateService, type PushCertificateService } from './push/push-certificates.js'
import { createPushService, type PushService } from './push/push-service.js'
import { createApnsSender } from './push/apns-client.js'
import { createSecretBox } from './crypto/secret-box.js'
import { createPushStore } from './push/push-store.js'
import { createReadinessCheck } from './ops/readiness.js'
import { createGracefulShutdown } from './ops/shutdown.js'
import { openDatabase, type DatabaseHandle } from './db/database.js'
import { makePrivateDirectory, privateFileMode } from './db/private-files.js'
import { createCommandQueueStore } from './queue/command-queue-store.js'
import { createDdmStatusStore } from './device/ddm-store.js'
import { createEnrollmentStore } from './device/enrollment-store.js'
import { createInventoryStore } from './device/inventory-store.js'
import { migrateToLatest, migrationStatus } from './db/migrations.js'
import { createServerSettingsStore } from './ops/server-settings-store.js'
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
  authority: CertificateAuthorityService
  enrollment: EnrollmentService
  renewal: IdentityRenewalService
  dispatcher: CommandDispatcher
  dep: DepService
  ade: AdeEnrollmentService
  deviceSecrets: DeviceSecrets
}

/**
 * The re-push loop, the daily push-certificate expiry warning, the daily pruning of old
 * command results, and webhook delivery; all stop with the app.
 */
function startBackgroundWork(deps: {
  config: Config
  push: PushService
  pushCertificates: PushCertificateService
  retention: RetentionService
  webhooks: WebhookService
  authority: CertificateAuthorityService
  enrollment: EnrollmentService
  renewal: IdentityRenewalService
  dep: DepService
  blueprints: BlueprintService
  logger: Logger
}) {
  const tasks: PeriodicTask[] = []
  // Another instance may import or remove a CA: pick it up within a minute.
  tasks.push(startPeriodicTask('device CA refresh', 60_000, () => deps.authority.refresh(), deps.logger))
  tasks.push(startPeriodicTask('SCEP challenge pruning', 86_400_000, async () => void (await deps.enrollment.pruneChallenges()), deps.logger))
  if (deps.config.identityRenewalDays > 0) {
    tasks.push(startPeriodicTask('identity renewal', 3_600_000, async () => void (await deps.renewal.renewDue()), deps.logger))
  }
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
  if (deps.config.blueprintCheckHours > 0) {
    tasks.push(startPeriodicTask('blueprint check', deps.config.blueprintCheckHours * 3_600_000, async () => void (await deps.blueprints.checkAll()), deps.logger))
  }
  if (deps.config.depSyncSeconds > 0) {
    tasks.push(startPeriodicTask('ABM/ASM device sync', deps.config.depSyncSeconds * 1000, async () => void (await deps.dep.syncAll()), deps.logger))
    tasks.push(startPeriodicTask('ADE assignment retry', 60_000, async () => void (await deps.dep.retryThrottled()), deps.logger))
  }
  const warnExpiringDepTokens = async () => {
    for (const token of await deps.dep.expiringTokens(depTokenWarningDays)) {
      deps.logger.warn({ dep_token_id: token.id, name: token.name, access_token_expiry: token.access_token_expiry, days_left: token.daysLeft }, `ABM/ASM server token "${token.name}" expires in ${token.daysLeft} days: download a new one in Apple Business/School Manager and upload it`)
    }
  }
  void warnExpiringDepTokens().catch((error: unknown) => deps.logger.error({ err: error }, 'ABM/ASM token expiry check failed'))
  tasks.push(startPeriodicTask('ABM/ASM token expiry check', 86_400_000, warnExpiringDepTokens, deps.logger))
  const warnExpiring = async () => {
    for (const certificate of await deps.pushCertificates.expiring(30)) {
      deps.logger.warn({ topic: certificate.topic, not_after: certificate.notAfter, days_left: certificate.daysLeft }, `push certificate for ${certificate.topic} expires in ${certificate.daysLeft} days: renew it in the Apple Push Certificates Portal with the same Apple Account`)
    }
  }
  void warnExpiring().catch((error: unknown) => deps.logger.error({ err: error }, 'push certificate expiry check failed'))
  tasks.push(startPeriodicTask('push certificate expiry check', 86_400_000, warnExpiring, deps.logger))
  return { stop: async () => void (await Promise.all(tasks.map((task) => task.stop()))) }
}

/**
 * The key of confirmation tokens (dry runs of destructive commands): derived from the first
 * master key, so every instance on one database accepts the others' tokens; without master
 * keys, one per process.
 */
function confirmationKey(config: Config): Buffer | undefined {
  const master = config.secretKeys[0]
  return master ? createHmac('sha256', master).update('orchard confirmation tokens').digest() : undefined
}

/** The audit and webhook fields of a new identity meeting a device bound to another. */
function identityChangeDetails(facts: IdentityChange) {
  return {
    identity_sha256: facts.presentedSha256,
    bound_identity_sha256: facts.boundSha256,
    enrollment_path: facts.enrollmentPath,
    reported_serial_number: facts.reportedSerialNumber,
  }
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
  const verifier = createDeviceCertificateVerifier({ trustedCas: trustedDeviceCas })
  const resolveIdentity = createIdentityResolver(verifier)

  const secretBox = config.secretKeys.length > 0 ? createSecretBox(config.secretKeys) : null
  const authority = createCertificateAuthorityService({
    store: createCertificateAuthorityStore(db),
    secretBox,
    fileAuthority: config.caFiles
      ? { certificatePem: readFileSync(config.caFiles.certFile, 'utf8'), privateKeyPem: readFileSync(config.caFiles.keyFile, 'utf8'), source: config.caFiles.certFile }
      : undefined,
    configTrusted: trustedDeviceCas,
    organization: config.organization,
    onTrustChange: (certificates) => verifier.replaceTrustedCas(certificates),
    logger,
  })
  try {
    await authority.start()
  } catch (error) {
    // A configured CA that does not load is a configuration error; an unmigrated database is not (readiness says so).
    if (config.caFiles) throw new Error(`ORCHARD_CA_CERT_FILE/ORCHARD_CA_KEY_FILE: ${(error as Error).message}`, { cause: error })
    logger.error({ err: error }, 'the device CA could not be loaded')
  }
  const profileSigner = config.profileSigningFiles
    ? loadProfileSigner(readFileSync(config.profileSigningFiles.certFile, 'utf8'), readFileSync(config.profileSigningFiles.keyFile, 'utf8'))
    : null
  const enrollmentLinks = createEnrollmentLinkStore(db)
  const identities = createIdentityStore(db)
  const webhookStore = createWebhookStore(db)
  const webhooks = createWebhookService({ store: webhookStore, secretBox, logger })

  const audit = createAuditStore(db)
  const lifecycleRef: { current?: DeviceLifecycle } = {}
  const blueprintsRef: { current?: BlueprintService } = {}

  const commands = withCommandResultEvents(
    createCommandService({
      queue,
      inventory,
      metrics,
      logger,
      notNowAlertAfter: config.notNowAlertAfter,
      // Lifecycle actions complete from command results; the service is built further down
      // (it queues commands through the dispatcher, which needs this command service).
      async resultRecorded(event) {
        if ((await lifecycleRef.current?.commandResult(event)) === 'stop') return 'stop'
        return (await blueprintsRef.current?.commandResult(event)) ? 'more' : undefined
      },
    }),
    webhooks,
  )

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
  const tenantStore = createTenantStore(db)
  const tenantTree = createTenantTree(() => tenantStore.allTenants())
  const dispatcher = createCommandDispatcher({
    commands,
    directory,
    push,
    tenants: tenantTree,
    destructive: { mdmProfileIdentifier: config.enrollmentProfileIdentifier, tokens: createConfirmationTokens({ key: confirmationKey(config) }), ownerLimit: config.destructiveOwnerLimit },
    logger,
  })
  const lifecycleStore = createLifecycleStore(db)
  const lifecycle = createDeviceLifecycle({
    store: lifecycleStore,
    dispatcher,
    disown: (scope, tokenId, serials) => dep.disownDevices(scope, tokenId, serials),
    mdmProfileIdentifier: config.enrollmentProfileIdentifier,
    deviceEvent: (deviceId, action, details) => audit.appendDeviceEvent({ deviceId, action, details, at: new Date() }),
    logger,
  })
  lifecycleRef.current = lifecycle
  const blueprints = createBlueprintService({
    store: createBlueprintStore(db),
    dispatcher,
    ...(profileSigner ? { signer: profileSigner } : {}),
    deviceState: async (deviceId) => (await lifecycleStore.device(fullAccess, deviceId))?.state,
    logger,
  })
  blueprintsRef.current = blueprints
  const apiKeys = createApiKeyService({ store: createApiKeyStore(db), configKeys: config.apiKeys, logger })
  const scep = createScepService({
    authority,
    store: enrollmentLinks,
    verifyIdentity: (certificateDer) => verifier.verify(certificateDer),
    staticChallenge: config.scepChallenge,
    identityValidityDays: config.identityValidityDays,
    countOutcome: (outcome) => metrics.scepIssuances.inc({ outcome }),
    logger,
  })
  const enrollment = createEnrollmentService({
    store: enrollmentLinks,
    authority,
    pushTopics: async () => (await pushCertificates.list()).sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime()).map((certificate) => certificate.topic),
    signer: profileSigner,
    publicUrl: config.publicUrl,
    organization: config.organization,
    profileIdentifier: config.enrollmentProfileIdentifier,
    openEnrollment: config.openEnrollment,
    challengeTtlHours: config.enrollmentChallengeHours,
    // A renewal challenge must outlive a device that is off for a while, but not its identity.
    renewalChallengeDays: Math.max(1, Math.min(30, config.identityRenewalDays)),
    logger,
  })
  const depStore = createDepStore(db)
  const dep = createDepService({ store: depStore, secretBox, abmUrl: config.abmUrl, publicUrl: config.publicUrl, organization: config.organization, logger })
  const ade = createAdeEnrollmentService({
    store: depStore,
    enrollment,
    dispatcher,
    verifyMachineInfoChain: config.adeVerifyMachineInfo,
    machineInfoCas: config.adeMachineInfoCaFiles.flatMap((file) => certificatesFromPem(readFileSync(file, 'utf8'), file)),
    logger,
  })
  const deviceSecrets = createDeviceSecrets({ store: createDeviceSecretStore(db), secretBox, logger })
  const coreCheckin = createCheckinService({
    enrollments,
    secrets: deviceSecrets,
    declarativeManagement: createEmptyDeclarativeManagement(ddmStatus),
    tokenServices: {},
    userAuthentication: config.userAuthenticate,
    events: {
      async enrolled(channel, facts) {
        if (channel.kind === 'device') {
          await audit.deviceEnrolled(channel.deviceId, new Date(), { awaiting_configuration: facts.awaitingConfiguration })
          await lifecycle.deviceEnrolled(channel.deviceId)
          await blueprints.deviceEnrolled(channel.deviceId)
        }
        await ade.enrolled(channel, facts)
      },
      async checkedOut(deviceId) {
        await audit.deviceCheckedOut(deviceId, new Date())
        await lifecycle.deviceCheckedOut(deviceId)
      },
      identityRenewed: (deviceId, identity) => audit.appendDeviceEvent({ deviceId, action: 'identity_renewed', details: { identity_sha256: identity.certificateSha256, identity_not_after: identity.notAfter?.toISOString() ?? null }, at: new Date() }),
      async reenrolled(deviceId, facts) {
        const details = identityChangeDetails(facts)
        await audit.appendDeviceEvent({ deviceId, action: 'reenrolled', details: { ...details, reason: facts.because }, at: new Date() })
        await webhooks.emit('device.reenrolled', { device_id: deviceId, ...details, reason: facts.because })
      },
      async identityConflict(deviceId, facts) {
        const details = { ...identityChangeDetails(facts), reason: facts.because, detail: facts.detail }
        await audit.appendDeviceEvent({ deviceId, action: 'identity_conflict', outcome: 'failure', details, at: new Date() })
        await webhooks.emit('device.identity_conflict', { device_id: deviceId, tenant_id: facts.tenantId, ...details })
      },
      foreignPath: (deviceId, facts) => audit.appendDeviceEvent({ deviceId, action: 'foreign_enrollment_path', details: { enrollment_path: facts.enrollmentPath, path_tenant_id: facts.pathTenantId }, at: new Date() }),
    },
    identityOrigins: { lookup: (sha256) => enrollmentLinks.identityOrigin(sha256), apply: (deviceId, origin, options) => identities.applyOrigin(deviceId, origin, options) },
    logger,
  })
  const checkin = withCheckinEvents(coreCheckin, webhooks)
  const renewal = createIdentityRenewalService({ store: identities, enrollment, dispatcher, leadDays: config.identityRenewalDays, logger })
  const background = startBackgroundWork({ config, push, pushCertificates, retention, webhooks, authority, enrollment, renewal, dep, blueprints, logger })

  const checkReadiness = createReadinessCheck({
    ping: database.ping,
    migrationStatus: () => migrationStatus(db),
    expiringPushCertificates: () => pushCertificates.expiring(30),
    timeoutMs: 5_000,
  })
  const tls = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), requestClientCertificate: authority.trustedCertificates().length > 0 }
    : null
  const app = await buildApp({
    logger,
    metrics,
    checkReadiness,
    tls,
    connectionLimits: config.connectionLimits,
    mdm: {
      resolveIdentity,
      checkin,
      commands,
      metrics,
      bodyLimit: config.mdmBodyLimit,
      clientCertificateHeader: config.clientCertHeader,
    },
    api: {
      authenticate: createAdminAuthenticator({
        apiKeys,
        oidc: config.oidc
          ? {
              verifier: createOidcVerifier({ issuer: config.oidc.issuer, audience: config.oidc.audiences, ...(config.oidc.jwksUrl ? { jwksUrl: config.oidc.jwksUrl } : {}) }),
              rules: { groupsClaim: config.oidc.groupsClaim, groupRoles: config.oidc.groupRoles },
            }
          : null,
        logger,
      }),
      tenants: tenantTree,
      audit,
      responseValidation: config.apiResponseValidation,
      handlers: {
        ...deviceHandlers({ directory, dispatcher, secrets: deviceSecrets }),
        ...lifecycleHandlers({ lifecycle, directory }),
        ...blueprintHandlers({ blueprints }),
        ...commandHandlers({ dispatcher, commandAdmin, directory, tenants: tenantTree }),
        ...pushHandlers({ push, certificates: pushCertificates, directory }),
        ...apiKeyHandlers({ apiKeys }),
        ...webhookHandlers({ webhooks }),
        ...settingsHandlers({ retention }),
        ...enrollmentHandlers({ enrollment, authority, renewal }),
        ...depHandlers({ dep }),
        ...tenantHandlers({ tenants: tenantStore, tree: tenantTree, audit, reports: createTenantReports({ reports: createReportStore(db), tenants: tenantStore }) }),
      },
    },
    enrollment: { scep, enrollment, ade },
  })
  app.addHook('onClose', async () => {
    await background.stop()
    await push.close()
  })
  return { app, metrics, commands, push, webhooks, retention, authority, enrollment, renewal, dispatcher, dep, ade, deviceSecrets }
}

/**
 * The embedded database keeps its master key next to it (`<data-dir>/secret.key`, created
 * once, mode 0600) when ORCHARD_SECRET_KEYS is unset, so the quick start can seal the device
 * CA and push certificate keys. PostgreSQL deployments (several instances) must configure
 * ORCHARD_SECRET_KEYS: a key file per instance would not open the others' secrets.
 */
export function withEmbeddedSecretKey(config: Config, logger: Logger): Config {
  if (config.secretKeys.length > 0 || config.databaseUrl !== null) return config
  const file = join(config.dataDir, 'secret.key')
  if (!existsSync(file)) {
    makePrivateDirectory(config.dataDir)
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: privateFileMode, flag: 'wx' })
    logger.info({ file }, 'created the master key of the embedded database (set ORCHARD_SECRET_KEYS to manage keys yourself)')
  }
  chmodSync(file, privateFileMode)
  return Object.freeze({ ...config, secretKeys: Object.freeze([parseMasterKey(readFileSync(file, 'utf8').trim())]) })
}

export async function startOrchard(givenConfig: Config, logger: Logger): Promise<RunningServer> {
  const config = withEmbeddedSecretKey(givenConfig, logger)
  const database = await openDatabase(config, logger)
  try {
    const applied = await migrateToLatest(database.db)
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated')
    const { app, deviceSecrets } = await createOrchard(config, database, logger)
    // Rows written before device secrets were sealed (migration 0010): sealed now, once.
    await deviceSecrets.sealClearSecrets()
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
