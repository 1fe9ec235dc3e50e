// Apps and Books at fleet scale, in-process: one asset to N devices through a blueprint, on
// PGlite or PostgreSQL, against the fake Apps and Books v2 server over loopback HTTP.
// The devices' answers enter where the MDM endpoint hands them on (the command_result event
// of device/events.ts), so the figures are Orchard's convergence and licence work without the
// MDM transport (signature, plist, HTTP), which `npm run bench -- --only mdm` measures per
// command. Phases: each device reports its app list (licence wanted), licence rounds
// (associate in batches, event status), each device reports again (InstallApplication
// queued), each acknowledges the install; then the devices are retired and the licences
// released. Reports seconds, Orchard's CPU (the fake server's included: same process) and
// the Apple calls per phase.
// Run: npx tsx scripts/bench-vpp.ts [--backend postgres|pglite] [--devices 10000]
import { randomBytes, randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { sql } from 'kysely'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { createOrchard } from '../src/main.js'
import { startFakeVpp } from '../test/helpers/fake-vpp.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const backend = args.get('backend') ?? 'postgres'
const devices = Number(args.get('devices') ?? 10_000)
process.env['ORCHARD_TEST_BACKEND'] = backend
const { createTestDatabase } = await import('../test/helpers/database.js')

const cleanups: Array<() => unknown> = []
const database = await createTestDatabase({ teardown: (fn) => void cleanups.push(fn) })
const fake = await startFakeVpp({ pollsUntilComplete: 1 })
const apiKey = 'bench-api-key-0123456789abcdef'
const config = loadConfig(
  {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_PUBLIC_URL: 'https://mdm.example.test',
    ORCHARD_API_KEYS: apiKey,
    ORCHARD_REPUSH_LOOP_SECONDS: '0',
    ORCHARD_WEBHOOK_WORKER: 'false',
    ORCHARD_VPP_URL: `${fake.url}/mdm/v2`,
    ORCHARD_VPP_SYNC_SECONDS: '0',
    // Events are polled, as without a public URL Apple can reach.
    ORCHARD_VPP_NOTIFICATION_URL: 'off',
    ORCHARD_BLUEPRINT_CHECK_HOURS: '0',
  },
  [],
)
const orchard = await createOrchard(config, database, pino({ level: 'silent' }))
const { app, vpp, blueprints } = orchard
const db = database.db
const call = async <T = unknown>(method: 'POST' | 'PUT', url: string, body: unknown): Promise<T> => {
  const response = await app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  })
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`)
  return response.json<T>()
}

const adamId = '361309726'
const ids = Array.from({ length: devices }, (_, i) => `VPP-BENCH-${String(i).padStart(6, '0')}`)

/** CPU seconds of the PostgreSQL server processes so far (0 on PGlite: it runs inside this process). */
function postgresCpuSeconds(): number {
  if (backend !== 'postgres') return 0
  let ticks = 0
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      // the process ended
    }
  }
  return ticks / 100
}

async function phase(label: string, run: () => Promise<string | void>): Promise<void> {
  const calls = fake.requests.length
  const cpu = process.cpuUsage()
  const database = postgresCpuSeconds()
  const started = performance.now()
  const extra = await run()
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  const cpuSeconds = (used.user + used.system) / 1e6
  const databaseSeconds = postgresCpuSeconds() - database
  const perDevice = (((cpuSeconds + databaseSeconds) * 1000) / devices).toFixed(3)
  console.log(
    `${backend}: ${label}: ${seconds.toFixed(2)} s; CPU ${cpuSeconds.toFixed(2)} s Orchard + fake${backend === 'postgres' ? `, ${databaseSeconds.toFixed(2)} s PostgreSQL` : ' (database inside)'} = ${perDevice} ms per device; ${fake.requests.length - calls} Apple call(s)${extra ? `; ${extra}` : ''}`,
  )
}

/** What the MDM endpoint hands on when a device answers `requestType` with Acknowledged. */
async function answer(deviceId: string, requestType: string, commandUuid: string = randomUUID()): Promise<void> {
  await blueprints.commandResult({ deviceId, enrollmentId: deviceId, requestType, commandUuid, status: 'Acknowledged', report: {} })
}

async function eachDevice(run: (deviceId: string) => Promise<void>): Promise<void> {
  // Devices answer concurrently, as they do: 50 at a time (the bench's MDM concurrency).
  let next = 0
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < ids.length) await run(ids[next++]!)
    }),
  )
}

async function licenceRounds(): Promise<string> {
  let rounds = 0
  let assigned = 0
  let released = 0
  for (;;) {
    const round = await vpp.licences.advance()
    rounds++
    assigned += round.assigned.length
    released += round.released
    if (round.open === 0 && round.requested === 0 && round.releasing === 0 && round.assigned.length === 0 && round.released === 0 && round.failed === 0) break
  }
  return `${rounds} round(s), ${assigned} assigned, ${released} released`
}

try {
  const location = fake.addLocation({ locationName: 'Bench' })
  fake.addAsset(location, { adamId, totalCount: devices })
  const token = await call<{ id: string }>('POST', '/api/v1/vpp/tokens', { name: 'bench', content_token: location.sToken })
  await call('POST', `/api/v1/vpp/tokens/${token.id}/sync`, {})
  await sql`insert into devices (id, udid, serial_number, topic, kind)
    select 'VPP-BENCH-' || lpad(g::text, 6, '0'), 'VPP-BENCH-' || lpad(g::text, 6, '0'), 'SN' || lpad(g::text, 8, '0'), 'com.apple.mgmt.bench', 'work'
    from generate_series(0, ${devices - 1}) g`.execute(db)
  await sql`insert into enrollments (id, device_id, channel, enabled)
    select id, id, 'device', true from devices where id like 'VPP-BENCH-%'`.execute(db)
  // The blueprint: its creation asks the devices for their lists (queued, not measured).
  await call('POST', '/api/v1/blueprints', { name: 'bench apps', applications: [{ bundle_id: 'com.example.notes', vpp_asset: adamId }] })

  await phase(`${devices} devices report their apps (licence wanted)`, () => eachDevice((id) => answer(id, 'InstalledApplicationList')))
  await phase('licence rounds until nothing moves', licenceRounds)
  await phase(`${devices} devices report again (InstallApplication queued)`, () => eachDevice((id) => answer(id, 'InstalledApplicationList')))
  const installs = await db
    .selectFrom('command_targets as ct')
    .innerJoin('commands as c', 'c.uuid', 'ct.command_uuid')
    .select(['ct.enrollment_id', 'c.uuid'])
    .where('c.request_type', '=', 'InstallApplication')
    .where('ct.enrollment_id', 'like', 'VPP-BENCH-%')
    .execute()
  const installOf = new Map(installs.map((row) => [row.enrollment_id, row.uuid]))
  await phase(`${devices} devices acknowledge the install`, () => eachDevice((id) => answer(id, 'InstallApplication', installOf.get(id))))
  const states = await db
    .selectFrom('device_config_state')
    .select((eb) => ['status', eb.fn.countAll<string>().as('n')])
    .where('item_type', '=', 'app')
    .groupBy('status')
    .execute()
  console.log(
    `${backend}: ${installOf.size} InstallApplication queued; app states ${states.map((s) => `${s.status} ${s.n}`).join(', ')}; Apple holds ${location.assignments.length} licences`,
  )

  await db.updateTable('devices').set({ lifecycle_state: 'retired' }).where('id', 'like', 'VPP-BENCH-%').execute()
  await phase(`${devices} devices retired: licences released`, licenceRounds)
  console.log(`${backend}: Apple holds ${location.assignments.length} licences after the release`)
} finally {
  await app.close()
  await fake.close()
  for (const cleanup of cleanups.reverse()) await cleanup()
}
