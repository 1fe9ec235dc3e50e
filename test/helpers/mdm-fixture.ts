// One test's MDM world: its own database, a device CA the app trusts, an API key, and
// simulated devices that talk to the real app in-process.
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { Logger } from 'pino'
import { encodePlist, type PlistDict } from '../../src/mdm/plist.js'
import { buildTestApp, type TestApp } from './app.js'
import { createTestDatabase, type TestDatabase } from './database.js'
import { createDeviceCa, injectTransport, SimulatedDevice, type DeviceCa, type DeviceOptions } from './simulated-device.js'

export const testApiKey = 'test-api-key-0123456789abcdef'

export interface MdmFixture extends TestApp {
  database: TestDatabase
  ca: DeviceCa
  newDevice(options?: DeviceOptions): Promise<SimulatedDevice>
  enrolledDevice(options?: DeviceOptions): Promise<SimulatedDevice>
  /** Queues a command through the operator API; returns the parsed JSON answer. */
  enqueue(ids: string[], requestType: string, keys?: PlistDict, query?: Record<string, string>): Promise<{ statusCode: number; json: any; uuid: string }>
  /** Everything a rejected request must leave untouched. */
  snapshot(): Promise<unknown>
  targetStatus(enrollmentId: string, commandUuid: string): Promise<Record<string, any> | undefined>
}

/** `options.logger`: the app logs there instead of nowhere (see buildTestApp). */
export async function setupMdm(
  t: { teardown(fn: () => unknown): void },
  env: Record<string, string> = {},
  options: { logger?: Logger } = {},
): Promise<MdmFixture> {
  const database = await createTestDatabase(t)
  const ca = await createDeviceCa()
  const testApp = await buildTestApp(t, database, { ORCHARD_DEVICE_CA_FILES: ca.pemFile, ORCHARD_API_KEYS: testApiKey, ...env }, options)
  const transport = injectTransport(testApp.app)
  const db = database.db
  return {
    ...testApp,
    database,
    ca,
    newDevice: (options) => SimulatedDevice.create(ca, transport, options),
    async enrolledDevice(options) {
      const device = await SimulatedDevice.create(ca, transport, options)
      await device.enroll()
      return device
    },
    async enqueue(ids, requestType, keys = {}, query = {}) {
      const uuid = randomUUID()
      const payload = encodePlist({ CommandUUID: uuid, Command: { RequestType: requestType, ...keys } })
      const search = new URLSearchParams(query).toString()
      const response = await testApp.app.inject({
        method: 'POST',
        url: `/api/v1/enqueue/${ids.map(encodeURIComponent).join(',')}${search ? `?${search}` : ''}`,
        headers: { authorization: `Bearer ${testApiKey}`, 'content-type': 'application/x-apple-plist' },
        payload,
      })
      return { statusCode: response.statusCode, json: response.json(), uuid }
    },
    async snapshot() {
      const tables = ['devices', 'enrollments', 'commands', 'command_targets', 'bootstrap_tokens', 'installed_applications', 'ddm_status_reports']
      const out: Record<string, unknown> = {}
      for (const table of tables) {
        const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table)} order by 1, 2`.execute(db)
        out[table] = rows.map((row) => JSON.stringify(row))
      }
      return out
    },
    async targetStatus(enrollmentId, commandUuid) {
      return db.selectFrom('command_targets').selectAll().where('enrollment_id', '=', enrollmentId).where('command_uuid', '=', commandUuid).executeTakeFirst()
    },
  }
}
