// Desired configuration, beyond blueprints.test.ts: enrollment groups AND kinds, organisations
// and their departments (the department's version of a profile wins), apps by App Store id,
// the periodic check (checkAll), signed delivery, and library upload edge cases. Devices are
// simulated over the real MDM endpoints and answer ProfileList/InstalledApplicationList
// truthfully; nothing of Orchard's own is mocked.
import { createHash, generateKeyPairSync, randomUUID, webcrypto, X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as pkijs from 'pkijs'
import t from 'tap'
import { distinguishedName, issueCertificate } from '../../src/crypto/certificate-issuer.js'
import { decodePlist, encodePlist, isPlistDict, type PlistDict, type PlistValue } from '../../src/mdm/plist.js'
import { createBlueprintService } from '../../src/fleet/blueprints.js'
import { fullAccess } from '../../src/model/access.js'
import { createBlueprintStore } from '../../src/fleet/blueprint-store.js'
import { createLifecycleStore } from '../../src/fleet/lifecycle-store.js'
import { apiClient } from '../helpers/api.js'
import { testLogger } from '../helpers/app.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { FaithfulDevice, signedDataOid, wifiProfile } from '../helpers/faithful-device.js'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

type Api = ReturnType<typeof apiClient>

async function upload(api: Api, profile: Buffer, query = '', contentType = 'application/x-apple-aspen-config') {
  return api('POST', `/api/v1/profiles${query}`, { raw: { payload: profile, contentType } })
}

async function world(t: Parameters<typeof setupMdm>[0], env: Record<string, string> = {}): Promise<{ mdm: MdmFixture; api: Api }> {
  const mdm = await setupMdm(t, env)
  return { mdm, api: apiClient(mdm.app) }
}

async function configuration(api: Api, deviceId: string) {
  const response = await api('GET', `/api/v1/devices/${deviceId}/configuration`)
  if (response.statusCode !== 200) throw new Error(`configuration of ${deviceId}: ${response.statusCode} ${response.body}`)
  return response.json
}

// A small bplist00 writer (strings, integers, booleans, data, arrays, dictionaries).
function toBplist(value: PlistValue): Buffer {
  const objects: Array<(refSize: number) => Buffer> = []
  const marker = (type: number, length: number): Buffer =>
    length < 15 ? Buffer.from([(type << 4) | length]) : Buffer.concat([Buffer.from([(type << 4) | 0xf]), integer(length)])
  const integer = (n: number): Buffer => {
    if (n >= 0 && n < 0x100) return Buffer.from([0x10, n])
    if (n >= 0 && n < 0x10000) return Buffer.from([0x11, n >> 8, n & 0xff])
    const b = Buffer.alloc(9, 0x13)
    b.writeBigInt64BE(BigInt(n), 1)
    return b
  }
  const refs = (list: number[], size: number) => {
    const b = Buffer.alloc(list.length * size)
    list.forEach((ref, i) => b.writeUIntBE(ref, i * size, size))
    return b
  }
  const add = (v: PlistValue): number => {
    const index = objects.length
    objects.push(() => Buffer.alloc(0))
    if (typeof v === 'string') {
      objects[index] = () =>
        /^[\x00-\x7f]*$/.test(v)
          ? Buffer.concat([marker(0x5, v.length), Buffer.from(v, 'latin1')])
          : Buffer.concat([marker(0x6, v.length), Buffer.from(v, 'utf16le').swap16()])
    } else if (typeof v === 'number') objects[index] = () => integer(v)
    else if (typeof v === 'boolean') objects[index] = () => Buffer.from([v ? 0x09 : 0x08])
    else if (Buffer.isBuffer(v)) objects[index] = () => Buffer.concat([marker(0x4, v.length), v])
    else if (Array.isArray(v)) {
      const items = v.map(add)
      objects[index] = (size) => Buffer.concat([marker(0xa, items.length), refs(items, size)])
    } else if (isPlistDict(v)) {
      const keys: number[] = []
      const values: number[] = []
      for (const [key, item] of Object.entries(v)) {
        keys.push(add(key))
        values.push(add(item))
      }
      objects[index] = (size) => Buffer.concat([marker(0xd, keys.length), refs(keys, size), refs(values, size)])
    } else throw new Error(`toBplist: ${typeof v} is not supported here`)
    return index
  }
  add(value)
  const refSize = objects.length < 0x100 ? 1 : 2
  const parts: Buffer[] = [Buffer.from('bplist00', 'latin1')]
  const offsets: number[] = []
  let at = 8
  for (const encode of objects) {
    const bytes = encode(refSize)
    offsets.push(at)
    parts.push(bytes)
    at += bytes.length
  }
  const offsetSize = at < 0x100 ? 1 : at < 0x10000 ? 2 : 4
  parts.push(refs(offsets, offsetSize))
  const trailer = Buffer.alloc(32)
  trailer[6] = offsetSize
  trailer[7] = refSize
  trailer.writeBigUInt64BE(BigInt(objects.length), 8)
  trailer.writeBigUInt64BE(0n, 16)
  trailer.writeBigUInt64BE(BigInt(at), 24)
  parts.push(trailer)
  return Buffer.concat(parts)
}

/** A self-signed EC signing identity in PEM files, with fixed validity dates (no wall clock). */
function signingIdentityFiles(t: { teardown(fn: () => unknown): void }) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const issued = issueCertificate({
    subject: distinguishedName({ commonName: 'Orchard blueprint signing', organization: 'Orchard tests' }),
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    selfSignKey: privateKey,
    notBefore: new Date('2020-01-01T00:00:00Z'),
    notAfter: new Date('2099-01-01T00:00:00Z'),
    profile: 'client',
  })
  const dir = mkdtempSync(join(tmpdir(), 'orchard-blueprint-signing-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'cert.pem'), new X509Certificate(issued.der).toString())
  writeFileSync(join(dir, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }))
  return {
    env: { ORCHARD_PROFILE_SIGNING_CERT_FILE: join(dir, 'cert.pem'), ORCHARD_PROFILE_SIGNING_KEY_FILE: join(dir, 'key.pem') },
    certificateDer: issued.der,
  }
}

t.test('targeting by enrollment group AND kind; a device that changes group loses the profiles', async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  const lab = (await upload(api, wifiProfile('lab.wifi', 'Lab'))).json
  const labIpad = new FaithfulDevice(await mdm.enrolledDevice()) // function, lab: targeted
  const labLaptop = new FaithfulDevice(await mdm.enrolledDevice()) // work, lab: wrong kind
  const libraryIpad = new FaithfulDevice(await mdm.enrolledDevice()) // function, library: wrong group
  const plain = new FaithfulDevice(await mdm.enrolledDevice()) // work, no group: neither
  await db.updateTable('devices').set({ kind: 'function', enrollment_group: 'lab' }).where('id', '=', labIpad.udid).execute()
  await db.updateTable('devices').set({ kind: 'work', enrollment_group: 'lab' }).where('id', '=', labLaptop.udid).execute()
  await db.updateTable('devices').set({ kind: 'function', enrollment_group: 'library' }).where('id', '=', libraryIpad.udid).execute()

  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'Lab iPads', profile_ids: [lab.id], kinds: ['function'], groups: ['lab'] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  t.match(blueprint.json, { kinds: ['function'], groups: ['lab'], device_ids: [] })
  for (const device of [labIpad, labLaptop, libraryIpad, plain]) await device.sync()
  t.same(labIpad.ran, ['ProfileList', 'InstallProfile lab.wifi'], 'the function device in the lab group gets the profile')
  t.equal(labIpad.profiles.get('lab.wifi'), lab.payload_uuid)
  for (const [name, device] of [
    ['work device in the group', labLaptop],
    ['function device in another group', libraryIpad],
    ['device in neither', plain],
  ] as const) {
    t.same(device.ran, ['ProfileList'], `${name}: asked for its list (a central blueprint changed), nothing installed`)
    t.equal(device.profiles.size, 0)
    t.match(await configuration(api, device.udid), { status: 'in_sync', profiles: [], applications: [] }, `${name}: nothing desired`)
  }
  t.match(await configuration(api, labIpad.udid), { status: 'in_sync', profiles: [{ identifier: 'lab.wifi', profile_id: lab.id, status: 'in_sync' }] })

  // Moved to another group: the next list removes what the lab blueprint put there.
  for (const device of [labIpad, labLaptop, libraryIpad, plain]) device.reset()
  await db.updateTable('devices').set({ enrollment_group: 'library' }).where('id', '=', labIpad.udid).execute()
  t.match(
    await configuration(api, labIpad.udid),
    { status: 'pending', profiles: [{ identifier: 'lab.wifi', status: 'removing' }] },
    'before its list: on its way out',
  )
  t.equal((await api('POST', `/api/v1/devices/${labIpad.udid}/configuration/sync`)).statusCode, 202)
  await labIpad.sync()
  t.same(labIpad.ran, ['ProfileList', 'RemoveProfile lab.wifi'], 'no longer targeted: removed after its list')
  t.equal(labIpad.profiles.size, 0)
  t.match(await configuration(api, labIpad.udid), { status: 'in_sync', profiles: [], applications: [] })
  await labLaptop.sync()
  t.same(labLaptop.ran, [], 'a sync of one device asks only that device')

  // Several groups: any of them (still AND the kind).
  labIpad.reset()
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, {
    body: { name: 'Lab iPads', profile_ids: [lab.id], kinds: ['function'], groups: ['lab', 'library'] },
  })
  for (const device of [labIpad, labLaptop, libraryIpad, plain]) await device.sync()
  t.same(labIpad.ran, ['ProfileList', 'InstallProfile lab.wifi'])
  t.same(libraryIpad.ran, ['ProfileList', 'InstallProfile lab.wifi'])
  t.same(labLaptop.ran, ['ProfileList'], 'the work device stays out: kinds and groups both narrow')
  t.same(plain.ran, ['ProfileList'])

  // Groups alone (no kinds): every kind in the group.
  for (const device of [labIpad, labLaptop, libraryIpad, plain]) device.reset()
  await db.updateTable('devices').set({ enrollment_group: 'lab' }).where('id', '=', labIpad.udid).execute()
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'Lab iPads', profile_ids: [lab.id], groups: ['lab'] } })
  for (const device of [labIpad, labLaptop, libraryIpad, plain]) await device.sync()
  t.same(labIpad.ran, ['ProfileList'], 'still targeted: nothing to do')
  t.same(labLaptop.ran, ['ProfileList', 'InstallProfile lab.wifi'], 'groups alone: the work device in the group gets it')
  t.same(libraryIpad.ran, ['ProfileList', 'RemoveProfile lab.wifi'])
  t.same(plain.ran, ['ProfileList'])
})

t.test("organisations and departments: reach, sibling isolation, and the department's version wins", async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  for (const tenant of [
    { id: 'science', name: 'Science' },
    { id: 'physics', name: 'Physics', parent_id: 'science' },
    { id: 'chemistry', name: 'Chemistry', parent_id: 'science' },
  ]) {
    const created = await api('POST', '/api/v1/tenants', { body: tenant })
    t.equal(created.statusCode, 201, created.body)
  }
  const scienceKey = (await api('POST', '/api/v1/api-keys', { body: { name: 's', role: 'admin', tenant_id: 'science' } })).json.key as string
  const physicsKey = (await api('POST', '/api/v1/api-keys', { body: { name: 'p', role: 'admin', tenant_id: 'physics' } })).json.key as string
  const physicist = new FaithfulDevice(await mdm.enrolledDevice())
  const chemist = new FaithfulDevice(await mdm.enrolledDevice())
  const central = new FaithfulDevice(await mdm.enrolledDevice())
  await db.updateTable('devices').set({ tenant_id: 'physics' }).where('id', '=', physicist.udid).execute()
  await db.updateTable('devices').set({ tenant_id: 'chemistry' }).where('id', '=', chemist.udid).execute()

  const centralWifi = (await upload(api, wifiProfile('science.wifi', 'Central'))).json
  t.equal(centralWifi.tenant_id, null)
  const scienceWifi = await api('POST', '/api/v1/profiles', {
    key: scienceKey,
    raw: { payload: wifiProfile('science.wifi', 'Science'), contentType: 'application/x-apple-aspen-config' },
  })
  t.equal(scienceWifi.statusCode, 201, scienceWifi.body)
  t.equal(scienceWifi.json.tenant_id, 'science')
  const physicsWifi = await api('POST', '/api/v1/profiles', {
    key: physicsKey,
    raw: { payload: wifiProfile('science.wifi', 'Physics lab'), contentType: 'application/x-apple-aspen-config' },
  })
  t.equal(physicsWifi.statusCode, 201, 'the same PayloadIdentifier in a department: its own library entry')
  t.equal(physicsWifi.json.tenant_id, 'physics')
  const physicsPrinters = (
    await api('POST', '/api/v1/profiles', {
      key: physicsKey,
      raw: { payload: wifiProfile('physics.printers', 'Printers'), contentType: 'application/x-apple-aspen-config' },
    })
  ).json

  // The organisation's blueprint reaches its departments' devices, not central IT's.
  const orgBlueprint = await api('POST', '/api/v1/blueprints', { key: scienceKey, body: { name: 'Science baseline', profile_ids: [scienceWifi.json.id] } })
  t.equal(orgBlueprint.statusCode, 201, orgBlueprint.body)
  t.equal(orgBlueprint.json.tenant_id, 'science')
  for (const device of [physicist, chemist, central]) await device.sync()
  t.same(physicist.ran, ['ProfileList', 'InstallProfile science.wifi'], "a department device gets the organisation's profile")
  t.same(chemist.ran, ['ProfileList', 'InstallProfile science.wifi'], "so does the sibling department's")
  t.equal(physicist.profiles.get('science.wifi'), scienceWifi.json.payload_uuid)
  t.equal(chemist.profiles.get('science.wifi'), scienceWifi.json.payload_uuid)
  t.same(central.ran, [], 'a device outside the organisation is not even asked')

  // The department's blueprint: its version of science.wifi replaces the organisation's, on its devices only.
  for (const device of [physicist, chemist, central]) device.reset()
  const deptBlueprint = await api('POST', '/api/v1/blueprints', {
    key: physicsKey,
    body: { name: 'Physics', profile_ids: [physicsWifi.json.id, physicsPrinters.id] },
  })
  t.equal(deptBlueprint.statusCode, 201, deptBlueprint.body)
  for (const device of [physicist, chemist, central]) await device.sync()
  t.same(physicist.ran, ['ProfileList', 'InstallProfile physics.printers', 'InstallProfile science.wifi'])
  t.equal(physicist.profiles.get('science.wifi'), physicsWifi.json.payload_uuid, "the department's version wins on its device")
  t.same(chemist.ran, [], 'the sibling department is not asked')
  t.same(central.ran, [])
  t.equal(chemist.profiles.get('science.wifi'), scienceWifi.json.payload_uuid, "the sibling keeps the organisation's version")
  t.notOk(chemist.profiles.has('physics.printers'))
  const physicistConfig = await configuration(api, physicist.udid)
  t.equal(physicistConfig.status, 'in_sync')
  t.same(
    physicistConfig.profiles.map((p: { identifier: string; profile_id: string; status: string }) => [p.identifier, p.profile_id, p.status]),
    [
      ['physics.printers', physicsPrinters.id, 'in_sync'],
      ['science.wifi', physicsWifi.json.id, 'in_sync'],
    ],
  )
  t.match(await configuration(api, chemist.udid), {
    status: 'in_sync',
    profiles: [{ identifier: 'science.wifi', profile_id: scienceWifi.json.id, status: 'in_sync' }],
  })

  // The sibling, asked explicitly, still wants only the organisation's version: nothing to do.
  t.equal((await api('POST', `/api/v1/devices/${chemist.udid}/configuration/sync`)).statusCode, 202)
  await chemist.sync()
  t.same(chemist.ran, ['ProfileList'])

  // The department's blueprint goes: its device falls back to the organisation's version.
  physicist.reset()
  t.equal((await api('DELETE', `/api/v1/blueprints/${deptBlueprint.json.id}`, { key: physicsKey })).statusCode, 204)
  await physicist.sync()
  t.same(physicist.ran, ['ProfileList', 'InstallProfile science.wifi', 'RemoveProfile physics.printers'])
  t.equal(physicist.profiles.get('science.wifi'), scienceWifi.json.payload_uuid)
  t.same([...physicist.profiles.keys()], ['science.wifi'])

  // Central IT carries its own science.wifi to every device: the organisation's still wins on
  // its departments' devices; the central device gets central IT's.
  for (const device of [physicist, chemist, central]) device.reset()
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'Everyone', profile_ids: [centralWifi.id] } })).statusCode, 201)
  for (const device of [physicist, chemist, central]) await device.sync()
  t.same(central.ran, ['ProfileList', 'InstallProfile science.wifi'])
  t.equal(central.profiles.get('science.wifi'), centralWifi.payload_uuid)
  t.same(physicist.ran, ['ProfileList'], "the organisation's version beats central IT's")
  t.same(chemist.ran, ['ProfileList'])
  t.equal(chemist.profiles.get('science.wifi'), scienceWifi.json.payload_uuid)
  t.match(await configuration(api, chemist.udid), {
    status: 'in_sync',
    profiles: [{ identifier: 'science.wifi', profile_id: scienceWifi.json.id, status: 'in_sync' }],
  })
})

t.test('apps by App Store id: InstallApplication with iTunesStoreID, failure surfaced, removal', async (t) => {
  const { mdm, api } = await world(t)
  const notes = { bundle_id: 'com.example.notes', itunes_store_id: 361309726 }
  const maps = { bundle_id: 'com.example.maps', itunes_store_id: 915056765 }
  const phone = new FaithfulDevice(await mdm.enrolledDevice(), {
    [String(notes.itunes_store_id)]: notes.bundle_id,
    [String(maps.itunes_store_id)]: maps.bundle_id,
  })
  const other = new FaithfulDevice(await mdm.enrolledDevice())
  phone.failingApps.add(String(maps.itunes_store_id))
  phone.apps.add('me.personal.game') // not ours: never touched

  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'Store apps', device_ids: [phone.udid], applications: [notes, maps] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  t.same(blueprint.json.applications, [notes, maps])
  await phone.sync()
  await other.sync()
  t.same(
    phone.ran,
    ['ProfileList', 'InstalledApplicationList', `InstallApplication ${maps.itunes_store_id}`, `InstallApplication ${notes.itunes_store_id}`],
    'both lists, then the two missing apps',
  )
  t.same(other.ran, ['ProfileList', 'InstalledApplicationList'], 'asked (central blueprint), nothing installed')
  const installs = phone.commands.filter((c) => c.requestType === 'InstallApplication').map((c) => c.command)
  for (const install of installs) {
    t.equal(install['ManagementFlags'], 1, 'removed when the device leaves management')
    t.notOk('ManifestURL' in install, 'no manifest for an App Store app')
  }
  t.same(installs.map((install) => install['iTunesStoreID']).sort(), [notes.itunes_store_id, maps.itunes_store_id].sort(), 'iTunesStoreID, as an integer')
  t.same([...phone.apps].sort(), ['com.example.notes', 'me.personal.game'])

  const failed = await configuration(api, phone.udid)
  t.equal(failed.status, 'failed')
  const mapsItem = failed.applications.find((a: { bundle_id: string }) => a.bundle_id === maps.bundle_id)
  t.match(mapsItem, { status: 'failed', detail: 'Error: The app is not available in this storefront.' }, "the device's ErrorChain description")
  t.ok(mapsItem.command_uuid, 'the failed command is named')
  t.match(
    failed.applications.find((a: { bundle_id: string }) => a.bundle_id === notes.bundle_id),
    { status: 'in_sync', detail: null },
  )

  // A failure is not retried on every list; an admin's sync retries it.
  phone.reset()
  await mdm.enqueue([phone.udid], 'InstalledApplicationList', { ManagedAppsOnly: true })
  await phone.sync()
  t.same(phone.ran, ['InstalledApplicationList'], 'not retried by itself')
  phone.failingApps.delete(String(maps.itunes_store_id))
  t.equal((await api('POST', `/api/v1/devices/${phone.udid}/configuration/sync`)).statusCode, 202)
  await phone.sync()
  t.same(phone.ran, ['InstalledApplicationList', 'ProfileList', 'InstalledApplicationList', `InstallApplication ${maps.itunes_store_id}`])
  t.match(await configuration(api, phone.udid), { status: 'in_sync' })

  // Out of the blueprint: RemoveApplication; the personal app stays.
  phone.reset()
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'Store apps', device_ids: [phone.udid], applications: [maps] } })
  await phone.sync()
  t.same(phone.ran, ['ProfileList', 'InstalledApplicationList', 'RemoveApplication com.example.notes'])
  t.same([...phone.apps].sort(), ['com.example.maps', 'me.personal.game'])
  t.match(await configuration(api, phone.udid), { status: 'in_sync', applications: [{ bundle_id: maps.bundle_id, status: 'in_sync' }] })
  t.equal((await configuration(api, phone.udid)).applications.length, 1, 'the removed app is gone from the configuration')

  phone.reset()
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'Store apps', device_ids: [phone.udid], applications: [] } })
  await phone.sync()
  t.same(
    phone.ran,
    ['ProfileList', 'InstalledApplicationList', 'RemoveApplication com.example.maps'],
    'the last app leaves too: the app list is still asked for',
  )
  t.same([...phone.apps], ['me.personal.game'])
  t.match(await configuration(api, phone.udid), { status: 'in_sync', profiles: [], applications: [] })
})

t.test('the periodic check (checkAll): only devices with desired configuration or leftover state are asked', async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  // The app keeps its blueprint service to itself; this is a second one over the same
  // database, the real store and the app's own dispatcher, as main.ts wires it. The
  // devices' answers go through the app, whose service converges.
  const lifecycleStore = createLifecycleStore(db)
  const periodic = createBlueprintService({
    store: createBlueprintStore(db),
    dispatcher: mdm.orchard.dispatcher,
    deviceState: async (deviceId) => (await lifecycleStore.device(fullAccess, deviceId))?.state,
    logger: testLogger(),
  })
  const store = { [String(361309726)]: 'com.example.notes' }
  const shared = new FaithfulDevice(await mdm.enrolledDevice()) // function: the wifi blueprint
  const withApp = new FaithfulDevice(await mdm.enrolledDevice(), store) // named by the app blueprint
  const bystander = new FaithfulDevice(await mdm.enrolledDevice()) // no configuration at all
  const leftover = new FaithfulDevice(await mdm.enrolledDevice()) // function, then work: leftover state
  const gone = new FaithfulDevice(await mdm.enrolledDevice()) // function, then checked out
  const all = [shared, withApp, bystander, leftover, gone]
  t.equal(await periodic.checkAll(), 0, 'no blueprints: nobody is asked')
  for (const device of all) await device.sync()
  t.same(
    all.map((device) => device.ran),
    [[], [], [], [], []],
  )

  for (const device of [shared, leftover, gone]) await db.updateTable('devices').set({ kind: 'function' }).where('id', '=', device.udid).execute()
  const wifi = (await upload(api, wifiProfile('council.wifi', 'Council'))).json
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'Shared', profile_ids: [wifi.id], kinds: ['function'] } })).statusCode, 201)
  t.equal(
    (
      await api('POST', '/api/v1/blueprints', {
        body: { name: 'Notes', device_ids: [withApp.udid], applications: [{ bundle_id: 'com.example.notes', itunes_store_id: 361309726 }] },
      })
    ).statusCode,
    201,
  )
  for (const device of all) await device.sync()
  t.ok(
    shared.profiles.has('council.wifi') && leftover.profiles.has('council.wifi') && gone.profiles.has('council.wifi') && withApp.apps.has('com.example.notes'),
    'converged',
  )
  for (const device of all) device.reset()

  // Between checks: drift, a kind change (no trigger of its own), a check-out.
  shared.profiles.delete('council.wifi')
  withApp.apps.delete('com.example.notes')
  await db.updateTable('devices').set({ kind: 'work' }).where('id', '=', leftover.udid).execute()
  t.equal((await gone.device.checkOut()).status, 200)
  const lastSeq = Number(
    (
      await db
        .selectFrom('command_targets')
        .select((eb) => eb.fn.max('seq').as('seq'))
        .executeTakeFirstOrThrow()
    ).seq,
  )

  t.equal(await periodic.checkAll(), 3, 'three enrolled devices have configuration or leftover state')
  const asked = await db
    .selectFrom('command_targets as ct')
    .innerJoin('commands as c', 'c.uuid', 'ct.command_uuid')
    .select(['ct.enrollment_id', 'c.request_type'])
    .where('ct.seq', '>', lastSeq)
    .execute()
  const byDevice = (id: string) =>
    asked
      .filter((row) => row.enrollment_id === id)
      .map((row) => row.request_type)
      .sort()
  t.same(byDevice(shared.udid), ['ProfileList'])
  t.same(byDevice(withApp.udid), ['InstalledApplicationList', 'ProfileList'], 'a device with apps is asked for both lists')
  t.same(byDevice(leftover.udid), ['ProfileList'], 'leftover state: asked, so that it can be cleaned up')
  t.same(byDevice(bystander.udid), [], 'a device without configuration gets nothing')
  t.same(byDevice(gone.udid), [], 'a checked-out device is not asked')
  t.equal(asked.length, 4)

  for (const device of [shared, withApp, bystander, leftover]) await device.sync()
  t.same(shared.ran, ['ProfileList', 'InstallProfile council.wifi'], 'drift repaired by the periodic check')
  t.same(withApp.ran, ['ProfileList', 'InstalledApplicationList', 'InstallApplication 361309726'])
  t.same(leftover.ran, ['ProfileList', 'RemoveProfile council.wifi'], 'no longer targeted: removed')
  t.same(bystander.ran, [])

  // Once the leftover is cleaned up, the next check leaves that device alone.
  for (const device of all) device.reset()
  t.equal(await periodic.checkAll(), 2)
  for (const device of [shared, withApp, bystander, leftover]) await device.sync()
  t.same(shared.ran, ['ProfileList'], 'in sync: a list and nothing else')
  t.same(withApp.ran, ['ProfileList', 'InstalledApplicationList'])
  t.same(leftover.ran, [], 'nothing desired, nothing left: not asked')
  t.same(bystander.ran, [])
})

t.test('signed delivery: the device gets a CMS SignedData of the uploaded bytes; the library keeps them unsigned', async (t) => {
  const signing = signingIdentityFiles(t)
  const { mdm, api } = await world(t, signing.env)
  const body = wifiProfile('council.wifi', 'Council')
  const uploaded = await upload(api, body)
  t.equal(uploaded.statusCode, 201, uploaded.body)
  t.equal(uploaded.json.sha256, sha256(body))
  const device = new FaithfulDevice(await mdm.enrolledDevice())
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'Signed', profile_ids: [uploaded.json.id], device_ids: [device.udid] } })).statusCode, 201)
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'])
  t.equal(device.profiles.get('council.wifi'), uploaded.json.payload_uuid)

  const payload = device.commands.find((c) => c.requestType === 'InstallProfile')!.command['Payload'] as Buffer
  t.ok(Buffer.isBuffer(payload), 'Payload is data')
  t.equal(payload[0], 0x30, 'a DER SEQUENCE, not a plist')
  const contentInfo = pkijs.ContentInfo.fromBER(payload)
  t.equal(contentInfo.contentType, signedDataOid, 'ContentInfo of SignedData')
  const signedData = new pkijs.SignedData({ schema: contentInfo.content })
  t.equal(await signedData.verify({ signer: 0, checkChain: false }, engine), true, 'the signature verifies')
  t.ok(Buffer.from(signedData.encapContentInfo.eContent!.getValue()).equals(body), 'the signed content is the uploaded profile, byte for byte')
  const signer = Buffer.from(signedData.certificates![0]!.toSchema().toBER(false))
  t.ok(signer.equals(signing.certificateDer), 'signed by the configured identity')

  const stored = await mdm.database.db.selectFrom('library_profiles').select(['content', 'sha256']).where('id', '=', uploaded.json.id).executeTakeFirstOrThrow()
  t.ok(Buffer.from(stored.content).equals(body), 'the library keeps the unsigned upload')
  t.equal(stored.sha256, sha256(body))
  t.equal((await api('GET', `/api/v1/profiles/${uploaded.json.id}`)).json.sha256, sha256(body))

  // The version is the uploaded bytes, not the signed ones (a new signature every delivery).
  device.reset()
  await mdm.enqueue([device.udid], 'ProfileList')
  await device.sync()
  t.same(device.ran, ['ProfileList'], 'signed and acknowledged: in sync, not installed again')
  t.match(await configuration(api, device.udid), { status: 'in_sync', profiles: [{ identifier: 'council.wifi', status: 'in_sync' }] })
})

t.test('library edge cases: Apple payload types outside the digest, binary plists, the 4 MiB limit', async (t) => {
  const { mdm, api } = await world(t)
  const profileWith = (identifier: string, payload: PlistDict): PlistDict => ({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: identifier,
    PayloadUUID: randomUUID(),
    PayloadDisplayName: identifier,
    PayloadContent: [{ PayloadVersion: 1, PayloadIdentifier: `${identifier}.1`, PayloadUUID: randomUUID(), ...payload }],
  })

  // Known to Apple, keys not in the digest: only the common payload keys are checked.
  const dock = await upload(
    api,
    encodePlist(
      profileWith('council.dock', {
        PayloadType: 'com.apple.dock',
        orientation: 'left',
        autohide: true,
        'static-apps': [{ 'tile-type': 'url-tile', 'tile-data': { label: 'Intranet', url: 'https://intranet.example' } }],
      }),
    ),
  )
  t.equal(dock.statusCode, 201, dock.body)
  t.same(dock.json.payload_types, ['com.apple.dock'])
  const caldav = await upload(
    api,
    encodePlist(
      profileWith('council.calendar', {
        PayloadType: 'com.apple.caldav.account',
        CalDAVHostName: 'cal.example',
        CalDAVUsername: 'alice',
        CalDAVUseSSL: true,
        CalDAVPort: 443,
      }),
    ),
  )
  t.equal(caldav.statusCode, 201, caldav.body)
  t.same(caldav.json.payload_types, ['com.apple.caldav.account'])
  const badCommon = await upload(api, encodePlist(profileWith('council.dock2', { PayloadType: 'com.apple.dock', PayloadVersion: 'one', orientation: 'left' })))
  t.equal(badCommon.statusCode, 400, 'the common keys of such a payload are still checked')
  t.match(badCommon.json.detail, /PayloadVersion/)
  const missingCommon = await upload(
    api,
    encodePlist({
      ...profileWith('council.dock3', { PayloadType: 'com.apple.dock' }),
      PayloadContent: [{ PayloadType: 'com.apple.dock', PayloadVersion: 1, PayloadIdentifier: 'council.dock3.1' }],
    }),
  )
  t.equal(missingCommon.statusCode, 400, 'a payload without its PayloadUUID is refused')
  t.match(missingCommon.json.detail, /PayloadUUID/)

  // A binary plist, as exported by some tools: accepted, kept byte for byte, delivered as is.
  const binaryUuid = randomUUID()
  const binary = toBplist({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: 'council.binary',
    PayloadUUID: binaryUuid,
    PayloadDisplayName: 'Binary Wi-Fi',
    PayloadContent: [
      {
        PayloadType: 'com.apple.wifi.managed',
        PayloadVersion: 1,
        PayloadIdentifier: 'council.binary.wifi',
        PayloadUUID: randomUUID(),
        SSID_STR: 'Café',
        EncryptionType: 'WPA2',
        AutoJoin: true,
      },
    ],
  })
  t.equal(binary.toString('latin1', 0, 8), 'bplist00')
  t.match(decodePlist(binary), { PayloadIdentifier: 'council.binary' }, "(the test's writer makes a readable bplist)")
  const uploadedBinary = await upload(api, binary, '', 'application/octet-stream')
  t.equal(uploadedBinary.statusCode, 201, uploadedBinary.body)
  t.match(uploadedBinary.json, {
    identifier: 'council.binary',
    name: 'Binary Wi-Fi',
    payload_uuid: binaryUuid,
    payload_types: ['com.apple.wifi.managed'],
    sha256: sha256(binary),
  })
  const device = new FaithfulDevice(await mdm.enrolledDevice())
  await api('POST', '/api/v1/blueprints', { body: { name: 'Binary', profile_ids: [uploadedBinary.json.id], device_ids: [device.udid] } })
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.binary'])
  t.ok(
    (device.commands.find((c) => c.requestType === 'InstallProfile')!.command['Payload'] as Buffer).equals(binary),
    'unsigned: the device gets the uploaded bytes',
  )
  t.equal(device.profiles.get('council.binary'), binaryUuid)

  // Size: above the default 1 MiB body limit is fine up to 4 MiB; beyond, 413 and nothing stored.
  const padded = (identifier: string, size: number): Buffer => {
    const base = profileWith(identifier, { PayloadType: 'com.apple.dock', orientation: 'bottom' })
    const empty = encodePlist({ ...base, PayloadDescription: '' }).length
    const out = encodePlist({ ...base, PayloadDescription: 'x'.repeat(size - empty) })
    if (out.length !== size) throw new Error(`padded: ${out.length} bytes, not ${size}`)
    return out
  }
  const big = await upload(api, padded('council.big', 2 * 1024 * 1024))
  t.equal(big.statusCode, 201, 'a 2 MiB profile is accepted')
  const atLimit = await upload(api, padded('council.limit', 4 * 1024 * 1024))
  t.equal(atLimit.statusCode, 201, 'exactly 4 MiB is accepted')
  const count = (await api('GET', '/api/v1/profiles')).json.items.length
  const tooBig = await upload(api, padded('council.huge', 4 * 1024 * 1024 + 1))
  t.equal(tooBig.statusCode, 413, 'one byte over 4 MiB: 413')
  t.equal(tooBig.json?.status, 413, 'as a problem document')
  const tooBigVersion = await api('PUT', `/api/v1/profiles/${big.json.id}`, {
    raw: { payload: padded('council.big', 4 * 1024 * 1024 + 1), contentType: 'application/x-apple-aspen-config' },
  })
  t.equal(tooBigVersion.statusCode, 413, 'a new version over 4 MiB: 413')
  t.equal((await api('GET', '/api/v1/profiles')).json.items.length, count, 'nothing stored')
  t.equal((await api('GET', `/api/v1/profiles/${big.json.id}`)).json.sha256, big.json.sha256, 'the version stays')
})

t.test('a removal the device refuses: failed with its reason, not retried on every list, retried by a sync', async (t) => {
  const { mdm, api } = await world(t)
  const wifi = (await upload(api, wifiProfile('council.wifi', 'Council'))).json
  const notes = { bundle_id: 'com.example.notes', itunes_store_id: 361309726 }
  const device = new FaithfulDevice(await mdm.enrolledDevice(), { [String(notes.itunes_store_id)]: notes.bundle_id })
  const blueprint = (
    await api('POST', '/api/v1/blueprints', { body: { name: 'Kit', profile_ids: [wifi.id], device_ids: [device.udid], applications: [notes] } })
  ).json
  await device.sync()
  t.ok(device.profiles.has('council.wifi') && device.apps.has(notes.bundle_id), 'installed')

  device.reset()
  device.refusing.add('council.wifi')
  device.refusing.add(notes.bundle_id)
  await api('PUT', `/api/v1/blueprints/${blueprint.id}`, { body: { name: 'Kit', device_ids: [device.udid] } })
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstalledApplicationList', 'RemoveProfile council.wifi', 'RemoveApplication com.example.notes'])
  const refused = await configuration(api, device.udid)
  t.equal(refused.status, 'failed')
  t.match(refused.profiles, [{ identifier: 'council.wifi', status: 'failed', detail: 'Error: Removal is not allowed.' }])
  t.match(refused.applications, [{ bundle_id: notes.bundle_id, status: 'failed', detail: 'Error: Removal is not allowed.' }])

  // The next lists (the periodic check, an admin's inventory) do not try again.
  device.reset()
  await mdm.enqueue([device.udid], 'ProfileList')
  await mdm.enqueue([device.udid], 'InstalledApplicationList', { ManagedAppsOnly: true })
  await device.sync()
  t.notOk(device.ran.includes('RemoveProfile council.wifi'), 'a refused RemoveProfile is not retried on every list')
  t.notOk(
    device.ran.includes('RemoveApplication com.example.notes'),
    'a refused RemoveApplication is not retried on every list (as for profiles, and as the README says)',
  )

  // An admin's sync tries again; now the device agrees.
  device.reset()
  device.refusing.clear()
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/configuration/sync`)).statusCode, 202)
  await device.sync()
  t.ok(
    device.ran.includes('RemoveProfile council.wifi') && device.ran.includes('RemoveApplication com.example.notes'),
    `retried by the sync: ${device.ran.join(', ')}`,
  )
  t.equal(device.profiles.size, 0)
  t.equal(device.apps.size, 0)
  t.match(await configuration(api, device.udid), { status: 'in_sync', profiles: [], applications: [] })
})

t.test("apps on a department device: the organisation's definition beats central IT's, as for profiles", async (t) => {
  const { mdm, api } = await world(t)
  await api('POST', '/api/v1/tenants', { body: { id: 'science', name: 'Science' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics', parent_id: 'science' } })
  const device = new FaithfulDevice(await mdm.enrolledDevice(), { '111': 'com.example.notes', '222': 'com.example.notes' })
  await mdm.database.db.updateTable('devices').set({ tenant_id: 'physics' }).where('id', '=', device.udid).execute()
  const org = await api('POST', '/api/v1/blueprints', {
    body: { name: 'Science apps', tenant_id: 'science', applications: [{ bundle_id: 'com.example.notes', itunes_store_id: 111 }] },
  })
  t.equal(org.statusCode, 201, org.body)
  // Central IT's, created (so updated) later.
  const central = await api('POST', '/api/v1/blueprints', {
    body: { name: 'Everyone', applications: [{ bundle_id: 'com.example.notes', itunes_store_id: 222 }] },
  })
  t.equal(central.statusCode, 201, central.body)
  await device.sync()
  const installs = device.commands.filter((c) => c.requestType === 'InstallApplication').map((c) => c.command['iTunesStoreID'])
  t.same(installs, [111], "the organisation's app definition is installed, not central IT's newer one")
})

t.test('at enrollment a device is asked for the lists its blueprints need: none, the profile list, or both when apps are involved', async (t) => {
  const { mdm, api } = await world(t)
  const bare = new FaithfulDevice(await mdm.enrolledDevice())
  await bare.sync()
  t.same(bare.ran, [], 'no blueprint: nothing asked')

  const wifi = await upload(api, wifiProfile('council.wifi', 'Council'))
  t.equal(wifi.statusCode, 201, wifi.body)
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'Wi-Fi', profile_ids: [wifi.json.id] } })).statusCode, 201)
  const withProfile = new FaithfulDevice(await mdm.enrolledDevice())
  await withProfile.sync()
  t.same(withProfile.ran, ['ProfileList', 'InstallProfile council.wifi'], 'a profile blueprint: the profile list alone')

  const notes = { bundle_id: 'com.example.notes', itunes_store_id: 361309726 }
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'Notes', applications: [notes] } })).statusCode, 201)
  const withApp = new FaithfulDevice(await mdm.enrolledDevice(), { [String(notes.itunes_store_id)]: notes.bundle_id })
  await withApp.sync()
  t.same(
    withApp.ran,
    ['ProfileList', 'InstalledApplicationList', 'InstallProfile council.wifi', `InstallApplication ${notes.itunes_store_id}`],
    'an app blueprint too: both lists',
  )
})
