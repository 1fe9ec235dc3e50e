// The device-days report as the admin API renders it, JSON or CSV: for the synchronous call
// (GET /api/v1/reports/device-days) and for a report job's output (GET
// /api/v1/jobs/{id}/result), which keeps the report as JSON and renders it the same way.
import type { DeviceDaysReport as DeviceDaysJson } from '../http/generated/operations.js'
import type { Bill, BillLine } from './billing.js'
import { toCsv, type DeviceDaysReport, type TenantDeviceDays } from './tenant-reports.js'

export type DeviceDaysRows = 'tenants' | 'breakdown' | 'organisations' | 'devices'

/**
 * The report as it is rendered, and stored in a report job's output: plain JSON, so a bill
 * without its amount in minor units (a bigint, for roll-ups; no rendering reads it).
 */
export type DeviceDaysData = Omit<DeviceDaysReport, 'tenants'> & {
  tenants: Array<Omit<TenantDeviceDays, 'bill'> & { bill: Omit<Bill, 'amountMinor'> }>
}

export function deviceDaysData(report: DeviceDaysReport): DeviceDaysData {
  return {
    ...report,
    tenants: report.tenants.map((tenant) => {
      const { amountMinor: _minor, ...bill } = tenant.bill
      return { ...tenant, bill }
    }),
  }
}

type Cell = string | number | null
export const flag = (value: boolean): string => (value ? 'true' : 'false')

export function lineJson(line: BillLine) {
  return { kind: line.kind, model: line.model, billed: line.billed, devices: line.devices, device_days: line.deviceDays, amount: line.amount }
}

export function deviceDaysJson(report: DeviceDaysData, generatedAt: Date, perDevice: boolean): DeviceDaysJson {
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
export function deviceDaysCsv(report: DeviceDaysData, rows: DeviceDaysRows): string {
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

/** What the device-days call answers for `format`, `rows` and `per_device`: JSON, or CSV with its file name. */
export function renderDeviceDays(
  report: DeviceDaysData,
  generatedAt: Date,
  query: { format: 'json' | 'csv'; rows?: DeviceDaysRows; per_device: boolean },
): { json: DeviceDaysJson } | { csv: string; filename: string } {
  if (query.format === 'csv') {
    const rows = query.rows ?? (query.per_device ? 'devices' : 'tenants')
    return { csv: deviceDaysCsv(report, rows), filename: `device-days-${report.from}-${report.to}` }
  }
  return { json: deviceDaysJson(report, generatedAt, query.per_device) }
}
