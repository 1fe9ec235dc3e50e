// DDM status reports in the device's timeline (audit_events, category device): a report that
// changes declaration states writes one declaration_status event, one that changes software
// update items one softwareupdate_status event, in the device's current tenant; a report
// repeating what is stored writes none. Over the real MDM endpoints with a simulated DDM device.
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { DdmDevice } from '../helpers/ddm-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

interface AuditEvent {
  id: string
  category: string
  tenant_id: string | null
  action: string
  target_type: string | null
  target_id: string | null
  device_id: string | null
  principal: unknown
  outcome: string
  details: any
}

/** Sends this status report as the device, as it is (not only what changed). */
async function sendStatus(device: DdmDevice, report: Record<string, unknown>): Promise<void> {
  const response = await device.device.checkin({ MessageType: 'DeclarativeManagement', Endpoint: 'status', Data: Buffer.from(JSON.stringify(report)) })
  if (response.status !== 200) throw new Error(`status: ${response.status}`)
}

t.test('status reports that change declaration states or software update items are device events, once per change', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const keyFor = async (role: string, tenantId: string) => {
    const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId}`, role, tenant_id: tenantId } })
    if (created.statusCode !== 201) throw new Error(`key creation failed: ${created.body}`)
    return created.json.key as string
  }
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'physics', name: 'Physics' } })).statusCode, 201)
  t.equal((await api('POST', '/api/v1/tenants', { body: { id: 'chemistry', name: 'Chemistry' } })).statusCode, 201)
  const physicsAuditor = await keyFor('auditor', 'physics')
  const chemistryAuditor = await keyFor('auditor', 'chemistry')

  const device = new DdmDevice(await mdm.enrolledDevice({ serialNumber: 'DDMEVENTS001' }))
  const events = async (action: string, key?: string): Promise<AuditEvent[]> => {
    const response = await api('GET', `/api/v1/audit-events?device_id=${encodeURIComponent(device.udid)}&action=${action}`, key ? { key } : {})
    if (response.statusCode !== 200) throw new Error(`audit-events: ${response.statusCode} ${response.body}`)
    return response.json.items as AuditEvent[]
  }

  // The first sync: the device reports the states of its whole set (new rows): one event.
  const declaration = await api('POST', '/api/v1/declarations', {
    body: { identifier: 'com.example.passcode', type: 'com.apple.configuration.passcode.settings', payload: { RequirePasscode: true } },
  })
  t.equal(declaration.statusCode, 201, declaration.body)
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'passcode', declaration_ids: [declaration.json.id] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  await device.runQueue()
  t.ok(device.active('com.example.passcode'))
  const first = await events('declaration_status')
  t.equal(first.length, 1, 'one event for the whole report')
  t.match(first[0], {
    category: 'device',
    tenant_id: null,
    target_type: 'device',
    target_id: device.udid,
    device_id: device.udid,
    principal: null,
    outcome: 'success',
  })
  t.same(
    first[0]!.details.declarations.map((d: { identifier: string }) => d.identifier),
    [...device.declarations.keys()].sort(),
    'every declaration the device reported for the first time',
  )
  t.match(
    first[0]!.details.declarations.find((d: { identifier: string }) => d.identifier === 'com.example.passcode'),
    { kind: 'configuration', active: true, valid: 'valid', reasons: null, removed: false },
  )
  t.same(await events('softwareupdate_status'), [], 'no software update item reported yet')

  // Moved to physics: its events go to its current tenant.
  const moved = await api('POST', '/api/v1/devices/move', { body: { device_ids: [device.udid], tenant_id: 'physics' } })
  t.same(moved.json.moved, [device.udid], 'moved to physics')

  // The device finds the passcode declaration invalid: one event with that declaration only.
  device.invalid.set('com.example.passcode', 'The passcode policy cannot be applied.')
  await device.reportStatus()
  const afterInvalid = await events('declaration_status')
  t.equal(afterInvalid.length, 2, 'one more event')
  const invalid = afterInvalid[0]!
  t.equal(invalid.tenant_id, 'physics', "in the device's current tenant")
  t.same(invalid.details, {
    declarations: [
      {
        identifier: 'com.example.passcode',
        kind: 'configuration',
        server_token: device.declarations.get('com.example.passcode')!.serverToken,
        active: false,
        valid: 'invalid',
        reasons: [{ code: 'Error.ConfigurationCannotBeApplied', description: 'The passcode policy cannot be applied.' }],
        removed: false,
      },
    ],
  })

  // The same report again, then a full report repeating every stored value: no event.
  const serverToken = device.declarations.get('com.example.passcode')!.serverToken
  const sameReport = {
    StatusItems: {
      management: {
        declarations: {
          configurations: [
            {
              identifier: 'com.example.passcode',
              active: false,
              valid: 'invalid',
              'server-token': serverToken,
              reasons: [{ code: 'Error.ConfigurationCannotBeApplied', description: 'The passcode policy cannot be applied.' }],
            },
          ],
        },
      },
    },
    Errors: [],
  }
  await sendStatus(device, sameReport)
  t.ok((await device.reportStatus(true)) > 0, 'a full report was sent')
  t.equal((await events('declaration_status')).length, 2, 'unchanged states write nothing')
  t.same(await events('softwareupdate_status'), [])

  // Software update items: one event per report that changes them, with the changed items only.
  device.statusItems.set('softwareupdate.install-state', 'downloading')
  device.statusItems.set('softwareupdate.pending-version', { 'os-version': '18.2', 'build-version': '22C152' })
  device.statusItems.set('passcode.is-compliant', true)
  await device.reportStatus()
  let updates = await events('softwareupdate_status')
  t.equal(updates.length, 1)
  t.match(updates[0], { tenant_id: 'physics', category: 'device', target_type: 'device', target_id: device.udid, device_id: device.udid })
  t.same(
    updates[0]!.details,
    { items: { 'softwareupdate.install-state': 'downloading', 'softwareupdate.pending-version': { 'os-version': '18.2', 'build-version': '22C152' } } },
    'only the software update items',
  )
  device.statusItems.set('softwareupdate.install-state', 'installing')
  device.statusItems.set('passcode.is-compliant', false)
  await device.reportStatus()
  updates = await events('softwareupdate_status')
  t.equal(updates.length, 2, 'the install state changed')
  t.same(updates[0]!.details, { items: { 'softwareupdate.install-state': 'installing' } })
  await sendStatus(device, { StatusItems: { softwareupdate: { 'install-state': 'installing' } }, Errors: [] })
  await device.reportStatus(true)
  t.equal((await events('softwareupdate_status')).length, 2, 'the same install state again writes nothing')
  t.equal((await events('declaration_status')).length, 2, 'nor does it write a declaration event')

  // A report changing both: one event of each kind.
  device.invalid.delete('com.example.passcode')
  device.statusItems.set('softwareupdate.install-state', 'success')
  await device.reportStatus()
  t.equal((await events('declaration_status')).length, 3)
  t.equal((await events('softwareupdate_status')).length, 3)
  t.match((await events('declaration_status'))[0]!.details.declarations, [{ identifier: 'com.example.passcode', active: true, valid: 'valid' }])

  // The declaration leaves the set: the device reports it removed.
  t.equal((await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'passcode', declaration_ids: [] } })).statusCode, 200)
  await device.runQueue()
  t.notOk(device.declarations.has('com.example.passcode'))
  const afterRemoval = await events('declaration_status')
  t.equal(afterRemoval.length, 4, 'one event for the sync that removed it')
  t.match(afterRemoval[0]!.details.declarations, [{ identifier: 'com.example.passcode', kind: 'configuration', removed: true }])
  t.equal(afterRemoval[0]!.details.declarations.filter((d: { removed: boolean }) => d.removed).length, 1, 'the removed declaration once')
  await sendStatus(device, {
    StatusItems: { management: { declarations: { configurations: [{ identifier: 'com.example.passcode', _removed: true }] } } },
    Errors: [],
  })
  t.equal((await events('declaration_status')).length, 4, 'removing it again writes nothing')

  // Tenants: physics' auditor sees its device's events (not the one from before the move), chemistry's none.
  const physicsView = await events('declaration_status', physicsAuditor)
  t.equal(physicsView.length, 3, 'the events while the device was in physics')
  t.ok(physicsView.every((event) => event.tenant_id === 'physics'))
  t.equal((await events('softwareupdate_status', physicsAuditor)).length, 3)
  t.same(await events('declaration_status', chemistryAuditor), [], "another tenant's auditor sees none")
  t.same(await events('softwareupdate_status', chemistryAuditor), [])
  const timeline = await api('GET', `/api/v1/audit-events?device_id=${encodeURIComponent(device.udid)}&category=device`, { key: physicsAuditor })
  t.ok(
    timeline.json.items.some((event: AuditEvent) => event.action === 'declaration_status'),
    "in the device's timeline",
  )
})
