// A fuzz test of the device-facing surface: check-ins and command reports as enrolled devices
// send them, mutated (NUL in strings and keys, huge and odd Unicode strings, wrong types,
// dropped and added keys), encoded as XML or binary plists and validly signed with the
// device's Mdm-Signature, sent to /mdm/checkin, /mdm/connect and /mdm.
//
// The device surface may refuse what it cannot use (400, 403, 404, 410), but never with a
// 5xx (the device retries the same bytes for ever) and never with 401 (the device would
// remove its MDM profile).
//
// Seeded: the same inputs on every run. ORCHARD_FUZZ_COUNT sets how many messages are sent
// (default kept small for `npm test`), ORCHARD_FUZZ_SEED another seed.
import t from 'tap'
import { encodePlist, PlistError, type PlistDict } from '../../src/mdm/plist.js'
import { encodeBinaryPlist, encodeXmlPlistRaw } from '../helpers/binary-plist.js'
import { fuzzCount, fuzzSeed, mutateTree, pick } from '../helpers/fuzz.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { seededRandom } from '../helpers/random.js'
import type { SimulatedDevice } from '../helpers/simulated-device.js'

const count = fuzzCount(2000)
const seed = fuzzSeed(20250917)

interface Template {
  name: string
  path: '/mdm/checkin' | '/mdm/connect'
  message(): PlistDict
}

function templates(device: SimulatedDevice, commands: Record<string, string>): Template[] {
  const id = () => device.identityKeys()
  const userId = 'A1B2C3D4-0000-0000-0000-00000000F022'
  const checkin = (name: string, message: () => PlistDict): Template => ({ name, path: '/mdm/checkin', message: () => ({ ...id(), ...message() }) })
  const report = (name: string, message: () => PlistDict): Template => ({ name, path: '/mdm/connect', message: () => ({ ...id(), ...message() }) })
  const status = { StatusItems: { device: { operatingSystem: { version: '18.1' } } }, Errors: [{ code: 'x' }] }
  return [
    checkin('Authenticate', () => ({
      MessageType: 'Authenticate',
      Topic: device.topic,
      SerialNumber: device.serialNumber,
      IMEI: '35 123456 789012 3',
      MEID: '35123456789012',
      Model: 'iPad13,1',
      ModelName: 'iPad',
      ProductName: 'iPad13,1',
      DeviceName: 'Fuzzy iPad',
      OSVersion: '18.1',
      BuildVersion: '22B83',
    })),
    checkin('TokenUpdate', () => ({
      MessageType: 'TokenUpdate',
      Topic: device.topic,
      Token: device.token,
      PushMagic: device.pushMagic,
      UnlockToken: device.unlockToken,
      AwaitingConfiguration: false,
    })),
    checkin('TokenUpdate (user)', () => ({
      MessageType: 'TokenUpdate',
      UserID: userId,
      UserShortName: 'fuzz',
      UserLongName: 'Fuzz User',
      Topic: device.topic,
      Token: Buffer.alloc(32, 7),
      PushMagic: 'user-magic',
    })),
    checkin('UserAuthenticate', () => ({
      MessageType: 'UserAuthenticate',
      UserID: userId,
      UserShortName: 'fuzz',
      UserLongName: 'Fuzz User',
      DigestResponse: 'digest',
    })),
    checkin('SetBootstrapToken', () => ({ MessageType: 'SetBootstrapToken', BootstrapToken: Buffer.from('bootstrap'), AwaitingConfiguration: false })),
    checkin('GetBootstrapToken', () => ({ MessageType: 'GetBootstrapToken', AwaitingConfiguration: false })),
    checkin('DeclarativeManagement tokens', () => ({ MessageType: 'DeclarativeManagement', Endpoint: 'tokens' })),
    checkin('DeclarativeManagement status', () => ({ MessageType: 'DeclarativeManagement', Endpoint: 'status', Data: Buffer.from(JSON.stringify(status)) })),
    checkin('DeclarativeManagement status (NUL in JSON)', () => ({
      MessageType: 'DeclarativeManagement',
      Endpoint: 'status',
      Data: Buffer.from('{"StatusItems":{"a\\u0000":"\\u0000"},"Errors":["\\ud800"]}'),
    })),
    checkin('GetToken', () => ({ MessageType: 'GetToken', TokenServiceType: 'com.apple.maid', TokenParameters: { PhoneUDID: 'x', WatchUDID: 'y' } })),
    report('Idle', () => ({ Status: 'Idle' })),
    report('Idle (user)', () => ({ Status: 'Idle', UserID: userId, UserShortName: 'fuzz' })),
    report('DeviceInformation', () => ({
      Status: 'Acknowledged',
      CommandUUID: commands['DeviceInformation']!,
      QueryResponses: {
        DeviceName: 'Fuzzy iPad',
        OSVersion: '18.1',
        BuildVersion: '22B83',
        Model: 'MK2K3LL/A',
        ModelName: 'iPad',
        ProductName: 'iPad13,1',
        SerialNumber: device.serialNumber,
        IsSupervised: true,
        UDID: device.udid,
      },
    })),
    report('ProfileList', () => ({
      Status: 'Acknowledged',
      CommandUUID: commands['ProfileList']!,
      ProfileList: [{ PayloadIdentifier: 'com.example.wifi', PayloadUUID: 'P1', PayloadDisplayName: 'Wi-Fi', IsManaged: true }],
    })),
    report('InstalledApplicationList', () => ({
      Status: 'Acknowledged',
      CommandUUID: commands['InstalledApplicationList']!,
      InstalledApplicationList: [{ Identifier: 'com.example.app', Name: 'App', Version: '1', ShortVersion: '1.0', BundleSize: 1234, IsManaged: true }],
    })),
    report('SecurityInfo', () => ({
      Status: 'Acknowledged',
      CommandUUID: commands['SecurityInfo']!,
      SecurityInfo: { PasscodePresent: true, HardwareEncryptionCaps: 3 },
    })),
    report('CertificateList', () => ({
      Status: 'Acknowledged',
      CommandUUID: commands['CertificateList']!,
      CertificateList: [{ CommonName: 'Fuzz', Data: Buffer.from('not a certificate'), IsIdentity: false }],
    })),
    report('Error', () => ({
      Status: 'Error',
      CommandUUID: commands['ProfileList']!,
      ErrorChain: [{ ErrorCode: 12021, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'Nope', USEnglishDescription: 'Nope' }],
    })),
    report('NotNow', () => ({ Status: 'NotNow', CommandUUID: commands['CertificateList']! })),
    report('Acknowledged (unknown command)', () => ({ Status: 'Acknowledged', CommandUUID: '6F1A2B3C-0000-4000-8000-00000000FFFF' })),
  ]
}

function encodeXml(message: PlistDict): Buffer | undefined {
  try {
    return encodeXmlPlistRaw(message, encodePlist)
  } catch (error) {
    if (error instanceof PlistError) return undefined
    throw error
  }
}

const requestTypes = ['DeviceInformation', 'ProfileList', 'InstalledApplicationList', 'SecurityInfo', 'CertificateList'] as const

async function queueCommands(mdm: MdmFixture, device: SimulatedDevice): Promise<Record<string, string>> {
  const uuids: Record<string, string> = {}
  for (const requestType of requestTypes) {
    const keys: PlistDict = requestType === 'DeviceInformation' ? { Queries: ['DeviceName', 'OSVersion'] } : {}
    const queued = await mdm.enqueue([device.udid], requestType, keys, { push: 'false' })
    if (queued.statusCode !== 200) throw new Error(`cannot queue ${requestType}: ${JSON.stringify(queued.json)}`)
    uuids[requestType] = queued.uuid
  }
  return uuids
}

t.test(`validly signed, mutated check-ins and reports never get a 5xx or 401 (${count} messages, seed ${seed})`, async (t) => {
  const started = Date.now()
  const mdm = await setupMdm(t)
  const worlds = []
  for (const options of [{}, {}, { userEnrollment: true }]) {
    const device = await mdm.enrolledDevice(options)
    worlds.push({ device, templates: templates(device, await queueCommands(mdm, device)) })
  }
  const random = seededRandom(seed)
  t.comment(`set up in ${Date.now() - started} ms`)
  const statuses = new Map<number, number>()
  const failures: Array<{ message: string; status: number; body: string }> = []
  let binary = 0
  for (let i = 0; i < count; i++) {
    const world = pick(random, worlds)
    const template = pick(random, world.templates)
    const message = template.message()
    const mutations: string[] = []
    const times = 1 + Math.floor(random() * 3)
    for (let m = 0; m < times; m++) mutations.push(mutateTree(random, message))
    // XML cannot carry some values (NaN, dates past year 9999): those go as binary.
    const xml = random() < 0.5 ? encodeXml(message) : undefined
    if (xml === undefined) binary++
    const body = xml ?? encodeBinaryPlist(message)
    const contentType = template.path === '/mdm/checkin' ? 'application/x-apple-aspen-mdm-checkin' : 'application/x-apple-aspen-mdm'
    const path = random() < 0.15 ? '/mdm' : template.path
    const response = await world.device.send(path, body, contentType)
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
    if (response.status >= 500 || response.status === 401) {
      const label = `#${i} ${template.name} to ${path} (${xml === undefined ? 'binary' : 'XML'}): ${mutations.join(', ')}`
      failures.push({ message: label, status: response.status, body: response.body.toString('utf8').slice(0, 200) })
    }
    // Authenticate starts an enrollment over: finish it, so later messages reach the services.
    if (template.name === 'Authenticate' || response.status === 410) await world.device.enroll().catch(() => undefined)
  }
  const summary = [...statuses.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ')
  t.comment(`${count} messages (${binary} binary, ${count - binary} XML) in ${Date.now() - started} ms; statuses ${summary}`)
  t.same(failures, [], `no 5xx and no 401 in ${count} messages`)
})
