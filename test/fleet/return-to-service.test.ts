// Return to Service end to end: a tenant's Wi-Fi profile from the library, an erase that
// carries it (and the MDM profile where the device needs it) as the simulated iPad receives
// it, the iPad coming back by itself through SCEP with the MDMProfileData challenge and being
// accepted as a wiped device, the defaults by kind, the refusals, and the settings' rules.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { decodePlist, isPlistDict, type PlistDict, type PlistValue } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { profileParts, publicUrl, setupEnrollment, type EnrollmentFixture } from '../helpers/enrollment-fixture.js'
import { wifiProfile } from '../helpers/faithful-device.js'
import { scepEnroll } from '../helpers/scep-client.js'
import { commandIn, injectTransport, SimulatedDevice, testTopic } from '../helpers/simulated-device.js'

type Api = ReturnType<typeof apiClient>

async function upload(api: Api, profile: Buffer, tenantId?: string): Promise<string> {
  const response = await api('POST', `/api/v1/profiles${tenantId ? `?tenant_id=${tenantId}` : ''}`, {
    raw: { payload: profile, contentType: 'application/x-apple-aspen-config' },
  })
  if (response.statusCode !== 201) throw new Error(`upload: ${response.statusCode} ${response.body}`)
  return response.json.id as string
}

/** An enrolled iPad (iPadOS 18.1, as the simulated device reports) of `tenantId`, of this kind and supervision. */
async function iPad(world: EnrollmentFixture, options: { tenantId?: string | null; kind?: 'work' | 'function'; supervised?: boolean | null } = {}) {
  const device = await world.enrolledDevice()
  await world.database.db
    .updateTable('devices')
    .set({ tenant_id: options.tenantId ?? null, kind: options.kind ?? 'function', is_supervised: options.supervised === undefined ? true : options.supervised })
    .where('id', '=', device.udid)
    .execute()
  return device
}

const bytes = (value: PlistValue | undefined): Buffer => {
  if (!(value instanceof Uint8Array)) throw new Error('not data')
  return Buffer.from(value)
}

function returnToServiceOf(command: PlistDict): PlistDict {
  const keys = command['ReturnToService']
  if (!isPlistDict(keys)) throw new Error('no ReturnToService in the command')
  return keys
}

t.test('a function iPad returns to service by default once its tenant has a Wi-Fi profile, and comes back enrolled', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'library', name: 'Library' } })).statusCode, 201)
  const device = await iPad(world, { tenantId: 'library', kind: 'function' })
  const id = device.udid

  const noWifi = await api('POST', `/api/v1/devices/${id}/offboard`, { body: { return_to_service: true } })
  t.equal(noWifi.statusCode, 422, 'asked for without a Wi-Fi profile')
  t.equal(noWifi.json.reason, 'no_wifi_profile')
  t.match(noWifi.json.detail, /no Wi-Fi profile is set for tenant library/)

  const wifi = wifiProfile('library.wifi', 'Library-Staff')
  const wifiId = await upload(api, wifi, 'library')
  const set = await api('PUT', '/api/v1/return-to-service', { body: { tenant_id: 'library', wifi_profile_id: wifiId } })
  t.equal(set.statusCode, 200, set.body)
  t.match(set.json, { tenant_id: 'library', wifi_profile_id: wifiId, wifi_profile_name: 'Wi-Fi Library-Staff', updated_at: String })
  t.match((await api('GET', '/api/v1/return-to-service')).json.items, [{ tenant_id: 'library', wifi_profile_id: wifiId }])

  const started = await api('POST', `/api/v1/devices/${id}/offboard`, { body: { reason: 'back to the pool' } })
  t.equal(started.statusCode, 201, started.body)
  t.match(started.json, {
    action: 'offboard',
    status: 'pending',
    details: {
      method: 'return_to_service',
      return_to_service: { wifi_profile_id: wifiId, wifi_from_tenant_id: 'library', mdm_profile: true },
      steps: [
        { step: 'erase', status: 'pending' },
        { step: 're_enroll', status: 'pending' },
      ],
    },
    commands: [{ request_type: 'EraseDevice' }],
  })

  // What the iPad receives.
  const erase = commandIn(await device.idle())!
  t.equal(erase.requestType, 'EraseDevice')
  const keys = returnToServiceOf(erase.command)
  t.equal(keys['Enabled'], true)
  t.same(bytes(keys['WiFiProfileData']), wifi, 'the library profile, byte for byte')
  const mdmProfile = decodePlist(bytes(keys['MDMProfileData']))
  if (!isPlistDict(mdmProfile)) throw new Error('MDMProfileData is not a profile')
  const parts = profileParts(mdmProfile)
  t.match(
    parts.mdm,
    { ServerURL: `${publicUrl}/mdm/connect`, CheckInURL: `${publicUrl}/mdm/checkin`, Topic: testTopic },
    'not an ADE device: it needs the MDM profile',
  )
  t.ok(parts.challenge.length > 20, 'with a one-time SCEP challenge')

  t.equal(commandIn(await device.answer(erase.uuid, 'Acknowledged')), undefined)
  t.match((await api('GET', `/api/v1/devices/${id}`)).json, { lifecycle_state: 'wiped', enrolled: false, tenant_id: 'library' })
  const waiting = await api('GET', `/api/v1/devices/${id}/lifecycle/${started.json.id}`)
  t.match(waiting.json, {
    status: 'pending',
    details: {
      erased_at: String,
      steps: [
        { step: 'erase', status: 'done' },
        { step: 're_enroll', status: 'pending' },
      ],
    },
  })
  t.equal((await device.idle()).status, 400, 'wiped, not retired: the old enrollment is simply not served (never 401)')

  // Setup Assistant after the erase: Wi-Fi, then the MDM profile: SCEP with its challenge, Authenticate, TokenUpdate.
  const scep = await scepEnroll(world.scepHttp, { challenge: parts.challenge, subject: { commonName: 'Library iPad', organization: 'Library' } })
  t.equal(scep.certRep.pkiStatus, 'SUCCESS')
  const back = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(world.app), {
    udid: id,
    serialNumber: device.serialNumber,
  })
  t.equal((await back.authenticate()).status, 200, 'the new identity is accepted')
  t.equal((await back.tokenUpdate()).status, 200)
  const done = await api('GET', `/api/v1/devices/${id}/lifecycle/${started.json.id}`)
  t.match(done.json, {
    status: 'completed',
    details: {
      re_enrolled_at: String,
      steps: [
        { step: 'erase', status: 'done' },
        { step: 're_enroll', status: 'done' },
      ],
    },
  })
  const active = await api('GET', `/api/v1/devices/${id}`)
  t.match(active.json, { lifecycle_state: 'active', enrolled: true, tenant_id: 'library', kind: 'function', retired_at: null })
  const events = (await api('GET', `/api/v1/audit-events?device_id=${id}&category=device`)).json.items as Array<{ action: string; details: any }>
  t.match(
    events.find((e) => e.action === 'reenrolled'),
    { details: { reason: 'wiped' } },
    'accepted because the device was wiped',
  )
  const again = await scepEnroll(world.scepHttp, { challenge: parts.challenge, subject: { commonName: 'Another', organization: 'Library' } })
  t.not(again.certRep.pkiStatus, 'SUCCESS', 'the challenge was one-time')
})

t.test('which erases return to service, and the clear refusals', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const wifiId = await upload(api, wifiProfile('central.wifi', 'Central'))
  t.equal((await api('PUT', '/api/v1/return-to-service', { body: { wifi_profile_id: wifiId } })).statusCode, 200, 'central IT’s own')

  const rts = async (device: SimulatedDevice) => {
    const command = commandIn(await device.idle())!
    t.equal(command.requestType, 'EraseDevice')
    return command.command['ReturnToService']
  }

  // A work iPad: only when asked.
  const work = await iPad(world, { kind: 'work' })
  const plain = await api('POST', `/api/v1/devices/${work.udid}/wipe`, { body: {} })
  t.equal(plain.statusCode, 201)
  t.equal(await rts(work), undefined, 'a work device’s wipe is a plain erase by default')
  t.equal((await api('POST', `/api/v1/devices/${work.udid}/lifecycle/${plain.json.id}/cancel`)).statusCode, 409, 'fetched already')
  const work2 = await iPad(world, { kind: 'work' })
  const asked = await api('POST', `/api/v1/devices/${work2.udid}/wipe`, { body: { return_to_service: true } })
  t.equal(asked.statusCode, 201, asked.body)
  t.match(asked.json.details, { return_to_service: { wifi_profile_id: wifiId, wifi_from_tenant_id: null } })
  t.match(await rts(work2), { Enabled: true, WiFiProfileData: Uint8Array })

  // A function iPad: by default; not when refused.
  const kiosk = await iPad(world, { kind: 'function' })
  const refusedByRequest = await api('POST', `/api/v1/devices/${kiosk.udid}/wipe`, { body: { return_to_service: false } })
  t.equal(refusedByRequest.statusCode, 201)
  t.equal(await rts(kiosk), undefined, 'return_to_service: false is a plain erase')

  // The command shortcut carries it too.
  const shortcut = await iPad(world, { kind: 'function' })
  const viaCommand = await api('POST', `/api/v1/devices/${shortcut.udid}/erase`, { body: {} })
  t.equal(viaCommand.statusCode, 201, viaCommand.body)
  t.match(await rts(shortcut), { Enabled: true, WiFiProfileData: Uint8Array, MDMProfileData: Uint8Array })

  // Devices that cannot: refused when asked, a plain erase by default.
  const unsupervised = await iPad(world, { kind: 'function', supervised: false })
  const notSupervised = await api('POST', `/api/v1/devices/${unsupervised.udid}/offboard`, { body: { return_to_service: true } })
  t.equal(notSupervised.statusCode, 422)
  t.equal(notSupervised.json.reason, 'requires_supervision')
  const byDefault = await api('POST', `/api/v1/devices/${unsupervised.udid}/offboard`, { body: {} })
  t.equal(byDefault.statusCode, 201)
  t.equal(byDefault.json.details.method, 'erase', 'an unsupervised function iPad is simply erased')
  t.equal(await rts(unsupervised), undefined)

  const old = await iPad(world, { kind: 'function' })
  await world.database.db.updateTable('devices').set({ os_version: '16.7.10' }).where('id', '=', old.udid).execute()
  const tooOld = await api('POST', `/api/v1/devices/${old.udid}/wipe`, { body: { return_to_service: true } })
  t.equal(tooOld.statusCode, 422)
  t.equal(tooOld.json.reason, 'os_too_old')
  await world.database.db.updateTable('devices').set({ product_name: 'Mac14,2', model: 'Mac14,2', os_version: '15.1' }).where('id', '=', old.udid).execute()
  const mac = await api('POST', `/api/v1/devices/${old.udid}/erase`, { body: { return_to_service: true } })
  t.equal(mac.statusCode, 422)
  t.equal(mac.json.reason, 'unsupported_platform')

  const personal = await iPad(world, { kind: 'work' })
  await world.database.db.updateTable('devices').set({ kind: 'personal' }).where('id', '=', personal.udid).execute()
  const mine = await api('POST', `/api/v1/devices/${personal.udid}/wipe`, { body: { return_to_service: true } })
  t.equal(mine.statusCode, 422, 'a personal device is never erased')
  t.equal(mine.json.reason, 'not_for_personal_device')
  t.equal(
    await world.database.db.selectFrom('lifecycle_actions').select('id').where('device_id', 'in', [old.udid, personal.udid]).executeTakeFirst(),
    undefined,
    'refusals leave nothing behind',
  )
})

t.test('an ADE iPad comes back through its PreStage: no MDM profile in the erase unless the PreStage needs a web sign-in', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const db = world.database.db
  const wifiId = await upload(api, wifiProfile('central.wifi', 'Central'))
  t.equal((await api('PUT', '/api/v1/return-to-service', { body: { wifi_profile_id: wifiId } })).statusCode, 200)
  const token = await api('POST', '/api/v1/dep/tokens', { body: { name: 'ABM' } })
  t.equal(token.statusCode, 201, token.body)
  const adeIpad = async () => {
    const device = await iPad(world, { kind: 'function' })
    await db.insertInto('dep_devices').values({ serial_number: device.serialNumber, token_id: token.json.id, raw: '{}' }).execute()
    return device
  }

  const plain = await adeIpad()
  const reinstall = await api('POST', `/api/v1/devices/${plain.udid}/reinstall`, { body: {} })
  t.equal(reinstall.statusCode, 201, reinstall.body)
  t.match(reinstall.json.details, { return_to_service: { mdm_profile: false } })
  const keys = returnToServiceOf(commandIn(await plain.idle())!.command)
  t.same(Object.keys(keys).sort(), ['Enabled', 'WiFiProfileData'], 'it fetches its enrollment profile through ADE itself')

  const webAuth = await adeIpad()
  const preStage = randomUUID()
  await db
    .insertInto('dep_profiles')
    .values({ id: preStage, token_id: token.json.id, name: 'Sign-in', profile: JSON.stringify({ configuration_web_url: 'https://sso.example.test/enroll' }) })
    .execute()
  await db.updateTable('dep_devices').set({ assigned_profile_id: preStage }).where('serial_number', '=', webAuth.serialNumber).execute()
  const offboard = await api('POST', `/api/v1/devices/${webAuth.udid}/offboard`, { body: {} })
  t.equal(offboard.statusCode, 201, offboard.body)
  t.match(returnToServiceOf(commandIn(await webAuth.idle())!.command), { MDMProfileData: Uint8Array }, 'Setup Assistant cannot sign in unattended')
})

t.test('the Wi-Fi setting: a Wi-Fi profile the tenant may use; departments inherit their organisation’s; cleared with null', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  for (const body of [
    { id: 'city', name: 'City' },
    { id: 'parks', name: 'Parks', parent_id: 'city' },
    { id: 'police', name: 'Police' },
  ]) {
    t.equal((await api('POST', '/api/v1/tenants', { body })).statusCode, 201)
  }
  const parksAdmin = (await api('POST', '/api/v1/api-keys', { body: { name: 'parks admin', role: 'admin', tenant_id: 'parks' } })).json.key as string
  const cityWifi = await upload(api, wifiProfile('city.wifi', 'City'), 'city')
  const policeWifi = await upload(api, wifiProfile('police.wifi', 'Police'), 'police')
  const empty = await api('POST', '/api/v1/profiles?tenant_id=city', {
    raw: {
      payload: Buffer.from(
        `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadVersion</key><integer>1</integer><key>PayloadIdentifier</key><string>city.empty</string><key>PayloadUUID</key><string>${randomUUID()}</string><key>PayloadDisplayName</key><string>Empty</string><key>PayloadContent</key><array/></dict></plist>`,
      ),
      contentType: 'application/x-apple-aspen-config',
    },
  })
  t.equal(empty.statusCode, 201, empty.body)

  t.equal((await api('PUT', '/api/v1/return-to-service', { body: { tenant_id: 'city', wifi_profile_id: empty.json.id } })).statusCode, 400, 'no Wi-Fi payload')
  const foreign = await api('PUT', '/api/v1/return-to-service', { body: { tenant_id: 'city', wifi_profile_id: policeWifi } })
  t.equal(foreign.statusCode, 400, 'another tenant’s profile')
  t.same(
    foreign.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/wifi_profile_id'],
  )
  t.equal((await api('PUT', '/api/v1/return-to-service', { body: { tenant_id: 'city', wifi_profile_id: cityWifi } })).statusCode, 200)
  t.equal(
    (await api('PUT', '/api/v1/return-to-service', { key: parksAdmin, body: { tenant_id: null, wifi_profile_id: cityWifi } })).statusCode,
    400,
    'not central IT’s',
  )
  t.same((await api('GET', '/api/v1/return-to-service', { key: parksAdmin })).json.items, [], 'parks has none of its own')

  // A function iPad of parks uses the city's.
  const device = await iPad(world, { tenantId: 'parks', kind: 'function' })
  const offboard = await api('POST', `/api/v1/devices/${device.udid}/offboard`, { key: parksAdmin, body: {} })
  t.equal(offboard.statusCode, 201, offboard.body)
  t.match(offboard.json.details, { method: 'return_to_service', return_to_service: { wifi_profile_id: cityWifi, wifi_from_tenant_id: 'city' } })
  t.equal((await api('DELETE', `/api/v1/profiles/${cityWifi}`)).statusCode, 409, 'the profile stays while Return to Service names it')

  const cleared = await api('PUT', '/api/v1/return-to-service', { body: { tenant_id: 'city', wifi_profile_id: null } })
  t.equal(cleared.statusCode, 200)
  t.same(cleared.json, { tenant_id: 'city', wifi_profile_id: null, wifi_profile_name: null, updated_at: null })
  t.same((await api('GET', '/api/v1/return-to-service')).json.items, [])
  const audit = (await api('GET', '/api/v1/audit-events?action=setReturnToServiceSetting')).json.items as Array<{ outcome: string }>
  t.equal(audit.filter((e) => e.outcome === 'success').length, 2, 'set and cleared, audited')
})
