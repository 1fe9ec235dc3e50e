// ABM/ASM device sync throughput in-process: a full fetch of N devices from the fake ABM
// server over loopback HTTP (OAuth session, 1000 per page), a sync of 10% deltas, and the
// default PreStage's assignment to 1000 new devices, on PGlite or PostgreSQL.
// Run: npx tsx scripts/bench-dep.ts [--backend postgres|pglite] [--devices 20000]
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { createOrchard } from '../src/main.js'
import { sealServerToken, serverTokenMessage } from '../test/helpers/dep-fixture.js'
import { startFakeAbm } from '../test/helpers/fake-abm.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const backend = args.get('backend') ?? 'postgres'
const devices = Number(args.get('devices') ?? 20_000)
process.env['ORCHARD_TEST_BACKEND'] = backend
const { createTestDatabase } = await import('../test/helpers/database.js')

const cleanups: Array<() => unknown> = []
const database = await createTestDatabase({ teardown: (fn) => void cleanups.push(fn) })
const abm = await startFakeAbm()
const apiKey = 'bench-api-key-0123456789abcdef'
const config = loadConfig(
  {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_PUBLIC_URL: 'https://mdm.example.test',
    ORCHARD_API_KEYS: apiKey,
    ORCHARD_REPUSH_LOOP_SECONDS: '0',
    ORCHARD_WEBHOOK_WORKER: 'false',
    ORCHARD_ABM_URL: abm.url,
    ORCHARD_DEP_SYNC_SECONDS: '0',
  },
  [],
)
const { app, dep } = await createOrchard(config, database, pino({ level: 'silent' }))
const call = async <T = unknown>(method: 'POST' | 'PUT', url: string, payload: unknown, contentType = 'application/json'): Promise<T> => {
  const response = await app.inject({ method, url, headers: { authorization: `Bearer ${apiKey}`, 'content-type': contentType }, payload: payload as string })
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`)
  return response.json<T>()
}

try {
  const token = await call<{ id: string; certificate_pem: string }>('POST', '/api/v1/dep/tokens', JSON.stringify({ name: 'bench' }))
  await call(
    'PUT',
    `/api/v1/dep/tokens/${token.id}/server-token`,
    sealServerToken(serverTokenMessage(abm.credentials), token.certificate_pem),
    'application/pkcs7-mime',
  )
  abm.addDevices(devices)

  const time = async (label: string, count: number, run: () => Promise<unknown>) => {
    const cpu = process.cpuUsage()
    const started = performance.now()
    await run()
    const ms = performance.now() - started
    const used = process.cpuUsage(cpu)
    console.log(
      `${backend}: ${label}: ${count} devices in ${(ms / 1000).toFixed(2)} s = ${Math.round(count / (ms / 1000))}/s (${((used.user + used.system) / 1000 / count).toFixed(3)} ms CPU per device, fake server included)`,
    )
  }
  await time('full fetch', devices, () => dep.syncToken(token.id))
  const serials = [...abm.devices.keys()]
  const changed = Math.floor(devices / 10)
  for (let i = 0; i < changed; i++) abm.modifyDevice(serials[i]!, { color: 'blue' })
  await time('sync deltas', changed, () => dep.syncToken(token.id))
  await call('POST', '/api/v1/dep/profiles', JSON.stringify({ token_id: token.id, name: 'Default', default: true }))
  abm.addDevices(1000)
  await time('sync + default assignment of new devices', 1000, () => dep.syncToken(token.id))
} finally {
  await app.close()
  await abm.close()
  for (const cleanup of cleanups.reverse()) await cleanup()
}
