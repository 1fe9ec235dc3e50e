import t, { type Test } from 'tap'
import { fullAccess, tenantsAccess } from '../../src/model/access.js'
import { billOf, formatPrice, minorDigits, parsePrice, periodDays, shareOut } from '../../src/tenancy/billing.js'
import { createBillingStore } from '../../src/tenancy/billing-store.js'
import { createInvoices } from '../../src/tenancy/invoice.js'
import { createReportStore } from '../../src/tenancy/report-store.js'
import { createTenantReports } from '../../src/tenancy/tenant-reports.js'
import { createTenantStore } from '../../src/tenancy/tenant-store.js'
import { apiClient } from '../helpers/api.js'
import { createTestDatabase } from '../helpers/database.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

type Api = ReturnType<typeof apiClient>

async function keyFor(api: Api, role: string, tenantId: string | null): Promise<string> {
  const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId ?? 'central'}`, role, tenant_id: tenantId } })
  if (created.statusCode !== 201) throw new Error(`key creation failed: ${created.body}`)
  return created.json.key as string
}

const at = (text: string) => new Date(text)

/**
 * An organisation (science, 365.00 a device-year) with two departments: physics (inherits
 * everything) and chemistry (732.00, bills work and function devices only); library stands
 * alone without a price. Histories in February 2024 (a leap year: 29 days, 366 in the year).
 */
async function billingFixture(t: Test) {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const created = await api('POST', '/api/v1/tenants', { body: { id: 'science', name: 'Faculty of Science', price_per_device_year: '365' } })
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json, { price_per_device_year: '365.00', billed_kinds: null })
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics', parent_id: 'science' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'chemistry', name: 'Chemistry', parent_id: 'science' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'library', name: 'Library' } })
  const chemistry = await api('PATCH', '/api/v1/tenants/chemistry', { body: { price_per_device_year: '732.00', billed_kinds: ['function', 'work'] } })
  t.equal(chemistry.statusCode, 200, chemistry.body)
  t.match(chemistry.json, { name: 'Chemistry', price_per_device_year: '732.00', billed_kinds: ['work', 'function'] })

  // A real enrolled device, made personal and moved to physics through the API; its
  // tenancy history is then replaced by a known one.
  const phone = await mdm.enrolledDevice()
  t.equal((await api('PATCH', `/api/v1/devices/${phone.udid}`, { body: { kind: 'personal' } })).statusCode, 200)
  t.equal((await api('POST', '/api/v1/devices/move', { body: { device_ids: [phone.udid], tenant_id: 'physics' } })).statusCode, 200)
  await db.updateTable('devices').set({ product_name: 'iPhone15,2' }).where('id', '=', phone.udid).execute()
  await db.deleteFrom('device_tenancy').where('device_id', '=', phone.udid).execute()

  await db
    .insertInto('devices')
    .values([
      { id: 'p-work-1', udid: 'p-work-1', serial_number: 'PW1', kind: 'work', product_name: 'iPad13,1', tenant_id: 'physics' },
      { id: 'p-work-2', udid: 'p-work-2', serial_number: 'PW2', kind: 'work', product_name: 'iPad13,1', tenant_id: 'physics' },
      { id: 'c-work', udid: 'c-work', serial_number: 'CW', kind: 'work', product_name: 'iPad14,1', tenant_id: 'chemistry' },
      { id: 'c-personal', udid: 'c-personal', serial_number: 'CP', kind: 'personal', product_name: 'iPhone15,2', tenant_id: 'chemistry' },
      { id: 's-function', udid: 's-function', serial_number: 'SF', kind: 'function', product_name: 'AppleTV14,1', tenant_id: 'science' },
      { id: 'l-work', udid: 'l-work', serial_number: 'LW', kind: 'work', product_name: 'Mac14,2', tenant_id: 'library' },
    ])
    .execute()
  const february = { started_at: at('2024-02-01T00:00:00Z'), ended_at: at('2024-03-01T00:00:00Z') }
  await db
    .insertInto('device_tenancy')
    .values([
      { device_id: 'p-work-1', tenant_id: 'physics', ...february },
      { device_id: 'p-work-2', tenant_id: 'physics', started_at: at('2024-02-10T08:00:00Z'), ended_at: at('2024-02-20T17:00:00Z') },
      { device_id: phone.udid, tenant_id: 'physics', ...february },
      { device_id: 'c-work', tenant_id: 'chemistry', ...february },
      { device_id: 'c-personal', tenant_id: 'chemistry', ...february },
      { device_id: 's-function', tenant_id: 'science', started_at: at('2024-02-01T00:00:00Z'), ended_at: at('2024-02-14T12:00:00Z') },
      { device_id: 'l-work', tenant_id: 'library', ...february },
    ])
    .execute()
  return { mdm, api, db, phone: phone.udid }
}

t.test('prices: set on create and update, inherited from the organisation, validated to the cent, owners only, audited', async (t) => {
  const { api, db } = await billingFixture(t)
  const physics = await api('GET', '/api/v1/tenants/physics')
  t.match(physics.json, { price_per_device_year: null, billed_kinds: null }, 'a department shows its own settings: none, it inherits')

  const negative = await api('PATCH', '/api/v1/tenants/physics', { body: { price_per_device_year: '-5' } })
  t.equal(negative.statusCode, 400)
  t.ok(
    negative.json.errors.every((e: { pointer: string }) => e.pointer === '/price_per_device_year'),
    'the field is named',
  )
  const tooFine = await api('PATCH', '/api/v1/tenants/physics', { body: { price_per_device_year: '12.345' } })
  t.equal(tooFine.statusCode, 400)
  t.same(tooFine.json.errors, [{ pointer: '/price_per_device_year', detail: 'EUR prices have at most 2 decimals' }])
  t.equal(
    (await api('PATCH', '/api/v1/tenants/physics', { body: { price_per_device_year: 12 } })).statusCode,
    400,
    'a number is refused: prices are decimal text',
  )
  const unknown = await api('PATCH', '/api/v1/tenants/physics', { body: { price: '12.00' } })
  t.equal(unknown.statusCode, 400)
  t.same(unknown.json.errors, [{ pointer: '/price', detail: 'is not a known field' }])
  const badKind = await api('PATCH', '/api/v1/tenants/physics', { body: { billed_kinds: ['work', 'tablet'] } })
  t.equal(badKind.statusCode, 400)
  t.ok(badKind.json.errors.some((e: { pointer: string }) => e.pointer.startsWith('/billed_kinds')))
  t.equal((await api('PATCH', '/api/v1/tenants/physics', { body: {} })).statusCode, 400, 'an empty update is refused')

  const admin = await keyFor(api, 'admin', 'physics')
  t.equal(
    (await api('PATCH', '/api/v1/tenants/physics', { key: admin, body: { price_per_device_year: '1.00' } })).statusCode,
    403,
    'a department sets no price',
  )

  const set = await api('PATCH', '/api/v1/tenants/physics', { body: { price_per_device_year: '0.5' } })
  t.equal(set.statusCode, 200)
  t.match(set.json, { name: 'Physics', price_per_device_year: '0.50', billed_kinds: null }, 'the name stays')
  const back = await api('PATCH', '/api/v1/tenants/physics', { body: { price_per_device_year: null } })
  t.equal(back.json.price_per_device_year, null, 'null inherits again')

  const rows = await db
    .selectFrom('audit_events')
    .select(['target_id', 'details', 'outcome'])
    .where('action', '=', 'updateTenant')
    .where('outcome', '=', 'success')
    .orderBy('id')
    .execute()
  t.same(
    rows.map((row) => [row.target_id, row.details]),
    [
      ['chemistry', { price_per_device_year: '732.00', billed_kinds: ['function', 'work'] }],
      ['physics', { price_per_device_year: '0.5' }],
      ['physics', { price_per_device_year: null }],
    ],
    'each change audited with its new values',
  )
  const refused = await db.selectFrom('audit_events').select('details').where('action', '=', 'updateTenant').where('outcome', '=', 'failure').execute()
  t.ok(refused.length >= 5, 'refused changes are audited too')
})

t.test('device-days report: amounts per tenant from inherited and own prices, kinds excluded, breakdown, organisation roll-up, CSV', async (t) => {
  const { api, phone } = await billingFixture(t)
  const report = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-29&per_device=true')
  t.equal(report.statusCode, 200, report.body)
  t.equal(report.json.currency, 'EUR')
  t.equal(report.json.total_device_days, 29 + 29 + 29 + 14 + (29 + 11 + 29))
  const item = (id: string) => report.json.items.find((row: { tenant_id: string }) => row.tenant_id === id)
  // Physics: 69 device-days at 365/366 a day = 68.8114... -> 68.81; its lines share it out.
  t.same(item('physics'), {
    tenant_id: 'physics',
    tenant_name: 'Physics',
    parent_id: 'science',
    devices: 3,
    device_days: 69,
    billed_device_days: 69,
    price_per_device_year: '365.00',
    billed_kinds: ['personal', 'work', 'function'],
    amount: '68.81',
    breakdown: [
      { kind: 'personal', model: 'iPhone15,2', billed: true, devices: 1, device_days: 29, amount: '28.92' },
      { kind: 'work', model: 'iPad13,1', billed: true, devices: 2, device_days: 40, amount: '39.89' },
    ],
  })
  // Chemistry: its own 732.00 is exactly 2.00 a day in 2024; its personal device is not billed.
  t.same(item('chemistry'), {
    tenant_id: 'chemistry',
    tenant_name: 'Chemistry',
    parent_id: 'science',
    devices: 2,
    device_days: 58,
    billed_device_days: 29,
    price_per_device_year: '732.00',
    billed_kinds: ['work', 'function'],
    amount: '58.00',
    breakdown: [
      { kind: 'work', model: 'iPad14,1', billed: true, devices: 1, device_days: 29, amount: '58.00' },
      { kind: 'personal', model: 'iPhone15,2', billed: false, devices: 1, device_days: 29, amount: '0.00' },
    ],
  })
  t.match(item('science'), { parent_id: null, device_days: 14, amount: '13.96' }, '14 × 365/366 = 13.9617')
  t.match(item('library'), { device_days: 29, billed_device_days: 29, price_per_device_year: null, amount: null }, 'no price: days without an amount')
  t.equal(report.json.total_amount, '140.77', 'the priced tenants summed')
  t.same(report.json.organisations, [
    {
      organisation_id: 'science',
      organisation_name: 'Faculty of Science',
      tenant_ids: ['science', 'chemistry', 'physics'],
      devices: 6,
      device_days: 14 + 58 + 69,
      billed_device_days: 14 + 29 + 69,
      amount: '140.77',
      unpriced_tenant_ids: [],
    },
  ])
  t.same(
    report.json.devices.filter((row: { tenant_id: string }) => row.tenant_id === 'chemistry'),
    [
      {
        tenant_id: 'chemistry',
        device_id: 'c-personal',
        serial_number: 'CP',
        kind: 'personal',
        model: 'iPhone15,2',
        billed: false,
        device_days: 29,
        first_day: '2024-02-01',
        last_day: '2024-02-29',
      },
      {
        tenant_id: 'chemistry',
        device_id: 'c-work',
        serial_number: 'CW',
        kind: 'work',
        model: 'iPad14,1',
        billed: true,
        device_days: 29,
        first_day: '2024-02-01',
        last_day: '2024-02-29',
      },
    ],
  )
  t.match(
    report.json.devices.find((row: { device_id: string }) => row.device_id === phone),
    { kind: 'personal', model: 'iPhone15,2', billed: true },
  )

  const csv = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-29&format=csv&tenant_id=chemistry')
  t.equal(
    csv.body,
    'tenant_id,tenant_name,devices,device_days,parent_id,billed_device_days,price_per_device_year,currency,amount\r\n' +
      'chemistry,Chemistry,2,58,science,29,732.00,EUR,58.00\r\n',
  )
  const breakdown = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-29&format=csv&rows=breakdown&tenant_id=chemistry')
  t.equal(
    breakdown.body,
    'tenant_id,tenant_name,kind,model,billed,devices,device_days,price_per_device_year,currency,amount\r\n' +
      'chemistry,Chemistry,work,"iPad14,1",true,1,29,732.00,EUR,58.00\r\n' +
      'chemistry,Chemistry,personal,"iPhone15,2",false,1,29,732.00,EUR,0.00\r\n',
  )
  const organisations = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-29&format=csv&rows=organisations')
  t.equal(
    organisations.body,
    'organisation_id,organisation_name,tenant_ids,devices,device_days,billed_device_days,currency,amount,unpriced_tenant_ids\r\n' +
      'science,Faculty of Science,science chemistry physics,6,141,112,EUR,140.77,\r\n',
  )
  const devices = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-29&format=csv&per_device=true&tenant_id=library')
  t.equal(
    devices.body,
    'tenant_id,device_id,serial_number,device_days,first_day,last_day,kind,model,billed\r\nlibrary,l-work,LW,29,2024-02-01,2024-02-29,work,"Mac14,2",true\r\n',
  )

  // Kinds set on the organisation reach its departments that have none of their own.
  t.equal((await api('PATCH', '/api/v1/tenants/science', { body: { billed_kinds: ['work'] } })).statusCode, 200)
  const workOnly = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-29')
  const after = (id: string) => workOnly.json.items.find((row: { tenant_id: string }) => row.tenant_id === id)
  t.match(after('physics'), { billed_kinds: ['work'], billed_device_days: 40, amount: '39.89' })
  t.match(after('science'), { billed_device_days: 0, amount: '0.00' }, "the organisation's function device is no longer billed")
  t.match(after('chemistry'), { billed_kinds: ['work', 'function'], amount: '58.00' }, 'its own setting wins')
  t.equal(workOnly.json.organisations[0].amount, '97.89')

  // A department scoped caller sees its own bill, and no organisation roll-up.
  const auditor = await keyFor(api, 'auditor', 'physics')
  const scoped = await api('GET', '/api/v1/reports/device-days?from=2024-02-01&to=2024-02-29', { key: auditor })
  t.same(
    scoped.json.items.map((row: { tenant_id: string; amount: string }) => [row.tenant_id, row.amount]),
    [['physics', '39.89']],
  )
  t.same(scoped.json.organisations, [])
})

t.test('a period across New Year prices each day by its own year: December 2023 at 1/365, January 2024 at 1/366', async (t) => {
  const { api, db } = await billingFixture(t)
  await db.updateTable('tenants').set({ price_per_device_year: '365.00' }).where('id', '=', 'library').execute()
  await db
    .insertInto('device_tenancy')
    .values({ device_id: 'l-work', tenant_id: 'library', started_at: at('2023-12-01T00:00:00Z'), ended_at: at('2024-02-01T00:00:00Z') })
    .execute()
  const report = await api('GET', '/api/v1/reports/device-days?from=2023-12-01&to=2024-01-31&tenant_id=library')
  t.equal(report.statusCode, 200, report.body)
  // 31 days × 365/365 + 31 days × 365/366 = 31 + 30.9153 = 61.9153.
  t.match(report.json.items, [{ tenant_id: 'library', device_days: 62, amount: '61.92' }])
  const year = await api('GET', '/api/v1/reports/invoice?period=2023&tenant_id=library')
  t.match(year.json, { first_day: '2023-01-01', last_day: '2023-12-31', complete: true, totals: { device_days: 31, amount: '31.00' } })
  const leap = await api('GET', '/api/v1/reports/invoice?period=2024&tenant_id=library')
  // January (31) and February (29) at 365/366: 59.8361 -> 59.84.
  t.match(leap.json, { totals: { device_days: 60, amount: '59.84' } })
})

t.test('invoice: a month or a year of one tenant, lines by kind and model, excluded kinds at zero, JSON and CSV, scope', async (t) => {
  const { api } = await billingFixture(t)
  const invoice = await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=chemistry')
  t.equal(invoice.statusCode, 200, invoice.body)
  t.same(
    { ...invoice.json, generated_at: 'x' },
    {
      tenant_id: 'chemistry',
      tenant_name: 'Chemistry',
      parent_id: 'science',
      period: '2024-02',
      first_day: '2024-02-01',
      last_day: '2024-02-29',
      generated_at: 'x',
      complete: true,
      currency: 'EUR',
      price_per_device_year: '732.00',
      price_from: 'chemistry',
      billed_kinds: ['work', 'function'],
      billed_kinds_from: 'chemistry',
      lines: [
        { kind: 'work', model: 'iPad14,1', billed: true, devices: 1, device_days: 29, amount: '58.00', price_per_device_year: '732.00' },
        { kind: 'personal', model: 'iPhone15,2', billed: false, devices: 1, device_days: 29, amount: '0.00', price_per_device_year: '732.00' },
      ],
      totals: { devices: 2, device_days: 58, billed_device_days: 29, excluded_device_days: 29, amount: '58.00' },
    },
  )

  const csv = await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=chemistry&format=csv')
  t.match(csv.headers['content-type'], /^text\/csv/)
  t.match(csv.headers['content-disposition'], /invoice-chemistry-2024-02\.csv/)
  t.equal(
    csv.body,
    'line,tenant_id,tenant_name,period,first_day,last_day,kind,model,billed,devices,device_days,price_per_device_year,currency,amount\r\n' +
      'item,chemistry,Chemistry,2024-02,2024-02-01,2024-02-29,work,"iPad14,1",true,1,29,732.00,EUR,58.00\r\n' +
      'item,chemistry,Chemistry,2024-02,2024-02-01,2024-02-29,personal,"iPhone15,2",false,1,29,732.00,EUR,0.00\r\n' +
      'total,chemistry,Chemistry,2024-02,2024-02-01,2024-02-29,,,,2,58,732.00,EUR,58.00\r\n',
  )

  const physics = await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=physics')
  t.match(physics.json, { price_per_device_year: '365.00', price_from: 'science', billed_kinds_from: null, totals: { amount: '68.81' } }, 'inherited')
  const year = await api('GET', '/api/v1/reports/invoice?period=2024&tenant_id=physics')
  t.match(year.json, { first_day: '2024-01-01', last_day: '2024-12-31', totals: { device_days: 69, amount: '68.81' } })
  const library = await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=library')
  t.match(library.json, { price_per_device_year: null, lines: [{ kind: 'work', billed: true, amount: null }], totals: { amount: null } })
  const march = await api('GET', '/api/v1/reports/invoice?period=2024-03&tenant_id=physics')
  t.match(march.json, { lines: [], totals: { devices: 0, device_days: 0, amount: '0.00' } }, 'a month without days')

  const physicsAuditor = await keyFor(api, 'auditor', 'physics')
  const own = await api('GET', '/api/v1/reports/invoice?period=2024-02', { key: physicsAuditor })
  t.equal(own.statusCode, 200)
  t.equal(own.json.tenant_id, 'physics', "a department's caller gets its own invoice by default")
  const foreign = await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=chemistry', { key: physicsAuditor })
  t.equal(foreign.statusCode, 404, "another tenant's invoice does not exist for it")
  t.equal((await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=science', { key: physicsAuditor })).statusCode, 404, "nor its organisation's")
  const organisationAdmin = await keyFor(api, 'admin', 'science')
  t.equal(
    (await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=chemistry', { key: organisationAdmin })).statusCode,
    200,
    "the organisation reads its departments'",
  )
  const helpdesk = await keyFor(api, 'helpdesk', 'physics')
  t.equal((await api('GET', '/api/v1/reports/invoice?period=2024-02', { key: helpdesk })).statusCode, 403, 'billing is not for helpdesk')
  t.equal((await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=nowhere')).statusCode, 404)

  const central = await api('GET', '/api/v1/reports/invoice?period=2024-02')
  t.equal(central.statusCode, 400)
  t.same(central.json.errors, [{ parameter: 'tenant_id', detail: 'name the tenant to invoice (central IT is not invoiced)' }])
  for (const period of ['2026-13', '2026-00', '26-12', '2026-1', '2026-12-01']) {
    const bad = await api('GET', `/api/v1/reports/invoice?period=${period}&tenant_id=physics`)
    t.equal(bad.statusCode, 400, period)
    t.same(
      bad.json.errors.map((e: { parameter: string }) => e.parameter),
      ['period'],
    )
  }
  const extra = await api('GET', '/api/v1/reports/invoice?period=2024-02&tenant_id=physics&month=2')
  t.equal(extra.statusCode, 400)
  t.same(extra.json.errors, [{ parameter: 'month', detail: 'is not a known parameter' }])
})

t.test('days after now are not counted: an invoice of the current month grows day by day', async (t) => {
  const database = await createTestDatabase(t)
  const db = database.db
  await db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null, price_per_device_year: '365.00' }).execute()
  await db
    .insertInto('device_tenancy')
    .values({ device_id: 'open', tenant_id: 'physics', started_at: at('2030-03-20T09:00:00Z'), ended_at: null })
    .execute()
  const reports = createReportStore(db)
  const billing = createBillingStore(db)
  const invoices = createInvoices({ reports, tenants: createTenantStore(db), billing, currency: 'EUR' })
  const midApril = await invoices.invoice(fullAccess, { period: '2030-04', tenantId: 'physics' }, at('2030-04-10T12:00:00Z'))
  t.match(midApril, { firstDay: '2030-04-01', lastDay: '2030-04-30', complete: false, bill: { deviceDays: 10, amount: '10.00' } })
  const later = await invoices.invoice(fullAccess, { period: '2030-04', tenantId: 'physics' }, at('2030-05-01T00:00:00Z'))
  t.match(later, { complete: true, bill: { deviceDays: 30, amount: '30.00' } })
  const future = await invoices.invoice(fullAccess, { period: '2030-06', tenantId: 'physics' }, at('2030-04-10T12:00:00Z'))
  t.match(future, { complete: false, bill: { deviceDays: 0, amount: '0.00', lines: [] } })
  await t.rejects(invoices.invoice(tenantsAccess(['chemistry']), { period: '2030-04', tenantId: 'physics' }, at('2030-05-01T00:00:00Z')), { code: 'not_found' })

  const tenantReports = createTenantReports({ reports, tenants: createTenantStore(db), billing, currency: 'EUR' })
  const report = await tenantReports.deviceDays(fullAccess, { from: '2030-03-01', to: '2030-04-30' }, at('2030-04-10T12:00:00Z'))
  t.match(report.tenants, [{ tenantId: 'physics', deviceDays: 12 + 10, bill: { amount: '22.00' } }])
})

t.test('money arithmetic: exact, half up once, in the minor unit of the currency', async (t) => {
  t.equal(minorDigits('EUR'), 2)
  t.equal(minorDigits('JPY'), 0)
  t.equal(minorDigits('BHD'), 3)
  t.equal(parsePrice('120'), 120_000n)
  t.equal(parsePrice('0.5'), 500n)
  t.equal(formatPrice(parsePrice('120'), 2), '120.00')
  t.equal(formatPrice(parsePrice('1.234'), 2), '1.234', 'a price finer than the currency (set before a change of currency) is shown whole')
  t.equal(formatPrice(parsePrice('1200'), 0), '1200')
  t.same(periodDays('2024-02'), { firstDay: '2024-02-01', lastDay: '2024-02-29' })
  t.same(periodDays('2100-02'), { firstDay: '2100-02-01', lastDay: '2100-02-28' }, '2100 is not a leap year')
  t.same(periodDays('2000-02'), { firstDay: '2000-02-01', lastDay: '2000-02-29' })
  t.same(periodDays('2026-11'), { firstDay: '2026-11-01', lastDay: '2026-11-30' })

  const billing = { price: parsePrice('1.83'), priceFrom: 'x', billedKinds: ['work' as const], billedKindsFrom: null }
  const day = (days: number, year = 2024) => ({ deviceId: `d${days}`, kind: 'work' as const, model: null, days, daysByYear: [{ year, days }] })
  // 1.83 / 366 is exactly half a cent: half up gives a cent, not zero (nor a float's guess).
  t.equal(billOf([day(1)], billing, 'EUR').amount, '0.01')
  t.equal(billOf([day(5)], billing, 'EUR').amount, '0.03', '0.025 rounds up')
  t.equal(billOf([day(5)], billing, 'JPY').amount, '0', 'yen have no minor unit (1.83 yen a year)')
  t.equal(billOf([day(366)], { ...billing, price: parsePrice('1.235') }, 'BHD').amount, '1.235', 'three decimals for the dinar')
  // Three lines of 1/3 cent each: exact total 1 cent; each line rounds to 0, the largest remainder gets it.
  const third = shareOut([1000n * 365n * 366n, 1000n * 365n * 366n, 1000n * 365n * 366n].map((unit) => unit / 3n))
  t.same(third, { total: 1n, lines: [1n, 0n, 0n] }, 'lines add up to the total rounded once')
  const many = Array.from({ length: 1000 }, (_, index) => ({
    deviceId: `d${index}`,
    kind: 'work' as const,
    model: `m${index}`,
    days: 1,
    daysByYear: [{ year: 2025, days: 1 }],
  }))
  const bill = billOf(many, { ...billing, price: parsePrice('100.00') }, 'EUR')
  t.equal(bill.amount, '273.97', '1000 × 100/365 = 273.9726, rounded once (per-line rounding would give 270.00)')
  t.equal(
    bill.lines.reduce((sum, line) => sum + Math.round(Number(line.amount) * 100), 0),
    27397,
  )
})
