// A device-days report over more days than ORCHARD_REPORT_JOB_DAYS, or asked for with
// `Prefer: respond-async`, runs as a report job: the request checks the period and answers
// 202; the job computes the report in the caller's scope (its tenant ids are kept in the
// params) and keeps it, with every device's row, as the job's output, which GET
// /api/v1/jobs/{id}/result renders for any format, rows and per_device.
import { OrchardError } from '../errors.js'
import type { Job } from '../http/generated/operations.js'
import { jobLocation } from '../jobs/job-json.js'
import type { JobKind } from '../jobs/job-kind.js'
import type { JobStarter } from '../jobs/job-service.js'
import type { JobOutputRenderer } from '../jobs/jobs-api.js'
import { defaultTenantOf, scopeOfTenantIds, scopeTenantIds, type AccessScope } from '../model/access.js'
import { deviceDaysData, renderDeviceDays, type DeviceDaysData } from './device-days-render.js'
import type { TenantReports } from './tenant-reports.js'

interface ReportJobParams {
  from: string
  to: string
  /** The tenant asked for (null: every tenant of the scope). */
  tenant_id: string | null
  /** The caller's scope when the job was created (tenant ids; null: all). */
  scope_tenant_ids: string[] | null
}

/** A report job's output (job_outputs.content). */
export interface ReportJobOutput {
  kind: 'device-days'
  generated_at: string
  report: DeviceDaysData
}

export interface ReportJobs {
  /** A job for a report over more days than the threshold or asked for asynchronously; null otherwise (answer it now). */
  startIfLong(
    scope: AccessScope,
    period: { from: string; to: string; tenantId?: string },
    options: { days: number; respondAsync: boolean },
  ): Promise<Job | null>
}

export function createReportJobs(deps: { jobs: JobStarter; thresholdDays: number }): ReportJobs {
  return {
    async startIfLong(scope, period, options) {
      if (!options.respondAsync && options.days <= deps.thresholdDays) return null
      const params: ReportJobParams = {
        from: period.from,
        to: period.to,
        tenant_id: period.tenantId ?? null,
        scope_tenant_ids: scopeTenantIds(scope),
      }
      return deps.jobs.start(scope, {
        type: 'report',
        // The caller's own tenant: whoever may read the caller's rows may read its report.
        tenantId: defaultTenantOf(scope),
        params: { ...params },
        total: 1,
        details: { report: 'device-days', from: period.from, to: period.to, tenant_id: params.tenant_id },
      })
    },
  }
}

export function reportJobKind(deps: { reports: Pick<TenantReports, 'deviceDays'>; now?: () => Date }): JobKind {
  const now = deps.now ?? (() => new Date())
  return {
    type: 'report',
    // One step, the whole report.
    stoppable: false,
    async step(job) {
      const params = job.params as unknown as ReportJobParams
      const scope = scopeOfTenantIds(params.scope_tenant_ids)
      const generatedAt = now()
      const query = { from: params.from, to: params.to, ...(params.tenant_id !== null ? { tenantId: params.tenant_id } : {}) }
      const report = await deps.reports.deviceDays(scope, query, generatedAt)
      const output: ReportJobOutput = { kind: 'device-days', generated_at: generatedAt.toISOString(), report: deviceDaysData(report) }
      const result = {
        report: 'device-days',
        from: params.from,
        to: params.to,
        tenant_id: params.tenant_id,
        devices: report.devices.length,
        result_url: `${jobLocation(job.id)}/result`,
      }
      return { done: 1, total: 1, outcomes: { generated: 1 }, finished: { state: 'succeeded', result, output } }
    },
  }
}

/** GET /api/v1/jobs/{id}/result for the outputs tenancy's jobs keep: a report job's report, as the report call renders it. */
export const renderJobOutput: JobOutputRenderer = (type, content, query) => {
  const output = content as Partial<ReportJobOutput> | null
  if (type !== 'report' || output?.kind !== 'device-days' || !output.report || typeof output.generated_at !== 'string')
    throw new OrchardError('conflict', `the output of this ${type} job cannot be rendered`)
  return renderDeviceDays(output.report, new Date(output.generated_at), query)
}
