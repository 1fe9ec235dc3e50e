import t from 'tap'
import { splitApiKey } from '../../src/access/api-key-service.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

t.test('no key, a wrong key, a revoked key: 401 problem+json; a role the operation does not allow: 403', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)

  const none = await api('GET', '/api/v1/devices', { key: null })
  t.equal(none.statusCode, 401)
  t.match(none.headers['content-type'], /^application\/problem\+json/)
  t.equal(none.json.code, 'unauthorized')

  const wrong = await api('GET', '/api/v1/devices', { key: 'orchard_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
  t.equal(wrong.statusCode, 401)

  const created = await api('POST', '/api/v1/api-keys', { body: { name: 'dashboard', role: 'auditor' } })
  t.equal(created.statusCode, 201)
  t.match(created.json, { name: 'dashboard', role: 'auditor', tenant_id: null, revoked_at: null })
  const readKey: string = created.json.key
  t.match(readKey, /^orchard_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/)

  t.equal((await api('GET', '/api/v1/devices', { key: readKey })).statusCode, 200, 'an auditor reads')
  const refused = await api('POST', '/api/v1/commands', { key: readKey, body: { enrollment_ids: ['x'], command: { request_type: 'ProfileList' } } })
  t.equal(refused.statusCode, 403, 'but cannot queue commands')
  t.equal(refused.json.code, 'forbidden')
  t.match(refused.json.detail, /needs one of the roles owner, admin; you have auditor in central IT/)
  t.equal((await api('POST', '/api/v1/api-keys', { key: readKey, body: { name: 'x', role: 'auditor' } })).statusCode, 403, 'nor create keys')

  const listed = await api('GET', '/api/v1/api-keys')
  t.equal(listed.statusCode, 200)
  t.same(
    listed.json.items.map((k: { id: string }) => k.id),
    [created.json.id],
  )
  t.notOk(JSON.stringify(listed.json).includes(splitApiKey(readKey)!.secret), 'the list never shows the key')

  t.equal((await api('DELETE', `/api/v1/api-keys/${created.json.id}`)).statusCode, 204)
  t.equal((await api('GET', '/api/v1/devices', { key: readKey })).statusCode, 401, 'revoked at once')
  t.equal((await api('GET', '/api/v1/api-keys')).json.items.length, 0, 'revoked keys are hidden by default')
  t.equal((await api('GET', '/api/v1/api-keys?include_revoked=true')).json.items.length, 1)
  t.equal((await api('DELETE', '/api/v1/api-keys/zzzzzzzzzzzz')).statusCode, 404)
})

t.test('an admin key queues commands and reads, but cannot manage webhooks or create owner keys', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const key = (await api('POST', '/api/v1/api-keys', { body: { name: 'automation', role: 'admin' } })).json.key as string
  const queued = await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { key, body: { request_type: 'ProfileList' } })
  t.equal(queued.statusCode, 201)
  t.equal((await api('GET', `/api/v1/commands/${queued.json.command_uuid}`, { key })).statusCode, 200)
  t.equal((await api('GET', '/api/v1/webhooks', { key })).statusCode, 403)
  const escalate = await api('POST', '/api/v1/api-keys', { key, body: { name: 'escalate', role: 'owner' } })
  t.equal(escalate.statusCode, 403)
  t.match(escalate.json.detail, /only an owner can create an owner key/)
  t.equal((await api('POST', '/api/v1/api-keys', { key, body: { name: 'desk', role: 'helpdesk' } })).statusCode, 201, 'a lesser role is fine')
  const helpdesk = (await api('POST', '/api/v1/api-keys', { body: { name: 'desk2', role: 'helpdesk' } })).json.key as string
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/lock`, { key: helpdesk, body: {} })).statusCode, 201, 'helpdesk locks')
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/erase`, { key: helpdesk, body: {} })).statusCode, 403, 'helpdesk never erases')
})

t.test('key creation is validated with pointers', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const bad = await api('POST', '/api/v1/api-keys', { body: { name: '', role: 'root' } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json.code, 'validation_failed')
  t.ok(
    bad.json.errors.some((e: { pointer: string }) => e.pointer === '/role'),
    'the role is named',
  )
  const ownerInTenant = await api('POST', '/api/v1/api-keys', { body: { name: 'x', role: 'owner', tenant_id: 'physics' } })
  t.equal(ownerInTenant.statusCode, 400)
  t.same(
    ownerInTenant.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/tenant_id'],
  )
  const unknownTenant = await api('POST', '/api/v1/api-keys', { body: { name: 'x', role: 'admin', tenant_id: 'nowhere' } })
  t.equal(unknownTenant.statusCode, 400)
  t.same(
    unknownTenant.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/tenant_id'],
  )
})

t.test("tenants: a principal of one tenant never reaches another tenant's devices, commands or keys (404), and every write is audited", async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  await db
    .insertInto('tenants')
    .values([
      { id: 'physics', name: 'Physics', parent_id: null },
      { id: 'chemistry', name: 'Chemistry', parent_id: null },
    ])
    .execute()
  const inPhysics = await mdm.enrolledDevice()
  const inChemistry = await mdm.enrolledDevice()
  await db.updateTable('devices').set({ tenant_id: 'physics' }).where('id', '=', inPhysics.udid).execute()
  await db.updateTable('devices').set({ tenant_id: 'chemistry' }).where('id', '=', inChemistry.udid).execute()
  const physicsAdmin = (await api('POST', '/api/v1/api-keys', { body: { name: 'physics it', role: 'admin', tenant_id: 'physics' } })).json.key as string
  const chemistryAdmin = (await api('POST', '/api/v1/api-keys', { body: { name: 'chemistry it', role: 'admin', tenant_id: 'chemistry' } })).json

  const listed = await api('GET', '/api/v1/devices', { key: physicsAdmin })
  t.same(
    listed.json.items.map((d: { id: string }) => d.id),
    [inPhysics.udid],
    'only its own devices',
  )
  t.equal(listed.json.items[0].tenant_id, 'physics')
  t.equal((await api('GET', `/api/v1/devices/${inChemistry.udid}`, { key: physicsAdmin })).statusCode, 404, "another tenant's device does not exist for it")
  t.equal((await api('POST', `/api/v1/devices/${inChemistry.udid}/lock`, { key: physicsAdmin, body: {} })).statusCode, 404)
  t.equal((await api('DELETE', `/api/v1/devices/${inChemistry.udid}`, { key: physicsAdmin })).statusCode, 404)
  const bulk = await api('POST', '/api/v1/commands', { key: physicsAdmin, body: { filter: {}, command: { request_type: 'ProfileList' }, push: false } })
  t.equal(bulk.statusCode, 201)
  t.same(
    bulk.json.targets.map((target: { enrollment_id: string }) => target.enrollment_id),
    [inPhysics.udid],
    'a filter never reaches outside the tenant',
  )
  const central = await api('POST', `/api/v1/devices/${inChemistry.udid}/commands?push=false`, { body: { request_type: 'ProfileList' } })
  t.equal(central.statusCode, 201)
  t.equal((await api('GET', `/api/v1/commands/${central.json.command_uuid}`, { key: physicsAdmin })).statusCode, 404, 'nor its commands')
  t.equal((await api('POST', `/api/v1/commands/${central.json.command_uuid}/cancel`, { key: physicsAdmin, body: {} })).statusCode, 404)
  t.equal((await api('GET', `/api/v1/api-keys/${chemistryAdmin.id}`, { key: physicsAdmin })).statusCode, 404, 'nor its keys')
  t.equal((await api('DELETE', `/api/v1/api-keys/${chemistryAdmin.id}`, { key: physicsAdmin })).statusCode, 404)
  t.equal(
    (await api('POST', '/api/v1/api-keys', { key: physicsAdmin, body: { name: 'x', role: 'admin', tenant_id: 'chemistry' } })).statusCode,
    400,
    'nor create keys there',
  )
  t.equal((await api('GET', '/api/v1/commands', { key: physicsAdmin })).json.items.length, 1, 'only its own command in the list')

  const rows = await db.selectFrom('audit_events').selectAll().orderBy('id').execute()
  const bulkRow = rows.find((row) => row.action === 'enqueueCommand' && row.outcome === 'success')
  t.match(
    bulkRow,
    { category: 'admin', tenant_id: 'physics', target_type: 'command', target_id: bulk.json.command_uuid, details: { outside_transaction: undefined } },
    'the command and its audit row, in its tenant',
  )
  t.ok(
    rows.some((row) => row.action === 'lockDevice' && row.outcome === 'failure' && row.status_code === 404 && row.tenant_id === 'physics'),
    'refused writes are audited too',
  )
  t.notOk(
    rows.some((row) => row.action === 'listDevices' || row.action === 'getDevice'),
    'reads are not audited',
  )
  t.notOk(
    rows.some((row) => (row.details as { outside_transaction?: boolean } | null)?.outside_transaction === true && row.outcome === 'success'),
    'every successful write was audited in its own transaction',
  )
})

t.test('plumbing: 404, 405 with Allow, bad JSON, oversized body, unknown query parameter, bad cursor', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)

  const missing = await api('GET', '/api/v1/nothing-here')
  t.equal(missing.statusCode, 404)
  t.equal(missing.json.code, 'not_found')

  const wrongMethod = await api('PUT', '/api/v1/devices')
  t.equal(wrongMethod.statusCode, 405)
  t.equal(wrongMethod.json.code, 'method_not_allowed')
  t.equal(wrongMethod.headers['allow'], 'GET')
  const wrongMethod2 = await api('PATCH', '/api/v1/commands/abc/cancel')
  t.equal(wrongMethod2.statusCode, 405)
  t.equal(wrongMethod2.headers['allow'], 'POST')

  const badJson = await api('POST', '/api/v1/commands', { raw: { payload: '{"enrollment_ids": [', contentType: 'application/json' } })
  t.equal(badJson.statusCode, 400)
  t.equal(badJson.json.code, 'invalid_json')

  const huge = await api('POST', '/api/v1/api-keys', {
    raw: { payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024), role: 'auditor' }), contentType: 'application/json' },
  })
  t.equal(huge.statusCode, 413)
  t.equal(huge.json.code, 'payload_too_large')

  const typo = await api('GET', '/api/v1/devices?serial=ABC')
  t.equal(typo.statusCode, 400)
  t.same(typo.json.errors, [{ parameter: 'serial', detail: 'is not a known parameter' }])

  const badLimit = await api('GET', '/api/v1/devices?limit=0')
  t.equal(badLimit.statusCode, 400)
  t.equal(badLimit.json.errors[0].parameter, 'limit')

  const badCursor = await api('GET', '/api/v1/devices?cursor=not-a-cursor')
  t.equal(badCursor.statusCode, 400)
  t.same(badCursor.json.errors, [{ parameter: 'cursor', detail: 'is not a cursor this server issued' }])

  const wrongType = await api('POST', '/api/v1/api-keys', { raw: { payload: 'name=x', contentType: 'application/x-www-form-urlencoded' } })
  t.equal(wrongType.statusCode, 415)
  t.equal(wrongType.json.code, 'unsupported_media_type')
})

t.test('the contract is served, and browsable', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const document = await api('GET', '/api/openapi.yaml', { key: null })
  t.equal(document.statusCode, 200)
  t.match(document.headers['content-type'], /yaml/)
  t.match(document.body, /^openapi: 3\.1\.0/)
  const docs = await mdm.app.inject({ method: 'GET', url: '/api/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.body, /swagger/i)
})
