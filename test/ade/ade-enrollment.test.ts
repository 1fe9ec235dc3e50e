// ADE enrollment with a simulated device: ABM sync -> PreStage assigned -> MachineInfo
// (CMS-signed by an Apple-like device identity) -> enrollment profile -> SCEP ->
// Authenticate/TokenUpdate with AwaitingConfiguration -> the PreStage's enrollment command
// -> DeviceConfigured. And every refusal on the MachineInfo endpoint, which change nothing.
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { decodePlist, isPlistDict, type PlistDict } from '../../src/mdm/plist.js'
import { setupDep, type DepFixture } from '../helpers/dep-fixture.js'
import { profileParts } from '../helpers/enrollment-fixture.js'
import { createAppleLikeDeviceIdentity, signMachineInfo, type AppleLikeDeviceIdentity } from '../helpers/machine-info-signer.js'
import { scepEnroll } from '../helpers/scep-client.js'
import { commandIn, injectTransport, plistText, SimulatedDevice } from '../helpers/simulated-device.js'

const serial = 'DMPBIO000001'
let apple: AppleLikeDeviceIdentity
let rootFile: string

t.before(async () => {
  apple = await createAppleLikeDeviceIdentity()
  const dir = mkdtempSync(join(tmpdir(), 'orchard-ade-'))
  rootFile = join(dir, 'apple-root.pem')
  writeFileSync(rootFile, `-----BEGIN CERTIFICATE-----\n${apple.root.certificateDer.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`)
})

function machineInfo(overrides: PlistDict = {}): PlistDict {
  return {
    UDID: randomUUID().toUpperCase(),
    SERIAL: serial,
    PRODUCT: 'iPad13,18',
    VERSION: '22B83',
    OS_VERSION: '18.1',
    LANGUAGE: 'nl-NL',
    MDM_CAN_REQUEST_SOFTWARE_UPDATE: true,
    ...overrides,
  }
}

const post = (world: DepFixture, body: Buffer) =>
  world.app.inject({ method: 'POST', url: '/enroll/ade', headers: { 'content-type': 'application/pkcs7-signature' }, payload: body })

async function adeWorld(t: Test, env: Record<string, string> = { ORCHARD_ADE_MACHINE_INFO_CA_FILES: rootFile }) {
  const world = await setupDep(t, env)
  world.abm.addDevices([{ serial_number: serial, model: 'iPad (10th generation)', device_family: 'iPad', os: 'iOS' }])
  const token = await world.connectToken()
  const profile = (
    await world.call('POST', '/api/v1/dep/profiles', {
      body: {
        token_id: token.id,
        name: 'Biology shared iPads',
        device_kind: 'function',
        default: true,
        enrollment_commands: [{ request_type: 'DeviceInformation', Queries: ['DeviceName', 'OSVersion'] }],
        settings: { await_device_configured: true, is_mdm_removable: false, skip_setup_items: ['Siri'] },
      },
    })
  ).json
  t.match((await world.sync(token.id)).json, { outcome: 'synced' })
  t.equal(world.abm.devices.get(serial)!.profile_uuid, profile.profile_uuid, 'the default PreStage is assigned at Apple')
  return { world, token, profile }
}

const challenges = async (world: DepFixture) => (await world.database.db.selectFrom('scep_challenges').selectAll().execute()).length

t.test('MachineInfo -> PreStage profile -> SCEP -> enrolled awaiting configuration -> enrollment step -> DeviceConfigured', async (t) => {
  const { world, profile } = await adeWorld(t)
  const info = machineInfo()
  const response = await post(world, signMachineInfo(info, apple.device))
  t.equal(response.statusCode, 200, response.body.slice(0, 300))
  t.match(response.headers['content-type'], /application\/x-apple-aspen-config/)
  const enrollmentProfile = decodePlist(response.rawPayload)
  t.ok(isPlistDict(enrollmentProfile))
  const parts = profileParts(enrollmentProfile as PlistDict)
  t.equal(parts.mdm['ServerURL'], 'https://mdm.example.test/mdm/connect')
  const challengeRow = await world.database.db.selectFrom('scep_challenges').selectAll().executeTakeFirstOrThrow()
  t.match(challengeRow, { dep_profile_id: profile.id, ade_serial_number: serial, purpose: 'enrollment' }, 'the challenge names the PreStage and serial')

  const scep = await scepEnroll(world.scepHttp, { challenge: parts.challenge, subject: { commonName: 'ADE iPad', organization: 'University' } })
  t.equal(scep.certRep.pkiStatus, 'SUCCESS')
  const device = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(world.app), {
    udid: plistText(info['UDID']),
    serialNumber: serial,
  })
  t.equal((await device.authenticate()).status, 200)
  t.equal((await device.tokenUpdate({ AwaitingConfiguration: true })).status, 200)

  const row = await world.database.db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(row, { kind: 'function', dep_profile_id: profile.id, serial_number: serial }, "the device has its PreStage's kind")
  t.match((await world.call('GET', `/api/v1/dep/devices/${serial}`)).json, { device_id: device.udid }, 'the DEP record is linked to the enrolled device')

  const step = commandIn(await device.idle())!
  t.equal(step.requestType, 'DeviceInformation', 'the enrollment step first')
  t.same(step.command['Queries'], ['DeviceName', 'OSVersion'])
  const configured = commandIn(await device.answer(step.uuid, 'Acknowledged', { QueryResponses: { DeviceName: 'Bio 1', OSVersion: '18.1' } }))!
  t.equal(configured.requestType, 'DeviceConfigured', 'DeviceConfigured last, releasing Setup Assistant')
  const done = await device.answer(configured.uuid, 'Acknowledged')
  t.equal(done.status, 200)
  t.equal(done.body.length, 0, 'nothing more queued')

  // A later TokenUpdate (token rotation) does not queue the steps again.
  t.equal((await device.tokenUpdate()).status, 200)
  t.equal((await device.idle()).body.length, 0)
})

t.test('a device that is not awaiting configuration gets no DeviceConfigured', async (t) => {
  const { world } = await adeWorld(t)
  const info = machineInfo()
  const parts = profileParts(decodePlist((await post(world, signMachineInfo(info, apple.device))).rawPayload) as PlistDict)
  const scep = await scepEnroll(world.scepHttp, { challenge: parts.challenge, subject: { commonName: 'ADE iPad 2' } })
  const device = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(world.app), {
    udid: plistText(info['UDID']),
    serialNumber: serial,
  })
  await device.enroll()
  t.equal((await device.idle()).body.length, 0)
})

t.test('refusals: unknown serial, forged or untrusted signature, garbage; none mints a challenge', async (t) => {
  const { world } = await adeWorld(t)
  const before = await challenges(world)

  const unknown = await post(world, signMachineInfo(machineInfo({ SERIAL: 'NOTOURS00001' }), apple.device))
  t.equal(unknown.statusCode, 403)
  t.match(unknown.json(), { code: 'forbidden', detail: /NOTOURS00001 is not assigned/ })

  const signed = signMachineInfo(machineInfo(), apple.device)
  const at = signed.indexOf(Buffer.from(serial))
  const forged = Buffer.from(signed)
  forged[at + serial.length - 1] = 0x39 // DMPBIO000009
  const tampered = await post(world, forged)
  t.equal(tampered.statusCode, 403)
  t.match(tampered.json(), { code: 'forbidden', detail: /signature|digest/i })

  const stranger = await createAppleLikeDeviceIdentity()
  const untrusted = await post(world, signMachineInfo(machineInfo(), stranger.device))
  t.equal(untrusted.statusCode, 403)
  t.match(untrusted.json().detail, /chain|trusted/i)

  for (const [what, body] of [
    ['garbage', Buffer.from('hello, I am an iPad')],
    ['a truncated CMS', signed.subarray(0, signed.length - 40)],
  ] as const) {
    const refused = await post(world, body)
    t.equal(refused.statusCode, 400, what)
    t.match(refused.headers['content-type'], /application\/problem\+json/, what)
  }
  t.equal(
    (await world.app.inject({ method: 'POST', url: '/enroll/ade', headers: { 'content-type': 'application/pkcs7-signature' } })).statusCode,
    400,
    'empty body',
  )
  t.equal((await post(world, Buffer.alloc(70 * 1024, 0x30))).statusCode, 413, 'oversized body')

  const notPlist = await post(world, signMachineInfo(Buffer.from('not a plist'), apple.device))
  t.equal(notPlist.statusCode, 400)
  const noSerial = await post(world, signMachineInfo({ UDID: 'X' }, apple.device))
  t.equal(noSerial.statusCode, 400)
  t.match(noSerial.json().detail, /SERIAL/)

  t.equal(await challenges(world), before, 'no challenge was minted by any refusal')
})

t.test("a PreStage's minimum OS: 403 com.apple.softwareupdate.required for devices that can update", async (t) => {
  const { world, profile } = await adeWorld(t)
  t.equal((await world.call('PATCH', `/api/v1/dep/profiles/${profile.id}`, { body: { minimum_os_version: '18.2' } })).statusCode, 200)
  const old = await post(world, signMachineInfo(machineInfo({ OS_VERSION: '18.1' }), apple.device))
  t.equal(old.statusCode, 403)
  t.match(old.headers['content-type'], /^application\/json/)
  t.same(old.json(), { code: 'com.apple.softwareupdate.required', details: { OSVersion: '18.2' } })
  t.equal(await challenges(world), 0)
  t.equal((await post(world, signMachineInfo(machineInfo({ OS_VERSION: '18.2' }), apple.device))).statusCode, 200, 'at the minimum')
  t.equal((await post(world, signMachineInfo(machineInfo({ OS_VERSION: '18.10' }), apple.device))).statusCode, 200, '18.10 is newer than 18.2')
  t.equal(
    (await post(world, signMachineInfo(machineInfo({ OS_VERSION: '17.7', MDM_CAN_REQUEST_SOFTWARE_UPDATE: false }), apple.device))).statusCode,
    200,
    'a device that cannot update in Setup Assistant enrolls',
  )
})

t.test('MachineInfo chain verification: 503 until the CAs are configured; off checks the signature only', async (t) => {
  const { world } = await adeWorld(t, {})
  const refused = await post(world, signMachineInfo(machineInfo(), apple.device))
  t.equal(refused.statusCode, 503)
  t.match(refused.json().detail, /ORCHARD_ADE_MACHINE_INFO_CA_FILES/)

  const relaxed = (await adeWorld(t, { ORCHARD_ADE_VERIFY_MACHINE_INFO: 'false' })).world
  const stranger = await createAppleLikeDeviceIdentity({ authorities: { root: apple.root, intermediate: apple.intermediate } })
  t.equal((await post(relaxed, signMachineInfo(machineInfo(), stranger.device))).statusCode, 200)
  const signed = signMachineInfo(machineInfo(), apple.device)
  const forged = Buffer.from(signed)
  forged[signed.indexOf(Buffer.from('18.1'))] = 0x32
  t.equal((await post(relaxed, forged)).statusCode, 403, 'a broken signature is refused even then')
})

t.test('configuration_web_url: GET /enroll/ade with x-apple-aspen-deviceinfo answers like the POST', async (t) => {
  const { world } = await adeWorld(t)
  const signed = signMachineInfo(machineInfo(), apple.device)
  const web = await world.app.inject({ method: 'GET', url: '/enroll/ade', headers: { 'x-apple-aspen-deviceinfo': signed.toString('base64') } })
  t.equal(web.statusCode, 200)
  t.match(web.headers['content-type'], /application\/x-apple-aspen-config/)
  t.ok(profileParts(decodePlist(web.rawPayload) as PlistDict).challenge)
  const missing = await world.app.inject({ method: 'GET', url: '/enroll/ade' })
  t.equal(missing.statusCode, 400)
  t.match(missing.json().detail, /x-apple-aspen-deviceinfo/)
  const notBase64 = await world.app.inject({ method: 'GET', url: '/enroll/ade', headers: { 'x-apple-aspen-deviceinfo': 'not*base64' } })
  t.equal(notBase64.statusCode, 400)
  const unknown = await world.app.inject({
    method: 'GET',
    url: '/enroll/ade',
    headers: { 'x-apple-aspen-deviceinfo': signMachineInfo(machineInfo({ SERIAL: 'NOTOURS00002' }), apple.device).toString('base64') },
  })
  t.equal(unknown.statusCode, 403)
})
