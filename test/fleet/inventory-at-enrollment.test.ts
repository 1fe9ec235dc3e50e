// Inventory at enrollment and on a schedule (src/fleet/inventory-refresh.ts): a device that
// just enrolled finds the five inventory queries in its queue; the scheduled refresh asks
// again only devices whose inventory got old, never twice while one is open; 0 turns it off.
import { mock } from 'node:test'
import { sql } from 'kysely'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import type { PlistDict } from '../../src/mdm/plist.js'
import { backgroundInventoryPriority, inventoryQueries, inventoryRequestTypes } from '../../src/fleet/inventory-refresh.js'
import { startBackgroundWork } from '../../src/ops/background.js'
import { apiClient } from '../helpers/api.js'
import { testLogger } from '../helpers/app.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { commandIn, type SimulatedDevice } from '../helpers/simulated-device.js'

const day = 86_400_000
/** Only the inventory commands (other features may queue theirs, e.g. after DeviceInformation). */
const inventoryOnly = (types: string[]) => types.filter((type) => (inventoryRequestTypes as readonly string[]).includes(type))

function answerFor(device: SimulatedDevice, requestType: string): PlistDict {
  switch (requestType) {
    case 'DeviceInformation':
      return { QueryResponses: { IsSupervised: true, DeviceName: 'Front desk', OSVersion: '18.1', SerialNumber: device.serialNumber } }
    case 'SecurityInfo':
      return { SecurityInfo: { PasscodePresent: true } }
    case 'InstalledApplicationList':
      return { InstalledApplicationList: [{ Identifier: 'com.example.app', Name: 'Example', Version: '1', ShortVersion: '1.0', IsManaged: false }] }
    case 'ProfileList':
      return { ProfileList: [] }
    case 'CertificateList':
      return { CertificateList: [] }
    default:
      return {}
  }
}

/** Runs the device's queue to the end, answering each command; the commands it got, in order. */
async function drain(device: SimulatedDevice): Promise<Array<{ requestType: string; command: PlistDict }>> {
  const seen: Array<{ requestType: string; command: PlistDict }> = []
  let response = await device.idle()
  for (let command = commandIn(response); command; command = commandIn(response)) {
    seen.push({ requestType: command.requestType, command: command.command })
    if (seen.length > 20) throw new Error('the queue does not drain')
    response = await device.answer(command.uuid, 'Acknowledged', answerFor(device, command.requestType))
  }
  return seen
}

/** The device channel's open commands, by request type, with their priority. */
async function openCommands(mdm: MdmFixture, deviceId: string) {
  return mdm.database.db
    .selectFrom('command_targets as ct')
    .innerJoin('commands as c', 'c.uuid', 'ct.command_uuid')
    .select(['c.request_type', 'ct.priority'])
    .where('ct.enrollment_id', '=', deviceId)
    .where('ct.status', 'in', ['Pending', 'NotNow'])
    .orderBy('ct.seq')
    .execute()
}

// On by default (ORCHARD_INVENTORY_AT_ENROLLMENT); the test app turns it off for the other tests.
const atEnrollment = { ORCHARD_INVENTORY_AT_ENROLLMENT: 'true' }

t.test('a device that just enrolled is asked for its inventory; once answered, supervised is known', async (t) => {
  const mdm = await setupMdm(t, atEnrollment)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()

  t.same(
    inventoryOnly((await openCommands(mdm, device.udid)).map((row) => row.request_type)),
    [...inventoryRequestTypes],
    'the five inventory commands are queued right after the TokenUpdate',
  )
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).json.supervised, null, 'not known before the answers')

  const seen = await drain(device)
  t.same(inventoryOnly(seen.map((c) => c.requestType)), [...inventoryRequestTypes])
  const information = seen.find((c) => c.requestType === 'DeviceInformation')!
  t.same(information.command['Queries'], inventoryQueries, 'DeviceInformation asks for the full query list')
  t.ok((information.command['Queries'] as string[]).includes('IsSupervised'))

  const detail = await api('GET', `/api/v1/devices/${device.udid}`)
  t.equal(detail.statusCode, 200)
  t.match(detail.json, {
    supervised: true,
    inventory: {
      device_information: { DeviceName: 'Front desk' },
      security_info: { PasscodePresent: true },
      applications: [{ identifier: 'com.example.app' }],
    },
  })
})

t.test('a User Enrollment gets only the inventory commands allowed there, and enrolls', async (t) => {
  const mdm = await setupMdm(t, atEnrollment)
  const device = await mdm.enrolledDevice({ userEnrollment: true })
  const queued = (await openCommands(mdm, device.udid)).map((row) => row.request_type)
  t.ok(queued.includes('DeviceInformation'), `queued: ${queued.join(', ')}`)
  t.ok(queued.every((type) => (inventoryRequestTypes as readonly string[]).includes(type)))
  const enrollment = await mdm.database.db.selectFrom('enrollments').select('enabled').where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.equal(enrollment.enabled, true)
})

t.test('the scheduled refresh asks only devices whose inventory is old, never twice while one is open', async (t) => {
  const mdm = await setupMdm(t, atEnrollment)
  const db = mdm.database.db
  const inventory = mdm.orchard.inventory
  const threshold = () => new Date(Date.now() - day)

  const fresh = await mdm.enrolledDevice()
  const old = await mdm.enrolledDevice()
  const retired = await mdm.enrolledDevice()
  const silent = await mdm.enrolledDevice()
  for (const device of [fresh, old, retired]) await drain(device)

  t.equal(await inventory.refreshStale(threshold()), 0, 'nobody: three answered just now, one has its enrollment inventory open')
  t.same(await openCommands(mdm, silent.udid).then((rows) => rows.filter((r) => r.request_type === 'DeviceInformation').length), 1)

  // Two days later for `old`, `retired` and `silent` (its open query too).
  const twoDaysAgo = new Date(Date.now() - 2 * day)
  await db.updateTable('devices').set({ device_information_at: twoDaysAgo }).where('id', 'in', [old.udid, retired.udid, silent.udid]).execute()
  await sql`update command_targets set created_at = ${twoDaysAgo} where enrollment_id in (${old.udid}, ${retired.udid}, ${silent.udid})`.execute(db)
  await db.updateTable('devices').set({ lifecycle_state: 'retired' }).where('id', '=', retired.udid).execute()

  t.equal(await inventory.refreshStale(threshold()), 1, 'only the active device whose answer is old and that has nothing open')
  const queued = await openCommands(mdm, old.udid)
  t.same(inventoryOnly(queued.map((row) => row.request_type)), [...inventoryRequestTypes])
  t.ok(
    queued.filter((row) => inventoryOnly([row.request_type]).length > 0).every((row) => row.priority === backgroundInventoryPriority),
    'after what admins queue',
  )
  t.same(inventoryOnly((await openCommands(mdm, fresh.udid)).map((row) => row.request_type)), [], 'the fresh device is not asked')
  t.same(inventoryOnly((await openCommands(mdm, retired.udid)).map((row) => row.request_type)), [], 'the retired device is not asked')
  t.equal((await openCommands(mdm, silent.udid)).filter((r) => r.request_type === 'DeviceInformation').length, 1, 'the silent device is not asked twice')

  t.equal(await inventory.refreshStale(threshold()), 0, 'the next run asks nobody while the query is open')
  t.equal(inventoryOnly((await openCommands(mdm, old.udid)).map((row) => row.request_type)).length, 5)

  // Answered: fresh again, not asked until it gets old once more.
  const seen = await drain(old)
  t.same(inventoryOnly(seen.map((c) => c.requestType)), [...inventoryRequestTypes])
  t.equal(await inventory.refreshStale(threshold()), 0)
  const stored = await db.selectFrom('devices').select('device_information_at').where('id', '=', old.udid).executeTakeFirstOrThrow()
  t.ok(stored.device_information_at! > threshold(), 'the answer moved device_information_at')

  // A device that answers DeviceInformation with an error is asked again at the next period, not at every run.
  await sql`update command_targets set created_at = now() - interval '2 days' where enrollment_id = ${old.udid}`.execute(db)
  await db.updateTable('devices').set({ device_information_at: twoDaysAgo }).where('id', '=', old.udid).execute()
  t.equal(await inventory.refreshStale(threshold()), 1)
  let response = await old.idle()
  for (let command = commandIn(response); command; command = commandIn(response)) {
    response =
      command.requestType === 'DeviceInformation'
        ? await old.answer(command.uuid, 'Error')
        : await old.answer(command.uuid, 'Acknowledged', answerFor(old, command.requestType))
  }
  t.equal(await inventory.refreshStale(threshold()), 0, 'asked within the period: not again')
})

t.test('the background work runs the refresh hourly with the configured age; 0 turns it off', async (t) => {
  // Every dependency but the inventory answers nothing.
  const nothing = (): any =>
    new Proxy(function () {}, {
      get: (_target, key) => (key === 'then' ? undefined : nothing()),
      apply: async () => [],
    })
  const run = async (env: Record<string, string>) => {
    const calls: Date[] = []
    const config = loadConfig({ ORCHARD_WEBHOOK_WORKER: 'false', ...env }, [])
    const given: Record<string, unknown> = {
      config,
      inventory: {
        refreshStale: async (olderThan: Date) => {
          calls.push(olderThan)
          return 0
        },
      },
      logger: testLogger(),
    }
    const deps = new Proxy(given, { get: (target, key: string) => (key in target ? target[key] : nothing()) })
    mock.timers.enable({ apis: ['setTimeout'] })
    try {
      const background = startBackgroundWork(deps as unknown as Parameters<typeof startBackgroundWork>[0])
      for (let hour = 0; hour < 3; hour++) {
        mock.timers.tick(3_600_000)
        await new Promise((resolve) => setImmediate(resolve))
      }
      await background.stop()
      return { calls, at: Date.now() }
    } finally {
      mock.timers.reset()
    }
  }

  const byDefault = await run({})
  t.equal(byDefault.calls.length, 3, 'hourly')
  t.ok(Math.abs(byDefault.at - byDefault.calls.at(-1)!.getTime() - day) < 60_000, 'asks for answers older than 24 hours')
  const twoHours = await run({ ORCHARD_INVENTORY_REFRESH_HOURS: '2' })
  t.ok(Math.abs(twoHours.at - twoHours.calls.at(-1)!.getTime() - 2 * 3_600_000) < 60_000)
  t.same((await run({ ORCHARD_INVENTORY_REFRESH_HOURS: '0' })).calls, [], 'off')
})

t.test('ORCHARD_INVENTORY_AT_ENROLLMENT=false: nothing is queued at enrollment', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_INVENTORY_AT_ENROLLMENT: 'false' })
  const device = await mdm.enrolledDevice()
  t.same(inventoryOnly((await openCommands(mdm, device.udid)).map((row) => row.request_type)), [])
})
