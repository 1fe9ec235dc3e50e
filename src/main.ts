// Composition root: features -> device events -> device surface -> app, wired by hand, top to
// bottom. Each feature's index.ts builds its own stores and services from what it is given; the
// process around it (database, migrations, listening, signals) is ops/server.ts. Tests build the
// app through createOrchard too, so they run the same wiring.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { Logger } from 'pino'
import { apiKeyHandlers, createAccessFeature } from './access/index.js'
import { abmSyncJobKind, createAdeFeature, depHandlers } from './ade/index.js'
import { createAppsFeature, vppHandlers, vppSyncJobKind } from './apps/index.js'
import { buildApp } from './app.js'
import type { Config } from './config.js'
import { createDeviceCertificateVerifier } from './crypto/device-identity.js'
import { certificatesFromPem } from './crypto/pem.js'
import { createSecretBox } from './crypto/secret-box.js'
import type { DatabaseHandle } from './db/database.js'
import { createDdmFeature, declarationHandlers, reachOf } from './ddm/index.js'
import { createDeviceEvents, createDeviceSecrets, createDeviceSecretStore, createDeviceSurface } from './device/index.js'
import { createEnrollmentFeature, enrollmentHandlers } from './enrollment/index.js'
import { accountEnrollmentHandlers, createAccountEnrollmentAdmin, createAccountEnrollmentFeature } from './enrollment/account-feature.js'
import {
  appUpdateHandlers,
  blueprintHandlers,
  createFleetDirectory,
  createFleetFeature,
  deviceGroupHandlers,
  deviceHandlers,
  lifecycleHandlers,
} from './fleet/index.js'
import { activationLockHandlers, createActivationLockFeature, withBypassCodeStatus } from './fleet/index.js'
import { createSharedIpadFeature, sharedIpadHandlers } from './fleet/index.js'
import { createOffboardingJobs, offboardingHandlers, offboardingJobKind } from './fleet/index.js'
import { createJobsFeature, jobHandlers } from './jobs/index.js'
import { startBackgroundWork } from './ops/background.js'
import { createMetrics, registerDatabaseMetrics, registerInfoMetric, type Metrics } from './ops/metrics.js'
import { createOperations } from './ops/operations.js'
import { runServerProcess, startServer, type RunningServer } from './ops/server.js'
import { createServerSettingsStore } from './ops/server-settings-store.js'
import { fullAccess } from './model/access.js'
import { settingsHandlers } from './ops/settings-api.js'
import { createPushFeature, pushHandlers } from './push/index.js'
import { commandHandlers, createQueueFeature, enrollmentCommandHandlers } from './queue/index.js'
import {
  auditDeviceListeners,
  billingHandlers,
  createReportJobs,
  createTenancyFeature,
  renderJobOutput,
  reportJobKind,
  tenantHandlers,
} from './tenancy/index.js'
import { createUpdatesFeature, osReleaseHandlers, updatePolicyHandlers } from './updates/index.js'
import { version } from './version.js'
import { createWebhookService, createWebhookStore, webhookDeviceListeners, webhookHandlers } from './webhooks/index.js'

export type { RunningServer }
export type Orchard = Awaited<ReturnType<typeof createOrchard>>

/** Wires stores, services and HTTP surfaces over an open, migrated database. */
export async function createOrchard(config: Config, database: DatabaseHandle, logger: Logger) {
  const db = database.db
  const settings = createServerSettingsStore(db)
  const metrics: Metrics = createMetrics()
  // Only a metric label: an unmigrated database (readiness then says so) must not stop the app.
  const storedInstallationId = await settings.getSetting('installation_id').catch(() => undefined)
  const installationId = typeof storedInstallationId === 'string' ? storedInstallationId : 'unknown'
  registerInfoMetric(metrics, { version, installation_id: installationId, database: database.kind })
  registerDatabaseMetrics(metrics, database.kind, database.poolStats)
  const secretBox = config.secretKeys.length > 0 ? createSecretBox(config.secretKeys) : null
  const trustedDeviceCas = config.deviceCaFiles.flatMap((file) => certificatesFromPem(readFileSync(file, 'utf8'), file))
  const verifier = createDeviceCertificateVerifier({ trustedCas: trustedDeviceCas })

  // The features, each over what it needs of the others.
  const { tree, audit, tenants, reports, invoices } = createTenancyFeature({ db, currency: config.billingCurrency })
  const { certificates: pushCertificates, push, topics, identity: pushIdentity } = createPushFeature({ config, db, secretBox, metrics, logger })
  const { store: directoryStore, directory } = createFleetDirectory(db)
  const { queue, dispatcher, commands, retention, tokens, bulk } = createQueueFeature({
    config,
    db,
    directory: directoryStore,
    requireEnrollment: directory.requireEnrollment,
    push,
    tenants: tree,
    settings,
    logger,
  })
  const enrolling = await createEnrollmentFeature({ config, db, secretBox, verifier, trustedDeviceCas, pushTopics: topics, dispatcher, metrics, logger })
  const { authority, scep, enrollment, renewal } = enrolling
  const { dep, ade } = createAdeFeature({ config, db, secretBox, enrollment, dispatcher, logger })
  const disown: Parameters<typeof createFleetFeature>[0]['disown'] = (scope, tokenId, serials) => dep.disownDevices(scope, tokenId, serials)
  const vpp = createAppsFeature({ config, db, secretBox, installationId, version, logger })
  const { licences } = vpp
  // Declarative management (ddm below, with the webhooks its status reports feed).
  const declarationsChanged = async (tenantId: string | null) => void (await ddm.sets.recompute(reachOf(tenantId)))
  const { lifecycle, blueprints, appUpdates, inventory, groups, offboarding } = createFleetFeature({
    config,
    db,
    dispatcher,
    signer: enrolling.profileSigner,
    audit,
    disown,
    licences,
    declarationsChanged,
    deviceDeclarationsChanged: async (deviceId) => void (await ddm.sets.recompute({ deviceIds: [deviceId] })),
    profileReplaced: (profileId) => ddm.declarations.profileReplaced(profileId),
    offboarding: { returnToServiceProfile: async (device) => (await enrollment.returnToServiceProfile(device)).body, tokens },
    logger,
  })
  // Account-driven enrollment: a person no longer allowed in is offboarded (selective wipe for personal devices).
  const accountEnrolling = createAccountEnrollmentFeature({
    config,
    db,
    enrollment,
    // Started by Orchard (no admin confirms it): never an erase, whatever the kind.
    offboard: async (deviceId, reason) => void (await lifecycle.offboard(fullAccess, deviceId, { reason, selectiveOnly: true, erase: {} })),
    logger,
  })
  const { apiKeys, authenticate, bootstrapOwnerKey } = createAccessFeature({ config, db, logger })
  const updates = createUpdatesFeature({ config, db, version, dispatcher, policiesChanged: declarationsChanged, metrics, logger })
  const webhooks = createWebhookService({ store: createWebhookStore(db), secretBox, logger })
  // Long work answered 202: bulk commands above ORCHARD_JOB_THRESHOLD, syncs asked for through the API, long reports.
  const jobs = createJobsFeature({
    db,
    kinds: [bulk.kind, abmSyncJobKind(dep), vppSyncJobKind(vpp.sync), offboardingJobKind({ leavers: offboarding.leavers }), reportJobKind({ reports })],
    emit: (type, job) => webhooks.emit(type, job),
    retentionDays: config.jobRetentionDays,
    logger,
  })
  const ddm = createDdmFeature({
    db,
    dispatcher,
    latestRelease: updates.latestRelease,
    emit: (type, build) => webhooks.emitBuilt(type, build),
    publicUrl: config.publicUrl,
    secretKeys: config.secretKeys,
    signer: enrolling.profileSigner,
    logger,
  })
  const deviceSecrets = createDeviceSecrets({ store: createDeviceSecretStore(db), secretBox, logger })
  const activationLock = createActivationLockFeature({
    db,
    dispatcher,
    secretBox,
    config,
    lockAtApple: (serialNumber, escrowKey) => dep.activationLockDevice(serialNumber, escrowKey),
    pushIdentity,
    logger,
  })
  const sharedIpads = createSharedIpadFeature({ db, dispatcher, tokens, recordDryRun: commands.recordDryRun, logger })

  // What devices tell the rest of Orchard, and who listens (in this order).
  const audited = auditDeviceListeners(audit)
  const hooked = webhookDeviceListeners(webhooks)
  const events = createDeviceEvents({
    enrolled: [
      ...(audited.enrolled ?? []),
      ({ channel }) => channel.kind === 'device' && lifecycle.deviceEnrolled(channel.deviceId),
      ({ channel }) => channel.kind === 'device' && blueprints.deviceEnrolled(channel.deviceId),
      // Its declaration set (a user channel: its own), and DeclarativeManagement when it supports it.
      ({ channel }) => ddm.sets.recompute({ deviceIds: [channel.deviceId] }),
      ({ channel, awaitingConfiguration }) => ade.enrolled(channel, { awaitingConfiguration }),
      // Its inventory (supervision, OS, apps...), after what the others queued; never fails enrollment.
      ({ channel }) => config.inventoryAtEnrollment && channel.kind === 'device' && inventory.deviceEnrolled(channel.deviceId),
      // A supervised device's Activation Lock bypass code (or, supervision unknown, after DeviceInformation).
      ({ channel }) => activationLock.deviceEnrolled(channel),
      // A Shared iPad's users (UserList).
      ({ channel }) => sharedIpads.users.deviceEnrolled(channel),
    ],
    checked_out: [...(audited.checked_out ?? []), ({ deviceId }) => lifecycle.deviceCheckedOut(deviceId)],
    identity_renewed: audited.identity_renewed ?? [],
    reenrolled: [...(audited.reenrolled ?? []), ...(hooked.reenrolled ?? [])],
    identity_conflict: [...(audited.identity_conflict ?? []), ...(hooked.identity_conflict ?? [])],
    foreign_enrollment_path: audited.foreign_enrollment_path ?? [],
    // Lifecycle first: an acknowledged erase stops the device; then blueprint convergence.
    command_result: [
      (event) => lifecycle.commandResult(event),
      async (event) => ((await blueprints.commandResult(event)) ? 'more' : undefined),
      (event) => updates.commandResult(event),
      (event) => activationLock.commandResult(event),
      (event) => sharedIpads.users.commandResult(event),
      // Smart groups follow inventory: targeting reads the answer just stored.
      async (event) => void (event.status === 'Acknowledged' && (await groups.inventoryReported(event.deviceId, event.requestType))),
    ],
    checkin: hooked.checkin ?? [],
    report: hooked.report ?? [],
  })
  const accountService = accountEnrolling.service
  const deviceSurface = createDeviceSurface({
    config,
    db,
    verifier,
    queue,
    secrets: deviceSecrets,
    identityOrigins: accountService ? accountService.identityOrigins(enrolling.identityOrigins) : enrolling.identityOrigins,
    declarativeManagement: ddm.checkIn,
    events,
    metrics,
    logger,
  })
  // Ongoing authentication of account-driven enrollments: the only 401 besides device_retired.
  const mdm = accountService ? { ...deviceSurface, accountGate: accountService.gate } : deviceSurface

  // The app: the device surface, enrollment, the admin API.
  const tls = config.tls && {
    cert: readFileSync(config.tls.certFile),
    key: readFileSync(config.tls.keyFile),
    requestClientCertificate: authority.trustedCertificates().length > 0,
  }
  // /readyz's checks and the fleet gauges of /metrics (src/ops/operations.ts).
  const operations = createOperations({
    db,
    database,
    secretKeys: config.secretKeys,
    authority,
    profileSigner: enrolling.profileSigner,
    pushCertificates,
    metrics,
    logger,
  })
  const app = await buildApp({
    logger,
    metrics,
    checkReadiness: operations.checkReadiness,
    tls: tls || null,
    connectionLimits: config.connectionLimits,
    mdm,
    api: {
      authenticate,
      tenants: tree,
      audit,
      responseValidation: config.apiResponseValidation,
      serverUrl: config.publicUrlSet,
      handlers: {
        ...deviceHandlers({
          directory: withBypassCodeStatus(directory, activationLock),
          dispatcher,
          secrets: deviceSecrets,
          inventory,
          returnToService: offboarding.eraseKeys,
        }),
        ...activationLockHandlers({ activationLock }),
        ...lifecycleHandlers({ lifecycle, directory }),
        ...offboardingHandlers({
          lifecycle,
          offboarding,
          tenants: tree,
          jobs: createOffboardingJobs({ jobs: jobs.service, threshold: config.jobThreshold }),
        }),
        ...blueprintHandlers({ blueprints }),
        ...deviceGroupHandlers({ groups }),
        ...appUpdateHandlers({ appUpdates }),
        ...declarationHandlers({ declarations: ddm.declarations }),
        ...commandHandlers({ dispatcher, commands, tenants: tree, bulkJobs: bulk.jobs(jobs.service) }),
        ...jobHandlers({ jobs: jobs.service, render: renderJobOutput }),
        ...enrollmentCommandHandlers({ dispatcher, tenants: tree }),
        ...sharedIpadHandlers({ ...sharedIpads, tenants: tree }),
        ...pushHandlers({ push, certificates: pushCertificates, directory }),
        ...apiKeyHandlers({ apiKeys }),
        ...webhookHandlers({ webhooks }),
        ...settingsHandlers({ retention }),
        ...enrollmentHandlers({ enrollment, authority, renewal }),
        ...accountEnrollmentHandlers({
          admin: createAccountEnrollmentAdmin({
            store: accountEnrolling.store,
            offboard: (scope, deviceId, reason) => lifecycle.offboard(scope, deviceId, { ...(reason !== undefined ? { reason } : {}), erase: {} }),
          }),
        }),
        ...depHandlers({ dep, jobs: jobs.service }),
        ...vppHandlers({ ...vpp, jobs: jobs.service }),
        ...osReleaseHandlers(updates),
        ...updatePolicyHandlers(updates),
        ...tenantHandlers({ tenants, reports, currency: config.billingCurrency }),
        ...billingHandlers({ reports, invoices, jobs: createReportJobs({ jobs: jobs.service, thresholdDays: config.reportJobDays }) }),
      },
    },
    enrollment: { scep, enrollment, ade },
    ...(accountService ? { accountEnrollment: { accountEnrollment: accountService } } : {}),
    vppNotifications: { notifications: vpp.notifications, devicesLicensed: (deviceIds) => blueprints.devicesLicensed(deviceIds) },
    legacyProfiles: { profiles: ddm.legacyProfiles },
  })
  const background = startBackgroundWork({
    config,
    push,
    pushCertificates,
    retention,
    webhooks,
    authority,
    enrollment,
    pruneAccountSignIns: (before) => accountEnrolling.store.prune(before),
    renewal,
    dep,
    vpp,
    blueprints,
    inventory,
    declarationSets: ddm.sets,
    updatePolicies: updates.policies,
    osCatalogue: updates.catalogue,
    activationLock,
    jobs: jobs.runner,
    pruneJobs: () => jobs.prune(),
    logger,
  })
  app.addHook('onClose', async () => {
    await background.stop()
    await push.close()
  })
  return {
    app,
    metrics,
    fleetMetrics: operations.fleetMetrics,
    operations,
    push,
    webhooks,
    retention,
    authority,
    enrollment,
    renewal,
    dispatcher,
    dep,
    ade,
    vpp,
    blueprints,
    inventory,
    deviceSecrets,
    updates,
    ddm,
    activationLock,
    bootstrapOwnerKey,
    jobs,
  }
}

/** Database, migrations, this composition, listening; device secrets stored in clear by an older version are sealed first. */
export function startOrchard(config: Config, logger: Logger): Promise<RunningServer> {
  return startServer(config, logger, async (finalConfig, database, log) => {
    const orchard = await createOrchard(finalConfig, database, log)
    return {
      app: orchard.app,
      beforeListen: async () => {
        await orchard.deviceSecrets.sealClearSecrets()
        await orchard.bootstrapOwnerKey()
        await orchard.operations.warnAtStart()
      },
    }
  })
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runServerProcess(startOrchard)
}
