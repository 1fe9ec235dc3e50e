// Reports per tenant, as plain data (the admin API renders them as JSON or CSV): device
// counts now, and device-days in a period for billing per device per year.
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { DeviceKind } from '../model/devices.js'
import type { Bill } from './billing.js'
import { billTenants, organisationBills, totalAmount, type OrganisationBill } from './billing-report.js'
import type { BillingStore } from './billing-store.js'
import type { CountRow, ReportStore } from './report-store.js'
import type { TenantStore } from './tenant-store.js'

export interface ValueCount {
  value: string | null
  count: number
}

export interface TenantDeviceCounts {
  tenantId: string | null
  tenantName: string | null
  total: number
  enrolled: number
  unenrolled: number
  lastSeen: { within1d: number; within7d: number; within30d: number; older: number; never: number }
  byKind: ValueCount[]
  byModel: ValueCount[]
  byOsVersion: ValueCount[]
}

export interface TenantDeviceDays {
  tenantId: string | null
  tenantName: string | null
  /** Its organisation; null for an organisation, central IT or a tenant deleted since. */
  parentId: string | null
  devices: number
  deviceDays: number
  bill: Bill
}

export interface DeviceDaysReport {
  from: string
  to: string
  currency: string
  totalDeviceDays: number
  totalAmount: string | null
  tenants: TenantDeviceDays[]
  organisations: OrganisationBill[]
  devices: Array<{
    tenantId: string | null
    deviceId: string
    serialNumber: string | null
    kind: DeviceKind | null
    model: string | null
    billed: boolean
    deviceDays: number
    firstDay: string
    lastDay: string
  }>
}

export interface TenantReports {
  deviceCounts(scope: AccessScope, filter: { tenantId?: string }, now: Date): Promise<TenantDeviceCounts[]>
  deviceDays(scope: AccessScope, query: { from: string; to: string; tenantId?: string }, now: Date): Promise<DeviceDaysReport>
}

/** Longest period a device-days report may cover (three years and a bit). */
export const maxReportDays = 1100

const dayMs = 24 * 60 * 60 * 1000
const keyOf = (tenantId: string | null) => tenantId ?? ''

/** The days a report period covers (`to` inclusive); validation_failed when `to` is before `from` or the period is too long. */
export function reportPeriodDays(from: string, to: string): number {
  const span = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / dayMs
  if (span < 0)
    throw new OrchardError('validation_failed', 'to: must not be before from', {
      details: { errors: [{ parameter: 'to', detail: 'must not be before from' }] },
    })
  if (span >= maxReportDays) {
    const detail = `a report covers at most ${maxReportDays} days`
    throw new OrchardError('validation_failed', `to: ${detail}`, { details: { errors: [{ parameter: 'to', detail }] } })
  }
  return span + 1
}

export interface TenantReportsDeps {
  reports: ReportStore
  tenants: Pick<TenantStore, 'listTenants'>
  billing: BillingStore
  /** ORCHARD_BILLING_CURRENCY. */
  currency: string
}

export function createTenantReports(deps: TenantReportsDeps): TenantReports {
  /**
   * The tenants a report lists, with their names: every tenant of the scope (so empty
   * departments show zeros), plus central IT for a central caller when it has rows.
   */
  async function reportTenants(
    scope: AccessScope,
    tenantId: string | undefined,
    centralHasRows: boolean,
  ): Promise<Array<{ id: string | null; name: string | null }>> {
    const tenants = (await deps.tenants.listTenants(scope)).filter((tenant) => tenantId === undefined || tenant.id === tenantId)
    const listed: Array<{ id: string | null; name: string | null }> = tenants.map((tenant) => ({ id: tenant.id, name: tenant.name }))
    if (scope.kind === 'all' && tenantId === undefined && centralHasRows) listed.unshift({ id: null, name: null })
    return listed
  }

  function grouped(rows: CountRow[]): Map<string, ValueCount[]> {
    const map = new Map<string, ValueCount[]>()
    for (const row of rows) {
      const list = map.get(keyOf(row.tenantId)) ?? []
      list.push({ value: row.value, count: row.count })
      map.set(keyOf(row.tenantId), list)
    }
    return map
  }

  return {
    async deviceCounts(scope, filter, now) {
      const facts = await deps.reports.deviceCounts(scope, filter, now)
      const totals = new Map(facts.totals.map((row) => [keyOf(row.tenantId), row]))
      const byKind = grouped(facts.byKind)
      const byModel = grouped(facts.byModel)
      const byOsVersion = grouped(facts.byOsVersion)
      const tenants = await reportTenants(scope, filter.tenantId, totals.has(''))
      return tenants.map((tenant) => {
        const key = keyOf(tenant.id)
        const row = totals.get(key)
        const total = row?.total ?? 0
        const enrolled = row?.enrolled ?? 0
        return {
          tenantId: tenant.id,
          tenantName: tenant.name,
          total,
          enrolled,
          unenrolled: total - enrolled,
          lastSeen: {
            within1d: row?.seen1d ?? 0,
            within7d: row?.seen7d ?? 0,
            within30d: row?.seen30d ?? 0,
            older: row?.seenOlder ?? 0,
            never: row?.neverSeen ?? 0,
          },
          byKind: byKind.get(key) ?? [],
          byModel: byModel.get(key) ?? [],
          byOsVersion: byOsVersion.get(key) ?? [],
        }
      })
    },

    async deviceDays(scope, query, now) {
      reportPeriodDays(query.from, query.to)
      const rows = await deps.reports.deviceDays(scope, {
        from: query.from,
        to: query.to,
        now,
        ...(query.tenantId !== undefined ? { tenantId: query.tenantId } : {}),
      })
      const tenants = await reportTenants(
        scope,
        query.tenantId,
        rows.some((row) => row.tenantId === null),
      )
      // Periods of a tenant deleted since still count; it is listed without a name.
      const listed = new Set(tenants.map((tenant) => keyOf(tenant.id)))
      for (const row of rows) {
        if (!listed.has(keyOf(row.tenantId))) {
          listed.add(keyOf(row.tenantId))
          tenants.push({ id: row.tenantId, name: null })
        }
      }
      const settings = new Map((await deps.billing.allBillingSettings()).map((tenant) => [tenant.id, tenant]))
      const billed = billTenants(
        rows,
        tenants.map((tenant) => tenant.id),
        settings,
        deps.currency,
      )
      return {
        from: query.from,
        to: query.to,
        currency: deps.currency,
        totalDeviceDays: rows.reduce((sum, row) => sum + row.days, 0),
        totalAmount: totalAmount(billed.bills.values(), deps.currency),
        tenants: tenants.map((tenant) => {
          const bill = billed.bills.get(keyOf(tenant.id))!
          const parentId = tenant.id === null ? null : (settings.get(tenant.id)?.parentId ?? null)
          return { tenantId: tenant.id, tenantName: tenant.name, parentId, devices: bill.devices, deviceDays: bill.deviceDays, bill }
        }),
        organisations: organisationBills(rows, tenants, billed.bills, settings, deps.currency),
        devices: rows.map((row) => ({
          tenantId: row.tenantId,
          deviceId: row.deviceId,
          serialNumber: row.serialNumber,
          kind: row.kind,
          model: row.model,
          billed: billed.billed(row),
          deviceDays: row.days,
          firstDay: row.firstDay,
          lastDay: row.lastDay,
        })),
      }
    },
  }
}

/**
 * RFC 4180 CSV (CRLF line ends, quoted where needed). Cells a spreadsheet would read as a
 * formula (=, +, -, @, tab, CR first) get a leading apostrophe: device names and serial
 * numbers come from devices, and a report is opened in Excel.
 */
export function toCsv(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | null>>): string {
  const cell = (value: string | number | null): string => {
    if (value === null) return ''
    if (typeof value === 'number') return String(value)
    const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value
    return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
  }
  return [header, ...rows].map((row) => row.map(cell).join(',')).join('\r\n') + '\r\n'
}
