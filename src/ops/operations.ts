// What the operations endpoints know about the rest of Orchard: the readiness checks and the
// fleet gauges of /metrics, wired from the services main.ts builds.
import type { Logger } from 'pino'
import { masterKeyId } from '../crypto/secret-box.js'
import type { ProfileSigner } from '../crypto/profile-signing.js'
import { readCertificateFields } from '../crypto/der.js'
import type { DatabaseHandle } from '../db/database.js'
import { migrationStatus } from '../db/migrations.js'
import { sha256, subjectOf } from '../enrollment/certificate-authority-certificates.js'
import type { CertificateAuthorityService } from '../enrollment/certificate-authority.js'
import type { PushCertificateService } from '../push/push-certificates.js'
import { Gauge } from 'prom-client'
import { createFleetMetricsStore } from './fleet-metrics-store.js'
import { registerFleetMetrics } from './fleet-metrics.js'
import type { Metrics } from './metrics.js'
import { createReadinessStore } from './readiness-store.js'
import { blockingChecks, createReadinessCheck, describeAutovacuum, type ReadinessReport } from './readiness.js'

export function createOperations(deps: {
  db: DatabaseHandle['db']
  database: Pick<DatabaseHandle, 'ping' | 'kind'>
  secretKeys: readonly Buffer[]
  authority: Pick<CertificateAuthorityService, 'available' | 'issuing'>
  profileSigner: ProfileSigner | null
  pushCertificates: Pick<PushCertificateService, 'expiring'>
  metrics: Metrics
  logger: Logger
}) {
  const deviceCa = () => {
    if (!deps.authority.available()) return null
    const ca = deps.authority.issuing()
    return { id: ca.id, subject: subjectOf(ca.certificateDer), notAfter: ca.notAfter }
  }
  const readinessStore = createReadinessStore(deps.db)
  const checkReadiness = createReadinessCheck({
    ping: deps.database.ping,
    migrationStatus: () => migrationStatus(deps.db),
    deviceCa: () => {
      if (deps.authority.available()) return { loaded: true, notAfter: deps.authority.issuing().notAfter }
      try {
        deps.authority.issuing()
        return { loaded: false, reason: 'the device CA is not loaded' }
      } catch (error) {
        return { loaded: false, reason: (error as Error).message }
      }
    },
    masterKeyIds: deps.secretKeys.map(masterKeyId),
    sealedSecretsByKey: () => readinessStore.sealedSecretsByKey(),
    expiringPushCertificates: () => deps.pushCertificates.expiring(30),
    ...(deps.database.kind === 'postgres' ? { autovacuum: () => readinessStore.autovacuum() } : {}),
    timeoutMs: 5_000,
  })
  /** At start-up: a warning when autovacuum is off, which the operator would otherwise learn from a full disk. */
  const warnAtStart = async () => {
    if (deps.database.kind !== 'postgres') return
    const state = describeAutovacuum(await readinessStore.autovacuum())
    if (state !== 'on') deps.logger.warn({ autovacuum: state }, `autovacuum ${state}`)
  }
  registerReadinessMetrics(deps.metrics, checkReadiness)
  const signer = deps.profileSigner
  const fleetMetrics = registerFleetMetrics(deps.metrics, {
    store: createFleetMetricsStore(deps.db),
    deviceCa,
    profileSigning: signer
      ? { id: sha256(signer.certificateDer), subject: subjectOf(signer.certificateDer), notAfter: readCertificateFields(signer.certificateDer).notAfter }
      : null,
    logger: deps.logger,
  })
  return { checkReadiness, fleetMetrics, warnAtStart }
}

/**
 * orchard_ready and orchard_readiness_check{check}: what /readyz answers, for alerting on a
 * replica that is up but not ready. Evaluated at most once per 15 s, like the fleet gauges.
 */
function registerReadinessMetrics(metrics: Metrics, checkReadiness: () => Promise<ReadinessReport>, maxAgeMs = 15_000): void {
  let cached: { at: number; report: Promise<ReadinessReport> } | null = null
  const report = () => {
    const at = Date.now()
    if (!cached || at - cached.at >= maxAgeMs) cached = { at, report: checkReadiness() }
    return cached.report
  }
  new Gauge({
    name: 'orchard_ready',
    help: '1 when this instance is ready to serve devices (what /readyz answers with 200), else 0.',
    registers: [metrics.registry],
    async collect() {
      this.set((await report()).ready ? 1 : 0)
    },
  })
  new Gauge({
    name: 'orchard_readiness_check',
    help: 'Each blocking readiness check of /readyz: 1 passing, 0 failing (database, migrations, device_ca, secret_keys).',
    labelNames: ['check'] as const,
    registers: [metrics.registry],
    async collect() {
      const { failing } = await report()
      for (const check of blockingChecks) this.set({ check }, failing.includes(check) ? 0 : 1)
    },
  })
}
