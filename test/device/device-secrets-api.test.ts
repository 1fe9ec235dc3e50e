// Escrowed device secrets through the admin API: shown as escrowed, revealed to owners only
// (audited), and used for ClearPasscode without leaving the server.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

t.test('escrow flags, reveal for owners (audited), clear-passcode with the escrowed UnlockToken', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  t.equal((await device.checkin({ MessageType: 'SetBootstrapToken', BootstrapToken: Buffer.from('bootstrap!') })).status, 200)
  t.same((await api('GET', `/api/v1/devices/${device.udid}`)).json.escrow, { unlock_token: true, bootstrap_token: true })

  const admin = (await api('POST', '/api/v1/api-keys', { body: { name: 'admin', role: 'admin' } })).json.key as string
  const helpdesk = (await api('POST', '/api/v1/api-keys', { body: { name: 'helpdesk', role: 'helpdesk' } })).json.key as string
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/reveal-secrets`, { key: admin })).statusCode, 403, 'admins do not read secrets')
  const revealed = await api('POST', `/api/v1/devices/${device.udid}/reveal-secrets`)
  t.equal(revealed.statusCode, 200)
  t.same(revealed.json, {
    device_id: device.udid,
    unlock_token: device.unlockToken.toString('base64'),
    bootstrap_token: Buffer.from('bootstrap!').toString('base64'),
  })
  const audit = (await api('GET', `/api/v1/audit-events?device_id=${device.udid}&action=revealDeviceSecrets`)).json.items
  t.match(
    audit,
    [
      { outcome: 'success', details: { revealed: ['unlock_token', 'bootstrap_token'] } },
      { outcome: 'failure', status_code: 403 },
    ],
    'each read (and each refused one) is audited',
  )
  t.notOk(JSON.stringify(audit).includes(device.unlockToken.toString('base64')), 'no secret in the audit log')

  const cleared = await api('POST', `/api/v1/devices/${device.udid}/clear-passcode`, { key: helpdesk })
  t.equal(cleared.statusCode, 201, 'the helpdesk clears passcodes without seeing the token')
  t.notOk(cleared.body.includes(device.unlockToken.toString('base64')))
  const command = commandIn(await device.idle())!
  t.equal(command.requestType, 'ClearPasscode')
  t.same(command.command['UnlockToken'], device.unlockToken, 'the escrowed UnlockToken goes to the device')
  t.equal((await api('POST', '/api/v1/devices/nope/clear-passcode')).statusCode, 404)
})

t.test('no escrowed UnlockToken: clear-passcode answers 422 and queues nothing', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  t.same((await api('GET', `/api/v1/devices/${device.udid}`)).json.escrow, { unlock_token: false, bootstrap_token: false })
  const refused = await api('POST', `/api/v1/devices/${device.udid}/clear-passcode`)
  t.equal(refused.statusCode, 422)
  t.match(refused.json.detail, /no escrowed UnlockToken/)
  t.equal((await device.idle()).body.length, 0, 'nothing queued')
})
