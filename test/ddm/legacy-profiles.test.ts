// Library profiles carried by DDM (com.apple.configuration.legacy with profile_id): each device
// gets its own signed ProfileURL on Orchard, the profile is served only to a device whose set
// carries the declaration, a new version of the profile changes the ServerToken, and what is
// wrong with such a declaration is refused with a pointer.
import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { decodePlist } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { DdmDevice } from '../helpers/ddm-device.js'
import { wifiProfile } from '../helpers/faithful-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const secretKeys = { ORCHARD_SECRET_KEYS: randomBytes(32).toString('base64') }
const mobileconfig = 'application/x-apple-aspen-config'

t.test('a library profile through DDM: a signed URL per device, served while the set carries it', async (t) => {
  const mdm = await setupMdm(t, secretKeys)
  const api = apiClient(mdm.app)
  const fetchProfile = (url: string) => mdm.app.inject({ method: 'GET', url: new URL(url).pathname })
  const alice = new DdmDevice(await mdm.enrolledDevice({ serialNumber: 'DDMLEGACY001' }))
  const bob = new DdmDevice(await mdm.enrolledDevice({ serialNumber: 'DDMLEGACY002' }))

  const profile = await api('POST', '/api/v1/profiles', { raw: { payload: wifiProfile('org.example.wifi', 'Staff'), contentType: mobileconfig } })
  t.equal(profile.statusCode, 201, profile.body)
  const created = await api('POST', '/api/v1/declarations', {
    body: { identifier: 'org.example.legacy.wifi', type: 'com.apple.configuration.legacy', payload: {}, profile_id: profile.json.id },
  })
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json, { profile_id: profile.json.id, payload: {}, kind: 'configuration' })
  const declarationId = created.json.id as string
  const firstToken = created.json.server_token as string
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'wifi', declaration_ids: [declarationId] } })).statusCode, 201)

  await alice.runQueue()
  await bob.runQueue()
  const aliceDeclaration = alice.declarations.get('org.example.legacy.wifi')
  t.match(aliceDeclaration, { type: 'com.apple.configuration.legacy', serverToken: firstToken })
  const aliceUrl = aliceDeclaration!.payload['ProfileURL'] as string
  const bobUrl = bob.declarations.get('org.example.legacy.wifi')!.payload['ProfileURL'] as string
  t.match(aliceUrl, /^https?:\/\/.+\/mdm\/ddm\/profiles\//)
  t.not(aliceUrl, bobUrl, 'each device its own URL')
  t.ok(alice.active('org.example.legacy.wifi'))

  const served = await fetchProfile(aliceUrl)
  t.equal(served.statusCode, 200, served.body)
  t.equal(served.headers['content-type'], mobileconfig)
  t.match(decodePlist(served.rawPayload), { PayloadIdentifier: 'org.example.wifi', PayloadContent: [{ SSID_STR: 'Staff' }] })

  // A URL is good only for its device and declaration.
  const [, , , , , , aliceSignature] = new URL(aliceUrl).pathname.split('/')
  const bobPath = new URL(bobUrl).pathname.split('/')
  const swapped = [...bobPath.slice(0, -1), aliceSignature].join('/')
  const forged = await mdm.app.inject({ method: 'GET', url: swapped })
  t.equal(forged.statusCode, 403, 'alice signature on bob URL')
  t.match(forged.body, /forbidden: this profile URL is not signed for this device/)
  t.equal((await mdm.app.inject({ method: 'GET', url: `${new URL(aliceUrl).pathname.slice(0, -4)}AAAA` })).statusCode, 403, 'a tampered signature')

  // A new version of the profile: a new ServerToken, the devices sync it and fetch the new content.
  const replaced = await api('PUT', `/api/v1/profiles/${profile.json.id}`, {
    raw: { payload: wifiProfile('org.example.wifi', 'Staff 2'), contentType: mobileconfig },
  })
  t.equal(replaced.statusCode, 200, replaced.body)
  const after = (await api('GET', `/api/v1/declarations/${declarationId}`)).json
  t.not(after.server_token, firstToken, 'the declaration changes with its profile')
  t.ok((await alice.runQueue()).includes('DeclarativeManagement'), 'the device is told')
  t.equal(alice.declarations.get('org.example.legacy.wifi')?.serverToken, after.server_token)
  t.match(decodePlist((await fetchProfile(aliceUrl)).rawPayload), { PayloadContent: [{ SSID_STR: 'Staff 2' }] })

  // The profile cannot be deleted while a declaration carries it.
  t.equal((await api('DELETE', `/api/v1/profiles/${profile.json.id}`)).statusCode, 409)

  // Out of the device's set (the blueprint now targets bob only), alice's URL serves nothing.
  const blueprints = (await api('GET', '/api/v1/blueprints')).json.items
  t.equal(
    (await api('PUT', `/api/v1/blueprints/${blueprints[0].id}`, { body: { name: 'wifi', declaration_ids: [declarationId], device_ids: [bob.udid] } }))
      .statusCode,
    200,
  )
  await alice.runQueue()
  t.notOk(alice.declarations.has('org.example.legacy.wifi'))
  const gone = await fetchProfile(aliceUrl)
  t.equal(gone.statusCode, 404)
  t.match(gone.body, /no longer carries this declaration/)
  t.equal((await fetchProfile(bobUrl)).statusCode, 200)
})

t.test('legacy-profile declarations: what is refused', async (t) => {
  const mdm = await setupMdm(t, secretKeys)
  const api = apiClient(mdm.app)
  const profile = await api('POST', '/api/v1/profiles', { raw: { payload: wifiProfile('org.example.wifi', 'Staff'), contentType: mobileconfig } })
  const body = (extra: Record<string, unknown>) => ({ identifier: 'org.example.legacy', type: 'com.apple.configuration.legacy', payload: {}, ...extra })

  const wrongType = await api('POST', '/api/v1/declarations', {
    body: body({ type: 'com.apple.configuration.passcode.settings', payload: { MinimumLength: 4 }, profile_id: profile.json.id }),
  })
  t.equal(wrongType.statusCode, 400)
  t.match(wrongType.json.errors, [{ pointer: '/profile_id', detail: /only com\.apple\.configuration\.legacy/ }])

  const withUrl = await api('POST', '/api/v1/declarations', { body: body({ payload: { ProfileURL: 'https://example.org/p' }, profile_id: profile.json.id }) })
  t.equal(withUrl.statusCode, 400)
  t.match(withUrl.json.errors, [{ pointer: '/payload/ProfileURL' }])

  const unknown = await api('POST', '/api/v1/declarations', { body: body({ profile_id: randomUUID() }) })
  t.equal(unknown.statusCode, 400)
  t.match(unknown.json.errors, [{ pointer: '/profile_id', detail: /no such profile/ }])

  const interactive = await api('POST', '/api/v1/declarations', {
    body: body({ type: 'com.apple.configuration.legacy.interactive', profile_id: profile.json.id }),
  })
  t.equal(interactive.statusCode, 400, 'the interactive type still needs its VisibleName')
  t.match(interactive.json.errors, [{ pointer: '/payload/VisibleName', detail: 'is required' }])

  const withoutProfile = await api('POST', '/api/v1/declarations', { body: body({}) })
  t.equal(withoutProfile.statusCode, 400, 'without profile_id the ProfileURL is required')
  t.match(withoutProfile.json.errors, [{ pointer: '/payload/ProfileURL' }])

  t.equal((await api('POST', '/api/v1/declarations', { body: body({ profile_id: profile.json.id }) })).statusCode, 201)
  const nothing = await api('GET', `/mdm/ddm/profiles/${randomUUID()}/NOSUCHDEVICE/${'A'.repeat(43)}`)
  t.equal(nothing.statusCode, 403, 'an unsigned URL is refused before anything is looked up')
})

t.test('without secret keys Orchard cannot sign profile URLs and says so', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const profile = await api('POST', '/api/v1/profiles', { raw: { payload: wifiProfile('org.example.wifi', 'Staff'), contentType: mobileconfig } })
  const refused = await api('POST', '/api/v1/declarations', {
    body: { identifier: 'org.example.legacy', type: 'com.apple.configuration.legacy', payload: {}, profile_id: profile.json.id },
  })
  t.equal(refused.statusCode, 409)
  t.match(refused.json.detail, /ORCHARD_SECRET_KEYS/)
})
