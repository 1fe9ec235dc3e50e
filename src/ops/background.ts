// The periodic work of a running server, started once the app is built and stopped with it.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DepService } from '../ade/dep-service.js'
import type { VppLicences } from '../apps/vpp-licences.js'
import type { VppSync } from '../apps/vpp-sync.js'
import type { VppTokens } from '../apps/vpp-tokens.js'
import type { VppUnmanaged } from '../apps/vpp-unmanaged.js'
import { vppTokenWarningDays } from '../apps/vpp-tokens.js'
import { depTokenWarningDays } from '../ade/tokens.js'
import type { CertificateAuthorityService } from '../enrollment/certificate-authority.js'
import type { EnrollmentService } from '../enrollment/enrollment-service.js'
import type { IdentityRenewalService } from '../enrollment/identity-renewal.js'
import type { BlueprintService } from '../fleet/blueprints.js'
import type { InventoryRefresh } from '../fleet/inventory-refresh.js'
import type { PushCertificateService } from '../push/push-certificates.js'
import type { PushService } from '../push/push-service.js'
import type { OsCatalogue } from '../updates/os-catalogue.js'
import type { RetentionService } from '../queue/retention.js'
import type { WebhookService } from '../webhooks/webhook-service.js'
import { startPeriodicTask, type PeriodicTask } from './periodic-task.js'

/**
 * The re-push loop, the daily push-certificate expiry warning, the daily pruning of old
 * command results, and webhook delivery; all stop with the app.
 */
export function startBackgroundWork(deps: {
  config: Config
  push: PushService
  pushCertificates: PushCertificateService
  retention: RetentionService
  webhooks: WebhookService
  authority: CertificateAuthorityService
  enrollment: EnrollmentService
  /** Deletes expired sign-ins and access tokens of account-driven enrollment (older than the given date). */
  pruneAccountSignIns?: (before: Date) => Promise<number>
  renewal: IdentityRenewalService
  dep: DepService
  vpp: { tokens: VppTokens; sync: VppSync; licences: VppLicences; unmanaged: VppUnmanaged }
  blueprints: BlueprintService
  /** Devices whose inventory is older than ORCHARD_INVENTORY_REFRESH_HOURS are asked again (checked hourly). */
  inventory: Pick<InventoryRefresh, 'refreshStale'>
  /** The periodic check computes every device's declaration set again (a kind, group or tenant changed meanwhile). */
  declarationSets: { recompute(scope: { all: true }): Promise<unknown> }
  /** Devices on the MDM update path not at their policy's target get ScheduleOSUpdate at the periodic check. */
  updatePolicies: { scheduleLegacy(): Promise<number> }
  osCatalogue: Pick<OsCatalogue, 'refreshIfStale'>
  /** ADE devices' organization-linked Activation Lock due at ABM/ASM (ORCHARD_ADE_ACTIVATION_LOCK), sent and retried every minute. */
  activationLock?: { escrowDue(): Promise<unknown> }
  /** Jobs (ORCHARD_JOB_WORKER): run at once when created here, and every 5 s (other replicas' jobs, orphaned ones). */
  jobs?: { start(intervalMs: number): void; stop(): Promise<void> }
  /** Deletes jobs finished longer ago than ORCHARD_JOB_RETENTION_DAYS (checked daily). */
  pruneJobs?: () => Promise<unknown>
  logger: Logger
}) {
  const tasks: PeriodicTask[] = []
  /** The expiry checks: at start-up, then daily; a failure is logged like a periodic task's. */
  const nowAndDaily = (name: string, run: () => Promise<void>) => {
    void run().catch((error: unknown) => deps.logger.error({ err: error }, `${name} failed`))
    tasks.push(startPeriodicTask(name, 86_400_000, run, deps.logger))
  }
  // Another instance may import or remove a CA: pick it up within a minute.
  tasks.push(startPeriodicTask('device CA refresh', 60_000, () => deps.authority.refresh(), deps.logger))
  tasks.push(startPeriodicTask('SCEP challenge pruning', 86_400_000, async () => void (await deps.enrollment.pruneChallenges()), deps.logger))
  const pruneAccountSignIns = deps.pruneAccountSignIns
  if (pruneAccountSignIns)
    tasks.push(
      startPeriodicTask('account sign-in pruning', 3_600_000, async () => void (await pruneAccountSignIns(new Date(Date.now() - 86_400_000))), deps.logger),
    )
  if (deps.config.identityRenewalDays > 0) {
    tasks.push(startPeriodicTask('identity renewal', 3_600_000, async () => void (await deps.renewal.renewDue()), deps.logger))
  }
  tasks.push(startPeriodicTask('command result pruning', 86_400_000, async () => void (await deps.retention.prune()), deps.logger))
  const pruneJobs = deps.pruneJobs
  if (pruneJobs) tasks.push(startPeriodicTask('finished job pruning', 86_400_000, async () => void (await pruneJobs()), deps.logger))
  // Emitting an event wakes the webhook worker at once; the interval only picks up retries.
  if (deps.config.webhookWorker) {
    deps.webhooks.start(5_000)
    tasks.push({ stop: () => deps.webhooks.stop() })
  }
  const jobs = deps.jobs
  if (deps.config.jobWorker && jobs) {
    jobs.start(5_000)
    tasks.push({ stop: () => jobs.stop() })
  }
  const seconds = deps.config.repush.loopIntervalSeconds
  if (seconds > 0) {
    tasks.push(startPeriodicTask('re-push', seconds * 1000, async () => void (await deps.push.repushDue()), deps.logger))
  }
  if (deps.config.blueprintCheckHours > 0) {
    tasks.push(
      startPeriodicTask(
        'blueprint check',
        deps.config.blueprintCheckHours * 3_600_000,
        async () => {
          await deps.blueprints.checkAll()
          await deps.declarationSets.recompute({ all: true })
        },
        deps.logger,
      ),
    )
  }
  const inventoryHours = deps.config.inventoryRefreshHours
  if (inventoryHours > 0) {
    const refreshStale = async () => void (await deps.inventory.refreshStale(new Date(Date.now() - inventoryHours * 3_600_000)))
    tasks.push(startPeriodicTask('inventory refresh', Math.min(inventoryHours, 1) * 3_600_000, refreshStale, deps.logger))
  }
  if (deps.config.depSyncSeconds > 0) {
    tasks.push(startPeriodicTask('ABM/ASM device sync', deps.config.depSyncSeconds * 1000, async () => void (await deps.dep.syncAll()), deps.logger))
    tasks.push(startPeriodicTask('ADE assignment retry', 60_000, async () => void (await deps.dep.retryThrottled()), deps.logger))
  }
  const activationLock = deps.activationLock
  if (deps.config.adeActivationLock && activationLock) {
    tasks.push(startPeriodicTask('ADE Activation Lock escrow', 60_000, async () => void (await activationLock.escrowDue()), deps.logger))
  }
  if (deps.config.vppSyncSeconds > 0) {
    tasks.push(startPeriodicTask('Apps and Books sync', deps.config.vppSyncSeconds * 1000, async () => void (await deps.vpp.sync.syncAll()), deps.logger))
    // Licences blueprints asked for: associated in batches, their events followed; devices
    // whose licence arrived are asked for their app list, which installs the app.
    const licenceRound = async () => deps.blueprints.devicesLicensed((await deps.vpp.licences.advance()).settled)
    tasks.push(startPeriodicTask('Apps and Books licences', 30_000, licenceRound, deps.logger))
  }
  if (deps.config.osCatalogueSeconds > 0 && deps.config.osCatalogueUrl !== 'off') {
    // Checked every 15 minutes: a restart (or a failed fetch) does not wait a whole schedule.
    const checkMs = Math.min(deps.config.osCatalogueSeconds * 1000, 900_000)
    tasks.push(startPeriodicTask('OS release catalogue refresh', checkMs, () => deps.osCatalogue.refreshIfStale(), deps.logger))
  }
  const warnExpiringVppTokens = async () => {
    for (const token of await deps.vpp.tokens.expiringTokens(vppTokenWarningDays)) {
      deps.logger.warn(
        { vpp_token_id: token.id, name: token.name, expires_at: token.expires_at, days_left: token.daysLeft },
        `content token "${token.name}" expires in ${token.daysLeft} days: download a new one in Apple Business/School Manager (Apps and Books) and renew it`,
      )
    }
  }
  nowAndDaily('content token expiry check', warnExpiringVppTokens)
  // The reconcile: licences Apple holds (as of the last sync) for serials Orchard does not manage.
  nowAndDaily('unmanaged licence check', async () => void (await deps.vpp.unmanaged.report()))
  const warnExpiringDepTokens = async () => {
    for (const token of await deps.dep.expiringTokens(depTokenWarningDays)) {
      deps.logger.warn(
        { dep_token_id: token.id, name: token.name, access_token_expiry: token.access_token_expiry, days_left: token.daysLeft },
        `ABM/ASM server token "${token.name}" expires in ${token.daysLeft} days: download a new one in Apple Business/School Manager and upload it`,
      )
    }
  }
  nowAndDaily('ABM/ASM token expiry check', warnExpiringDepTokens)
  const warnExpiring = async () => {
    for (const certificate of await deps.pushCertificates.expiring(30)) {
      deps.logger.warn(
        { topic: certificate.topic, not_after: certificate.notAfter, days_left: certificate.daysLeft },
        `push certificate for ${certificate.topic} expires in ${certificate.daysLeft} days: renew it in the Apple Push Certificates Portal with the same Apple Account`,
      )
    }
  }
  nowAndDaily('push certificate expiry check', warnExpiring)
  return { stop: async () => void (await Promise.all(tasks.map((task) => task.stop()))) }
}
