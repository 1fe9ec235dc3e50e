// Kiosk mode (src/fleet/kiosk-profile.ts): a blueprint locks function devices to one app (App
// Lock) or to an allow-list (Restrictions), only when every device it reaches is supervised.
// Simulated devices converge over the real MDM endpoints and the profile they receive is read.
import t from 'tap'
import { decodePlist, isPlistDict, type PlistDict } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { cmsContent, FaithfulDevice, wifiProfile } from '../helpers/faithful-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

/** The last kiosk profile the device was sent. */
function lastKiosk(device: FaithfulDevice): PlistDict {
  const sent = device.commands.filter((c) => c.requestType === 'InstallProfile').at(-1)
  if (!sent) throw new Error('no InstallProfile')
  const payload = sent.command['Payload'] as Buffer
  const profile = decodePlist(cmsContent(payload) ?? payload)
  if (!isPlistDict(profile)) throw new Error('not a profile')
  return profile
}

t.test('kiosk: one app or an allow-list, for supervised function devices only', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  const kioskIpad = new FaithfulDevice(await mdm.enrolledDevice())
  const laptop = new FaithfulDevice(await mdm.enrolledDevice())
  await db.updateTable('devices').set({ kind: 'function', is_supervised: false }).where('id', '=', kioskIpad.udid).execute()
  await db.updateTable('devices').set({ kind: 'work', is_supervised: false }).where('id', '=', laptop.udid).execute()
  const kiosk = { app: { bundle_id: 'com.example.visitors', options: { DisableAutoLock: true, DisableTouch: false }, user_enabled_options: { Zoom: true } } }

  const noKinds = await api('POST', '/api/v1/blueprints', { body: { name: 'Reception', kiosk } })
  t.equal(noKinds.statusCode, 400, 'a kiosk is for function devices only')
  t.match(noKinds.json.errors, [{ pointer: '/kinds' }])
  const badOption = await api('POST', '/api/v1/blueprints', {
    body: { name: 'Reception', kinds: ['function'], kiosk: { app: { bundle_id: 'x', options: { DisableEverything: true } } } },
  })
  t.equal(badOption.statusCode, 400, 'App Lock options are Apple’s keys only')

  const unsupervised = await api('POST', '/api/v1/blueprints', { body: { name: 'Reception', kinds: ['function'], kiosk } })
  t.equal(unsupervised.statusCode, 409, unsupervised.body)
  t.match(unsupervised.json, { code: 'conflict', detail: /supervised/, not_supervised: [kioskIpad.device.serialNumber], not_supervised_count: 1 })
  t.equal((await api('GET', '/api/v1/blueprints')).json.items.length, 0, 'nothing was written')
  t.equal((await db.selectFrom('library_profiles').select('id').execute()).length, 0, 'no kiosk profile either')

  await db.updateTable('devices').set({ is_supervised: true }).where('id', '=', kioskIpad.udid).execute()
  const created = await api('POST', '/api/v1/blueprints', { body: { name: 'Reception', kinds: ['function'], kiosk } })
  t.equal(created.statusCode, 201, created.body)
  t.same(created.json.kiosk, kiosk)
  const blueprintId = created.json.id as string
  t.equal(created.json.profile_ids.length, 1, 'the kiosk profile is one of its profiles')
  const library = (await api('GET', '/api/v1/profiles')).json.items
  t.match(library, [{ identifier: `orchard.kiosk.${blueprintId}`, name: 'Kiosk: Reception', payload_types: ['com.apple.app.lock'] }])

  await kioskIpad.sync()
  await laptop.sync()
  t.same(kioskIpad.ran, ['ProfileList', `InstallProfile orchard.kiosk.${blueprintId}`])
  t.same(laptop.ran, ['ProfileList'], 'a work device is not a kiosk')
  const profile = lastKiosk(kioskIpad)
  const payload = (profile['PayloadContent'] as PlistDict[])[0]!
  t.equal(payload['PayloadType'], 'com.apple.app.lock')
  t.same(payload['App'], { Identifier: 'com.example.visitors', Options: { DisableAutoLock: true, DisableTouch: false }, UserEnabledOptions: { Zoom: true } })
  t.equal(profile['PayloadRemovalDisallowed'], true)

  // The same kiosk again changes nothing; other options are a new version.
  kioskIpad.reset()
  const same = await api('PUT', `/api/v1/blueprints/${blueprintId}`, { body: { name: 'Reception', kinds: ['function'], kiosk } })
  t.equal(same.statusCode, 200, same.body)
  await kioskIpad.sync()
  t.same(kioskIpad.ran, ['ProfileList'], 'same kiosk: nothing installed again')
  kioskIpad.reset()
  await api('PUT', `/api/v1/blueprints/${blueprintId}`, {
    body: { name: 'Reception', kinds: ['function'], kiosk: { allowed_apps: ['com.example.visitors', 'com.apple.mobilesafari'] } },
  })
  await kioskIpad.sync()
  t.same(kioskIpad.ran, ['ProfileList', `InstallProfile orchard.kiosk.${blueprintId}`], 'an allow-list replaces the single app')
  const allowList = (lastKiosk(kioskIpad)['PayloadContent'] as PlistDict[])[0]!
  t.equal(allowList['PayloadType'], 'com.apple.applicationaccess')
  t.same(allowList['allowListedAppBundleIDs'], ['com.example.visitors', 'com.apple.mobilesafari'])

  // The kiosk profile belongs to its blueprint.
  const kioskProfileId = (await api('GET', `/api/v1/blueprints/${blueprintId}`)).json.profile_ids[0] as string
  const other = await api('POST', '/api/v1/blueprints', { body: { name: 'Other', profile_ids: [kioskProfileId] } })
  t.equal(other.statusCode, 400, 'another blueprint cannot carry it')
  t.match(other.json.errors, [{ pointer: '/profile_ids' }])
  const upload = await api('POST', '/api/v1/profiles', {
    raw: { payload: wifiProfile(`orchard.kiosk.${blueprintId}`, 'x'), contentType: 'application/x-apple-aspen-config' },
  })
  t.equal(upload.statusCode, 400, 'the library refuses its identifier prefix')
  t.equal((await api('DELETE', `/api/v1/profiles/${kioskProfileId}`)).statusCode, 409, 'it cannot be deleted from under its blueprint')

  // A new unsupervised function device in reach: the blueprint can no longer be changed with a kiosk.
  const newcomer = await mdm.enrolledDevice()
  await db.updateTable('devices').set({ kind: 'function', is_supervised: null }).where('id', '=', newcomer.udid).execute()
  const blocked = await api('PUT', `/api/v1/blueprints/${blueprintId}`, { body: { name: 'Reception', kinds: ['function'], kiosk } })
  t.equal(blocked.statusCode, 409, 'supervision not known yet counts as not supervised')
  t.same(blocked.json.not_supervised, [newcomer.serialNumber])
  await db.updateTable('devices').set({ kind: 'work' }).where('id', '=', newcomer.udid).execute()

  // Without a kiosk the profile leaves the device and the library.
  kioskIpad.reset()
  const cleared = await api('PUT', `/api/v1/blueprints/${blueprintId}`, { body: { name: 'Reception', kinds: ['function'], kiosk: null } })
  t.equal(cleared.statusCode, 200, cleared.body)
  t.equal(cleared.json.kiosk, null)
  t.same(cleared.json.profile_ids, [])
  await kioskIpad.sync()
  t.same(kioskIpad.ran, ['ProfileList', `RemoveProfile orchard.kiosk.${blueprintId}`])
  t.equal((await api('GET', '/api/v1/profiles')).json.items.length, 0, 'gone from the library')

  // Deleting a kiosk blueprint takes its profile along.
  const again = await api('PUT', `/api/v1/blueprints/${blueprintId}`, { body: { name: 'Reception', kinds: ['function'], kiosk } })
  t.equal(again.statusCode, 200, again.body)
  t.equal((await api('DELETE', `/api/v1/blueprints/${blueprintId}`)).statusCode, 204)
  t.equal((await api('GET', '/api/v1/profiles')).json.items.length, 0)
})
