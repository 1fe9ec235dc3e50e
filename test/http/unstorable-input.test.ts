// Input no column can hold (U+0000, unpaired surrogates) and tampered pagination cursors are
// the caller's error, answered where the input is decoded: 400 naming the parameter, the body
// field or the plist key path, never a 500 from the database (issue 17; the fuzz tests
// test/http/api-fuzz.test.ts and test/device/device-fuzz.test.ts look for more).
import t from 'tap'
import { encodePlist, type PlistDict } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { encodeBinaryPlist } from '../helpers/binary-plist.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const nulDetail = 'contains U+0000 (NUL), which Orchard does not accept'
const cursor = (parts: unknown[]) => Buffer.from(JSON.stringify(parts)).toString('base64url')

t.test('admin API: NUL in a query or path parameter is 400 validation_failed naming the parameter', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const queries: Array<[string, string]> = [
    ['/api/v1/devices', 'udid'],
    ['/api/v1/devices', 'serial_number'],
    ['/api/v1/devices', 'model'],
    ['/api/v1/devices', 'os_version'],
    ['/api/v1/audit-events', 'device_id'],
    ['/api/v1/audit-events', 'principal_id'],
    ['/api/v1/audit-events', 'action'],
    ['/api/v1/commands', 'request_type'],
  ]
  for (const [path, parameter] of queries) {
    const response = await api('GET', `${path}?${parameter}=a%00b`)
    t.equal(response.statusCode, 400, `${path}?${parameter}=a%00b`)
    t.match(response.json, { code: 'validation_failed', detail: `parameter ${parameter} ${nulDetail}`, errors: [{ parameter, detail: nulDetail }] })
  }
  const paths: Array<[string, string]> = [
    ['/api/v1/devices/%00', 'device_id'],
    ['/api/v1/commands/%00', 'command_uuid'],
    [`/api/v1/devices/${device.udid}/profiles/a%00`, 'identifier'],
  ]
  for (const [path, parameter] of paths) {
    const response = await api(parameter === 'identifier' ? 'DELETE' : 'GET', path)
    t.equal(response.statusCode, 400, path)
    t.match(response.json, { code: 'validation_failed', errors: [{ parameter, detail: nulDetail }] })
  }
  const link = await api('GET', '/enroll/abc%00def')
  t.equal(link.statusCode, 404, 'an enrollment link token with NUL was never issued')
})

t.test('admin API: NUL or an unpaired surrogate in a JSON body is 400 validation_failed with a pointer', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const value = await api('POST', '/api/v1/tenants', { body: { id: 'nul', name: 'a\u0000b' } })
  t.equal(value.statusCode, 400)
  t.match(value.json, { code: 'validation_failed', detail: `request body field /name ${nulDetail}`, errors: [{ pointer: '/name', detail: nulDetail }] })
  const nested = await api('POST', '/api/v1/blueprints', { body: { name: 'x', groups: ['ok', '\u0000'] } })
  t.match(nested.json, { code: 'validation_failed', errors: [{ pointer: '/groups/1', detail: nulDetail }] })
  const key = await api('POST', '/api/v1/tenants', { body: { id: 'nul', name: 'x', 'na\u0000me': 1 } })
  t.match(key.json, { code: 'validation_failed', errors: [{ pointer: '/na\u0000me', detail: `(the field name) ${nulDetail}` }] })
  const surrogate = await api('POST', '/api/v1/tenants', { raw: { payload: '{"id":"nul","name":"a\\ud800b"}', contentType: 'application/json' } })
  t.equal(surrogate.statusCode, 400)
  t.match(surrogate.json, { code: 'validation_failed', errors: [{ pointer: '/name', detail: 'contains an unpaired surrogate, which is not valid Unicode' }] })
  t.equal((await api('GET', '/api/v1/tenants')).json.items.length, 0, 'nothing was created')
})

t.test('admin API: a command plist with NUL is refused with its key path', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const api = apiClient(mdm.app)
  const plist = encodeBinaryPlist({ CommandUUID: 'nul-1', Command: { RequestType: 'DeviceLock', Message: 'a\u0000b' } })
  const response = await api('POST', `/api/v1/enqueue/${device.udid}`, { raw: { payload: plist, contentType: 'application/x-apple-plist' } })
  t.equal(response.statusCode, 400)
  t.match(response.json, { code: 'validation_failed', detail: /string at \$\.Command\.Message contains U\+0000 \(NUL\)/ })
  const control = await api('POST', `/api/v1/devices/${device.udid}/lock`, { body: { message: 'a\u0001b' } })
  t.equal(control.statusCode, 400, 'text a plist cannot carry is refused too')
  t.match(control.json, { code: 'validation_failed', detail: /U\+0001 .* at \$\.Command\.Message/ })
})

t.test('admin API: a tampered cursor is 400 invalid_cursor, whatever the list', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const api = apiClient(mdm.app)
  const command = await mdm.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })
  const lists: Array<[string, unknown[]]> = [
    ['/api/v1/devices', ['created_at', '2024-13-45 99:99:99+00', device.udid]],
    ['/api/v1/devices?sort=-last_seen_at', ['-last_seen_at', 'not a date', device.udid]],
    ['/api/v1/devices?sort=serial_number', ['serial_number', 'SER\u0000', device.udid]],
    ['/api/v1/devices', ['created_at', '2023-02-29 00:00:00+00', device.udid]],
    ['/api/v1/commands', ['-created_at', '2024-01-01 00:00:00+16', command.uuid]],
    [`/api/v1/commands/${command.uuid}/targets`, ['enrollment_id', null, 'a\u0000']],
    [`/api/v1/enrollments/${device.udid}/commands`, ['-seq', null, 'abc']],
    [`/api/v1/enrollments/${device.udid}/commands`, ['-seq', null, '99999999999999999999']],
    ['/api/v1/audit-events', ['-id', '1', '1.5']],
    ['/api/v1/identities/expiring', ['identity_not_after', '\u0000', device.udid]],
    ['/api/v1/dep/devices', ['serial_number', 'x', '\ud800']],
    ['/api/v1/devices', ['-created_at', '2024-01-01 00:00:00+00', device.udid]],
  ]
  for (const [path, parts] of lists) {
    const response = await api('GET', `${path}${path.includes('?') ? '&' : '?'}cursor=${cursor(parts)}`)
    t.equal(response.statusCode, 400, `${path} ${JSON.stringify(parts)}`)
    t.match(response.json, { code: 'invalid_cursor', title: 'Invalid cursor', errors: [{ parameter: 'cursor' }] })
  }
  const real = await api('GET', '/api/v1/devices?limit=1')
  t.equal(real.statusCode, 200)
  const garbage = await api('GET', '/api/v1/devices?cursor=not-a-cursor')
  t.match(garbage.json, { code: 'invalid_cursor', errors: [{ parameter: 'cursor', detail: 'is not a cursor this server issued' }] })
})

t.test('device surface: NUL in a check-in or report is 400 malformed_message naming the key, XML and binary', async (t) => {
  const mdm = await setupMdm(t)
  const device = await mdm.enrolledDevice()
  const messages: Array<{ path: string; type: string; body: PlistDict; where: RegExp }> = [
    {
      path: '/mdm/checkin',
      type: 'application/x-apple-aspen-mdm-checkin',
      body: { UDID: device.udid, MessageType: 'Authenticate', Topic: device.topic, DeviceName: 'iPad\u0000' },
      where: /string at \$\.DeviceName/,
    },
    {
      path: '/mdm/connect',
      type: 'application/x-apple-aspen-mdm',
      body: { UDID: device.udid, Status: 'Acknowledged', CommandUUID: 'x\u0000' },
      where: /string at \$\.CommandUUID/,
    },
    {
      path: '/mdm/connect',
      type: 'application/x-apple-aspen-mdm',
      body: { UDID: device.udid, Status: 'Idle', 'Key\u0000': 1 },
      where: /key "Key\\u0000" in \$/,
    },
  ]
  for (const { path, type, body, where } of messages) {
    const xml = Buffer.from(
      encodePlist(JSON.parse(JSON.stringify(body).replace(/\\u0000/g, 'NUL-HERE')))
        .toString('utf8')
        .replace(/NUL-HERE/g, '\u0000'),
    )
    for (const [format, bytes] of [
      ['XML', xml],
      ['binary', encodeBinaryPlist(body)],
    ] as const) {
      const response = await device.send(path, bytes, type)
      t.equal(response.status, 400, `${path} ${format}`)
      t.match(response.body.toString(), /^malformed_message: not a valid plist: /)
      t.match(response.body.toString(), where)
    }
  }
  t.equal((await device.idle()).status, 200, 'the device is still enrolled')
})

t.test('what the large fuzz runs found: an unknown tenant for a new row, overlong check-in strings', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const profile = encodePlist({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: 'com.example.fuzz',
    PayloadUUID: 'A0000000-0000-0000-0000-000000000001',
    PayloadDisplayName: 'Fuzz',
    PayloadContent: [],
  })
  const upload = await api('POST', '/api/v1/profiles?tenant_id=nosuchtenant', { raw: { payload: profile, contentType: 'application/x-apple-aspen-config' } })
  t.equal(upload.statusCode, 400, 'a profile for a tenant that does not exist')
  t.match(upload.json, { code: 'validation_failed', errors: [{ parameter: 'tenant_id', detail: 'no such tenant' }] })
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'fuzz', tenant_id: 'nosuchtenant' } })
  t.equal(blueprint.statusCode, 400, 'a blueprint for a tenant that does not exist')
  t.match(blueprint.json, { errors: [{ pointer: '/tenant_id' }] })

  const device = await mdm.newDevice()
  for (const key of ['Topic', 'OSVersion', 'SerialNumber', 'DeviceName']) {
    const response = await device.checkin({ MessageType: 'Authenticate', Topic: device.topic, [key]: 'x'.repeat(3000) })
    t.equal(response.status, 400, `${key} of 3,000 characters`)
    t.match(response.body.toString(), new RegExp(`^malformed_message: (Authenticate: )?${key} is longer than 512 characters`))
  }
  t.equal((await device.authenticate()).status, 200, 'the device enrolls with real values')
})
