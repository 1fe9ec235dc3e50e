// Desired configuration end to end: a profile library, blueprints, and a simulated device
// (test/helpers/faithful-device.ts) that keeps its own profiles and apps and reports them
// faithfully, converging through the real MDM endpoints: install, new version, removal,
// drift repaired, failure surfaced.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { encodePlist } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { FaithfulDevice, wifiProfile } from '../helpers/faithful-device.js'

async function upload(api: ReturnType<typeof apiClient>, profile: Buffer, query = '') {
  return api('POST', `/api/v1/profiles${query}`, { raw: { payload: profile, contentType: 'application/x-apple-aspen-config' } })
}

async function world(t: Parameters<typeof setupMdm>[0]): Promise<{ mdm: MdmFixture; api: ReturnType<typeof apiClient> }> {
  const mdm = await setupMdm(t)
  return { mdm, api: apiClient(mdm.app) }
}

t.test('the library: uploads are validated; one profile per identifier; new versions keep the identifier', async (t) => {
  const { api } = await world(t)
  const good = await upload(api, wifiProfile('council.wifi', 'Council'))
  t.equal(good.statusCode, 201, good.body)
  t.match(good.json, { identifier: 'council.wifi', name: 'Wi-Fi Council', payload_types: ['com.apple.wifi.managed'], tenant_id: null })
  t.equal((await upload(api, wifiProfile('council.wifi', 'Other'))).statusCode, 409, 'same identifier: a PUT is a new version')

  const notPlist = await upload(api, Buffer.from('hello'))
  t.equal(notPlist.statusCode, 400)
  t.match(notPlist.json.detail, /not a property list/)
  const unknownType = await upload(
    api,
    encodePlist({
      PayloadType: 'Configuration',
      PayloadVersion: 1,
      PayloadIdentifier: 'x',
      PayloadUUID: randomUUID(),
      PayloadDisplayName: 'X',
      PayloadContent: [{ PayloadType: 'com.example.nothing', PayloadVersion: 1, PayloadIdentifier: 'x.1', PayloadUUID: randomUUID() }],
    }),
  )
  t.equal(unknownType.statusCode, 400, "payload types outside Apple's schema are refused")
  t.match(unknownType.json.detail, /Apple's schema/)
  const mdmPayload = await upload(
    api,
    encodePlist({
      PayloadType: 'Configuration',
      PayloadVersion: 1,
      PayloadIdentifier: 'y',
      PayloadUUID: randomUUID(),
      PayloadDisplayName: 'Y',
      PayloadContent: [
        {
          PayloadType: 'com.apple.mdm',
          PayloadVersion: 1,
          PayloadIdentifier: 'y.mdm',
          PayloadUUID: randomUUID(),
          ServerURL: 'https://mdm.example/mdm',
          Topic: 'com.apple.mgmt.x',
          IdentityCertificateUUID: randomUUID(),
          AccessRights: 8191,
        },
      ],
    }),
  )
  t.equal(mdmPayload.statusCode, 400)
  t.equal((await upload(api, Buffer.from([0x30, 0x82, 0x01, 0x00]))).statusCode, 400, 'a signed profile: upload it unsigned')

  const version = await api('PUT', `/api/v1/profiles/${good.json.id}`, {
    raw: { payload: wifiProfile('council.wifi', 'Council 2'), contentType: 'application/x-apple-aspen-config' },
  })
  t.equal(version.statusCode, 200)
  t.not(version.json.payload_uuid, good.json.payload_uuid)
  t.equal(
    (
      await api('PUT', `/api/v1/profiles/${good.json.id}`, {
        raw: { payload: wifiProfile('council.other', 'X'), contentType: 'application/x-apple-aspen-config' },
      })
    ).statusCode,
    400,
    'the identifier stays',
  )
  t.equal((await api('GET', '/api/v1/profiles')).json.items.length, 1)
})

t.test('a blueprint converges a device: install, new version, drift repaired, failure surfaced, removal; nothing twice in flight', async (t) => {
  const { mdm, api } = await world(t)
  const device = new FaithfulDevice(await mdm.enrolledDevice())
  const id = device.device.udid
  device.profiles.set('me.personal', randomUUID()) // not ours: never touched
  const wifi = (await upload(api, wifiProfile('council.wifi', 'Council'))).json
  const guest = (await upload(api, wifiProfile('council.guest', 'Guest'))).json

  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'Council phones', profile_ids: [wifi.id, guest.id], kinds: ['work'] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  t.match(blueprint.json, { name: 'Council phones', kinds: ['work'], tenant_id: null })
  t.same([...blueprint.json.profile_ids].sort(), [wifi.id, guest.id].sort())
  t.equal((await api('GET', `/api/v1/devices/${id}/configuration`)).json.status, 'pending')

  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.guest', 'InstallProfile council.wifi'], 'asked for its list, then the two missing profiles')
  t.equal(device.profiles.get('council.wifi'), wifi.payload_uuid)
  const synced = await api('GET', `/api/v1/devices/${id}/configuration`)
  t.match(synced.json, {
    status: 'in_sync',
    profiles: [
      { identifier: 'council.guest', status: 'in_sync' },
      { identifier: 'council.wifi', status: 'in_sync' },
    ],
  })

  // A new version of one profile: only that one is installed again.
  device.ran.length = 0
  const v2 = (
    await api('PUT', `/api/v1/profiles/${wifi.id}`, {
      raw: { payload: wifiProfile('council.wifi', 'Council 5GHz'), contentType: 'application/x-apple-aspen-config' },
    })
  ).json
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'])
  t.equal(device.profiles.get('council.wifi'), v2.payload_uuid)

  // Drift: the user removed a profile; the next check puts it back.
  device.ran.length = 0
  device.profiles.delete('council.guest')
  t.equal((await api('POST', `/api/v1/devices/${id}/configuration/sync`)).statusCode, 202)
  t.equal((await api('POST', `/api/v1/devices/${id}/configuration/sync`)).statusCode, 202, 'asked twice before it answers')
  await device.sync()
  t.same(device.ran, ['ProfileList', 'ProfileList', 'InstallProfile council.guest'], 'one install, however many lists arrive while it is in flight')

  // A profile the device refuses: failed, with the device's reason, not retried by itself.
  device.ran.length = 0
  device.failing.add('council.vpn')
  const vpn = (await upload(api, wifiProfile('council.vpn', 'VPN'))).json
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'Council phones', profile_ids: [wifi.id, guest.id, vpn.id], kinds: ['work'] } })
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.vpn'])
  const failed = await api('GET', `/api/v1/devices/${id}/configuration`)
  t.equal(failed.json.status, 'failed')
  t.match(
    failed.json.profiles.find((p: { identifier: string }) => p.identifier === 'council.vpn'),
    { status: 'failed', detail: /Wi-Fi password is wrong/ },
  )
  device.ran.length = 0
  await mdm.enqueue([id], 'ProfileList')
  await device.sync()
  t.same(device.ran, ['ProfileList'], 'a failure is not retried on every list')
  device.failing.delete('council.vpn')
  await api('POST', `/api/v1/devices/${id}/configuration/sync`)
  await device.sync()
  t.same(device.ran, ['ProfileList', 'ProfileList', 'InstallProfile council.vpn'], "an admin's sync retries it")
  t.equal((await api('GET', `/api/v1/devices/${id}/configuration`)).json.status, 'in_sync')

  // Out of the blueprint: removed from the device; the personal profile stays.
  device.ran.length = 0
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'Council phones', profile_ids: [wifi.id], kinds: ['work'] } })
  await device.sync()
  t.same(device.ran.sort(), ['ProfileList', 'RemoveProfile council.guest', 'RemoveProfile council.vpn'])
  t.same([...device.profiles.keys()].sort(), ['council.wifi', 'me.personal'])
  t.equal((await api('DELETE', `/api/v1/profiles/${wifi.id}`)).statusCode, 409, 'a profile in a blueprint stays in the library')

  device.ran.length = 0
  t.equal((await api('DELETE', `/api/v1/blueprints/${blueprint.json.id}`)).statusCode, 204)
  await device.sync()
  t.same(device.ran, ['ProfileList', 'RemoveProfile council.wifi'])
  t.same([...device.profiles.keys()], ['me.personal'])
  t.match((await api('GET', `/api/v1/devices/${id}/configuration`)).json, { status: 'in_sync', profiles: [], applications: [] })
})

t.test('targeting: kinds, groups and devices; a new device gets its blueprint at enrollment; apps by manifest URL', async (t) => {
  const { mdm, api } = await world(t)
  const wifi = (await upload(api, wifiProfile('council.wifi', 'Council'))).json
  const manifest = 'https://apps.council.example/intranet/manifest.plist'
  const blueprint = await api('POST', '/api/v1/blueprints', {
    body: { name: 'Shared iPads', profile_ids: [wifi.id], kinds: ['function'], applications: [{ bundle_id: 'com.council.intranet', manifest_url: manifest }] },
  })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  const bad = await api('POST', '/api/v1/blueprints', {
    body: { name: 'Bad', applications: [{ bundle_id: 'x', manifest_url: 'https://a/b', itunes_store_id: 1 }] },
  })
  t.equal(bad.statusCode, 400)
  t.same(
    bad.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/applications/0'],
  )
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'shared ipads' } })).statusCode, 409, 'names are unique in a tenant')

  const work = new FaithfulDevice(await mdm.enrolledDevice())
  await work.sync()
  t.same(work.ran, [], 'a work device is not targeted: nothing is asked')

  const shared = new FaithfulDevice(await mdm.enrolledDevice(), { [manifest]: 'com.council.intranet' })
  await mdm.database.db.updateTable('devices').set({ kind: 'function' }).where('id', '=', shared.device.udid).execute()
  await mdm.enqueue([shared.device.udid], 'ProfileList')
  await mdm.enqueue([shared.device.udid], 'InstalledApplicationList')
  await shared.sync()
  t.same(shared.ran, ['ProfileList', 'InstalledApplicationList', 'InstallProfile council.wifi', `InstallApplication ${manifest}`])
  t.ok(shared.apps.has('com.council.intranet'))
  t.match((await api('GET', `/api/v1/devices/${shared.device.udid}/configuration`)).json, {
    status: 'in_sync',
    applications: [{ bundle_id: 'com.council.intranet', status: 'in_sync' }],
  })

  // By device id, for a work device.
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, {
    body: { name: 'Shared iPads', profile_ids: [wifi.id], kinds: ['function'], device_ids: [work.device.udid] },
  })
  await work.sync()
  t.same(
    work.ran,
    ['ProfileList', 'InstalledApplicationList', 'InstallProfile council.wifi'],
    'a device named in the blueprint gets it too (both lists: the blueprint had apps)',
  )
  await shared.sync()
  t.ok(shared.ran.includes('RemoveApplication com.council.intranet'), 'the app left the blueprint: removed')

  // Enrollment: a device that a blueprint targets is asked for its list when it enrolls.
  const wholeTenant = await api('POST', '/api/v1/blueprints', { body: { name: 'Everyone', profile_ids: [] } })
  t.equal(wholeTenant.statusCode, 201)
  await api('PUT', `/api/v1/blueprints/${wholeTenant.json.id}`, { body: { name: 'Everyone', profile_ids: [wifi.id] } })
  const late = new FaithfulDevice(await mdm.enrolledDevice())
  await late.sync()
  t.same(late.ran, ['ProfileList', 'InstallProfile council.wifi'], 'converged right after enrolling')
})

t.test("tenants: a tenant's blueprints reach only its devices and carry only its (or central) profiles", async (t) => {
  const { mdm, api } = await world(t)
  await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics' } })
  await api('POST', '/api/v1/tenants', { body: { id: 'chemistry', name: 'Chemistry' } })
  const physicsKey = (await api('POST', '/api/v1/api-keys', { body: { name: 'p', role: 'admin', tenant_id: 'physics' } })).json.key as string
  const chemistryKey = (await api('POST', '/api/v1/api-keys', { body: { name: 'c', role: 'admin', tenant_id: 'chemistry' } })).json.key as string
  const physicsProfile = (await upload(api, wifiProfile('physics.wifi', 'Physics'), '?tenant_id=physics')).json
  t.equal(physicsProfile.tenant_id, 'physics')
  const inPhysics = new FaithfulDevice(await mdm.enrolledDevice())
  const inChemistry = new FaithfulDevice(await mdm.enrolledDevice())
  await mdm.database.db.updateTable('devices').set({ tenant_id: 'physics' }).where('id', '=', inPhysics.device.udid).execute()
  await mdm.database.db.updateTable('devices').set({ tenant_id: 'chemistry' }).where('id', '=', inChemistry.device.udid).execute()

  t.equal((await api('GET', `/api/v1/profiles/${physicsProfile.id}`, { key: chemistryKey })).statusCode, 404)
  const stolen = await api('POST', '/api/v1/blueprints', { key: chemistryKey, body: { name: 'Borrowed', profile_ids: [physicsProfile.id] } })
  t.equal(stolen.statusCode, 400, "another tenant's profile cannot be used")
  t.same(
    stolen.json.errors.map((e: { pointer: string }) => e.pointer),
    ['/profile_ids'],
  )
  const own = await api('POST', '/api/v1/blueprints', { key: physicsKey, body: { name: 'Physics baseline', profile_ids: [physicsProfile.id] } })
  t.equal(own.statusCode, 201)
  t.equal(own.json.tenant_id, 'physics')
  await inPhysics.sync()
  await inChemistry.sync()
  t.same(inPhysics.ran, ['ProfileList', 'InstallProfile physics.wifi'])
  t.same(inChemistry.ran, [], "the other tenant's devices are not touched")
  t.equal((await api('GET', `/api/v1/blueprints/${own.json.id}`, { key: chemistryKey })).statusCode, 404)
  t.equal((await api('GET', '/api/v1/blueprints', { key: chemistryKey })).json.items.length, 0)
})
