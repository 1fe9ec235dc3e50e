// Composition root: stores -> services -> device events -> app, wired by hand, top to bottom.
// The process around it (database, migrations, listening, signals) is ops/server.ts; tests
// build the app through createOrchard too, so they run the same wiring.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import type { Config } from './config.js'
import { createAdminAuthenticator } from './access/admin-authentication.js'
import { createTenantTree } from './access/access-control.js'
import { apiKeyHandlers } from './access/api.js'
import { createApiKeyService } from './access/api-key-service.js'
import { createApiKeyStore } from './access/api-key-store.js'
import { createOidcVerifier } from './access/oidc-verifier.js'
import { createAdeEnrollmentService, type AdeEnrollmentService } from './ade/ade-enrollment.js'
import { depHandlers } from './ade/api.js'
import { createDepService, type DepService } from './ade/dep-service.js'
import { createDepStore } from './ade/dep-store.js'
import { createDeviceCertificateVerifier } from './crypto/device-identity.js'
import { certificatesFromPem } from './crypto/pem.js'
import { loadProfileSigner } from './crypto/profile-signing.js'
import { createSecretBox } from './crypto/secret-box.js'
import type { DatabaseHandle } from './db/database.js'
import { migrationStatus } from './db/migrations.js'
import { createCheckinService } from './device/checkin-service.js'
import { createDdmStatusStore } from './device/ddm-store.js'
import { createEmptyDeclarativeManagement } from './device/declarative-management.js'
import { createDeviceSecretStore } from './device/device-secret-store.js'
import { createDeviceSecrets, type DeviceSecrets } from './device/device-secrets.js'
import { createEnrollmentStore } from './device/enrollment-store.js'
import { createDeviceEvents } from './device/events.js'
import { createIdentityResolver } from './device/identity-resolver.js'
import { createInventoryStore } from './device/inventory-store.js'
import { createReportService } from './device/report-service.js'
import { enrollmentHandlers } from './enrollment/api.js'
import { createCertificateAuthorityStore } from './enrollment/certificate-authority-store.js'
import { createCertificateAuthorityService, type CertificateAuthorityService } from './enrollment/certificate-authority.js'
import { createEnrollmentLinkStore } from './enrollment/enrollment-link-store.js'
import { createEnrollmentService, type EnrollmentService } from './enrollment/enrollment-service.js'
import { createIdentityRenewalService, type IdentityRenewalService } from './enrollment/identity-renewal.js'
import { createIdentityStore } from './enrollment/identity-store.js'
import { createScepService } from './enrollment/scep-service.js'
import { createBlueprintStore } from './fleet/blueprint-store.js'
import { createBlueprintService } from './fleet/blueprints.js'
import { blueprintHandlers } from './fleet/blueprints-api.js'
import { createDeviceDirectoryStore } from './fleet/device-directory-store.js'
import { createDeviceDirectory } from './fleet/device-directory.js'
import { createDeviceLifecycle } from './fleet/device-lifecycle.js'
import { deviceHandlers } from './fleet/devices-api.js'
import { lifecycleHandlers } from './fleet/lifecycle-api.js'
import { createLifecycleStore } from './fleet/lifecycle-store.js'
import { fullAccess } from './model/access.js'
import { startBackgroundWork } from './ops/background.js'
import { createMetrics, registerDatabaseMetrics, registerInfoMetric, type Metrics } from './ops/metrics.js'
import { createReadinessCheck } from './ops/readiness.js'
import { runServerProcess, startServer, type RunningServer } from './ops/server.js'
import { createServerSettingsStore } from './ops/server-settings-store.js'
import { settingsHandlers } from './ops/settings-api.js'
import { pushHandlers } from './push/api.js'
import { createApnsSender } from './push/apns-client.js'
import { createPushCertificateService } from './push/push-certificates.js'
import { createPushService, type PushService } from './push/push-service.js'
import { createPushStore } from './push/push-store.js'
import { commandHandlers } from './queue/api.js'
import { createCommandAdminStore } from './queue/command-admin-store.js'
import { createCommandAdmin } from './queue/command-admin.js'
import { createCommandQueueStore } from './queue/command-queue-store.js'
import { confirmationKeyFrom, createConfirmationTokens } from './queue/destructive-guard.js'
import { createCommandDispatcher, type CommandDispatcher } from './queue/dispatch.js'
import { createCommandEnqueuer } from './queue/enqueue.js'
import { createRetentionService, type RetentionService } from './queue/retention.js'
import { tenantHandlers } from './tenancy/api.js'
import { auditDeviceListeners } from './tenancy/audit-listeners.js'
import { createAuditStore } from './tenancy/audit-store.js'
import { createReportStore } from './tenancy/report-store.js'
import { createTenantReports } from './tenancy/tenant-reports.js'
import { createTenantService } from './tenancy/tenant-service.js'
import { createTenantStore } from './tenancy/tenant-store.js'
import { webhookHandlers } from './webhooks/api.js'
import { webhookDeviceListeners } from './webhooks/webhook-events.js'
import { createWebhookService, type WebhookService } from './webhooks/webhook-service.js'
import { createWebhookStore } from './webhooks/webhook-store.js'
import { version } from './version.js'

export type { RunningServer }

export interface Orchard {
  app: FastifyInstance
  metrics: Metrics
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

const pemFiles = (files: readonly string[]) => files.flatMap((file) => certificatesFromPem(readFileSync(file, 'utf8'), file))

/** Wires stores, services and HTTP surfaces over an open, migrated database. */
export async function createOrchard(config: Config, database: DatabaseHandle, logger: Logger): Promise<Orchard> {
  const db = database.db
  const settings = createServerSettingsStore(db)
  const metrics = createMetrics()
  // Only a metric label: an unmigrated database (readiness then says so) must not stop the app.
  const installationId = String((await settings.getSetting('installation_id').catch(() => undefined)) ?? 'unknown')
  registerInfoMetric(metrics, { version, installation_id: installationId, database: database.kind })
  registerDatabaseMetrics(metrics, database.kind, database.poolStats)
  const secretBox = config.secretKeys.length > 0 ? createSecretBox(config.secretKeys) : null

  // Device identities and the CA that issues them.
  const trustedDeviceCas = pemFiles(config.deviceCaFiles)
  const verifier = createDeviceCertificateVerifier({ trustedCas: trustedDeviceCas })
  const fileAuthority = config.caFiles && {
    certificatePem: readFileSync(config.caFiles.certFile, 'utf8'),
    privateKeyPem: readFileSync(config.caFiles.keyFile, 'utf8'),
    source: config.caFiles.certFile,
  }
  const authority = createCertificateAuthorityService({
    store: createCertificateAuthorityStore(db),
    secretBox,
    fileAuthority: fileAuthority || undefined,
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

  // Push, the command queue and its dispatcher (typed commands, targets, the destructive-command guard).
  const pushStore = createPushStore(db)
  const pushCertificates = createPushCertificateService({ store: pushStore, secretBox, logger })
  const apnsCa = config.apnsCaFile ? readFileSync(config.apnsCaFile, 'utf8') : undefined
  const createSender = (certificate: Parameters<typeof pushCertificates.privateKeyPem>[0]) =>
    createApnsSender({
      topic: certificate.topic,
      certificatePem: certificate.certificatePem,
      privateKeyPem: pushCertificates.privateKeyPem(certificate),
      endpoint: config.apnsUrl,
      ca: apnsCa,
      logger,
    })
  const push = createPushService({ store: pushStore, createSender, schedule: config.repush, metrics, logger })
  const queue = createCommandQueueStore(db, { repushAfterSeconds: config.repush.afterSeconds })
  const directory = createDeviceDirectoryStore(db)
  const commandAdmin = createCommandAdminStore(db)
  const tenantStore = createTenantStore(db)
  const tenantTree = createTenantTree(() => tenantStore.allTenants())
  const tokens = createConfirmationTokens({ key: confirmationKeyFrom(config.secretKeys) })
  const destructive = { mdmProfileIdentifier: config.enrollmentProfileIdentifier, tokens, ownerLimit: config.destructiveOwnerLimit }
  const dispatcher = createCommandDispatcher({ enqueuer: createCommandEnqueuer({ queue, logger }), directory, push, tenants: tenantTree, destructive, logger })
  const retention = createRetentionService({ settings, commandAdmin, logger })

  // Enrollment, ADE, fleet (lifecycle, blueprints), access, tenancy, webhooks.
  const enrollmentLinks = createEnrollmentLinkStore(db)
  const identities = createIdentityStore(db)
  const scep = createScepService({
    authority,
    store: enrollmentLinks,
    verifyIdentity: (der) => verifier.verify(der),
    staticChallenge: config.scepChallenge,
    identityValidityDays: config.identityValidityDays,
    countOutcome: (outcome) => metrics.scepIssuances.inc({ outcome }),
    logger,
  })
  const pushTopics = async () =>
    (await pushCertificates.list()).sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime()).map((certificate) => certificate.topic)
  // A renewal challenge must outlive a device that is off for a while, but not its identity.
  const renewalChallengeDays = Math.max(1, Math.min(30, config.identityRenewalDays))
  const enrollment = createEnrollmentService({
    store: enrollmentLinks,
    authority,
    pushTopics,
    signer: profileSigner,
    publicUrl: config.publicUrl,
    organization: config.organization,
    profileIdentifier: config.enrollmentProfileIdentifier,
    openEnrollment: config.openEnrollment,
    challengeTtlHours: config.enrollmentChallengeHours,
    renewalChallengeDays,
    logger,
  })
  const renewal = createIdentityRenewalService({ store: identities, enrollment, dispatcher, leadDays: config.identityRenewalDays, logger })
  const depStore = createDepStore(db)
  const dep = createDepService({ store: depStore, secretBox, abmUrl: config.abmUrl, publicUrl: config.publicUrl, organization: config.organization, logger })
  const ade = createAdeEnrollmentService({
    store: depStore,
    enrollment,
    dispatcher,
    verifyMachineInfoChain: config.adeVerifyMachineInfo,
    machineInfoCas: pemFiles(config.adeMachineInfoCaFiles),
    logger,
  })
  const audit = createAuditStore(db)
  const lifecycleStore = createLifecycleStore(db)
  const lifecycle = createDeviceLifecycle({
    store: lifecycleStore,
    dispatcher,
    disown: (scope, tokenId, serials) => dep.disownDevices(scope, tokenId, serials),
    mdmProfileIdentifier: config.enrollmentProfileIdentifier,
    deviceEvent: (deviceId, action, details) => audit.appendDeviceEvent({ deviceId, action, details, at: new Date() }),
    logger,
  })
  const deviceState = async (deviceId: string) => (await lifecycleStore.device(fullAccess, deviceId))?.state
  const blueprints = createBlueprintService({
    store: createBlueprintStore(db),
    dispatcher,
    ...(profileSigner ? { signer: profileSigner } : {}),
    deviceState,
    logger,
  })
  const apiKeys = createApiKeyService({ store: createApiKeyStore(db), configKeys: config.apiKeys, logger })
  const webhooks = createWebhookService({ store: createWebhookStore(db), secretBox, logger })
  const deviceSecrets = createDeviceSecrets({ store: createDeviceSecretStore(db), secretBox, logger })

  // What devices tell the rest of Orchard, and who listens (in this order).
  const audited = auditDeviceListeners(audit)
  const hooked = webhookDeviceListeners(webhooks)
  const events = createDeviceEvents({
    enrolled: [
      ...(audited.enrolled ?? []),
      ({ channel }) => channel.kind === 'device' && lifecycle.deviceEnrolled(channel.deviceId),
      ({ channel }) => channel.kind === 'device' && blueprints.deviceEnrolled(channel.deviceId),
      ({ channel, awaitingConfiguration }) => ade.enrolled(channel, { awaitingConfiguration }),
    ],
    checked_out: [...(audited.checked_out ?? []), ({ deviceId }) => lifecycle.deviceCheckedOut(deviceId)],
    identity_renewed: audited.identity_renewed ?? [],
    reenrolled: [...(audited.reenrolled ?? []), ...(hooked.reenrolled ?? [])],
    identity_conflict: [...(audited.identity_conflict ?? []), ...(hooked.identity_conflict ?? [])],
    foreign_enrollment_path: audited.foreign_enrollment_path ?? [],
    // Lifecycle first: an acknowledged erase stops the device; then blueprint convergence.
    command_result: [(event) => lifecycle.commandResult(event), async (event) => ((await blueprints.commandResult(event)) ? 'more' : undefined)],
    checkin: hooked.checkin ?? [],
    report: hooked.report ?? [],
  })

  // The device surface.
  const checkin = createCheckinService({
    enrollments: createEnrollmentStore(db),
    secrets: deviceSecrets,
    declarativeManagement: createEmptyDeclarativeManagement(createDdmStatusStore(db)),
    tokenServices: {},
    userAuthentication: config.userAuthenticate,
    events,
    identityOrigins: {
      lookup: (sha256) => enrollmentLinks.identityOrigin(sha256),
      apply: (deviceId, origin, options) => identities.applyOrigin(deviceId, origin, options),
    },
    logger,
  })
  const reports = createReportService({ queue, inventory: createInventoryStore(db), events, metrics, notNowAlertAfter: config.notNowAlertAfter, logger })
  const mdm = {
    resolveIdentity: createIdentityResolver(verifier),
    checkin,
    reports,
    metrics,
    bodyLimit: config.mdmBodyLimit,
    clientCertificateHeader: config.clientCertHeader,
  }

  // The admin API and the app.
  const oidc = config.oidc && {
    verifier: createOidcVerifier({
      issuer: config.oidc.issuer,
      audience: config.oidc.audiences,
      ...(config.oidc.jwksUrl ? { jwksUrl: config.oidc.jwksUrl } : {}),
    }),
    rules: { groupsClaim: config.oidc.groupsClaim, groupRoles: config.oidc.groupRoles },
  }
  const checkReadiness = createReadinessCheck({
    ping: database.ping,
    migrationStatus: () => migrationStatus(db),
    expiringPushCertificates: () => pushCertificates.expiring(30),
    timeoutMs: 5_000,
  })
  const tls = config.tls && {
    cert: readFileSync(config.tls.certFile),
    key: readFileSync(config.tls.keyFile),
    requestClientCertificate: authority.trustedCertificates().length > 0,
  }
  const deviceDirectory = createDeviceDirectory(directory)
  const commands = createCommandAdmin({ store: commandAdmin, requireEnrollment: deviceDirectory.requireEnrollment })
  const tenants = createTenantService({ store: tenantStore, audit, tree: tenantTree })
  const app = await buildApp({
    logger,
    metrics,
    checkReadiness,
    tls: tls || null,
    connectionLimits: config.connectionLimits,
    mdm,
    api: {
      authenticate: createAdminAuthenticator({ apiKeys, oidc: oidc || null, logger }),
      tenants: tenantTree,
      audit,
      responseValidation: config.apiResponseValidation,
      handlers: {
        ...deviceHandlers({ directory: deviceDirectory, dispatcher, secrets: deviceSecrets }),
        ...lifecycleHandlers({ lifecycle, directory: deviceDirectory }),
        ...blueprintHandlers({ blueprints }),
        ...commandHandlers({ dispatcher, commands, tenants: tenantTree }),
        ...pushHandlers({ push, certificates: pushCertificates, directory: deviceDirectory }),
        ...apiKeyHandlers({ apiKeys }),
        ...webhookHandlers({ webhooks }),
        ...settingsHandlers({ retention }),
        ...enrollmentHandlers({ enrollment, authority, renewal }),
        ...depHandlers({ dep }),
        ...tenantHandlers({ tenants, reports: createTenantReports({ reports: createReportStore(db), tenants: tenantStore }) }),
      },
    },
    enrollment: { scep, enrollment, ade },
  })
  const background = startBackgroundWork({ config, push, pushCertificates, retention, webhooks, authority, enrollment, renewal, dep, blueprints, logger })
  app.addHook('onClose', async () => {
    await background.stop()
    await push.close()
  })
  return { app, metrics, push, webhooks, retention, authority, enrollment, renewal, dispatcher, dep, ade, deviceSecrets }
}

/** Database, migrations, this composition, listening; device secrets stored in clear by an older version are sealed first. */
export function startOrchard(config: Config, logger: Logger): Promise<RunningServer> {
  return startServer(config, logger, async (finalConfig, database, log) => {
    const orchard = await createOrchard(finalConfig, database, log)
    return { app: orchard.app, beforeListen: async () => void (await orchard.deviceSecrets.sealClearSecrets()) }
  })
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runServerProcess(startOrchard)
}
