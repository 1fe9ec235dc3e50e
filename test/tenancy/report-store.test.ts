import t from 'tap'
import { fullAccess, tenantsAccess } from '../../src/model/access.js'
import { createReportStore } from '../../src/tenancy/report-store.js'
import { createTestDatabase } from '../helpers/database.js'

t.test('device-days: open periods count up to now, never into the future; zero-length periods count their day; scope and tenant filter apply', async (t) => {
  const database = await createTestDatabase(t)
  const db = database.db
  await db
    .insertInto('tenants')
    .values([
      { id: 'physics', name: 'Physics', parent_id: null },
      { id: 'chemistry', name: 'Chemistry', parent_id: null },
    ])
    .execute()
  await db
    .insertInto('device_tenancy')
    .values([
      { device_id: 'open', tenant_id: 'physics', started_at: new Date('2030-03-30T23:59:59Z'), ended_at: null },
      { device_id: 'instant', tenant_id: 'physics', started_at: new Date('2030-04-02T00:00:00Z'), ended_at: new Date('2030-04-02T00:00:00Z') },
      { device_id: 'late', tenant_id: 'chemistry', started_at: new Date('2030-04-03T10:00:00Z'), ended_at: null },
      { device_id: 'central', tenant_id: null, started_at: new Date('2030-01-01T00:00:00Z'), ended_at: new Date('2030-04-01T00:00:00.001Z') },
    ])
    .execute()
  const store = createReportStore(db)
  const now = new Date('2030-04-03T09:00:00Z')
  const rows = await store.deviceDays(fullAccess, { from: '2030-04-01', to: '2030-04-30', now })
  t.same(
    rows.map((row) => [row.tenantId, row.deviceId, row.days, row.firstDay, row.lastDay]),
    [
      [null, 'central', 1, '2030-04-01', '2030-04-01'],
      ['physics', 'instant', 1, '2030-04-02', '2030-04-02'],
      ['physics', 'open', 3, '2030-04-01', '2030-04-03'],
    ],
    'the open period stops today; the device enrolling after now is not counted yet',
  )
  t.same(
    (await store.deviceDays(tenantsAccess(['chemistry']), { from: '2030-04-01', to: '2030-04-30', now: new Date('2030-05-10T00:00:00Z') })).map((row) => [
      row.deviceId,
      row.days,
    ]),
    [['late', 28]],
    'only the scope; the period end caps the open period',
  )
  t.same(
    (await store.deviceDays(fullAccess, { from: '2030-04-01', to: '2030-04-30', now, tenantId: null })).map((row) => row.deviceId),
    ['central'],
    'central IT only',
  )
  t.same(await store.deviceDays(fullAccess, { from: '2030-05-01', to: '2030-05-31', now }), [], 'a period that has not begun has no days')
  t.same(await store.deviceDays(tenantsAccess([]), { from: '2030-04-01', to: '2030-04-30', now }), [], 'an empty scope sees nothing')
})
