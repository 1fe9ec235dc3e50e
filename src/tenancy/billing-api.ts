// Admin API: the device-days report with its amounts, and a tenant's invoice (JSON or CSV).
import type { DeviceDaysReport as DeviceDaysJson, Invoice as InvoiceJson } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { sendCsv } from '../http/views.js'
import type { BillLine } from './billing.js'
import type { Invoice, Invoices } from './invoice.js'
import { toCsv, type DeviceDaysReport, type TenantReports } from './tenant-reports.js'

export interface BillingHandlerDeps {
  reports: TenantReports
  invoices: Invoices
  now?: () => Date
}

type Cell = string | number | null
const flag = (value: boolean): string => (value ? 'true' : 'false')

function lineJson(line: BillLine) {
  return { kind: line.kind, model: line.model, billed: line.billed, devices: line.devices, device_days: line.deviceDays, amount: line.amount }
}

function deviceDaysJson(report: DeviceDaysReport, generatedAt: Date, perDevice: boolean): DeviceDaysJson {
  return {
    from: report.from,
    to: report.to,
    generated_at: generatedAt.toISOString(),
    currency: report.currency,
    total_device_days: report.totalDeviceDays,
    total_amount: report.totalAmount,
    items: report.tenants.map((row) => ({
      tenant_id: row.tenantId,
      tenant_name: row.tenantName,
      parent_id: row.parentId,
      devices: row.devices,
      device_days: row.deviceDays,
      billed_device_days: row.bill.billedDeviceDays,
      price_per_device_year: row.bill.price,
      billed_kinds: row.bill.billedKinds,
      amount: row.bill.amount,
      breakdown: row.bill.lines.map(lineJson),
    })),
    organisations: report.organisations.map((row) => ({
      organisation_id: row.organisationId,
      organisation_name: row.organisationName,
      tenant_ids: row.tenantIds,
      devices: row.devices,
      device_days: row.deviceDays,
      billed_device_days: row.billedDeviceDays,
      amount: row.amount,
      unpriced_tenant_ids: row.unpricedTenantIds,
    })),
    ...(perDevice
      ? {
          devices: report.devices.map((row) => ({
            tenant_id: row.tenantId,
            device_id: row.deviceId,
            serial_number: row.serialNumber,
            kind: row.kind,
            model: row.model,
            billed: row.billed,
            device_days: row.deviceDays,
            first_day: row.firstDay,
            last_day: row.lastDay,
          })),
        }
      : {}),
  }
}

/** The report's CSV: the first columns are those the report had before billing, in their order. */
function deviceDaysCsv(report: DeviceDaysReport, rows: 'tenants' | 'breakdown' | 'organisations' | 'devices'): string {
  const currency = report.currency
  switch (rows) {
    case 'devices':
      return toCsv(
        ['tenant_id', 'device_id', 'serial_number', 'device_days', 'first_day', 'last_day', 'kind', 'model', 'billed'],
        report.devices.map((row) => [
          row.tenantId,
          row.deviceId,
          row.serialNumber,
          row.deviceDays,
          row.firstDay,
          row.lastDay,
          row.kind,
          row.model,
          flag(row.billed),
        ]),
      )
    case 'breakdown':
      return toCsv(
        ['tenant_id', 'tenant_name', 'kind', 'model', 'billed', 'devices', 'device_days', 'price_per_device_year', 'currency', 'amount'],
        report.tenants.flatMap((tenant) =>
          tenant.bill.lines.map((line): Cell[] => [
            tenant.tenantId,
            tenant.tenantName,
            line.kind,
            line.model,
            flag(line.billed),
            line.devices,
            line.deviceDays,
            tenant.bill.price,
            currency,
            line.amount,
          ]),
        ),
      )
    case 'organisations':
      return toCsv(
        ['organisation_id', 'organisation_name', 'tenant_ids', 'devices', 'device_days', 'billed_device_days', 'currency', 'amount', 'unpriced_tenant_ids'],
        report.organisations.map((row) => [
          row.organisationId,
          row.organisationName,
          row.tenantIds.join(' '),
          row.devices,
          row.deviceDays,
          row.billedDeviceDays,
          currency,
          row.amount,
          row.unpricedTenantIds.join(' '),
        ]),
      )
    case 'tenants':
      return toCsv(
        ['tenant_id', 'tenant_name', 'devices', 'device_days', 'parent_id', 'billed_device_days', 'price_per_device_year', 'currency', 'amount'],
        report.tenants.map((row) => [
          row.tenantId,
          row.tenantName,
          row.devices,
          row.deviceDays,
          row.parentId,
          row.bill.billedDeviceDays,
          row.bill.price,
          currency,
          row.bill.amount,
        ]),
      )
  }
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
      const generatedAt = now()
      const report = await deps.reports.deviceDays(
        accessOf(request),
        { from: query.from, to: query.to, ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}) },
        generatedAt,
      )
      if (query.format === 'csv') {
        const rows = query.rows ?? (query.per_device ? 'devices' : 'tenants')
        return sendCsv(reply, `device-days-${query.from}-${query.to}`, deviceDaysCsv(report, rows))
      }
      return deviceDaysJson(report, generatedAt, query.per_device)
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
