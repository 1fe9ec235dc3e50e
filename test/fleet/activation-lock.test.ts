// Activation Lock bypass codes: asked of supervised devices (at enrollment when supervision is
// known, else after DeviceInformation says so), kept sealed with ORCHARD_SECRET_KEYS, shown as
// held on the device, read by owners and admins only (audited, GET included), kept through a
// wipe until an admin deletes the record.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { drainCommands } from '../helpers/activation-lock-device.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'

const askSupervision = (mdm: MdmFixture, udid: string) => mdm.enqueue([udid], 'DeviceInformation', { Queries: ['IsSupervised', 'IsActivationLockEnabled'] })

/** Whether any stored command result of the device holds `text`. */
async function resultsHold(mdm: MdmFixture, udid: string, text: string) {
  const rows = await mdm.database.db.selectFrom('command_targets').select('result_raw').where('enrollment_id', '=', udid).execute()
  return rows.some((row) => row.result_raw?.includes(Buffer.from(text)))
}

async function codeRow(mdm: MdmFixture, udid: string) {
  return mdm.database.db.selectFrom('activation_lock_bypass_codes').selectAll().where('device_id', '=', udid).executeTakeFirst()
}

t.test('a supervised device: the code is collected, sealed, shown as held, read by admins (audited) and deleted', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const code = `CODE-${randomBytes(8).toString('hex').toUpperCase()}`
  const answers = { supervised: true, activationLockEnabled: true, bypassCode: code }
  // Supervision unknown at enrollment: asked once a DeviceInformation answer says supervised
  // (the one asked here, or one queued at enrollment), and only once.
  t.equal((await codeRow(mdm, device.udid))?.request_state, 'awaiting_supervision', 'nothing asked at enrollment')
  t.equal((await askSupervision(mdm, device.udid)).statusCode, 200)
  const seen = await drainCommands(device, answers)
  const first = seen.indexOf('DeviceInformation')
  t.ok(first >= 0)
  t.ok(seen.indexOf('ActivationLockBypassCode') > first, 'the code is asked for after it', { seen })
  t.equal(seen.filter((type) => type === 'ActivationLockBypassCode').length, 1, 'once', { seen })
  const row = await codeRow(mdm, device.udid)
  t.equal(row?.request_state, 'received')
  t.ok(row?.code_sealed && row.code_sealed.length > 0, 'a sealed code is stored')
  t.notOk(row!.code_sealed!.includes(Buffer.from(code)), 'the stored bytes do not hold the code in clear')
  t.notOk(row!.code_sealed!.toString('latin1').includes(code))
  t.notOk(await resultsHold(mdm, device.udid, code), 'the stored command result keeps the answer without the code')
  t.ok(await resultsHold(mdm, device.udid, 'IsSupervised'), '(results are stored: the check above can fail)')

  const shown = (await api('GET', `/api/v1/devices/${device.udid}`)).json
  t.equal(shown.activation_lock_enabled, true)
  t.equal(shown.activation_lock_bypass_code_held, true)
  t.equal(shown.activation_lock_bypass_code_detail, null)
  t.notOk(JSON.stringify(shown).includes(code), 'the device JSON never shows the code')

  // Asked already: another DeviceInformation answer asks nothing more.
  await askSupervision(mdm, device.udid)
  t.same(await drainCommands(device, answers), ['DeviceInformation'])

  // Readers: owner and admin of the device's tenant; not the helpdesk, not another tenant's admin.
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'science', name: 'Science' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'arts', name: 'Arts' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/devices/move', { body: { device_ids: [device.udid], tenant_id: 'science' } })).statusCode, 200)
  const key = async (role: string, tenant: string) =>
    (await api('POST', '/api/v1/api-keys', { body: { name: `${tenant} ${role}`, role, tenant_id: tenant } })).json.key as string
  const admin = await key('admin', 'science')
  const helpdesk = await key('helpdesk', 'science')
  const foreignAdmin = await key('admin', 'arts')
  const url = `/api/v1/devices/${device.udid}/activation-lock/bypass-code`

  const read = await api('GET', url, { key: admin })
  t.equal(read.statusCode, 200)
  t.equal(read.json.device_id, device.udid)
  t.equal(read.json.bypass_code, code, 'the admin reads the code')
  t.ok(read.json.received_at)
  t.equal((await api('GET', url)).json.bypass_code, code, 'and the owner')
  t.equal((await api('GET', url, { key: helpdesk })).statusCode, 403, 'not the helpdesk')
  t.equal((await api('GET', url, { key: foreignAdmin })).statusCode, 404, "another tenant's admin does not see the device")
  t.equal((await api('DELETE', url, { key: helpdesk })).statusCode, 403)
  t.equal((await api('DELETE', url, { key: foreignAdmin })).statusCode, 404)
  t.equal((await api('GET', '/api/v1/devices/nope/activation-lock/bypass-code')).statusCode, 404)

  const reads = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}&action=getActivationLockBypassCode`)).json.items
  t.equal(reads.length, 2, 'each successful read left an audit row')
  t.match(reads, [{ outcome: 'success', target_id: device.udid, details: { revealed: ['activation_lock_bypass_code'], held: true } }, { outcome: 'success' }])
  t.equal(reads.filter((r: { tenant_id: string | null }) => r.tenant_id === 'science').length, 2, "filed under the device's tenant")
  t.notOk(JSON.stringify(reads).includes(code), 'no code in the audit log')

  // A wipe keeps the record; an admin deletes it (audited).
  await mdm.database.db.updateTable('devices').set({ lifecycle_state: 'wiped', wiped_at: new Date() }).where('id', '=', device.udid).execute()
  t.equal((await api('GET', url, { key: admin })).json.bypass_code, code, 'a wiped device keeps its code')
  t.equal((await api('DELETE', url, { key: admin })).statusCode, 204)
  t.equal(await codeRow(mdm, device.udid), undefined, 'the record is gone')
  const deletes = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}&action=deleteActivationLockBypassCode`)).json.items
  t.match(deletes, [{ outcome: 'success', details: { deleted: ['activation_lock_bypass_code'], held: true } }], 'the delete is audited')
  t.same((await api('GET', url, { key: admin })).json, { device_id: device.udid, bypass_code: null, received_at: null })
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.activation_lock_bypass_code_held, false)
})

t.test('a device known to be supervised is asked at enrollment; an error answer is shown', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  await mdm.database.db.updateTable('devices').set({ is_supervised: true }).where('id', '=', device.udid).execute()
  await device.enroll()
  t.equal((await codeRow(mdm, device.udid))?.request_state, 'requested', 'queued by the enrollment itself')
  // The device returns no code (e.g. more than 15 days after activation).
  const seen = await drainCommands(device, { supervised: true })
  t.equal(seen.filter((type) => type === 'ActivationLockBypassCode').length, 1, 'asked once', { seen })
  const row = await codeRow(mdm, device.udid)
  t.equal(row?.request_state, 'failed')
  t.equal(row?.code_sealed, null)
  const shown = (await api('GET', `/api/v1/devices/${device.udid}`)).json
  t.equal(shown.activation_lock_bypass_code_held, false)
  t.match(shown.activation_lock_bypass_code_detail, /the device answered Error: The device is not supervised/)
  t.equal(shown.activation_lock_enabled, null, 'IsActivationLockEnabled unknown')
})

t.test('an unsupervised device is never asked', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const answers = { supervised: false, activationLockEnabled: false }
  await askSupervision(mdm, device.udid)
  t.notOk((await drainCommands(device, answers)).includes('ActivationLockBypassCode'))
  await device.enroll()
  t.notOk((await drainCommands(device, answers)).includes('ActivationLockBypassCode'), 'not at enrollment either')
  const shown = (await api('GET', `/api/v1/devices/${device.udid}`)).json
  t.equal(shown.activation_lock_enabled, false)
  t.equal(shown.activation_lock_bypass_code_held, false)
  t.equal(await codeRow(mdm, device.udid), undefined)
})

t.test('without ORCHARD_SECRET_KEYS nothing is asked for or stored', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const code = 'CODE-NOT-KEPT-0000'
  const answers = { supervised: true, bypassCode: code }
  await askSupervision(mdm, device.udid)
  t.notOk((await drainCommands(device, answers)).includes('ActivationLockBypassCode'), 'not asked: it could not be sealed')
  t.match(await codeRow(mdm, device.udid), { request_state: 'not_kept', code_sealed: null })
  // Queued by hand, the answer is dropped.
  t.equal((await mdm.enqueue([device.udid], 'ActivationLockBypassCode')).statusCode, 200)
  t.same(await drainCommands(device, answers), ['ActivationLockBypassCode'])
  const row = await codeRow(mdm, device.udid)
  t.equal(row?.code_sealed ?? null, null, 'no code stored')
  t.equal(row?.request_state, 'not_kept')
  const shown = (await api('GET', `/api/v1/devices/${device.udid}`)).json
  t.equal(shown.activation_lock_bypass_code_held, false)
  t.match(shown.activation_lock_bypass_code_detail, /ORCHARD_SECRET_KEYS/)
  t.same((await api('GET', `/api/v1/devices/${device.udid}/activation-lock/bypass-code`)).json.bypass_code, null)
  t.notOk(await resultsHold(mdm, device.udid, code), 'nor in the stored command results')
})
