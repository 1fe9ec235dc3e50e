// OS update policies end to end with simulated devices: a specific policy becomes a
// SoftwareUpdateEnforcementSpecific declaration for a device on iOS 17 or later, whose status
// reports move the compliance report from pending through downloading and installing to
// compliant; a device on an older iOS takes the MDM path (ScheduleOSUpdate, OSUpdateStatus);
// a "latest" policy takes the version from the OS catalogue per model (a Mac's by its
// SoftwareUpdateDeviceID); overdue, unsupported, the CSV and the Prometheus gauge.
import t from 'tap'
import type { PlistDict } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { DdmDevice } from '../helpers/ddm-device.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

const enforcement = 'orchard.softwareupdate.enforcement'

async function world(t: Parameters<typeof setupMdm>[0]) {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = async (osVersion: string, productName = 'iPad13,1') => {
    const d = new DdmDevice(await mdm.enrolledDevice())
    await mdm.database.db.updateTable('devices').set({ os_version: osVersion, product_name: productName }).where('id', '=', d.udid).execute()
    return d
  }
  const report = async (query = '') => {
    const response = await api('GET', `/api/v1/reports/os-compliance${query}`)
    if (response.statusCode !== 200) throw new Error(response.body)
    return response.json as { policies: Array<{ counts: Record<string, number> }>; items: Array<Record<string, unknown>> }
  }
  return { mdm, api, device, report }
}

const stateOf = (items: Array<Record<string, unknown>>, deviceId: string) => items.find((item) => item.device_id === deviceId)

t.test('a specific policy: the declaration on iOS 17+, the MDM commands before; the report follows the device', async (t) => {
  const { mdm, api, device, report } = await world(t)
  const modern = await device('17.5')
  const legacy = await device('16.7.10')
  const current = await device('18.2')
  const created = await api('POST', '/api/v1/update-policies', {
    body: {
      name: 'iPadOS 18.2',
      mode: 'specific',
      target_os_version: '18.2',
      target_build_version: '22C152',
      target_local_datetime: '2099-01-15T18:00:00',
      details_url: 'https://it.example/ios18',
    },
  })
  t.equal(created.statusCode, 201, created.body)

  t.same(
    (await modern.runQueue()).filter((c) => c !== 'ProfileList'),
    ['DeclarativeManagement'],
  )
  t.match(modern.declarations.get(enforcement), {
    type: 'com.apple.configuration.softwareupdate.enforcement.specific',
    payload: { TargetOSVersion: '18.2', TargetBuildVersion: '22C152', TargetLocalDateTime: '2099-01-15T18:00:00', DetailsURL: 'https://it.example/ios18' },
  })
  t.ok(modern.active(enforcement), 'activated')
  t.notOk(current.declarations.has(enforcement))
  t.same(await current.runQueue(), [], 'a device at the target gets nothing')

  legacy.answers['OSUpdateStatus'] = {
    OSUpdateStatus: [{ ProductKey: 'iOSUpdate22C152', IsDownloaded: false, DownloadPercentComplete: 0.4, Status: 'Downloading' }],
  }
  const ran = await legacy.runQueue()
  t.same(ran, ['ScheduleOSUpdate', 'OSUpdateStatus'], 'the MDM path')
  t.notOk(legacy.declarations.has(enforcement))

  let r = await report()
  t.match(stateOf(r.items, modern.udid), { path: 'ddm', state: 'pending', target_version: '18.2', deadline: '2099-01-15T18:00:00', current_version: '17.5' })
  t.match(stateOf(r.items, legacy.udid), { path: 'mdm', state: 'downloading' })
  t.match(stateOf(r.items, current.udid), { state: 'compliant' })
  t.match(r.policies, [{ counts: { pending: 1, downloading: 1, compliant: 1, failed: 0 } }])

  modern.statusItems.set('softwareupdate.install-state', 'downloading')
  modern.statusItems.set('softwareupdate.pending-version', { 'os-version': '18.2', 'build-version': '22C152' })
  await modern.reportStatus()
  t.match(stateOf((await report()).items, modern.udid), { state: 'downloading' })
  modern.statusItems.set('softwareupdate.install-state', 'installing')
  await modern.reportStatus()
  t.match(stateOf((await report()).items, modern.udid), { state: 'installing' })
  modern.statusItems.set('device.operating-system.version', '18.2')
  modern.statusItems.set('softwareupdate.install-state', 'none')
  await modern.reportStatus()
  r = await report()
  t.match(stateOf(r.items, modern.udid), { state: 'compliant', current_version: '18.2' }, 'the status report updates the OS version at once')

  const csv = await api('GET', '/api/v1/reports/os-compliance?format=csv')
  t.match(csv.headers['content-type'], /^text\/csv/)
  t.equal(
    csv.body.trim().split('\r\n')[0],
    'policy_id,device_id,tenant_id,serial_number,model,path,current_version,target_version,target_build,deadline,state,detail',
  )
  t.equal(csv.body.trim().split('\r\n').length, 4)
  const metrics = (await mdm.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /orchard_os_compliance_devices\{policy="iPadOS 18\.2",state="compliant"\} 2/)

  // A failure the device reports.
  const failing = await device('17.4')
  await failing.runQueue()
  failing.statusItems.set('softwareupdate.failure-reason', { count: 2, reason: 'Not enough storage', timestamp: '2026-12-06T10:00:00Z' })
  await failing.reportStatus()
  t.match(stateOf((await report()).items, failing.udid), { state: 'failed', detail: /2 failed attempt\(s\): Not enough storage/ })
})

t.test('a latest policy follows the catalogue per model; past the deadline is overdue; an unknown model is unsupported', async (t) => {
  const { api, device, report } = await world(t)
  const imported = await api('POST', '/api/v1/os-releases/import', {
    body: {
      PublicAssetSets: {
        iOS: [
          { ProductVersion: '18.3', Build: '22D63', PostingDate: '2026-11-20', ExpirationDate: '2027-03-01', SupportedDevices: ['iPad13,1', 'iPhone15,2'] },
          {
            ProductVersion: '18.2',
            Build: '22C152',
            PostingDate: '2026-10-01',
            ExpirationDate: '2027-01-01',
            SupportedDevices: ['iPad13,1', 'iPhone15,2', 'iPad7,5'],
          },
        ],
      },
    },
  })
  t.equal(imported.statusCode, 200, imported.body)
  const ipad = await device('17.6')
  const old = await device('17.0', 'iPad7,5')
  const unknown = await device('17.0', 'iPad99,9')
  const policy = await api('POST', '/api/v1/update-policies', { body: { name: 'latest', mode: 'latest', latest_within_days: 7 } })
  t.equal(policy.statusCode, 201, policy.body)
  await ipad.runQueue()
  await old.runQueue()
  t.match(ipad.declarations.get(enforcement)?.payload, { TargetOSVersion: '18.3', TargetBuildVersion: '22D63', TargetLocalDateTime: '2026-11-27T18:00:00' })
  t.match(old.declarations.get(enforcement)?.payload, { TargetOSVersion: '18.2', TargetLocalDateTime: '2026-10-08T18:00:00' }, 'the newest its model takes')
  const r = await report()
  t.match(stateOf(r.items, ipad.udid), { state: 'overdue', target_version: '18.3' }, 'the deadline has passed (2026-11-27)')
  t.match(stateOf(r.items, unknown.udid), { state: 'unsupported', detail: 'no release in the catalogue for this model', target_version: null })

  const refused = await api('POST', '/api/v1/update-policies', { body: { name: 'bad', mode: 'specific', target_os_version: '18.2' } })
  t.equal(refused.statusCode, 400)
  t.match(refused.json.errors, [{ pointer: '/target_local_datetime' }])
  t.equal(
    (await api('POST', '/api/v1/update-policies', { body: { name: 'bad', mode: 'latest', latest_within_days: 3, target_os_version: '18.2' } })).statusCode,
    400,
  )
  t.equal(
    (await api('POST', '/api/v1/update-policies', { body: { name: 'latest', mode: 'latest', latest_within_days: 3 } })).statusCode,
    409,
    'names are unique per tenant',
  )

  // Apple publishes 18.4: the policy re-targets the devices whose model takes it.
  const newer = await api('POST', '/api/v1/os-releases/import', {
    body: {
      PublicAssetSets: {
        iOS: [
          { ProductVersion: '18.4', Build: '22E240', PostingDate: '2026-12-01', ExpirationDate: '2027-04-01', SupportedDevices: ['iPad13,1'] },
          { ProductVersion: '18.2', Build: '22C152', PostingDate: '2026-10-01', ExpirationDate: '2027-01-01', SupportedDevices: ['iPad13,1', 'iPad7,5'] },
        ],
      },
    },
  })
  t.equal(newer.statusCode, 200, newer.body)
  t.same(
    (await ipad.runQueue()).filter((c) => c !== 'ProfileList'),
    ['DeclarativeManagement'],
  )
  t.match(ipad.declarations.get(enforcement)?.payload, { TargetOSVersion: '18.4', TargetLocalDateTime: '2026-12-08T18:00:00' })
  t.same(await old.runQueue(), [], 'nothing new for a model 18.4 does not support')

  // Deleting the policy takes the declaration away.
  t.equal((await api('DELETE', `/api/v1/update-policies/${policy.json.id}`)).statusCode, 204)
  await ipad.runQueue()
  t.notOk(ipad.declarations.has(enforcement))
})

/** Runs the device's MDM queue, answering each command with `answers[RequestType]`; the commands it got. */
async function drain(device: DdmDevice, answers: Record<string, PlistDict> = {}): Promise<Array<{ requestType: string; command: PlistDict }>> {
  const ran: Array<{ requestType: string; command: PlistDict }> = []
  let next = commandIn(await device.device.idle())
  while (next) {
    ran.push({ requestType: next.requestType, command: next.command })
    next = commandIn(await device.device.answer(next.uuid, 'Acknowledged', answers[next.requestType] ?? {}))
  }
  return ran
}

t.test('a latest policy finds a Mac by its SoftwareUpdateDeviceID; a Mac without one is unsupported; iPads stay by ProductName', async (t) => {
  const { mdm, api, device, report } = await world(t)
  const db = mdm.database.db
  // Apple's document lists Macs by SoftwareUpdateDeviceID (board IDs), never by ProductName.
  const imported = await api('POST', '/api/v1/os-releases/import', {
    body: {
      PublicAssetSets: {
        macOS: [
          {
            ProductVersion: '15.2',
            Build: '24C101',
            PostingDate: '2099-01-01',
            ExpirationDate: '2099-06-01',
            SupportedDevices: ['J413AP', 'J314sAP', 'VMA2MACOSAP'],
          },
          {
            ProductVersion: '14.7.2',
            Build: '23H311',
            PostingDate: '2098-12-01',
            ExpirationDate: '2099-06-01',
            SupportedDevices: ['J413AP', 'Mac-827FAC58A8FDFA22'],
          },
        ],
        iOS: [{ ProductVersion: '18.2', Build: '22C152', PostingDate: '2099-01-02', ExpirationDate: '2099-06-01', SupportedDevices: ['iPad13,1'] }],
      },
    },
  })
  t.equal(imported.statusCode, 200, imported.body)

  // The Mac tells its SoftwareUpdateDeviceID when the inventory is refreshed (before any policy).
  const mac = await device('13.6', 'Mac14,2')
  t.equal((await api('POST', `/api/v1/devices/${mac.udid}/refresh-inventory`)).statusCode, 201)
  const inventory = await drain(mac, {
    DeviceInformation: { QueryResponses: { ProductName: 'Mac14,2', SoftwareUpdateDeviceID: 'J413AP', OSVersion: '13.6', ModelName: 'MacBook Air' } },
  })
  const information = inventory.find((command) => command.requestType === 'DeviceInformation')
  t.ok((information?.command['Queries'] as string[] | undefined)?.includes('SoftwareUpdateDeviceID'), 'the inventory asks for SoftwareUpdateDeviceID')
  const stored = await db.selectFrom('devices').select(['product_name', 'software_update_device_id']).where('id', '=', mac.udid).executeTakeFirstOrThrow()
  t.same(stored, { product_name: 'Mac14,2', software_update_device_id: 'J413AP' }, 'stored on the device row')
  const detail = await api('GET', `/api/v1/devices/${mac.udid}`)
  t.match(detail.json, { product_name: 'Mac14,2', platform: 'macOS', software_update_device_id: 'J413AP' })

  const bare = await device('13.6', 'Mac14,2')
  t.equal((await api('GET', `/api/v1/devices/${bare.udid}`)).json.software_update_device_id, null)
  const modernMac = await device('14.6', 'Mac14,2')
  // An iPad reports one too (iOS 15+): iPads are still matched by ProductName.
  const ipad = await device('17.6', 'iPad13,1')
  for (const [d, id] of [
    [modernMac, 'J413AP'],
    [ipad, 'J407AP'],
  ] as const)
    await db.updateTable('devices').set({ software_update_device_id: id }).where('id', '=', d.udid).execute()

  const policy = await api('POST', '/api/v1/update-policies', { body: { name: 'latest', mode: 'latest', latest_within_days: 7 } })
  t.equal(policy.statusCode, 201, policy.body)

  const r = await report()
  t.match(
    stateOf(r.items, mac.udid),
    { path: 'mdm', state: 'pending', model: 'Mac14,2', target_version: '15.2', target_build: '24C101', deadline: '2099-01-08T18:00:00' },
    'the newest release listing J413AP',
  )
  t.match(stateOf(r.items, modernMac.udid), { path: 'ddm', state: 'pending', target_version: '15.2' })
  t.match(
    stateOf(r.items, bare.udid),
    { path: 'mdm', state: 'unsupported', target_version: null, detail: 'no release in the catalogue for this model' },
    'no SoftwareUpdateDeviceID: its ProductName is in no release',
  )
  t.match(stateOf(r.items, ipad.udid), { path: 'ddm', state: 'pending', target_version: '18.2' }, 'by ProductName, not its SoftwareUpdateDeviceID')

  // The MDM path: ScheduleOSUpdate with the Mac's release; nothing for the Mac the catalogue cannot place.
  const scheduled = await drain(mac)
  t.same(
    scheduled.map((command) => command.requestType),
    ['ScheduleOSUpdate', 'OSUpdateStatus'],
  )
  t.match(scheduled.find((command) => command.requestType === 'ScheduleOSUpdate')?.command, { Updates: [{ ProductVersion: '15.2', InstallAction: 'Default' }] })
  t.same(await drain(bare), [], 'the Mac without SoftwareUpdateDeviceID gets no update')
  await ipad.runQueue()
  t.match(ipad.declarations.get(enforcement)?.payload, { TargetOSVersion: '18.2', TargetBuildVersion: '22C152' })
  await modernMac.runQueue()
  t.match(
    modernMac.declarations.get(enforcement)?.payload,
    { TargetOSVersion: '15.2', TargetBuildVersion: '24C101', TargetLocalDateTime: '2099-01-08T18:00:00' },
    'the declarative path for a Mac on macOS 14+',
  )
})
