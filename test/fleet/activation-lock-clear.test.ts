// Activation Lock at Apple, end to end: turning the lock off with a held code through a fake of
// Apple's escrowKeyUnlock service (HTTPS, the push certificate as client identity, the device
// in the query string and the code in a form body), for a retired device and for one still
// enrolled (ClearActivationLockBypassCode with it); and the organization-linked lock of ADE
// devices, sent through the fake ABM (POST /device/activationlock) outside the device's report,
// retried after a failure, refused by Apple, and unlocked with its server code.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { escrowKeyOf } from '../../src/crypto/bypass-code.js'
import { drainCommands, type ActivationLockAnswers } from '../helpers/activation-lock-device.js'
import { apiClient } from '../helpers/api.js'
import { setupDep } from '../helpers/dep-fixture.js'
import { setupEnrollment } from '../helpers/enrollment-fixture.js'
import { startFakeDeviceServices, type FakeDeviceServices } from '../helpers/fake-device-services.js'
import { createTestCa, mintPushCertificate, type PushIdentity } from '../helpers/fake-apns.js'
import type { MdmFixture } from '../helpers/mdm-fixture.js'
import { testTopic } from '../helpers/simulated-device.js'

let apple: FakeDeviceServices
let appleCaFile: string
let pushIdentity: PushIdentity
/** A push certificate of another CA: Apple's service does not trust it. */
let foreignPush: PushIdentity

t.before(async () => {
  const pushCa = await createTestCa('Activation Lock push CA', 'rsa-2048')
  pushIdentity = await mintPushCertificate(pushCa, testTopic)
  foreignPush = await mintPushCertificate(await createTestCa('Another push CA', 'rsa-2048'), testTopic)
  apple = await startFakeDeviceServices({ clientCaPem: pushCa.pem })
  appleCaFile = join(mkdtempSync(join(tmpdir(), 'orchard-activation-lock-')), 'device-services-ca.pem')
  writeFileSync(appleCaFile, apple.caPem)
})
t.teardown(() => apple.close())

const appleEnv = () => ({ ORCHARD_ACTIVATION_LOCK_UNLOCK_URL: apple.url, ORCHARD_ACTIVATION_LOCK_UNLOCK_CA_FILE: appleCaFile })
/** A code as devices write theirs. */
const deviceCode = () =>
  (
    randomBytes(13)
      .toString('hex')
      .toUpperCase()
      .match(/.{1,5}/g) ?? []
  )
    .join('-')
    .slice(0, 31)
const askSupervision = (mdm: MdmFixture, udid: string) => mdm.enqueue([udid], 'DeviceInformation', { Queries: ['IsSupervised'] })

async function codeRow(mdm: MdmFixture, udid: string) {
  return mdm.database.db.selectFrom('activation_lock_bypass_codes').selectAll().where('device_id', '=', udid).executeTakeFirst()
}

/** A supervised device that has given Orchard its code. */
async function deviceWithCode(t: Test, mdm: MdmFixture, options: { serialNumber?: string } = {}) {
  const device = await mdm.enrolledDevice(options)
  const answers: ActivationLockAnswers = { supervised: true, activationLockEnabled: true, bypassCode: deviceCode() }
  const code = answers.bypassCode!
  t.equal((await askSupervision(mdm, device.udid)).statusCode, 200)
  t.ok((await drainCommands(device, answers)).includes('ActivationLockBypassCode'), 'the code is asked for')
  t.equal((await codeRow(mdm, device.udid))?.request_state, 'received', 'and kept')
  return { device, answers, code }
}

/** The unlock requests Apple's fake got for a serial. */
const unlocksOf = (serial: string) => apple.requests.filter((request) => request.query['serial'] === serial)

t.test('a retired device is unlocked at Apple with its own code; refusals are shown and audited', async (t) => {
  const mdm = await setupEnrollment(t, { ...appleEnv(), ORCHARD_ADE_ACTIVATION_LOCK: 'true' }, { pushCertificate: false })
  const api = apiClient(mdm.app)
  const uploaded = await api('POST', '/api/v1/push-certificates', {
    body: { certificate_pem: pushIdentity.certificatePem, private_key_pem: pushIdentity.privateKeyPem },
  })
  t.equal(uploaded.statusCode, 201, uploaded.body)
  const { device, code } = await deviceWithCode(t, mdm)
  const url = `/api/v1/devices/${device.udid}/activation-lock`

  const before = (await api('GET', url)).json
  t.match(before, {
    device_id: device.udid,
    device_code: { held: true, request_state: 'received' },
    organization_lock: { state: null, server_code_held: false },
  })
  t.equal(before.last_unlock.unlocked_at, null)
  t.notOk(JSON.stringify(before).includes(code), 'the status never shows the code')
  t.equal((await codeRow(mdm, device.udid))?.escrow_state, null, 'not an ADE device: no organization-linked lock, the option on or not')

  // Retired: management stops, the record stays.
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/retire`)).statusCode, 201)
  t.equal((await api('GET', `${url}/bypass-code`)).json.bypass_code, code, 'a retired device keeps its code record')

  // Apple's activation server holds the device locked with another code: refused, 502 with Apple's answer.
  apple.locks.set(device.serialNumber, { kind: 'device-code', code: deviceCode() })
  const refused = await api('POST', `${url}/clear`)
  t.equal(refused.statusCode, 502, refused.body)
  t.equal(refused.json.code, 'upstream_failed')
  t.match(refused.json.detail, /device code: Apple answered 400: invalid escrow key/)
  t.match(refused.json.attempts, [{ code: 'device', http_status: 400 }])
  t.notOk(refused.body.includes(code), 'the code is not in the answer')
  t.ok(apple.locks.has(device.serialNumber), 'still locked')
  t.match((await api('GET', url)).json.last_unlock, { unlocked_at: null, code_used: null, detail: /Apple answered 400/ })

  // The code Apple knows: unlocked.
  apple.locks.set(device.serialNumber, { kind: 'device-code', code })
  const cleared = await api('POST', `${url}/clear`, { body: { clear_device_code: true } })
  t.equal(cleared.statusCode, 200, cleared.body)
  t.match(cleared.json, { device_id: device.udid, unlocked: true, code_used: 'device', attempts: [{ code: 'device', http_status: 200, detail: null }] })
  t.match(cleared.json.device_command, { result: 'not_enrolled', command_uuid: null }, 'a retired device is not sent ClearActivationLockBypassCode')
  t.notOk(apple.locks.has(device.serialNumber), "Apple's activation server let the device go")
  const sent = unlocksOf(device.serialNumber).at(-1)!
  t.match(sent, { method: 'POST', contentType: /^application\/x-www-form-urlencoded/, clientTopic: testTopic, status: 200 })
  t.same(sent.query, { serial: device.serialNumber, productType: 'iPad13,1', imei: '351234567890123' }, 'the device in the query string (IMEI as digits)')
  t.match(sent.form, { orgName: 'Orchard', escrowKey: code })
  t.ok(sent.form['guid'], 'who asked, for Apple')
  const status = (await api('GET', url)).json
  t.match(status.last_unlock, { code_used: 'device', detail: null })
  t.ok(status.last_unlock.unlocked_at)
  t.match(status.device_clear, { state: 'failed', command_uuid: null, detail: /not enrolled/ })
  t.equal((await api('GET', `${url}/bypass-code`)).json.bypass_code, code, 'the code is kept after the unlock')

  const audited = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}&action=clearActivationLock`)).json.items
  t.equal(audited.length, 2, 'the refusal and the unlock are in the audit log')
  t.match(audited, [
    { outcome: 'success', details: { activation_lock: 'turned off at Apple', code_used: 'device' } },
    { outcome: 'failure', status_code: 502, details: { code: 'upstream_failed' } },
  ])
  t.equal(audited[0].principal.name, sent.form['guid'], "Apple's guid is the admin who asked")
  t.notOk(JSON.stringify(audited).includes(code), 'no code in the audit log')

  // Roles and scope: owner and admin; not the helpdesk nor another tenant's admin.
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'science', name: 'Science' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'arts', name: 'Arts' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/devices/move', { body: { device_ids: [device.udid], tenant_id: 'science' } })).statusCode, 200)
  const key = async (role: string, tenant: string) =>
    (await api('POST', '/api/v1/api-keys', { body: { name: `${tenant} ${role}`, role, tenant_id: tenant } })).json.key as string
  const helpdesk = await key('helpdesk', 'science')
  const foreignAdmin = await key('admin', 'arts')
  t.equal((await api('POST', `${url}/clear`, { key: helpdesk })).statusCode, 403)
  t.equal((await api('GET', url, { key: helpdesk })).statusCode, 200, 'the helpdesk reads the status')
  t.equal((await api('POST', `${url}/clear`, { key: foreignAdmin })).statusCode, 404)
  t.equal((await api('GET', url, { key: foreignAdmin })).statusCode, 404)
  const requestsBefore = apple.requests.length
  t.equal((await api('POST', `${url}/clear`, { key: helpdesk, body: { clear_device_code: 'yes' } })).statusCode, 403)
  t.equal((await api('POST', `${url}/clear`, { body: { unexpected: true } })).statusCode, 400, 'unknown fields are refused')
  t.equal(apple.requests.length, requestsBefore, 'no refused call reached Apple')
})

t.test('an enrolled device: unlocked, then ClearActivationLockBypassCode removes its code', async (t) => {
  const mdm = await setupEnrollment(t, appleEnv(), { pushCertificate: false })
  const api = apiClient(mdm.app)
  t.equal(
    (await api('POST', '/api/v1/push-certificates', { body: { certificate_pem: foreignPush.certificatePem, private_key_pem: foreignPush.privateKeyPem } }))
      .statusCode,
    201,
  )
  const { device, answers, code } = await deviceWithCode(t, mdm)
  const url = `/api/v1/devices/${device.udid}/activation-lock`
  apple.locks.set(device.serialNumber, { kind: 'device-code', code })

  // A push certificate Apple does not trust.
  const untrusted = await api('POST', `${url}/clear`, { body: { clear_device_code: true } })
  t.equal(untrusted.statusCode, 502, untrusted.body)
  t.match(untrusted.json.detail, /Apple answered 403/)
  t.equal(unlocksOf(device.serialNumber).at(-1)?.clientTopic, null, 'the fake saw no trusted client certificate')
  t.ok(apple.locks.has(device.serialNumber))
  t.notOk(await drainCommands(device, answers).then((seen) => seen.includes('ClearActivationLockBypassCode')), 'nothing sent to the device when Apple refused')

  t.equal(
    (
      await api('PUT', `/api/v1/push-certificates/${testTopic}`, {
        body: { certificate_pem: pushIdentity.certificatePem, private_key_pem: pushIdentity.privateKeyPem },
      })
    ).statusCode,
    200,
    'renewed with a certificate Apple trusts',
  )
  const cleared = await api('POST', `${url}/clear`, { body: { clear_device_code: true } })
  t.equal(cleared.statusCode, 200, cleared.body)
  t.match(cleared.json, { code_used: 'device', device_command: { result: 'queued', detail: null } })
  const commandUuid = cleared.json.device_command.command_uuid as string
  t.match((await api('GET', url)).json.device_clear, { state: 'requested', command_uuid: commandUuid })

  t.same(await drainCommands(device, answers), ['ClearActivationLockBypassCode'], 'the device gets ClearActivationLockBypassCode')
  t.match((await api('GET', url)).json.device_clear, { state: 'cleared', command_uuid: commandUuid, detail: null }, 'and acknowledges it')
  t.equal(answers.bypassCode, undefined, 'the device no longer has its code')
  // Asked again (a new enrollment), it has none to give: Orchard keeps the one it holds.
  t.equal((await mdm.enqueue([device.udid], 'ActivationLockBypassCode')).statusCode, 200)
  t.same(await drainCommands(device, answers), ['ActivationLockBypassCode'])
  t.equal((await api('GET', `${url}/bypass-code`)).json.bypass_code, code, 'an empty answer does not replace a held code')

  // A device of which nothing is held.
  const other = await mdm.enrolledDevice()
  const none = await api('POST', `/api/v1/devices/${other.udid}/activation-lock/clear`)
  t.equal(none.statusCode, 409, none.body)
  t.match(none.json.detail, /holds no Activation Lock bypass code/)
  t.equal((await api('POST', '/api/v1/devices/nope/activation-lock/clear')).statusCode, 404)
})

t.test('ADE: the organization-linked lock is sent through ABM after the report, retried, refused, and unlocked with its server code', async (t) => {
  const world = await setupDep(t, { ...appleEnv(), ORCHARD_ADE_ACTIVATION_LOCK: 'true' })
  const { abm, call } = world
  const renewed = await call('PUT', `/api/v1/push-certificates/${testTopic}`, {
    body: { certificate_pem: pushIdentity.certificatePem, private_key_pem: pushIdentity.privateKeyPem },
  })
  t.equal(renewed.statusCode, 200, renewed.body)
  const serial = 'DMPAL0000001'
  const lockedElsewhere = 'DMPAL0000002'
  abm.addDevices([{ serial_number: serial }, { serial_number: lockedElsewhere }])
  const token = await world.connectToken()
  t.match((await world.sync(token.id)).json, { outcome: 'synced' })
  const escrow = () => world.orchard.activationLock.escrowDue()
  const lockRequests = () => abm.requests.filter((request) => request.path === '/device/activationlock')

  const { device, code } = await deviceWithCode(t, world, { serialNumber: serial })
  const url = `/api/v1/devices/${device.udid}/activation-lock`
  t.match((await call('GET', url)).json.organization_lock, { state: 'pending', attempts: 0, server_code_held: false }, 'due once the code came')
  t.equal(lockRequests().length, 0, 'nothing was sent to Apple inside the device report')

  // Apple is unavailable: failed, retried after Retry-After.
  abm.failNext('/device/activationlock', { status: 503, body: 'SERVICE_UNAVAILABLE', headers: { 'Retry-After': '120' } })
  t.same(await escrow(), { escrowed: 0, failed: 1, refused: 0 })
  const failed = (await call('GET', url)).json.organization_lock
  t.match(failed, { state: 'failed', attempts: 1, detail: /SERVICE_UNAVAILABLE|503/, server_code_held: true }, 'the server code is kept before its key leaves')
  const retryIn = new Date(failed.next_attempt_at).getTime() - new Date(failed.attempted_at).getTime()
  t.ok(retryIn >= 119_000 && retryIn <= 125_000, `retried after Apple's Retry-After (${retryIn} ms)`)
  t.same(await escrow(), { escrowed: 0, failed: 0, refused: 0 }, 'not before that')
  const serverCodeBefore = (await codeRow(world, device.udid))?.server_code_sealed
  await world.database.db
    .updateTable('activation_lock_bypass_codes')
    .set({ escrow_retry_at: new Date(Date.now() - 1000) })
    .where('device_id', '=', device.udid)
    .execute()
  t.same(await escrow(), { escrowed: 1, failed: 0, refused: 0 }, 'the retry succeeds')
  t.same((await codeRow(world, device.udid))?.server_code_sealed, serverCodeBefore, 'with the same server code')
  const locked = abm.activationLocks.get(serial)
  t.match(locked?.escrowKey, /^[0-9a-f]{64}$/, 'Apple got an escrow key')
  t.not(locked?.escrowKey, await escrowKeyOf(code), 'made from a server code, not from the device code')
  t.match((await call('GET', url)).json.organization_lock, { state: 'escrowed', attempts: 2, detail: null, next_attempt_at: null, server_code_held: true })
  t.match(lockRequests().at(-1)?.body, { device: serial, escrow_key: locked?.escrowKey })
  t.same(await escrow(), { escrowed: 0, failed: 0, refused: 0 }, 'sent once')

  // Apple refuses a device locked already: final, not retried.
  abm.activationLocks.set(lockedElsewhere, { escrowKey: null, lostMessage: null, lockedAt: new Date().toISOString() })
  const second = await deviceWithCode(t, world, { serialNumber: lockedElsewhere })
  t.same(await escrow(), { escrowed: 0, failed: 0, refused: 1 })
  t.match((await call('GET', `/api/v1/devices/${second.device.udid}/activation-lock`)).json.organization_lock, {
    state: 'refused',
    detail: /DEVICE_ALREADY_LOCKED/,
    next_attempt_at: null,
  })

  // Wiped: Apple's activation server holds it to the organization's escrow key; the server code unlocks it, tried first.
  await world.database.db.updateTable('devices').set({ lifecycle_state: 'wiped', wiped_at: new Date() }).where('id', '=', device.udid).execute()
  apple.locks.set(serial, { kind: 'escrow-key', escrowKey: locked!.escrowKey! })
  const cleared = await call('POST', `${url}/clear`)
  t.equal(cleared.statusCode, 200, cleared.body)
  t.match(cleared.json, { code_used: 'server', attempts: [{ code: 'server', http_status: 200 }], device_command: null })
  t.notOk(apple.locks.has(serial), 'unlocked')
  t.not(unlocksOf(serial).at(-1)?.form['escrowKey'], code, 'with the server code')
  const status = (await call('GET', url)).json
  t.match(status, { organization_lock: { state: 'cleared', server_code_held: true }, last_unlock: { code_used: 'server' } })
  t.same(await escrow(), { escrowed: 0, failed: 0, refused: 0 }, 'not locked again')
  t.equal(lockRequests().length, 3)

  // The device reports a new code (enrolled again): the organization-linked lock is due again.
  await world.database.db.updateTable('devices').set({ lifecycle_state: 'active', wiped_at: null }).where('id', '=', device.udid).execute()
  const again = { supervised: true, bypassCode: deviceCode() }
  t.equal((await world.enqueue([device.udid], 'ActivationLockBypassCode')).statusCode, 200)
  await drainCommands(device, again)
  t.match((await call('GET', url)).json.organization_lock, { state: 'pending' })
})
