// Billing arithmetic, with no I/O: a tenant's price per device-year and billed kinds (its own,
// else its organisation's), and the amount of its device-days. Money is exact: prices are
// decimals held as integer thousandths, amounts exact fractions (BigInt), rounded once, half
// up, to the currency's minor unit. A day costs price / the number of days of its own year
// (365 or 366), so a period across New Year or in a leap year is priced day by day.
import { deviceKinds, type DeviceKind } from '../model/devices.js'

/** A tenant's own billing settings; null = its organisation's. */
export interface TenantBillingSettings {
  id: string
  name: string
  parentId: string | null
  /** Decimal text (numeric(13,3)), e.g. "120.000". */
  price: string | null
  billedKinds: DeviceKind[] | null
}

/** What applies to a tenant: its own setting, else its organisation's, else none / every kind. */
export interface EffectiveBilling {
  /** Price per device-year in thousandths of the currency unit; null = no price. */
  price: bigint | null
  /** The tenant whose price applies (the tenant or its organisation), null when none. */
  priceFrom: string | null
  billedKinds: DeviceKind[]
  /** The tenant whose kinds apply; null = the default (every kind). */
  billedKindsFrom: string | null
}

/** Device-days of one device in one tenant, by calendar year. */
export interface BillableDevice {
  deviceId: string
  /** null: the device was forgotten since; it is billed (its kind is not known). */
  kind: DeviceKind | null
  model: string | null
  days: number
  daysByYear: ReadonlyArray<{ year: number; days: number }>
}

export interface BillLine {
  kind: DeviceKind | null
  model: string | null
  billed: boolean
  devices: number
  deviceDays: number
  /** Decimal text in minor-unit precision; "0.00" for kinds not billed, null when there is no price. */
  amount: string | null
}

export interface Bill {
  currency: string
  price: string | null
  priceFrom: string | null
  billedKinds: DeviceKind[]
  billedKindsFrom: string | null
  devices: number
  deviceDays: number
  billedDeviceDays: number
  excludedDeviceDays: number
  /** Rounded once from the exact sum; the billed lines' amounts add up to it. */
  amount: string | null
  /** The same amount in minor units (for roll-ups). */
  amountMinor: bigint | null
  /** By kind and model: billed ones first, then by kind and model. */
  lines: BillLine[]
}

const thousandths = 1000n
/** lcm(365, 366): a day of either year is a whole number of these parts of a year. */
const yearParts = 365n * 366n

export function daysInYear(year: number): number {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 366 : 365
}

/** Digits of the currency's minor unit (EUR 2, JPY 0, BHD 3), from ISO 4217 as Node knows it. */
export function minorDigits(currency: string): number {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2
}

/** "120", "120.5", "120.000" -> thousandths. Callers pass text that matched /^\d+(\.\d{1,3})?$/. */
export function parsePrice(text: string): bigint {
  const [whole, fraction = ''] = text.split('.')
  return BigInt(whole!) * thousandths + BigInt(fraction.padEnd(3, '0'))
}

/** Decimals a price has beyond the thousandths' trailing zeros ("12.50" -> 1). */
export function decimalsOf(text: string): number {
  const fraction = text.split('.')[1] ?? ''
  return fraction.replace(/0+$/, '').length
}

/** An integer of 10^-digits units as decimal text: 12345n, 2 -> "123.45". */
export function formatUnits(units: bigint, digits: number): string {
  const negative = units < 0n
  const text = (negative ? -units : units).toString().padStart(digits + 1, '0')
  const whole = text.slice(0, text.length - digits)
  const fraction = text.slice(text.length - digits)
  return `${negative ? '-' : ''}${whole}${digits > 0 ? `.${fraction}` : ''}`
}

/** A price for display: the currency's minor digits, more only when the price has them. */
export function formatPrice(price: bigint, digits: number): string {
  const text = formatUnits(price, 3)
  const [whole, fraction] = text.split('.') as [string, string]
  const shown = Math.max(digits, fraction.replace(/0+$/, '').length)
  return shown === 0 ? whole : `${whole}.${fraction.slice(0, shown)}`
}

/** The settings that apply to `tenantId`; none (no price, every kind) for central IT and unknown tenants. */
export function effectiveBilling(tenantId: string | null, settings: ReadonlyMap<string, TenantBillingSettings>): EffectiveBilling {
  const own = tenantId === null ? undefined : settings.get(tenantId)
  const parent = own?.parentId ? settings.get(own.parentId) : undefined
  const priced = own?.price !== null && own?.price !== undefined ? own : parent?.price !== null && parent?.price !== undefined ? parent : undefined
  const kinds = own?.billedKinds ? own : parent?.billedKinds ? parent : undefined
  return {
    price: priced ? parsePrice(priced.price!) : null,
    priceFrom: priced?.id ?? null,
    billedKinds: kinds ? deviceKinds.filter((kind) => kinds.billedKinds!.includes(kind)) : [...deviceKinds],
    billedKindsFrom: kinds?.id ?? null,
  }
}

export function isBilled(kind: DeviceKind | null, billing: Pick<EffectiveBilling, 'billedKinds'>): boolean {
  return kind === null || billing.billedKinds.includes(kind)
}

/**
 * The exact amount of device-days at `price` thousandths per device-year, as a numerator
 * over denominator(digits) in minor units: price × Σ days(year) / daysInYear(year).
 */
function exactAmount(price: bigint, digits: number, daysByYear: ReadonlyArray<{ year: number; days: number }>): bigint {
  let parts = 0n
  for (const { year, days } of daysByYear) parts += BigInt(days) * (yearParts / BigInt(daysInYear(year)))
  return price * 10n ** BigInt(digits) * parts
}

const denominator = thousandths * yearParts

/** Half up (amounts are never negative). */
function roundHalfUp(numerator: bigint): bigint {
  return (2n * numerator + denominator) / (2n * denominator)
}

/**
 * Rounds the total once and shares it out over the lines by largest remainder, so the lines
 * add up to the rounded total and each is within one minor unit of its exact amount.
 */
export function shareOut(exact: readonly bigint[]): { total: bigint; lines: bigint[] } {
  const total = roundHalfUp(exact.reduce((sum, value) => sum + value, 0n))
  const lines = exact.map((value) => value / denominator)
  let left = total - lines.reduce((sum, value) => sum + value, 0n)
  const order = exact
    .map((value, index) => ({ index, remainder: value % denominator }))
    .sort((a, b) => (a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1))
  for (const { index } of order) {
    if (left <= 0n) break
    lines[index]! += 1n
    left -= 1n
  }
  return { total, lines }
}

const kindOrder = (kind: DeviceKind | null) => (kind === null ? deviceKinds.length : deviceKinds.indexOf(kind))

/** The bill of one tenant's device-days under its effective settings. */
export function billOf(devices: readonly BillableDevice[], billing: EffectiveBilling, currency: string): Bill {
  const digits = minorDigits(currency)
  interface Group {
    kind: DeviceKind | null
    model: string | null
    billed: boolean
    devices: Set<string>
    deviceDays: number
    exact: bigint
  }
  const groups = new Map<string, Group>()
  for (const device of devices) {
    const key = JSON.stringify([device.kind, device.model])
    const group = groups.get(key) ?? {
      kind: device.kind,
      model: device.model,
      billed: isBilled(device.kind, billing),
      devices: new Set<string>(),
      deviceDays: 0,
      exact: 0n,
    }
    group.devices.add(device.deviceId)
    group.deviceDays += device.days
    if (group.billed && billing.price !== null) group.exact += exactAmount(billing.price, digits, device.daysByYear)
    groups.set(key, group)
  }
  const ordered = [...groups.values()].sort(
    (a, b) =>
      Number(b.billed) - Number(a.billed) ||
      kindOrder(a.kind) - kindOrder(b.kind) ||
      (a.model === b.model ? 0 : a.model === null ? 1 : b.model === null ? -1 : a.model < b.model ? -1 : 1),
  )
  const shared = shareOut(ordered.map((group) => group.exact))
  const billedDeviceDays = ordered.filter((group) => group.billed).reduce((sum, group) => sum + group.deviceDays, 0)
  const deviceDays = ordered.reduce((sum, group) => sum + group.deviceDays, 0)
  const zero = formatUnits(0n, digits)
  return {
    currency,
    price: billing.price === null ? null : formatPrice(billing.price, digits),
    priceFrom: billing.priceFrom,
    billedKinds: billing.billedKinds,
    billedKindsFrom: billing.billedKindsFrom,
    devices: new Set(devices.map((device) => device.deviceId)).size,
    deviceDays,
    billedDeviceDays,
    excludedDeviceDays: deviceDays - billedDeviceDays,
    amount: billing.price === null ? null : formatUnits(shared.total, digits),
    amountMinor: billing.price === null ? null : shared.total,
    lines: ordered.map((group, index) => ({
      kind: group.kind,
      model: group.model,
      billed: group.billed,
      devices: group.devices.size,
      deviceDays: group.deviceDays,
      amount: !group.billed ? zero : billing.price === null ? null : formatUnits(shared.lines[index]!, digits),
    })),
  }
}

/** `2026` (a year) or `2026-12` (a month) -> its first and last day; callers pass text that matched the pattern. */
export function periodDays(period: string): { firstDay: string; lastDay: string } {
  const [year, month] = period.split('-').map(Number) as [number, number | undefined]
  if (month === undefined) return { firstDay: `${period}-01-01`, lastDay: `${period}-12-31` }
  const last = month === 2 ? daysInYear(year) - 337 : [4, 6, 9, 11].includes(month) ? 30 : 31
  return { firstDay: `${period}-01`, lastDay: `${period}-${String(last).padStart(2, '0')}` }
}
