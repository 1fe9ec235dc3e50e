// A profile's version is its content (the sha256 of the uploaded bytes), not its PayloadUUID:
// an edited profile that keeps its PayloadUUID is installed again, pending until the device
// acknowledges it; the same bytes again install nothing. What the device lists (identifier ->
// PayloadUUID) cannot show content, so a PayloadUUID Orchard did not install is installed over.
// Devices are simulated over the real MDM endpoints (test/helpers/faithful-device.ts).
import { createHash, randomUUID } from 'node:crypto'
import t from 'tap'
import { decodePlist, encodePlist, isPlistDict } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { FaithfulDevice } from '../helpers/faithful-device.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'

type Api = ReturnType<typeof apiClient>
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
const mobileconfig = 'application/x-apple-aspen-config'

/** A Wi-Fi profile as an admin edits it: same PayloadUUIDs, only the password changes. */
function wifiWithPassword(uuids: { profile: string; payload: string }, password: string): Buffer {
  return encodePlist({
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: 'council.wifi',
    PayloadUUID: uuids.profile,
    PayloadDisplayName: 'Wi-Fi Council',
    PayloadContent: [
      {
        PayloadType: 'com.apple.wifi.managed',
        PayloadVersion: 1,
        PayloadIdentifier: 'council.wifi.wifi',
        PayloadUUID: uuids.payload,
        SSID_STR: 'Council',
        EncryptionType: 'WPA2',
        Password: password,
      },
    ],
  })
}

async function world(t: Parameters<typeof setupMdm>[0]): Promise<{ mdm: MdmFixture; api: Api }> {
  const mdm = await setupMdm(t)
  return { mdm, api: apiClient(mdm.app) }
}

async function wifiItem(api: Api, deviceId: string) {
  const response = await api('GET', `/api/v1/devices/${deviceId}/configuration`)
  if (response.statusCode !== 200) throw new Error(`configuration of ${deviceId}: ${response.statusCode} ${response.body}`)
  const item = response.json.profiles.find((p: { identifier: string }) => p.identifier === 'council.wifi') as {
    status: string
    detail: string | null
    command_uuid: string | null
  }
  return { ...item, device_status: response.json.status as string }
}

/** The configuration as seen while the device holds an InstallProfile it has not answered yet. */
function watchInstalls(device: FaithfulDevice, api: Api): Array<{ status: string; detail: string | null; command_uuid: string | null }> {
  const seen: Array<{ status: string; detail: string | null; command_uuid: string | null }> = []
  device.beforeAnswer = async (requestType) => {
    if (requestType === 'InstallProfile') seen.push(await wifiItem(api, device.udid))
  }
  return seen
}

const installedPassword = (device: FaithfulDevice): unknown => {
  const payload = device.commands.filter((c) => c.requestType === 'InstallProfile').at(-1)!.command['Payload'] as Buffer
  const profile = decodePlist(payload)
  if (!isPlistDict(profile) || !Array.isArray(profile['PayloadContent'])) throw new Error('not a profile')
  return (profile['PayloadContent'][0] as Record<string, unknown>)['Password']
}

t.test(
  'a new version with the same PayloadUUID is installed again, pending until acknowledged; the same bytes install nothing; a failed version shows failed',
  async (t) => {
    const { mdm, api } = await world(t)
    const uuids = { profile: randomUUID(), payload: randomUUID() }
    const v1 = wifiWithPassword(uuids, 'first password')
    const wifi = (await api('POST', '/api/v1/profiles', { raw: { payload: v1, contentType: mobileconfig } })).json
    const device = new FaithfulDevice(await mdm.enrolledDevice())
    t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'Wi-Fi', profile_ids: [wifi.id], device_ids: [device.udid] } })).statusCode, 201)
    await device.sync()
    t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'])
    t.match(await wifiItem(api, device.udid), { status: 'in_sync' }, 'installed and acknowledged')

    // The admin changes the password and keeps the PayloadUUIDs.
    device.reset()
    const v2 = wifiWithPassword(uuids, 'second password')
    const replaced = await api('PUT', `/api/v1/profiles/${wifi.id}`, { raw: { payload: v2, contentType: mobileconfig } })
    t.equal(replaced.statusCode, 200, replaced.body)
    t.equal(replaced.json.payload_uuid, uuids.profile, 'the PayloadUUID stays')
    t.equal(replaced.json.sha256, sha256(v2), 'the content changed')
    t.match(await wifiItem(api, device.udid), { status: 'pending' }, 'pending as soon as the new version is desired')
    const whileInstalling = watchInstalls(device, api)
    await device.sync()
    t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'], 'the device lists the same PayloadUUID, and still gets the new version')
    t.ok((device.commands[1]!.command['Payload'] as Buffer).equals(v2), 'the new bytes')
    t.equal(installedPassword(device), 'second password')
    t.match(whileInstalling, [{ status: 'pending', command_uuid: String }], 'pending until the device acknowledges it')
    t.match(await wifiItem(api, device.udid), { status: 'in_sync', detail: null, command_uuid: null }, 'acknowledged: in sync')

    device.reset()
    await mdm.enqueue([device.udid], 'ProfileList')
    await device.sync()
    t.same(device.ran, ['ProfileList'], 'in sync: the next list installs nothing')

    // The same bytes again: not a new version.
    device.reset()
    const same = await api('PUT', `/api/v1/profiles/${wifi.id}`, { raw: { payload: v2, contentType: mobileconfig } })
    t.equal(same.statusCode, 200)
    t.equal(same.json.sha256, sha256(v2))
    t.match(await wifiItem(api, device.udid), { status: 'in_sync' })
    await device.sync()
    t.same(device.ran, ['ProfileList'], 'an unchanged PUT installs nothing')

    // A new version the device refuses: failed, although it still lists the same PayloadUUID
    // (of the version before).
    device.reset()
    device.failing.add('council.wifi')
    const v3 = wifiWithPassword(uuids, 'third password')
    t.equal((await api('PUT', `/api/v1/profiles/${wifi.id}`, { raw: { payload: v3, contentType: mobileconfig } })).statusCode, 200)
    await device.sync()
    t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'])
    t.equal(device.profiles.get('council.wifi'), uuids.profile, 'the device keeps the previous version, same PayloadUUID')
    t.match(await wifiItem(api, device.udid), { status: 'failed', detail: /Wi-Fi password is wrong/ })
    device.reset()
    await mdm.enqueue([device.udid], 'ProfileList')
    await device.sync()
    t.same(device.ran, ['ProfileList'], 'not retried on every list')
    t.match(await wifiItem(api, device.udid), { status: 'failed' }, 'and not taken for installed because the PayloadUUID matches')

    device.reset()
    device.failing.delete('council.wifi')
    t.equal((await api('POST', `/api/v1/devices/${device.udid}/configuration/sync`)).statusCode, 202)
    await device.sync()
    t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'], "an admin's sync retries it")
    t.equal(installedPassword(device), 'third password')
    t.match(await wifiItem(api, device.udid), { status: 'in_sync' })
  },
)

t.test("a PayloadUUID Orchard did not install: the blueprint's version is installed (once)", async (t) => {
  const { mdm, api } = await world(t)
  const uuids = { profile: randomUUID(), payload: randomUUID() }
  const body = wifiWithPassword(uuids, 'password')
  const wifi = (await api('POST', '/api/v1/profiles', { raw: { payload: body, contentType: mobileconfig } })).json

  // Installed by hand before any blueprint, with the same PayloadUUID: its content is unknown
  // (an edit may keep the PayloadUUID), so Orchard installs its version once.
  const device = new FaithfulDevice(await mdm.enrolledDevice())
  device.profiles.set('council.wifi', uuids.profile)
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'Wi-Fi', profile_ids: [wifi.id], device_ids: [device.udid] } })).statusCode, 201)
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'])
  t.match(await wifiItem(api, device.udid), { status: 'in_sync' })
  device.reset()
  await mdm.enqueue([device.udid], 'ProfileList')
  await device.sync()
  t.same(device.ran, ['ProfileList'], 'then it is in sync')

  // Another version put over it by hand (another PayloadUUID): the blueprint's goes back on.
  device.reset()
  const foreign = randomUUID()
  device.profiles.set('council.wifi', foreign)
  const whileInstalling = watchInstalls(device, api)
  t.equal((await api('POST', `/api/v1/devices/${device.udid}/configuration/sync`)).statusCode, 202)
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'])
  t.match(whileInstalling, [{ status: 'pending', detail: `the device reported another version of it (PayloadUUID ${foreign}): installing it again` }])
  t.equal(device.profiles.get('council.wifi'), uuids.profile)
  t.match(await wifiItem(api, device.udid), { status: 'in_sync', detail: null })
})

t.test('state from before versions were hashes (a PayloadUUID): the profile is installed once more, then in sync', async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  const uuids = { profile: randomUUID(), payload: randomUUID() }
  const wifi = (await api('POST', '/api/v1/profiles', { raw: { payload: wifiWithPassword(uuids, 'password'), contentType: mobileconfig } })).json
  const device = new FaithfulDevice(await mdm.enrolledDevice())
  await api('POST', '/api/v1/blueprints', { body: { name: 'Wi-Fi', profile_ids: [wifi.id], device_ids: [device.udid] } })
  await device.sync()
  t.match(await wifiItem(api, device.udid), { status: 'in_sync' })

  // What an older Orchard wrote: the PayloadUUID as the version.
  await db
    .updateTable('device_config_state')
    .set({ version: uuids.profile })
    .where('device_id', '=', device.udid)
    .where('identifier', '=', 'council.wifi')
    .execute()
  t.match(await wifiItem(api, device.udid), { status: 'pending' }, 'unknown content: pending')
  device.reset()
  await mdm.enqueue([device.udid], 'ProfileList')
  await device.sync()
  t.same(device.ran, ['ProfileList', 'InstallProfile council.wifi'], 'installed once more')
  t.match(await wifiItem(api, device.udid), { status: 'in_sync' })
  const state = await db
    .selectFrom('device_config_state')
    .select('version')
    .where('device_id', '=', device.udid)
    .where('identifier', '=', 'council.wifi')
    .executeTakeFirstOrThrow()
  t.equal(state.version, wifi.sha256, 'the state now records the content hash')
  device.reset()
  await mdm.enqueue([device.udid], 'ProfileList')
  await device.sync()
  t.same(device.ran, ['ProfileList'], 'once only')
})
