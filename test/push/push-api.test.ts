// Push through the real app and the production APNs client, against the fake APNs server.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import t from 'tap'
import { createTestCa, mintPushCertificate, startFakeApns, type FakeApns, type PushIdentity, type TestCa } from '../helpers/fake-apns.js'
import { setupMdm, testApiKey, type MdmFixture } from '../helpers/mdm-fixture.js'
import { testTopic } from '../helpers/simulated-device.js'

interface PushWorld {
  mdm: MdmFixture
  apns: FakeApns
  pushCa: TestCa
  identity: PushIdentity
  api(method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown): Promise<{ statusCode: number; json: any }>
}

async function setupPush(t: Parameters<typeof setupMdm>[0], options: { secretKeys?: boolean; upload?: boolean } = {}): Promise<PushWorld> {
  const pushCa = await createTestCa('Test push CA', 'rsa-2048')
  const apns = await startFakeApns({ topic: testTopic, clientCaPem: pushCa.pem })
  t.teardown(() => apns.close())
  const caFile = join(mkdtempSync(join(tmpdir(), 'orchard-apns-ca-')), 'ca.pem')
  writeFileSync(caFile, apns.caPem)
  const mdm = await setupMdm(t, {
    ORCHARD_APNS_URL: apns.url,
    ORCHARD_APNS_CA_FILE: caFile,
    ORCHARD_REPUSH_LOOP_SECONDS: '0',
    ...(options.secretKeys === false ? {} : { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') }),
  })
  const identity = await mintPushCertificate(pushCa, testTopic)
  const api = async (method: 'GET' | 'POST' | 'PUT', url: string, body?: unknown) => {
    const response = await mdm.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${testApiKey}` },
      ...(body === undefined ? {} : { payload: body as object }),
    })
    return { statusCode: response.statusCode, json: response.json() }
  }
  if (options.upload !== false) {
    const uploaded = await api('POST', '/api/v1/push-certificates', { certificate_pem: identity.certificatePem, private_key_pem: identity.privateKeyPem })
    if (uploaded.statusCode !== 201) throw new Error(`upload failed: ${JSON.stringify(uploaded.json)}`)
  }
  return { mdm, apns, pushCa, identity, api }
}

t.test('push certificates: upload, read back without the key, stored encrypted', async (t) => {
  const { mdm, api, identity } = await setupPush(t, { upload: false })
  const created = await api('POST', '/api/v1/push-certificates', { certificate_pem: identity.certificatePem, private_key_pem: identity.privateKeyPem })
  t.equal(created.statusCode, 201)
  t.match(created.json, { topic: testTopic, serial_number: /^[0-9A-F]+$/, sha256: /^[0-9a-f]{64}$/, days_left: 1 })
  t.notMatch(JSON.stringify(created.json), /PRIVATE KEY/)
  t.match((await api('GET', '/api/v1/push-certificates')).json, { push_certificates: [{ topic: testTopic }] })
  t.match((await api('GET', `/api/v1/push-certificates/${testTopic}`)).json, { topic: testTopic })
  t.equal((await api('GET', '/api/v1/push-certificates/com.apple.mgmt.nope')).statusCode, 404)
  const again = await api('POST', '/api/v1/push-certificates', { certificate_pem: identity.certificatePem, private_key_pem: identity.privateKeyPem })
  t.equal(again.statusCode, 409, 'a topic that has a certificate is renewed with PUT')

  const row = await mdm.database.db.selectFrom('push_certificates').selectAll().executeTakeFirstOrThrow()
  t.notOk(row.private_key_sealed.toString('latin1').includes('PRIVATE KEY'), 'the key is not stored in clear')
  const keyBody = identity.privateKeyPem.split('\n')[1]!
  t.notOk(row.private_key_sealed.toString('latin1').includes(keyBody))

  const garbage = await api('POST', '/api/v1/push-certificates', { certificate_pem: 'nope', private_key_pem: 'nope' })
  t.equal(garbage.statusCode, 400)
  t.match(garbage.json, { code: 'validation_failed', detail: /push_certificate_invalid/ })
  const missing = await api('POST', '/api/v1/push-certificates', { certificate_pem: identity.certificatePem })
  t.match(missing.json, { code: 'validation_failed', errors: [{ pointer: '/private_key_pem' }] })

  const ready = (await mdm.app.inject({ method: 'GET', url: '/readyz' })).json()
  t.match(ready, { status: 'ready', checks: { push_certificates: `${testTopic} expires in 1 days` } }, 'expiry is visible, readiness unaffected')
})

t.test('without ORCHARD_SECRET_KEYS no push certificate is stored', async (t) => {
  const { api, identity } = await setupPush(t, { secretKeys: false, upload: false })
  const refused = await api('POST', '/api/v1/push-certificates', { certificate_pem: identity.certificatePem, private_key_pem: identity.privateKeyPem })
  t.equal(refused.statusCode, 409)
  t.match(refused.json, { detail: /ORCHARD_SECRET_KEYS/ })
})

t.test('enqueue pushes the targets: exact APNs request, result recorded per enrollment', async (t) => {
  const { mdm, apns } = await setupPush(t)
  const device = await mdm.enrolledDevice()
  const queued = await mdm.enqueue([device.udid], 'ProfileList')
  t.match(queued.json.push, { results: [{ enrollment_id: device.udid, status: 'sent', apns_id: /^[0-9a-fA-F-]{36}$/ }], topic_errors: [] })
  t.equal(apns.requests.length, 1)
  const request = apns.requests[0]!
  t.equal(request.path, `/3/device/${device.token.toString('hex')}`)
  t.equal(request.body, JSON.stringify({ mdm: device.pushMagic }))
  t.match(request.headers, { 'apns-push-type': 'mdm', 'apns-topic': testTopic, 'apns-priority': '10' })
  t.equal(request.certificateTopic, testTopic, 'the push certificate is the TLS client identity')
  const enrollment = await mdm.database.db.selectFrom('enrollments').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(enrollment, { last_push_result: 'sent', last_push_apns_id: request.apnsId, push_invalid_at: null })
  t.ok(enrollment.last_push_at instanceof Date)

  await mdm.enqueue([device.udid], 'SecurityInfo', {}, { push: 'false' })
  t.equal(apns.requests.length, 1, 'push=false: no push')
})

t.test('push on demand: one result per enrollment', async (t) => {
  const { mdm, apns, api } = await setupPush(t)
  const one = await mdm.enrolledDevice()
  const two = await mdm.enrolledDevice()
  const authenticatedOnly = await mdm.newDevice()
  await authenticatedOnly.authenticate()
  const pushed = await api('POST', '/api/v1/push', { enrollment_ids: [one.udid, 'nobody', two.udid, authenticatedOnly.udid] })
  t.equal(pushed.statusCode, 200)
  t.match(pushed.json.results, [
    { enrollment_id: one.udid, status: 'sent' },
    { enrollment_id: 'nobody', status: 'skipped', reason: 'unknown enrollment' },
    { enrollment_id: two.udid, status: 'sent' },
    { enrollment_id: authenticatedOnly.udid, status: 'skipped', reason: 'unknown enrollment' },
  ])
  t.equal(apns.requests.length, 2)
  t.equal((await api('POST', '/api/v1/push', { enrollment_ids: [] })).statusCode, 400)
})

t.test('a dead token is retired until the next TokenUpdate', async (t) => {
  const { mdm, apns, api } = await setupPush(t)
  const device = await mdm.enrolledDevice()
  const token = device.token.toString('hex')
  apns.respondWith((push) => (push.token === token ? { status: 410, reason: 'Unregistered', timestamp: Date.now() } : undefined))
  const first = await api('POST', '/api/v1/push', { enrollment_ids: [device.udid] })
  t.match(first.json.results, [{ status: 'failed', reason: 'Unregistered' }])
  t.match(await mdm.database.db.selectFrom('enrollments').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow(), {
    push_invalid_reason: 'Unregistered',
  })
  const second = await api('POST', '/api/v1/push', { enrollment_ids: [device.udid] })
  t.match(second.json.results, [{ status: 'skipped', reason: /push token invalid/ }])
  t.equal(apns.requests.length, 1, 'no second push to a dead token')

  apns.respondWith(undefined)
  t.equal((await device.tokenUpdate()).status, 200)
  t.match((await api('POST', '/api/v1/push', { enrollment_ids: [device.udid] })).json.results, [{ status: 'sent' }])
})

t.test('a certificate problem is one error for the topic, and tokens stay valid', async (t) => {
  const { mdm, apns, api } = await setupPush(t)
  const devices = [await mdm.enrolledDevice(), await mdm.enrolledDevice(), await mdm.enrolledDevice()]
  apns.respondWith(() => ({ status: 403, reason: 'BadCertificateEnvironment' }))
  const report = (await api('POST', '/api/v1/push', { enrollment_ids: devices.map((d) => d.udid) })).json
  t.equal(report.topic_errors.length, 1)
  t.match(report.topic_errors[0], { topic: testTopic, reason: /BadCertificateEnvironment/ })
  const invalid = await mdm.database.db.selectFrom('enrollments').select('id').where('push_invalid_at', 'is not', null).execute()
  t.same(invalid, [], 'no token retired for a certificate problem')
})

t.test('renewal guard: another topic is refused while devices are enrolled on the old one', async (t) => {
  const { mdm, api, pushCa, identity, apns } = await setupPush(t)
  await mdm.enrolledDevice()
  await mdm.enrolledDevice()
  const otherTopic = await mintPushCertificate(pushCa, 'com.apple.mgmt.External.11111111-2222-4333-8444-555555555555')
  const refused = await api('PUT', `/api/v1/push-certificates/${testTopic}`, {
    certificate_pem: otherTopic.certificatePem,
    private_key_pem: otherTopic.privateKeyPem,
  })
  t.equal(refused.statusCode, 409)
  t.match(refused.json, {
    code: 'conflict',
    orphaned_enrollments: 2,
    current_topic: testTopic,
    uploaded_topic: otherTopic.topic,
    detail: /2 enrolled device channel\(s\)/,
  })
  t.match((await api('GET', '/api/v1/push-certificates')).json.push_certificates, [{ topic: testTopic }], 'nothing changed')

  // Renewal that keeps the topic: accepted, and the next push uses the new certificate.
  const renewed = await mintPushCertificate(pushCa, testTopic)
  const before = (await api('GET', `/api/v1/push-certificates/${testTopic}`)).json.sha256
  const ok = await api('PUT', `/api/v1/push-certificates/${testTopic}`, { certificate_pem: renewed.certificatePem, private_key_pem: renewed.privateKeyPem })
  t.equal(ok.statusCode, 200)
  t.not(ok.json.sha256, before)
  const device = await mdm.enrolledDevice()
  t.match((await api('POST', '/api/v1/push', { enrollment_ids: [device.udid] })).json.results, [{ status: 'sent' }])
  t.ok(apns.requests.length > 0)
  void identity

  const forced = await api('PUT', `/api/v1/push-certificates/${testTopic}?force=true`, {
    certificate_pem: otherTopic.certificatePem,
    private_key_pem: otherTopic.privateKeyPem,
  })
  t.equal(forced.statusCode, 200, 'force=true replaces it anyway')
  t.match((await api('GET', '/api/v1/push-certificates')).json.push_certificates, [{ topic: otherTopic.topic }])
})

t.test('re-push: a silent device with pending commands is pushed again; checking in resets the backoff', async (t) => {
  const { mdm, apns } = await setupPush(t)
  const device = await mdm.enrolledDevice()
  const quiet = await mdm.enrolledDevice()
  await mdm.enqueue([device.udid, quiet.udid], 'DeviceLock')
  t.equal(apns.requests.length, 2)
  t.equal(await mdm.orchard.push.repushDue(), 0, 'nothing is due yet')

  // Time passes: both re-pushes come due.
  await sql`update enrollments set next_repush_at = now() - interval '1 second'`.execute(mdm.database.db)
  t.equal(await mdm.orchard.push.repushDue(), 2)
  t.equal(apns.requests.length, 4)
  t.match(await mdm.database.db.selectFrom('enrollments').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow(), { repush_count: 1 })

  // One device answers and drains its queue; the other stays silent.
  const command = await device.idle()
  t.equal(command.status, 200)
  t.match(await mdm.database.db.selectFrom('enrollments').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow(), { repush_count: 0 })
  await sql`update enrollments set next_repush_at = now() - interval '1 second'`.execute(mdm.database.db)
  t.equal(await mdm.orchard.push.repushDue(), 2, 'both due: the answered command is still unacknowledged')
  const after = apns.requests
    .slice(4)
    .map((r) => r.token)
    .sort()
  t.same(after, [device.token.toString('hex'), quiet.token.toString('hex')].sort())
})

t.test('a PKCS#12 upload (legacy Keychain export) is accepted; a wrong password is a clear 400', async (t) => {
  const { api } = await setupPush(t, { upload: false })
  const { readFileSync } = await import('node:fs')
  const p12 = readFileSync(new URL('../crypto/fixtures/push/push-legacy.p12', import.meta.url)).toString('base64')
  const wrong = await api('POST', '/api/v1/push-certificates', { pkcs12_base64: p12, password: 'not-it' })
  t.equal(wrong.statusCode, 400)
  t.match(wrong.json, { code: 'validation_failed', detail: /push_certificate_password/ })
  const noPassword = await api('POST', '/api/v1/push-certificates', { pkcs12_base64: p12 })
  t.match(noPassword.json, { code: 'validation_failed', errors: [{ pointer: '/password' }] })
  const created = await api('POST', '/api/v1/push-certificates', { pkcs12_base64: p12, password: 'orchard-test' })
  t.equal(created.statusCode, 201)
  t.match(created.json, { topic: 'com.apple.mgmt.External.5f0c2a3e-8b7d-4c1e-9a64-2d3b8e71f0a9' })
})
