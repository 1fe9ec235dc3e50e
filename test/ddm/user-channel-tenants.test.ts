// User-channel declarations and tenants: a tenant's user-channel declaration reaches only the
// user channels of the devices its blueprints reach (its own devices), another tenant's admin
// can neither see nor carry it, and a device's user channels are shown only inside its tenant.
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { DdmDevice } from '../helpers/ddm-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

t.test("a tenant's user-channel declaration stays in the tenant", async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  for (const [id, name] of [
    ['physics', 'Physics'],
    ['chemistry', 'Chemistry'],
  ])
    t.equal((await api('POST', '/api/v1/tenants', { body: { id, name } })).statusCode, 201)
  const keyFor = async (role: string, tenantId: string) => {
    const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId}`, role, tenant_id: tenantId } })
    if (created.statusCode !== 201) throw new Error(`key creation failed: ${created.body}`)
    return created.json.key as string
  }
  const physicsAdmin = await keyFor('admin', 'physics')
  const chemistryAdmin = await keyFor('admin', 'chemistry')
  const chemistryAuditor = await keyFor('auditor', 'chemistry')

  const users: DdmDevice[] = []
  for (const [serial, tenant] of [
    ['MACPHYSICS01', 'physics'],
    ['MACCHEMIST01', 'chemistry'],
  ] as const) {
    const mac = await mdm.enrolledDevice({ serialNumber: serial })
    await mdm.database.db.updateTable('devices').set({ product_name: 'Mac14,2' }).where('id', '=', mac.udid).execute()
    t.equal((await api('POST', '/api/v1/devices/move', { body: { device_ids: [mac.udid], tenant_id: tenant } })).statusCode, 200)
    const user = new DdmDevice(mac, { userId: `0000000${users.length}-0000-4000-8000-000000000000`, userShortName: `user${users.length}` })
    await user.enrollUser()
    users.push(user)
  }
  const [physicist, chemist] = users as [DdmDevice, DdmDevice]

  const declaration = await api('POST', '/api/v1/declarations', {
    key: physicsAdmin,
    body: { identifier: 'edu.physics.echo', type: 'com.apple.configuration.management.test', channel: 'user', payload: { Echo: '{{user_short_name}}' } },
  })
  t.equal(declaration.statusCode, 201, declaration.body)
  t.equal(declaration.json.tenant_id, 'physics')
  t.equal((await api('GET', `/api/v1/declarations/${declaration.json.id}`, { key: chemistryAdmin })).statusCode, 404, "not visible to another tenant's admin")
  const foreign = await api('POST', '/api/v1/blueprints', { key: chemistryAdmin, body: { name: 'steal', declaration_ids: [declaration.json.id] } })
  t.not(foreign.statusCode, 201, "another tenant's blueprint cannot carry it")
  // Physics's blueprint, without other targeting, reaches physics's devices: only their user channels.
  const blueprint = await api('POST', '/api/v1/blueprints', { key: physicsAdmin, body: { name: 'physics users', declaration_ids: [declaration.json.id] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)

  t.same(
    (await physicist.runQueue()).filter((r) => r !== 'ProfileList'),
    ['DeclarativeManagement'],
  )
  t.match(physicist.declarations.get('edu.physics.echo'), { payload: { Echo: 'user0' } })
  t.same(
    (await chemist.runQueue()).filter((r) => r !== 'ProfileList'),
    [],
    "the other tenant's user channel is sent nothing",
  )
  await chemist.sync()
  t.notOk(chemist.declarations.has('edu.physics.echo'))

  const own = await api('GET', `/api/v1/devices/${physicist.udid}/declarations`, { key: physicsAdmin })
  t.equal(own.statusCode, 200, own.body)
  t.match(own.json.user_channels, [{ user_short_name: 'user0' }])
  for (const path of ['declarations', 'status-items'])
    t.equal(
      (await api('GET', `/api/v1/devices/${physicist.udid}/${path}`, { key: chemistryAuditor })).statusCode,
      404,
      `another tenant sees no ${path} of the device or its users`,
    )
  const theirs = await api('GET', `/api/v1/devices/${chemist.udid}/declarations`, { key: chemistryAuditor })
  t.equal(theirs.statusCode, 200, theirs.body)
  t.notOk(
    theirs.json.user_channels[0].items.some((item: { identifier: string }) => item.identifier === 'edu.physics.echo'),
    "the other tenant's user set does not name it",
  )
})
