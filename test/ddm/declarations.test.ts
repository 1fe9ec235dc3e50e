// Declarative device management end to end, over the real MDM endpoints with simulated DDM
// devices: a declaration reaches a device through a blueprint, the device syncs it and reports it
// active; a change gives a new ServerToken and DeclarationsToken and the device fetches the new
// content; removal takes it out of the manifest; targeting by kind and group; status items.
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { DdmDevice } from '../helpers/ddm-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const passcode = (minimumLength: number) => ({
  identifier: 'com.example.passcode',
  type: 'com.apple.configuration.passcode.settings',
  name: 'Passcode',
  payload: { RequirePasscode: true, MinimumLength: minimumLength },
})

/** The queue run to its end; a blueprint change also asks for the profile list (not DDM's business here). */
const ddmCommands = async (device: DdmDevice) => (await device.runQueue()).filter((requestType) => requestType !== 'ProfileList')

t.test('a declaration through a blueprint: synced, active, changed, removed', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = new DdmDevice(await mdm.enrolledDevice({ serialNumber: 'DDM000000001' }))
  t.same(await device.runQueue(), [], 'no DeclarativeManagement before any declaration reaches the device')

  const created = await api('POST', '/api/v1/declarations', { body: passcode(6) })
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json, { identifier: 'com.example.passcode', kind: 'configuration', blueprint_count: 0 })
  const declarationId = created.json.id as string
  const firstToken = created.json.server_token as string

  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'passcode', declaration_ids: [declarationId] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  t.same(blueprint.json.declaration_ids, [declarationId])

  t.same(await ddmCommands(device), ['DeclarativeManagement'], 'the first declaration turns DDM on')
  t.match(device.commands[0], { DeclarationsToken: device.declarationsToken })
  t.match(device.declarations.get('com.example.passcode'), {
    type: 'com.apple.configuration.passcode.settings',
    serverToken: firstToken,
    payload: { MinimumLength: 6 },
  })
  t.ok(device.declarations.has('orchard.activation.default'), 'Orchard activates the configuration')
  t.ok(device.declarations.has('orchard.status-subscriptions'))
  t.ok(device.active('com.example.passcode'))
  const view = await api('GET', `/api/v1/devices/${device.udid}/declarations`)
  t.equal(view.statusCode, 200, view.body)
  t.match(
    view.json.items.find((i: { identifier: string }) => i.identifier === 'com.example.passcode'),
    {
      declaration_id: declarationId,
      state: 'active',
      server_token: firstToken,
    },
  )
  t.equal(view.json.declarations_token, device.declarationsToken)

  // Polling again changes nothing and fetches nothing.
  device.calls.length = 0
  t.equal(await device.sync(), false)
  t.same(device.calls, ['tokens'])

  // Changed: a new ServerToken and DeclarationsToken; only the changed declaration is fetched.
  const before = device.declarationsToken
  const changed = await api('PUT', `/api/v1/declarations/${declarationId}`, { body: passcode(8) })
  t.equal(changed.statusCode, 200, changed.body)
  t.not(changed.json.server_token, firstToken)
  const unchanged = await api('PUT', `/api/v1/declarations/${declarationId}`, { body: passcode(8) })
  t.equal(unchanged.json.server_token, changed.json.server_token, 'the same content keeps its ServerToken')
  device.calls.length = 0
  t.same(await ddmCommands(device), ['DeclarativeManagement'])
  t.not(device.declarationsToken, before)
  t.match(device.declarations.get('com.example.passcode'), { payload: { MinimumLength: 8 } })
  t.ok(device.calls.includes('declaration/configuration/com.example.passcode'))
  t.notOk(device.calls.includes('declaration/configuration/orchard.status-subscriptions'), 'unchanged declarations are not fetched again')
  t.match((await api('GET', `/api/v1/devices/${device.udid}/declarations`)).json.items, [
    { identifier: 'com.example.passcode', state: 'active', server_token: changed.json.server_token },
  ])

  // A declaration a blueprint carries cannot be deleted; out of the blueprint, it leaves the device.
  t.equal((await api('DELETE', `/api/v1/declarations/${declarationId}`)).statusCode, 409)
  t.equal((await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'passcode', declaration_ids: [] } })).statusCode, 200)
  t.same(await ddmCommands(device), ['DeclarativeManagement'], 'the last declaration leaving is sent too')
  t.notOk(device.declarations.has('com.example.passcode'))
  t.same(
    device.declarations.get('orchard.activation.default')?.payload,
    { StandardConfigurations: ['orchard.status-subscriptions'] },
    'the status channel stays',
  )
  t.equal((await api('DELETE', `/api/v1/declarations/${declarationId}`)).statusCode, 204)
  const rows = await mdm.database.db.selectFrom('device_declaration_status').select('identifier').where('device_id', '=', device.udid).execute()
  t.notOk(
    rows.some((row) => row.identifier === 'com.example.passcode'),
    'the removal the device reported is applied',
  )
})

t.test('an invalid declaration is refused with pointers; a device reports one invalid', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const missing = await api('POST', '/api/v1/declarations', {
    body: { identifier: 'x.update', type: 'com.apple.configuration.softwareupdate.enforcement.specific', payload: { TargetOSVersion: 17 } },
  })
  t.equal(missing.statusCode, 400)
  t.match(missing.json.errors, [
    { pointer: '/payload/TargetOSVersion', detail: /must be a string/ },
    { pointer: '/payload/TargetLocalDateTime', detail: 'is required' },
  ])
  const unknownKey = await api('POST', '/api/v1/declarations', { body: { ...passcode(4), payload: { MinimumLength: 4, Colour: 'red' } } })
  t.equal(unknownKey.statusCode, 400)
  t.match(unknownKey.json.errors, [{ pointer: '/payload/Colour', detail: /is not a key of com\.apple\.configuration\.passcode\.settings/ }])
  const unknownType = await api('POST', '/api/v1/declarations', { body: { ...passcode(4), type: 'com.apple.configuration.nothing' } })
  t.equal(unknownType.statusCode, 400)
  t.match(unknownType.json.errors, [{ pointer: '/type' }])
  t.equal((await api('POST', '/api/v1/declarations', { body: { ...passcode(4), extra: 1 } })).statusCode, 400, 'unknown fields are refused')
  t.equal((await api('POST', '/api/v1/declarations', { body: passcode(4) })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/declarations', { body: passcode(5) })).statusCode, 409, 'one identifier per tenant')

  const device = new DdmDevice(await mdm.enrolledDevice())
  const declaration = (await api('GET', '/api/v1/declarations')).json.items[0]
  await api('POST', '/api/v1/blueprints', { body: { name: 'p', declaration_ids: [declaration.id] } })
  device.invalid.set('com.example.passcode', 'The passcode policy cannot be applied.')
  await device.runQueue()
  t.match((await api('GET', `/api/v1/devices/${device.udid}/declarations`)).json.items, [
    { identifier: 'com.example.passcode', state: 'invalid', reasons: [{ description: 'The passcode policy cannot be applied.' }] },
  ])
})

t.test('targeting by kind and group; per-device substitutions; status items with partial reports', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const [work, personal] = [new DdmDevice(await mdm.enrolledDevice()), new DdmDevice(await mdm.enrolledDevice())] as const
  await mdm.database.db.updateTable('devices').set({ kind: 'work', enrollment_group: 'library' }).where('id', '=', work.udid).execute()
  await mdm.database.db.updateTable('devices').set({ kind: 'personal' }).where('id', '=', personal.udid).execute()
  const data = await api('POST', '/api/v1/declarations', {
    body: { identifier: 'com.example.test', type: 'com.apple.configuration.management.test', payload: { Echo: 'device {{serial_number}}' } },
  })
  t.equal(data.statusCode, 201, data.body)
  await api('POST', '/api/v1/blueprints', { body: { name: 'library work', declaration_ids: [data.json.id], kinds: ['work'], groups: ['library'] } })
  t.same(await ddmCommands(work), ['DeclarativeManagement'])
  t.same(await ddmCommands(personal), [], 'not for a personal device')
  t.match(work.declarations.get('com.example.test'), { payload: { Echo: `device ${work.device.serialNumber}` } })
  // A second device with its own content: sets of their own share one command without SyncTokens.
  const other = new DdmDevice(await mdm.enrolledDevice())
  await mdm.database.db.updateTable('devices').set({ kind: 'work', enrollment_group: 'library' }).where('id', '=', other.udid).execute()
  await other.sync()
  const changed = await api('PUT', `/api/v1/declarations/${data.json.id}`, {
    body: { identifier: 'com.example.test', type: 'com.apple.configuration.management.test', payload: { Echo: 'serial {{serial_number}}' } },
  })
  t.equal(changed.statusCode, 200, changed.body)
  for (const device of [work, other]) {
    t.same(await ddmCommands(device), ['DeclarativeManagement'])
    t.same(device.commands.at(-1), {}, 'no SyncTokens: the device asks for its tokens')
    t.match(device.declarations.get('com.example.test'), { payload: { Echo: `serial ${device.device.serialNumber}` } })
  }
  const commands = await mdm.database.db.selectFrom('commands').select('uuid').where('request_type', '=', 'DeclarativeManagement').execute()
  t.equal(commands.length, 2, 'one command then, one for both devices now')
  t.not(work.declarations.get('com.example.test')?.serverToken, data.json.server_token, 'its own ServerToken: its own content')

  work.statusItems.set('device.operating-system.version', '18.2')
  work.statusItems.set('device.operating-system.build-version', '22C152')
  work.statusItems.set('softwareupdate.install-state', 'downloading')
  work.statusItems.set('passcode.is-compliant', true)
  await work.reportStatus()
  work.statusItems.set('softwareupdate.install-state', 'installing')
  t.equal(await work.reportStatus(), 1, 'a partial report: only what changed')
  const items = await api('GET', `/api/v1/devices/${work.udid}/status-items`)
  t.equal(items.statusCode, 200, items.body)
  const value = (name: string) => items.json.items.find((i: { item: string }) => i.item === name)?.value
  t.equal(value('softwareupdate.install-state'), 'installing')
  t.equal(value('device.operating-system.version'), '18.2', 'items a partial report leaves out stay')
  t.equal(value('passcode.is-compliant'), true)
  t.match(await mdm.database.db.selectFrom('devices').select(['os_version', 'build_version']).where('id', '=', work.udid).executeTakeFirst(), {
    os_version: '18.2',
    build_version: '22C152',
  })
  t.equal((await api('GET', '/api/v1/devices/no-such-device/status-items')).statusCode, 404)
})

t.test('a User Enrollment (personal phone) takes declarations on its device channel, without identifiers or update enforcement', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const personal = new DdmDevice(await mdm.enrolledDevice({ userEnrollment: true }))
  await mdm.database.db.updateTable('devices').set({ os_version: '17.5', product_name: 'iPhone15,2' }).where('id', '=', personal.udid).execute()
  const created = await api('POST', '/api/v1/declarations', { body: passcode(6) })
  t.equal((await api('POST', '/api/v1/blueprints', { body: { name: 'passcode', declaration_ids: [created.json.id] } })).statusCode, 201)
  const policy = await api('POST', '/api/v1/update-policies', {
    body: { name: 'iOS 18.2', mode: 'specific', target_os_version: '18.2', target_local_datetime: '2099-01-15T18:00:00' },
  })
  t.equal(policy.statusCode, 201, policy.body)

  t.same(await ddmCommands(personal), ['DeclarativeManagement'])
  t.ok(personal.active('com.example.passcode'), 'the declaration is synced through the EnrollmentID channel and active')
  t.notOk(personal.declarations.has('orchard.softwareupdate.enforcement'), 'no software update enforcement in User Enrollment')
  const subscribed = (personal.declarations.get('orchard.status-subscriptions')?.payload['StatusItems'] as Array<{ Name: string }>).map((item) => item.Name)
  t.ok(subscribed.includes('device.operating-system.version'))
  t.notOk(subscribed.includes('device.identifier.serial-number'), 'a User Enrollment keeps its identifiers private')
  t.notOk(subscribed.includes('device.identifier.udid'))
  const view = await api('GET', `/api/v1/devices/${personal.udid}/declarations`)
  t.match(
    view.json.items.find((item: { identifier: string }) => item.identifier === 'com.example.passcode'),
    { state: 'active' },
  )
})
