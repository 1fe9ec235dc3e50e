import t from 'tap'
import { apiClient } from '../../helpers/api.js'
import { setupMdm } from '../../helpers/mdm-fixture.js'

t.test('no key, a wrong key, a revoked key: 401 problem+json; insufficient scope: 403', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)

  const none = await api('GET', '/api/v1/devices', { key: null })
  t.equal(none.statusCode, 401)
  t.match(none.headers['content-type'], /^application\/problem\+json/)
  t.equal(none.json.code, 'unauthorized')

  const wrong = await api('GET', '/api/v1/devices', { key: 'orchard_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
  t.equal(wrong.statusCode, 401)

  const created = await api('POST', '/api/v1/api-keys', { body: { name: 'dashboard', scopes: ['read'] } })
  t.equal(created.statusCode, 201)
  t.match(created.json, { name: 'dashboard', scopes: ['read'], revoked_at: null })
  const readKey: string = created.json.key
  t.match(readKey, /^orchard_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/)

  t.equal((await api('GET', '/api/v1/devices', { key: readKey })).statusCode, 200, 'a read key reads')
  const refused = await api('POST', '/api/v1/commands', { key: readKey, body: { enrollment_ids: ['x'], command: { request_type: 'ProfileList' } } })
  t.equal(refused.statusCode, 403, 'but cannot queue commands')
  t.equal(refused.json.code, 'forbidden')
  t.match(refused.json.detail, /write scope/)
  t.equal((await api('GET', '/api/v1/api-keys', { key: readKey })).statusCode, 403, 'nor manage keys')

  const listed = await api('GET', '/api/v1/api-keys')
  t.equal(listed.statusCode, 200)
  t.same(listed.json.items.map((k: { id: string }) => k.id), [created.json.id])
  t.notOk(JSON.stringify(listed.json).includes(readKey.split('_')[2]!), 'the list never shows the key')

  t.equal((await api('DELETE', `/api/v1/api-keys/${created.json.id}`)).statusCode, 204)
  t.equal((await api('GET', '/api/v1/devices', { key: readKey })).statusCode, 401, 'revoked at once')
  t.equal((await api('GET', '/api/v1/api-keys')).json.items.length, 0, 'revoked keys are hidden by default')
  t.equal((await api('GET', '/api/v1/api-keys?include_revoked=true')).json.items.length, 1)
  t.equal((await api('DELETE', '/api/v1/api-keys/zzzzzzzzzzzz')).statusCode, 404)
})

t.test('a write key queues commands and reads, but cannot manage keys or webhooks', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const key = (await api('POST', '/api/v1/api-keys', { body: { name: 'automation', scopes: ['write'] } })).json.key as string
  const queued = await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { key, body: { request_type: 'ProfileList' } })
  t.equal(queued.statusCode, 201)
  t.equal((await api('GET', `/api/v1/commands/${queued.json.command_uuid}`, { key })).statusCode, 200)
  t.equal((await api('GET', '/api/v1/webhooks', { key })).statusCode, 403)
  t.equal((await api('POST', '/api/v1/api-keys', { key, body: { name: 'escalate', scopes: ['admin'] } })).statusCode, 403)
})

t.test('key creation is validated with pointers', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const bad = await api('POST', '/api/v1/api-keys', { body: { name: '', scopes: ['read', 'root'] } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json.code, 'validation_failed')
  const pointers = bad.json.errors.map((e: { pointer: string }) => e.pointer).sort()
  t.same(pointers, ['/name', '/scopes/1'])
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

  const huge = await api('POST', '/api/v1/api-keys', { raw: { payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024), scopes: ['read'] }), contentType: 'application/json' } })
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
