// The bills inside a device-days report: each tenant's under its effective settings, and
// each organisation's roll-up (itself and its departments).
import { billOf, effectiveBilling, formatUnits, isBilled, minorDigits, type Bill, type BillableDevice, type TenantBillingSettings } from './billing.js'

export interface OrganisationBill {
  organisationId: string
  organisationName: string
  /** The organisation and its departments in the report, the organisation first. */
  tenantIds: string[]
  /** Distinct devices: a device moved between two departments counts once. */
  devices: number
  deviceDays: number
  billedDeviceDays: number
  /** The sum of its tenants' amounts; null when none of them has a price. */
  amount: string | null
  /** Tenants with billed device-days but no price: they add nothing to the amount. */
  unpricedTenantIds: string[]
}

const keyOf = (tenantId: string | null) => tenantId ?? ''

export interface BilledTenants {
  bills: Map<string, Bill>
  /** Whether a row of the report is billed under its tenant's kinds. */
  billed(row: { tenantId: string | null; kind: BillableDevice['kind'] }): boolean
}

export function billTenants(
  rows: ReadonlyArray<BillableDevice & { tenantId: string | null }>,
  tenantIds: ReadonlyArray<string | null>,
  settings: ReadonlyMap<string, TenantBillingSettings>,
  currency: string,
): BilledTenants {
  const byTenant = new Map<string, BillableDevice[]>()
  for (const row of rows) {
    const list = byTenant.get(keyOf(row.tenantId)) ?? []
    list.push(row)
    byTenant.set(keyOf(row.tenantId), list)
  }
  const effective = new Map(tenantIds.map((id) => [keyOf(id), effectiveBilling(id, settings)]))
  const bills = new Map(tenantIds.map((id) => [keyOf(id), billOf(byTenant.get(keyOf(id)) ?? [], effective.get(keyOf(id))!, currency)]))
  return {
    bills,
    billed: (row) => isBilled(row.kind, effective.get(keyOf(row.tenantId)) ?? effectiveBilling(row.tenantId, settings)),
  }
}

/** One roll-up per organisation of the report that has departments in it too. */
export function organisationBills(
  rows: ReadonlyArray<{ tenantId: string | null; deviceId: string }>,
  tenants: ReadonlyArray<{ id: string | null; name: string | null }>,
  bills: ReadonlyMap<string, Bill>,
  settings: ReadonlyMap<string, TenantBillingSettings>,
  currency: string,
): OrganisationBill[] {
  const digits = minorDigits(currency)
  const listed = new Set(tenants.map((tenant) => tenant.id).filter((id): id is string => id !== null))
  const organisations: OrganisationBill[] = []
  for (const id of listed) {
    const organisation = settings.get(id)
    if (!organisation || organisation.parentId !== null) continue
    const departments = [...listed].filter((other) => settings.get(other)?.parentId === id)
    if (departments.length === 0) continue
    const members = [id, ...departments]
    const memberBills = members.map((member) => [member, bills.get(member)!] as const)
    const priced = memberBills.filter(([, bill]) => bill.amountMinor !== null)
    organisations.push({
      organisationId: id,
      organisationName: organisation.name,
      tenantIds: members,
      devices: new Set(rows.filter((row) => row.tenantId !== null && members.includes(row.tenantId)).map((row) => row.deviceId)).size,
      deviceDays: memberBills.reduce((sum, [, bill]) => sum + bill.deviceDays, 0),
      billedDeviceDays: memberBills.reduce((sum, [, bill]) => sum + bill.billedDeviceDays, 0),
      amount:
        priced.length === 0
          ? null
          : formatUnits(
              priced.reduce((sum, [, bill]) => sum + bill.amountMinor!, 0n),
              digits,
            ),
      unpricedTenantIds: memberBills.filter(([, bill]) => bill.amountMinor === null && bill.billedDeviceDays > 0).map(([member]) => member),
    })
  }
  return organisations
}

/** The sum of the tenants' amounts; null when none has a price. */
export function totalAmount(bills: Iterable<Bill>, currency: string): string | null {
  const priced = [...bills].filter((bill) => bill.amountMinor !== null)
  if (priced.length === 0) return null
  return formatUnits(
    priced.reduce((sum, bill) => sum + bill.amountMinor!, 0n),
    minorDigits(currency),
  )
}
