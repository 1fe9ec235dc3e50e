// A library profile carried by a user-channel legacy declaration: the user channel gets a
// ProfileURL signed for it (its enrollment ID), served while its set carries the declaration;
// the URL is good for no other channel.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { decodePlist } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { DdmDevice } from '../helpers/ddm-device.js'
import { wifiProfile } from '../helpers/faithful-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const mobileconfig = 'application/x-apple-aspen-config'

t.test("a user channel's legacy profile: its own signed URL, served while its set carries it", async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('base64') })
  const api = apiClient(mdm.app)
  const mac = await mdm.enrolledDevice({ serialNumber: 'MACPROFILE01' })
  await mdm.database.db.updateTable('devices').set({ product_name: 'Mac14,2' }).where('id', '=', mac.udid).execute()
  const user = new DdmDevice(mac, { userId: 'C0FFEE00-0000-4000-8000-00000000C0FE', userShortName: 'carol' })
  await user.enrollUser()
  const device = new DdmDevice(mac)

  const profile = await api('POST', '/api/v1/profiles', { raw: { payload: wifiProfile('org.example.user.wifi', 'Home'), contentType: mobileconfig } })
  t.equal(profile.statusCode, 201, profile.body)
  const declaration = await api('POST', '/api/v1/declarations', {
    body: { identifier: 'org.example.user.wifi', type: 'com.apple.configuration.legacy', channel: 'user', payload: {}, profile_id: profile.json.id },
  })
  t.equal(declaration.statusCode, 201, declaration.body)
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'wifi', declaration_ids: [declaration.json.id] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)

  t.same(
    (await user.runQueue()).filter((r) => r !== 'ProfileList'),
    ['DeclarativeManagement'],
  )
  const url = user.declarations.get('org.example.user.wifi')?.payload['ProfileURL'] as string
  t.match(url, new RegExp(`/mdm/ddm/profiles/${declaration.json.id}/${encodeURIComponent(`${mac.udid}:C0FFEE00-0000-4000-8000-00000000C0FE`)}/`))
  const served = await mdm.app.inject({ method: 'GET', url: new URL(url).pathname })
  t.equal(served.statusCode, 200, served.body)
  t.match(decodePlist(served.rawPayload), { PayloadIdentifier: 'org.example.user.wifi' })

  // The signature is the user channel's: on the device's own path it is refused.
  const parts = new URL(url).pathname.split('/')
  const onDevice = [...parts.slice(0, -2), encodeURIComponent(mac.udid), parts.at(-1)].join('/')
  t.equal((await mdm.app.inject({ method: 'GET', url: onDevice })).statusCode, 403)
  await device.sync()
  t.notOk(device.declarations.has('org.example.user.wifi'), 'not on the device channel')

  // Out of the user's set: the URL serves nothing any more.
  t.equal((await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'wifi', declaration_ids: [] } })).statusCode, 200)
  await user.runQueue()
  t.notOk(user.declarations.has('org.example.user.wifi'))
  t.equal((await mdm.app.inject({ method: 'GET', url: new URL(url).pathname })).statusCode, 404)
})
