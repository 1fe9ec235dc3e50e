// Prometheus gauges of the compliance view: devices per policy and state, computed at scrape
// time from the same report as GET /api/v1/reports/os-compliance (cached for a minute: a scrape
// every few seconds does not recompute it).
import { Gauge } from 'prom-client'
import type { Metrics } from '../ops/metrics.js'
import { fullAccess } from '../model/access.js'
import type { UpdatePolicies } from './update-policies.js'

export function registerOsComplianceMetrics(metrics: Metrics, policies: Pick<UpdatePolicies, 'compliance'>, now: () => Date = () => new Date()): void {
  let cached: { at: number; counts: Array<{ policy: string; state: string; n: number }> } | undefined
  new Gauge({
    name: 'orchard_os_compliance_devices',
    help: 'Devices per OS update policy and compliance state (compliant, pending, downloading, installing, failed, overdue, unsupported).',
    labelNames: ['policy', 'state'] as const,
    registers: [metrics.registry],
    async collect() {
      if (!cached || now().getTime() - cached.at > 60_000) {
        const report = await policies.compliance(fullAccess, {})
        cached = {
          at: now().getTime(),
          counts: report.policies.flatMap((policy) => Object.entries(policy.counts).map(([state, n]) => ({ policy: policy.name, state, n }))),
        }
      }
      this.reset()
      for (const { policy, state, n } of cached.counts) this.set({ policy, state }, n)
    },
  })
}
