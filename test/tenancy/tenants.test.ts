import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

async function keyFor(api: ReturnType<typeof apiClient>, role: string, tenantId: string | null): Promise<string> {
  const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId ?? 'central'}`, role, tenant_id: tenantId } })
  if (created.statusCode !== 201) throw new Error(`key creation failed: ${created.body}`)
  return created.json.key as string
}

async function deviceIn(mdm: MdmFixture, tenantId: string | null): Promise<string> {
  const device = await mdm.enrolledDevice()
  if (tenantId !== null) await mdm.database.db.updateTable('devices').set({ tenant_id: tenantId }).where('id', '=', device.udid).execute()
  await mdm.database.db.updateTable('device_tenancy').set({ tenant_id: tenantId }).where('device_id', '=', device.udid).execute()
  return device.udid
}

t.test('tenants: owners create organisations and departments (one level), rename and delete empty ones; others only read their own', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)

  const science = await api('POST', '/api/v1/tenants', { body: { id: 'science', name: 'Faculty of Science' } })
  t.equal(science.statusCode, 201)
  t.match(science.json, { id: 'science', name: 'Faculty of Science', parent_id: null })
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics', parent_id: 'science' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'library', name: 'Library' } })).statusCode, 201)

  const nested = await api('POST', '/api/v1/tenants', { body: { id: 'optics', name: 'Optics', parent_id: 'physics' } })
  t.equal(nested.statusCode, 400, 'a department cannot have departments')
  t.same(
    nested.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/parent_id'],
  )
  t.match(nested.json.detail, /nest one level/)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'x', name: 'X', parent_id: 'nowhere' } })).statusCode, 400, 'unknown parent')
  const again = await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics 2' } })
  t.equal(again.statusCode, 409)
  t.equal(again.json.code, 'conflict')
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'physics2', name: 'physics' } })).statusCode, 409, 'names are unique, ignoring case')
  const badId = await api('POST', '/api/v1/tenants', { body: { id: 'Physics Dept', name: 'P' } })
  t.equal(badId.statusCode, 400)
  t.same(
    badId.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/id'],
  )

  const scienceAdmin = await keyFor(api, 'admin', 'science')
  const physicsAuditor = await keyFor(api, 'auditor', 'physics')
  t.same(
    (await api('GET', '/api/v1/tenants', { key: scienceAdmin })).json.items.map((x: { id: string }) => x.id),
    ['physics', 'science'],
    'an organisation admin sees its departments',
  )
  t.same(
    (await api('GET', '/api/v1/tenants', { key: physicsAuditor })).json.items.map((x: { id: string }) => x.id),
    ['physics'],
  )
  t.equal((await api('GET', '/api/v1/tenants/library', { key: physicsAuditor })).statusCode, 404, 'other tenants do not exist for it')
  t.equal((await api('GET', '/api/v1/tenants', {})).json.items.length, 3, 'central IT sees all')
  t.equal(
    (await api('POST', '/api/v1/tenants', { key: scienceAdmin, body: { id: 'chemistry', name: 'Chemistry', parent_id: 'science' } })).statusCode,
    403,
    'only owners create tenants',
  )

  const renamed = await api('PATCH', '/api/v1/tenants/library', { body: { name: 'University Library' } })
  t.equal(renamed.statusCode, 200)
  t.equal(renamed.json.name, 'University Library')
  t.equal((await api('PATCH', '/api/v1/tenants/library', { body: { name: 'PHYSICS' } })).statusCode, 409)
  t.equal((await api('PATCH', '/api/v1/tenants/nowhere', { body: { name: 'N' } })).statusCode, 404)

  const inUse = await api('DELETE', '/api/v1/tenants/science')
  t.equal(inUse.statusCode, 409, 'an organisation with departments stays')
  t.match(inUse.json.detail, /departments/)
  t.equal((await api('DELETE', '/api/v1/tenants/physics')).statusCode, 409, 'a tenant with API keys stays')
  await deviceIn(mdm, 'library')
  t.equal((await api('DELETE', '/api/v1/tenants/library')).statusCode, 409, 'a tenant with devices stays')
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'empty', name: 'Empty' } })).statusCode, 201)
  t.equal((await api('DELETE', '/api/v1/tenants/empty')).statusCode, 204)
  t.equal((await api('GET', '/api/v1/tenants/empty')).statusCode, 404)

  const actions = await mdm.database.db
    .selectFrom('audit_events')
    .select(['action', 'target_id', 'outcome'])
    .where('target_type', '=', 'tenant')
    .orderBy('id')
    .execute()
  t.same(
    actions.filter((row) => row.outcome === 'success').map((row) => `${row.action} ${row.target_id}`),
    ['createTenant science', 'createTenant physics', 'createTenant library', 'updateTenant library', 'createTenant empty', 'deleteTenant empty'],
    'each change audited with it',
  )
})

t.test("an organisation admin reaches its departments' devices; a department admin only its own", async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  await api('POST', '/api/v1/tenants', { body: { id: 'science', name: 'Science' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics', parent_id: 'science' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'chemistry', name: 'Chemistry', parent_id: 'science' } })
  const inPhysics = await deviceIn(mdm, 'physics')
  const inChemistry = await deviceIn(mdm, 'chemistry')
  const organisation = await keyFor(api, 'admin', 'science')
  const physics = await keyFor(api, 'admin', 'physics')
  t.same((await api('GET', '/api/v1/devices', { key: organisation })).json.items.map((d: { id: string }) => d.id).sort(), [inPhysics, inChemistry].sort())
  t.same(
    (await api('GET', '/api/v1/devices', { key: physics })).json.items.map((d: { id: string }) => d.id),
    [inPhysics],
  )
  t.equal((await api('POST', `/api/v1/devices/${inChemistry}/lock`, { key: organisation, body: {} })).statusCode, 201)

  const both = await api('POST', '/api/v1/commands', {
    key: organisation,
    body: { enrollment_ids: [inPhysics, inChemistry], command: { request_type: 'ProfileList' }, push: false },
  })
  t.equal(both.statusCode, 201)
  const row = await mdm.database.db.selectFrom('commands').select('tenant_id').where('uuid', '=', both.json.command_uuid).executeTakeFirstOrThrow()
  t.equal(row.tenant_id, 'science', 'a command to two departments belongs to their organisation')
  t.equal((await api('GET', `/api/v1/commands/${both.json.command_uuid}`, { key: organisation })).statusCode, 200, 'its sender sees it')
  t.equal(
    (await api('GET', `/api/v1/commands/${both.json.command_uuid}`, { key: physics })).statusCode,
    404,
    "a department admin does not see the organisation's command",
  )
  const queue = await api('GET', `/api/v1/enrollments/${inPhysics}/commands`, { key: physics })
  t.ok(
    queue.json.items.some((item: { command_uuid: string }) => item.command_uuid === both.json.command_uuid),
    "but sees it in its own device's queue",
  )
})

t.test('moving devices: billing periods end and start at the same moment, both tenants audit it, the old tenant loses sight of the device', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'chemistry', name: 'Chemistry' } })
  const first = await deviceIn(mdm, 'physics')
  const second = await deviceIn(mdm, 'physics')
  const foreign = await deviceIn(mdm, 'chemistry')
  const physicsAdmin = await keyFor(api, 'admin', 'physics')
  const physicsHelpdesk = await keyFor(api, 'helpdesk', 'physics')

  const intoChemistry = await api('POST', '/api/v1/devices/move', { key: physicsAdmin, body: { device_ids: [first], tenant_id: 'chemistry' } })
  t.equal(intoChemistry.statusCode, 400, 'a tenant admin cannot give devices to another tenant')
  t.same(
    intoChemistry.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/tenant_id'],
  )
  t.equal(
    (await api('POST', '/api/v1/devices/move', { key: physicsHelpdesk, body: { device_ids: [first], tenant_id: 'physics' } })).statusCode,
    403,
    'helpdesk moves nothing',
  )
  const own = await api('POST', '/api/v1/devices/move', { key: physicsAdmin, body: { device_ids: [first, foreign], tenant_id: 'physics' } })
  t.equal(own.statusCode, 200)
  t.same(own.json, { tenant_id: 'physics', moved: [], unchanged: [first], not_found: [foreign] }, "another tenant's device is not found")
  t.equal((await api('POST', '/api/v1/devices/move', { body: { device_ids: [first], tenant_id: 'nowhere' } })).statusCode, 400, 'unknown tenant')

  const moved = await api('POST', '/api/v1/devices/move', { body: { device_ids: [first, second, 'no-such-device'], tenant_id: 'chemistry' } })
  t.equal(moved.statusCode, 200)
  t.same(moved.json, { tenant_id: 'chemistry', moved: [first, second], unchanged: [], not_found: ['no-such-device'] })
  t.equal((await api('GET', `/api/v1/devices/${first}`, { key: physicsAdmin })).statusCode, 404, 'physics no longer sees it')
  t.equal((await api('GET', `/api/v1/devices/${first}`)).json.tenant_id, 'chemistry')

  const periods = await db.selectFrom('device_tenancy').selectAll().where('device_id', '=', first).orderBy('id').execute()
  t.equal(periods.length, 2)
  t.equal(periods[0]!.tenant_id, 'physics')
  t.ok(periods[0]!.ended_at, 'the physics period ended')
  t.equal(periods[1]!.tenant_id, 'chemistry')
  t.equal(periods[1]!.ended_at, null, 'a chemistry period is open')
  t.equal(periods[1]!.started_at.getTime(), periods[0]!.ended_at!.getTime(), 'no gap, no overlap')

  const rows = await db
    .selectFrom('audit_events')
    .selectAll()
    .where('action', '=', 'moveDevices')
    .where('outcome', '=', 'success')
    .where('device_id', '=', first)
    .execute()
  t.same(rows.map((row) => row.tenant_id).sort(), ['chemistry', 'physics'], 'one row in each tenant')
  t.match(rows[0]!.details, { from_tenant_id: 'physics', to_tenant_id: 'chemistry' })
  const nothingMoved = await db
    .selectFrom('audit_events')
    .selectAll()
    .where('action', '=', 'moveDevices')
    .where('outcome', '=', 'success')
    .where('device_id', 'is', null)
    .execute()
  t.equal(nothingMoved.length, 1, 'a move that changes nothing is audited too')

  const toCentral = await api('POST', '/api/v1/devices/move', { body: { device_ids: [second], tenant_id: null } })
  t.same(toCentral.json.moved, [second])
  t.equal(
    (await api('POST', '/api/v1/devices/move', { key: physicsAdmin, body: { device_ids: [first], tenant_id: null } })).statusCode,
    400,
    'only central IT moves devices to central IT',
  )
})

t.test('the audit log: owners see everything, a tenant auditor its tenant only; filters, pages and device timelines', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'chemistry', name: 'Chemistry' } })
  const inPhysics = await deviceIn(mdm, 'physics')
  const inChemistry = await deviceIn(mdm, 'chemistry')
  const physicsAdmin = await keyFor(api, 'admin', 'physics')
  const physicsAuditor = await keyFor(api, 'auditor', 'physics')
  await api('POST', `/api/v1/devices/${inPhysics}/lock`, { key: physicsAdmin, body: { message: 'Lost' } })
  await api('POST', `/api/v1/devices/${inChemistry}/lock`, { key: physicsAdmin, body: {} })
  await api('POST', `/api/v1/devices/${inChemistry}/lock`, { body: {} })

  const adminView = await api('GET', '/api/v1/audit-events', { key: physicsAdmin })
  t.equal(adminView.statusCode, 200, "a department's admin reads its own tenant's log")
  t.ok(adminView.json.items.length > 0)
  t.ok(
    adminView.json.items.every((event: { tenant_id: string }) => event.tenant_id === 'physics'),
    'only its own tenant',
  )
  const all = await api('GET', '/api/v1/audit-events')
  t.equal(all.statusCode, 200)
  const ids = all.json.items.map((event: { id: string }) => Number(event.id))
  t.same(
    ids,
    [...ids].sort((a, b) => b - a),
    'newest first',
  )
  t.ok(all.json.items.some((event: { tenant_id: string | null }) => event.tenant_id === 'chemistry'))

  const physicsView = await api('GET', '/api/v1/audit-events', { key: physicsAuditor })
  t.equal(physicsView.statusCode, 200)
  t.ok(physicsView.json.items.length > 0)
  t.ok(
    physicsView.json.items.every((event: { tenant_id: string }) => event.tenant_id === 'physics'),
    'only its own tenant',
  )
  const lock = physicsView.json.items.find((event: { action: string; outcome: string }) => event.action === 'lockDevice' && event.outcome === 'success')
  t.match(lock, { category: 'admin', principal: { name: 'admin physics', source: 'database' }, target_type: 'command', device_id: inPhysics })
  t.type(lock.request_id, 'string')
  const refused = physicsView.json.items.find((event: { action: string; outcome: string }) => event.action === 'lockDevice' && event.outcome === 'failure')
  t.match(refused, { status_code: 404, tenant_id: 'physics' }, 'its refused attempt on chemistry is in its own log')
  t.match(refused.details, { code: 'not_found', detail: /is unknown or has not finished enrolling/ }, 'a refusal keeps its reason')

  const failures = await api('GET', '/api/v1/audit-events?outcome=failure')
  t.ok(failures.json.items.length >= 1)
  t.ok(failures.json.items.every((event: { outcome: string }) => event.outcome === 'failure'))
  const timeline = await api('GET', `/api/v1/audit-events?device_id=${encodeURIComponent(inPhysics)}&category=device`)
  t.same(
    timeline.json.items.map((event: { action: string }) => event.action),
    ['enrolled'],
    "the device's own events",
  )
  t.equal((await api('GET', '/api/v1/audit-events?tenant_id=chemistry', { key: physicsAuditor })).json.items.length, 0, "another tenant's filter finds nothing")
  t.equal((await api('GET', `/api/v1/audit-events?since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`)).json.items.length, 0)

  const first = await api('GET', '/api/v1/audit-events?limit=2')
  t.equal(first.json.items.length, 2)
  t.type(first.json.next_cursor, 'string')
  const second = await api('GET', `/api/v1/audit-events?limit=2&cursor=${encodeURIComponent(first.json.next_cursor)}`)
  t.ok(Number(second.json.items[0].id) < Number(first.json.items[1].id), 'the next page continues below')
  t.equal((await api('GET', '/api/v1/audit-events?cursor=garbage')).statusCode, 400)
  t.equal((await api('GET', '/api/v1/audit-events?category=other')).statusCode, 400)
  t.equal((await api('DELETE', '/api/v1/audit-events')).statusCode, 405, 'the log cannot be edited through the API')
})

t.test('device report: counts per tenant by kind, model, OS version, enrollment and last contact, as JSON and CSV', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'empty', name: 'Empty, for now' } })
  const a = await deviceIn(mdm, 'physics')
  const b = await deviceIn(mdm, 'physics')
  const c = await deviceIn(mdm, 'physics')
  await deviceIn(mdm, null)
  await db.updateTable('devices').set({ kind: 'work', product_name: 'iPad13,1', os_version: '17.5' }).where('id', 'in', [a, b]).execute()
  await db.updateTable('devices').set({ kind: 'function', product_name: '=HYPERLINK("x")', os_version: '18.1' }).where('id', '=', c).execute()
  await db
    .updateTable('enrollments')
    .set({ last_seen_at: new Date(Date.now() - 10 * 86_400_000) })
    .where('id', '=', b)
    .execute()
  await db.updateTable('enrollments').set({ enabled: false }).where('id', '=', c).execute()

  const report = await api('GET', '/api/v1/reports/devices')
  t.equal(report.statusCode, 200)
  t.same(
    report.json.items.map((item: { tenant_id: string | null }) => item.tenant_id),
    [null, 'empty', 'physics'],
    'central IT, then every tenant, empty ones too',
  )
  const physics = report.json.items.find((item: { tenant_id: string }) => item.tenant_id === 'physics')
  t.match(physics, {
    tenant_name: 'Physics',
    total: 3,
    enrolled: 2,
    unenrolled: 1,
    last_seen: { within_1d: 2, within_7d: 2, within_30d: 3, older: 0, never: 0 },
  })
  t.same(physics.by_kind, [
    { value: 'work', count: 2 },
    { value: 'function', count: 1 },
  ])
  t.same(physics.by_model, [
    { value: 'iPad13,1', count: 2 },
    { value: '=HYPERLINK("x")', count: 1 },
  ])
  t.same(physics.by_os_version, [
    { value: '17.5', count: 2 },
    { value: '18.1', count: 1 },
  ])
  t.match(
    report.json.items.find((item: { tenant_id: string }) => item.tenant_id === 'empty'),
    { total: 0, by_kind: [] },
  )

  const physicsHelpdesk = await keyFor(api, 'helpdesk', 'physics')
  const scoped = await api('GET', '/api/v1/reports/devices', { key: physicsHelpdesk })
  t.same(
    scoped.json.items.map((item: { tenant_id: string }) => item.tenant_id),
    ['physics'],
    'a tenant sees its own numbers only',
  )

  const csv = await api('GET', '/api/v1/reports/devices?format=csv&tenant_id=physics')
  t.equal(csv.statusCode, 200)
  t.match(csv.headers['content-type'], /^text\/csv/)
  const lines = csv.body.trimEnd().split('\r\n')
  t.equal(lines[0], 'tenant_id,tenant_name,dimension,value,count')
  t.ok(lines.includes('physics,Physics,total,,3'))
  t.ok(lines.includes('physics,Physics,model,"iPad13,1",2'), 'commas are quoted')
  t.ok(lines.includes(`physics,Physics,model,"'=HYPERLINK(""x"")",1`), 'a formula is defused for spreadsheets')
  t.ok(lines.includes('physics,Physics,last_seen,within_30d,3'))
})

t.test('device-days report: a known history gives known numbers, per tenant and per device, JSON and CSV', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'chemistry', name: 'Chemistry' } })
  await db
    .insertInto('device_tenancy')
    .values([
      // Device A, Physics: 10 Jan noon to midnight of the 20th (days 10..19), again 22..25, and once more on the 25th.
      { device_id: 'device-a', tenant_id: 'physics', started_at: new Date('2026-01-10T12:00:00Z'), ended_at: new Date('2026-01-20T00:00:00Z') },
      { device_id: 'device-a', tenant_id: 'physics', started_at: new Date('2026-01-22T08:00:00Z'), ended_at: new Date('2026-01-25T10:00:00Z') },
      { device_id: 'device-a', tenant_id: 'physics', started_at: new Date('2026-01-25T11:00:00Z'), ended_at: new Date('2026-01-25T12:00:00Z') },
      // Device B: Physics since December, moved to Chemistry at noon on the 15th, still there.
      { device_id: 'device-b', tenant_id: 'physics', started_at: new Date('2025-12-01T09:00:00Z'), ended_at: new Date('2026-01-15T12:00:00Z') },
      { device_id: 'device-b', tenant_id: 'chemistry', started_at: new Date('2026-01-15T12:00:00Z'), ended_at: null },
      // Outside the period: ended before it, or started after it.
      { device_id: 'device-c', tenant_id: 'physics', started_at: new Date('2025-11-01T00:00:00Z'), ended_at: new Date('2026-01-05T00:00:00Z') },
      { device_id: 'device-d', tenant_id: null, started_at: new Date('2026-02-01T00:00:00Z'), ended_at: null },
    ])
    .execute()

  const report = await api('GET', '/api/v1/reports/device-days?from=2026-01-05&to=2026-01-31&per_device=true')
  t.equal(report.statusCode, 200, report.body)
  t.equal(report.json.total_device_days, 14 + 11 + 17)
  // Billing fields (test/tenancy/billing.test.ts) aside.
  const counted = ({ tenant_id, tenant_name, devices, device_days }: Record<string, unknown>) => ({ tenant_id, tenant_name, devices, device_days })
  const perDeviceCounted = ({ tenant_id, device_id, serial_number, device_days, first_day, last_day }: Record<string, unknown>) => ({
    tenant_id,
    device_id,
    serial_number,
    device_days,
    first_day,
    last_day,
  })
  t.same(
    report.json.items.map(counted),
    [
      { tenant_id: 'chemistry', tenant_name: 'Chemistry', devices: 1, device_days: 17 },
      { tenant_id: 'physics', tenant_name: 'Physics', devices: 2, device_days: 25 },
    ],
    'tenants by id; central IT has no days in January so it is not listed',
  )
  t.same(report.json.devices.map(perDeviceCounted), [
    { tenant_id: 'chemistry', device_id: 'device-b', serial_number: null, device_days: 17, first_day: '2026-01-15', last_day: '2026-01-31' },
    { tenant_id: 'physics', device_id: 'device-a', serial_number: null, device_days: 14, first_day: '2026-01-10', last_day: '2026-01-25' },
    { tenant_id: 'physics', device_id: 'device-b', serial_number: null, device_days: 11, first_day: '2026-01-05', last_day: '2026-01-15' },
  ])

  const february = await api('GET', '/api/v1/reports/device-days?from=2026-02-01&to=2026-02-28')
  t.same(
    february.json.items.map((item: { tenant_id: string | null; device_days: number }) => [item.tenant_id, item.device_days]),
    [
      [null, 28],
      ['chemistry', 1 * 28],
      ['physics', 0],
    ],
  )

  const physicsAuditor = await keyFor(api, 'auditor', 'physics')
  const scoped = await api('GET', '/api/v1/reports/device-days?from=2026-01-05&to=2026-01-31&per_device=true', { key: physicsAuditor })
  t.same(scoped.json.items.map(counted), [{ tenant_id: 'physics', tenant_name: 'Physics', devices: 2, device_days: 25 }], 'a tenant sees its own bill only')
  t.notOk(scoped.json.devices.some((row: { tenant_id: string }) => row.tenant_id !== 'physics'))
  t.equal(
    (await api('GET', '/api/v1/reports/device-days?from=2026-01-05&to=2026-01-31', { key: await keyFor(api, 'helpdesk', 'physics') })).statusCode,
    403,
    'billing is not for helpdesk',
  )

  const csv = await api('GET', '/api/v1/reports/device-days?from=2026-01-05&to=2026-01-31&format=csv')
  t.match(csv.headers['content-type'], /^text\/csv/)
  t.match(csv.headers['content-disposition'], /device-days-2026-01-05-2026-01-31\.csv/)
  t.equal(
    csv.body,
    'tenant_id,tenant_name,devices,device_days,parent_id,billed_device_days,price_per_device_year,currency,amount\r\n' +
      'chemistry,Chemistry,1,17,,17,,EUR,\r\nphysics,Physics,2,25,,25,,EUR,\r\n',
  )
  const perDevice = await api('GET', '/api/v1/reports/device-days?from=2026-01-05&to=2026-01-31&format=csv&per_device=true&tenant_id=physics')
  t.equal(
    perDevice.body,
    'tenant_id,device_id,serial_number,device_days,first_day,last_day,kind,model,billed\r\n' +
      'physics,device-a,,14,2026-01-10,2026-01-25,,,true\r\nphysics,device-b,,11,2026-01-05,2026-01-15,,,true\r\n',
  )

  const backwards = await api('GET', '/api/v1/reports/device-days?from=2026-02-01&to=2026-01-01')
  t.equal(backwards.statusCode, 400)
  t.same(backwards.json.errors, [{ parameter: 'to', detail: 'must not be before from' }])
  t.equal((await api('GET', '/api/v1/reports/device-days?from=2020-01-01&to=2026-01-01')).statusCode, 400, 'at most 1100 days')
  const missing = await api('GET', '/api/v1/reports/device-days?from=2026-01-01')
  t.equal(missing.statusCode, 400)
  t.ok(missing.json.errors.some((e: { parameter: string }) => e.parameter === 'to'))
  t.equal((await api('GET', '/api/v1/reports/device-days?from=2026-13-01&to=2026-12-31')).statusCode, 400, 'not a date')
})

t.test("a device's timeline: enrolled, wiped when it acknowledges EraseDevice, checked out", async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const erase = await api('POST', `/api/v1/devices/${device.udid}/erase`, { body: {} })
  t.equal(erase.statusCode, 201)
  const sent = commandIn(await device.idle())!
  t.equal(sent.requestType, 'EraseDevice')
  const timeline = async () =>
    (await api('GET', `/api/v1/audit-events?device_id=${device.udid}`)).json.items.map(
      (event: { category: string; action: string }) => `${event.category}:${event.action}`,
    )
  t.same(await timeline(), ['admin:eraseDevice', 'device:enrolled'], 'not wiped while it only has the command')
  await device.answer(sent.uuid, 'Acknowledged')
  t.same(await timeline(), ['device:wiped', 'admin:eraseDevice', 'device:enrolled'])
  await device.checkOut()
  t.same((await timeline())[0], 'device:checked_out')
})

t.test('installation-wide operations (settings, webhooks, device CAs) need the role in central IT', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics' } })
  const tenantAuditor = await keyFor(api, 'auditor', 'physics')
  const centralAuditor = await keyFor(api, 'auditor', null)
  for (const path of ['/api/v1/settings', '/api/v1/webhooks', '/api/v1/certificate-authorities']) {
    const refused = await api('GET', path, { key: tenantAuditor })
    t.equal(refused.statusCode, 403, `${path}: a tenant auditor is refused`)
    t.match(refused.json.detail, /in central IT \(it concerns the whole installation\); you have auditor in tenant physics/)
    t.equal((await api('GET', path, { key: centralAuditor })).statusCode, 200, `${path}: a central auditor reads it`)
  }
})
