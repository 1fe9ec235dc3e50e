// Admin API: the device-days report with its amounts, and a tenant's invoice (JSON or CSV).
// A report over a long period (or asked for with `Prefer: respond-async`) answers 202 with a
// report job instead; its result renders the same way (device-days-render.ts).
import type { FastifyRequest } from 'fastify'
import type { Invoice as InvoiceJson } from '../http/generated/operations.js'
import { accessOf, auditActorOf, type OperationHandlers } from '../http/plugin.js'
import { prefers } from '../http/prefer.js'
import { sendCsv } from '../http/views.js'
import { jobLocation } from '../jobs/job-json.js'
import { flag, lineJson, renderDeviceDays } from './device-days-render.js'
import type { AccessScope } from '../model/access.js'
import type { Invoice, Invoices } from './invoice.js'
import type { ReportJobs } from './report-job.js'
import { reportPeriodDays, toCsv, type TenantReports } from './tenant-reports.js'

export interface BillingHandlerDeps {
  reports: TenantReports
  invoices: Invoices
  /** Long reports as jobs (ORCHARD_REPORT_JOB_DAYS); without it every report is answered at once. */
  jobs?: ReportJobs
  now?: () => Date
}

type Cell = string | number | null

/**
 * The scope with the audit actor a write carries: a GET has none (reads are not audited), but
 * the report job it starts is a write, audited with the job and named after its caller.
 */
function startingScope(request: FastifyRequest, scope: AccessScope): AccessScope {
  const actor = auditActorOf(request)
  return actor ? { ...scope, actor } : scope
}

function invoiceJson(invoice: Invoice, generatedAt: Date): InvoiceJson {
  const { bill } = invoice
  return {
    tenant_id: invoice.tenantId,
    tenant_name: invoice.tenantName,
    parent_id: invoice.parentId,
    period: invoice.period,
    first_day: invoice.firstDay,
    last_day: invoice.lastDay,
    generated_at: generatedAt.toISOString(),
    complete: invoice.complete,
    currency: bill.currency,
    price_per_device_year: bill.price,
    price_from: bill.priceFrom,
    billed_kinds: bill.billedKinds,
    billed_kinds_from: bill.billedKindsFrom,
    lines: bill.lines.map((line) => ({ ...lineJson(line), price_per_device_year: bill.price })),
    totals: {
      devices: bill.devices,
      device_days: bill.deviceDays,
      billed_device_days: bill.billedDeviceDays,
      excluded_device_days: bill.excludedDeviceDays,
      amount: bill.amount,
    },
  }
}

function invoiceCsv(invoice: Invoice): string {
  const { bill } = invoice
  const head = [invoice.tenantId, invoice.tenantName, invoice.period, invoice.firstDay, invoice.lastDay]
  const rows: Cell[][] = bill.lines.map((line) => [
    'item',
    ...head,
    line.kind,
    line.model,
    flag(line.billed),
    line.devices,
    line.deviceDays,
    bill.price,
    bill.currency,
    line.amount,
  ])
  rows.push(['total', ...head, null, null, null, bill.devices, bill.deviceDays, bill.price, bill.currency, bill.amount])
  return toCsv(
    [
      'line',
      'tenant_id',
      'tenant_name',
      'period',
      'first_day',
      'last_day',
      'kind',
      'model',
      'billed',
      'devices',
      'device_days',
      'price_per_device_year',
      'currency',
      'amount',
    ],
    rows,
  )
}

export function billingHandlers(deps: BillingHandlerDeps): OperationHandlers {
  const now = deps.now ?? (() => new Date())
  return {
    async getDeviceDaysReport(request, reply) {
      const { query } = request
      const scope = accessOf(request)
      const period = { from: query.from, to: query.to, ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}) }
      // The period is checked before any job exists: a wrong one is a 400 either way.
      const days = reportPeriodDays(query.from, query.to)
      const respondAsync = prefers(request.headers['prefer'], 'respond-async')
      // What the same URL answers depends on Prefer (RFC 7240, section 2).
      reply.header('vary', 'Prefer')
      const job = deps.jobs ? await deps.jobs.startIfLong(startingScope(request, scope), period, { days, respondAsync }) : null
      if (job) {
        if (respondAsync) reply.header('preference-applied', 'respond-async')
        return reply.header('location', jobLocation(job.id)).code(202).send(job)
      }
      const generatedAt = now()
      const rendered = renderDeviceDays(await deps.reports.deviceDays(scope, period, generatedAt), generatedAt, query)
      return 'csv' in rendered ? sendCsv(reply, rendered.filename, rendered.csv) : rendered.json
    },

    async getInvoice(request, reply) {
      const { query } = request
      const generatedAt = now()
      const invoice = await deps.invoices.invoice(
        accessOf(request),
        { period: query.period, ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}) },
        generatedAt,
      )
      if (query.format === 'csv') return sendCsv(reply, `invoice-${invoice.tenantId}-${invoice.period}`, invoiceCsv(invoice))
      return invoiceJson(invoice, generatedAt)
    },
  }
}
