// Prometheus metrics. One registry per server instance (not prom-client's global one), so
// tests can build several apps in one process. Later services add their own counters
// (check-ins by type, commands by status, pushes by result) to this registry.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { PoolStats } from '../db/database.js'

export interface Metrics {
  readonly registry: Registry
  readonly httpRequests: Counter<'method' | 'route' | 'status_code'>
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>
  readonly mdmCheckins: Counter<'message_type' | 'outcome'>
  readonly scepIssuances: Counter<'outcome'>
  readonly mdmCommandReports: Counter<'status'>
  readonly mdmCommandsDelivered: Counter<'request_type'>
  readonly apnsPushes: Counter<'result'>
}

export function createMetrics(): Metrics {
  const registry = new Registry()
  // Includes process CPU/memory, GC, and nodejs_eventloop_lag_seconds (event-loop lag).
  collectDefaultMetrics({ register: registry })
  const httpRequests = new Counter({
    name: 'orchard_http_requests_total',
    help: 'HTTP requests answered, by route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [registry],
  })
  const httpRequestDuration = new Histogram({
    name: 'orchard_http_request_duration_seconds',
    help: 'Time from request received to response sent, by route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  })
  const mdmCheckins = new Counter({
    name: 'orchard_mdm_checkins_total',
    help: 'Check-in messages by MessageType and outcome (ok, or the error code answered).',
    labelNames: ['message_type', 'outcome'] as const,
    registers: [registry],
  })
  const mdmCommandReports = new Counter({
    name: 'orchard_mdm_command_reports_total',
    help: 'Command reports accepted from devices, by Status (Idle, Acknowledged, Error, CommandFormatError, NotNow).',
    labelNames: ['status'] as const,
    registers: [registry],
  })
  const mdmCommandsDelivered = new Counter({
    name: 'orchard_mdm_commands_delivered_total',
    help: 'Commands sent to devices, by RequestType.',
    labelNames: ['request_type'] as const,
    registers: [registry],
  })
  const scepIssuances = new Counter({
    name: 'orchard_scep_pki_operations_total',
    help: 'SCEP PKIOperations answered: issued (challenge, static_challenge, renewal, retry) or the failInfo of a refusal.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  })
  const apnsPushes = new Counter({
    name: 'orchard_apns_pushes_total',
    help: 'APNs pushes by result: sent, or the reason APNs or the connection gave.',
    labelNames: ['result'] as const,
    registers: [registry],
  })
  return { registry, httpRequests, httpRequestDuration, mdmCheckins, scepIssuances, mdmCommandReports, mdmCommandsDelivered, apnsPushes }
}

/** Gauges read from the database pool at scrape time. */
export function registerDatabaseMetrics(metrics: Metrics, kind: string, poolStats: () => PoolStats): void {
  new Gauge({
    name: 'orchard_db_pool_connections',
    help: 'Database connections by state (total open, idle, and queries waiting for one).',
    labelNames: ['backend', 'state'] as const,
    registers: [metrics.registry],
    collect() {
      const stats = poolStats()
      this.set({ backend: kind, state: 'total' }, stats.total)
      this.set({ backend: kind, state: 'idle' }, stats.idle)
      this.set({ backend: kind, state: 'waiting' }, stats.waiting)
    },
  })
}

/** The conventional info metric: value 1, facts as labels. */
export function registerInfoMetric(metrics: Metrics, labels: { version: string; installation_id: string; database: string }): void {
  const info = new Gauge({
    name: 'orchard_info',
    help: 'Orchard version, installation id and database backend (value is always 1).',
    labelNames: ['version', 'installation_id', 'database'] as const,
    registers: [metrics.registry],
  })
  info.set(labels, 1)
}
