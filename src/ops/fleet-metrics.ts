// The fleet gauges of /metrics: what an on-call person alerts on (queues, backlogs, syncs,
// expiries). Read from the database at scrape time through one aggregate snapshot
// (fleet-metrics-store.ts), taken at most once per `maxAgeMs`: several Prometheus servers
// scraping every few seconds cost one snapshot per interval. Labels are tenants, tokens,
// topics and enum values, never devices, so the series count stays bounded.
import { Gauge } from 'prom-client'
import type { Logger } from 'pino'
import type { Metrics } from './metrics.js'
import type { FleetMetricsSnapshot, FleetMetricsStore, SyncTokenRow } from './fleet-metrics-store.js'
import { jobTypes } from '../db/schema-jobs.js'

export interface FleetMetricsDeps {
  store: FleetMetricsStore
  /** The issuing device CA (from the CA service: it may come from files, not the database). */
  deviceCa(): { id: string; subject: string; notAfter: Date } | null
  /** ORCHARD_PROFILE_SIGNING_CERT_FILE's certificate, when set. */
  profileSigning: { id: string; subject: string; notAfter: Date } | null
  logger: Logger
  /** A snapshot younger than this is served again (default 15 s). */
  maxAgeMs?: number
  now?: () => number
}

export interface FleetMetrics {
  /** The snapshot the gauges show (taken now when the cached one is older than maxAgeMs). */
  snapshot(): Promise<FleetMetricsSnapshot | null>
  /** Forget the cached snapshot: the next scrape reads the database. */
  invalidate(): void
}

const DAY_SECONDS = 86_400

/** Tenant label: the tenant's id, or "none" for devices and tokens of the organisation itself. */
const tenantLabel = (id: string | null): string => id ?? 'none'

export function registerFleetMetrics(metrics: Metrics, deps: FleetMetricsDeps): FleetMetrics {
  const maxAgeMs = deps.maxAgeMs ?? 15_000
  const now = deps.now ?? Date.now
  const log = deps.logger.child({ service: 'fleet-metrics' })
  let cached: { at: number; result: Promise<FleetMetricsSnapshot | null> } | null = null
  let lastDurationSeconds = 0
  let lastOk = true

  const snapshot = (): Promise<FleetMetricsSnapshot | null> => {
    const at = now()
    if (cached && at - cached.at < maxAgeMs) return cached.result
    const started = process.hrtime.bigint()
    // A failure is cached too: a database in trouble is not asked again by every scrape.
    const result = deps.store.snapshot().then(
      (value) => {
        lastOk = true
        lastDurationSeconds = Number(process.hrtime.bigint() - started) / 1e9
        return value
      },
      (error: unknown) => {
        lastOk = false
        lastDurationSeconds = Number(process.hrtime.bigint() - started) / 1e9
        log.warn({ err: error }, 'fleet metrics could not be read from the database')
        return null
      },
    )
    cached = { at, result }
    return result
  }

  const registers = [metrics.registry]
  /** A gauge whose series are rebuilt from the snapshot on every scrape (vanished labels vanish). */
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (set: (labels: Record<L, string>, value: number) => void, s: FleetMetricsSnapshot) => void,
  ) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset()
        const s = await snapshot()
        if (s) fill((labels, value) => this.set(labels as never, value), s)
        // A gauge without labels cannot be absent (reset() leaves it at 0): NaN says "unknown".
        else if (labelNames.length === 0) this.set(NaN)
      },
    })

  new Gauge({
    name: 'orchard_fleet_metrics_up',
    help: '1 when the last read of the fleet gauges from the database succeeded, 0 when it failed (the fleet gauges are then absent, or NaN).',
    registers,
    async collect() {
      await snapshot()
      this.set(lastOk ? 1 : 0)
    },
  })
  new Gauge({
    name: 'orchard_fleet_metrics_collect_duration_seconds',
    help: 'How long the last read of the fleet gauges from the database took.',
    registers,
    async collect() {
      await snapshot()
      this.set(lastDurationSeconds)
    },
  })
  gauge('orchard_tenant_info', 'Tenant names by id (value is always 1), to join on the tenant label.', ['tenant', 'name'], (set, s) => {
    for (const tenant of s.tenants) set({ tenant: tenant.id, name: tenant.name }, 1)
  })
  gauge(
    'orchard_commands_pending',
    'Commands queued for devices and not answered yet (Pending or NotNow, not expired), by device tenant.',
    ['tenant'],
    (set, s) => {
      for (const row of s.pendingCommands) set({ tenant: tenantLabel(row.tenantId) }, row.count)
    },
  )
  gauge('orchard_commands_oldest_pending_age_seconds', 'Age of the oldest command still queued for a device, by device tenant.', ['tenant'], (set, s) => {
    for (const row of s.pendingCommands) set({ tenant: tenantLabel(row.tenantId) }, row.oldestAgeSeconds)
  })
  gauge('orchard_devices', 'Devices by tenant, kind and lifecycle state.', ['tenant', 'kind', 'lifecycle_state'], (set, s) => {
    for (const row of s.devices) set({ tenant: tenantLabel(row.tenantId), kind: row.kind, lifecycle_state: row.lifecycleState }, row.count)
  })
  gauge('orchard_repush_backlog', 'Enrollments whose re-push is due now and not yet done by the re-push loop.', [], (set, s) => {
    set({}, s.repush.due)
  })
  gauge('orchard_repush_oldest_due_seconds', 'How long the longest-waiting due re-push has been due (0 when none is).', [], (set, s) => {
    set({}, s.repush.oldestDueSeconds)
  })
  gauge('orchard_webhook_outbox_pending', 'Webhook deliveries not delivered yet (first attempt or retries to come).', [], (set, s) => {
    set({}, s.webhookOutbox.pending)
  })
  gauge('orchard_webhook_outbox_oldest_pending_age_seconds', 'Age of the oldest undelivered webhook event (0 when the outbox is empty).', [], (set, s) => {
    set({}, s.webhookOutbox.oldestPendingAgeSeconds)
  })
  gauge('orchard_webhook_deliveries_failed', 'Webhook deliveries that gave up after their last attempt (kept until pruned).', [], (set, s) => {
    set({}, s.webhookOutbox.failed)
  })
  gauge(
    'orchard_blueprint_items_failed',
    'Blueprint items (profiles, apps) that failed on a device, by device tenant and item type.',
    ['tenant', 'item_type'],
    (set, s) => {
      for (const row of s.blueprintItemsFailed) set({ tenant: tenantLabel(row.tenantId), item_type: row.itemType }, row.count)
    },
  )
  for (const state of ['running', 'queued'] as const) {
    gauge(`orchard_jobs_${state}`, `Jobs ${state} (GET /api/v1/jobs), by type.`, ['type'], (set, s) => {
      for (const type of jobTypes) set({ type }, s.jobs.find((row) => row.type === type && row.state === state)?.count ?? 0)
    })
  }
  for (const [prefix, service, pick] of [
    ['orchard_abm', 'ABM/ASM server token', (s: FleetMetricsSnapshot) => s.abmTokens],
    ['orchard_vpp', 'Apps and Books content token', (s: FleetMetricsSnapshot) => s.vppTokens],
  ] as const) {
    const labels = (token: SyncTokenRow) => ({ token: token.id, name: token.name, tenant: tenantLabel(token.tenantId) })
    gauge(
      `${prefix}_sync_last_success_timestamp_seconds`,
      `Unix time of the last complete sync of each ${service} (absent before the first).`,
      ['token', 'name', 'tenant'],
      (set, s) => {
        for (const token of pick(s)) if (token.lastSyncAt) set(labels(token), token.lastSyncAt.getTime() / 1000)
      },
    )
    gauge(
      `${prefix}_token_status`,
      `What Apple last answered for each ${service}: 1 on its current status (ok, or the failure).`,
      ['token', 'name', 'tenant', 'status'],
      (set, s) => {
        for (const token of pick(s)) set({ ...labels(token), status: token.status }, 1)
      },
    )
  }
  gauge(
    'orchard_certificate_expiry_days',
    'Days until expiry (negative once expired) of push certificates, ABM/ASM tokens, Apps and Books tokens, the device CA and the profile-signing certificate.',
    ['kind', 'id', 'name'],
    (set, s) => {
      const days = (notAfter: Date) => (notAfter.getTime() - s.now.getTime()) / 1000 / DAY_SECONDS
      for (const certificate of s.pushCertificates)
        set({ kind: 'push_certificate', id: certificate.topic, name: certificate.topic }, days(certificate.notAfter))
      for (const token of s.abmTokens) if (token.expiresAt) set({ kind: 'abm_token', id: token.id, name: token.name }, days(token.expiresAt))
      for (const token of s.vppTokens) if (token.expiresAt) set({ kind: 'vpp_token', id: token.id, name: token.name }, days(token.expiresAt))
      const ca = deps.deviceCa()
      if (ca) set({ kind: 'device_ca', id: ca.id, name: ca.subject }, days(ca.notAfter))
      if (deps.profileSigning)
        set({ kind: 'profile_signing', id: deps.profileSigning.id, name: deps.profileSigning.subject }, days(deps.profileSigning.notAfter))
    },
  )

  return {
    snapshot,
    invalidate: () => {
      cached = null
    },
  }
}
