// Scale (issue 26): one PostgreSQL with a fleet of N devices (default 100,000), measured first at
// a small fleet (default 1,000) and again at N, so every figure is shown at both sizes. Before
// each phase, --warm-up devices enroll and drain unmeasured (V8 and statement preparation).
//  - enrollment: a sample of new devices (EC P-256 identities) enrolling through the real MDM
//    endpoints (Authenticate + TokenUpdate, signed check-ins), several in flight: devices/s, CPU,
//    and with pg_stat_statements preloaded PostgreSQL's top statements;
//  - device lists: GET /api/v1/devices, a page of 100, for every documented sort and for a filter
//    plus a sort, first page and page 3 (cursor): p50/p95; at N the EXPLAIN (ANALYZE) of the
//    statement each runs, captured from the pg client, with any sequential scan of a fleet table
//    or top-N sort flagged;
//  - one command to the whole fleet (POST /api/v1/commands with `filter: {}`): the request's time
//    and answer size, then the time until its job has queued (and pushed) every target;
//  - Idle -> next command alone (Idles not answered, one in flight), then the drain: the sample
//    takes its queue (enrollment inventory plus the fleet command) answering as a device would,
//    a quarter one device at a time and the rest several in flight: commands/s, server time of
//    the requests that delivered a command, CPU and WAL per drained command;
//  - sizes: bytes per row of the fleet tables, the database;
//  - then H finished targets of history (default 10,000,000 rows in command_targets, written by
//    SQL), the measures again on top of them, and retention pruning of their oldest ninth while
//    devices drain.
// The fleet itself is written by SQL (devices, enrollments with push tokens, inventory columns
// spread over models, OS versions, kinds and 24 tenants); it never talks. No APNs push
// certificate is set, so each push finds none (npm run bench -- --only push measures APNs).
// Run: npx tsx scripts/bench-scale.ts [--devices 100000] [--small 1000] [--sample 200]
//   [--history 10000000] [--concurrency 8] [--runs 20] [--warm-up 200]
//   [--idle-rounds 20] [--history-only 1: the fleet by SQL, then only the measures on history]
//   or, for the enrollment rate of the first and last tenth alone: --tenths 1 [--devices 100000]
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import pg from 'pg'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { openPostgresDatabase, type DatabaseHandle } from '../src/db/database.js'
import { createOrchard } from '../src/main.js'
import { answerCommand, newDeviceState } from '../src/simulator/device-answers.js'
import { commandIn } from '../src/simulator/simulated-device.js'
import { createDeviceCa, injectTransport, SimulatedDevice } from '../test/helpers/simulated-device.js'
import { cpuSeconds, gcPauses, latencySummary, percentile, postgresPids, quietServerEnv, runPool } from './bench-common.js'
import { phaseStatements, statementLines } from './bench-statements.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const fleetSize = Number(args.get('devices') ?? 100_000)
const smallSize = Math.min(fleetSize, Number(args.get('small') ?? 1_000))
const sampleSize = Number(args.get('sample') ?? 200)
const historyRows = Number(args.get('history') ?? 10_000_000)
const concurrency = Number(args.get('concurrency') ?? 8)
const runs = Number(args.get('runs') ?? 20)
const idleRounds = Number(args.get('idle-rounds') ?? 20)
process.env['ORCHARD_TEST_BACKEND'] = 'postgres'
const { createTestDatabase } = await import('../test/helpers/database.js')

// The statements the server sends, while `captured` is set (for EXPLAIN).
let captured: Array<{ text: string; values: unknown[] }> | null = null
const clientQuery = pg.Client.prototype.query as (...rest: unknown[]) => unknown
pg.Client.prototype.query = function (this: pg.Client, ...rest: unknown[]) {
  const [first, second] = rest
  if (captured && typeof first === 'string') captured.push({ text: first, values: Array.isArray(second) ? second : [] })
  else if (captured && first && typeof first === 'object' && 'text' in first) {
    const config = first as { text: string; values?: unknown[] }
    captured.push({ text: config.text, values: config.values ?? [] })
  }
  return clientQuery.apply(this, rest)
} as typeof pg.Client.prototype.query

const apiKey = 'bench-api-key-0123456789abcdef'
const cleanups: Array<() => unknown> = []
const created = await createTestDatabase({ teardown: (fn) => void cleanups.push(fn) })
const database: DatabaseHandle = openPostgresDatabase({ connectionString: created.url!, poolMax: 10 })
cleanups.push(() => database.close())
const db = database.db
// PostgreSQL's account of the enrollment phases (with pg_stat_statements preloaded).
const statementsClient = new pg.Client({ connectionString: created.url! })
await statementsClient.connect()
cleanups.push(() => statementsClient.end())
const statements = await phaseStatements(statementsClient)
const ca = await createDeviceCa('Bench device CA')
const config = loadConfig(
  {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_PUBLIC_URL: 'https://mdm.example.test',
    ORCHARD_API_KEYS: apiKey,
    ORCHARD_DEVICE_CA_FILES: ca.pemFile,
    ...quietServerEnv,
  },
  [],
)
// Info-level logs as in production (an access line per request), written to /dev/null.
const orchard = await createOrchard(config, database, pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false })))
const { app } = orchard
cleanups.push(() => app.close())

// Server time of MDM requests: fastify's onRequest to onResponse.
const startedAt = new WeakMap<object, number>()
let lastServerMs = 0
app.addHook('onRequest', async (request) => void startedAt.set(request, performance.now()))
app.addHook('onResponse', async (request) => void (lastServerMs = performance.now() - (startedAt.get(request) ?? performance.now())))

interface Answer {
  items: Array<{ id: string }>
  next_cursor: string | null
  id: string
  state: string
  outcomes: Record<string, number>
}

async function call(method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown): Promise<{ json: Answer; bytes: number; status: number }> {
  const response = await app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  })
  if (response.statusCode >= 300) throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`)
  return { json: response.json<Answer>(), bytes: response.rawPayload.length, status: response.statusCode }
}

const line = (size: number, label: string, text: string) => console.log(`${size.toLocaleString('en')} devices: ${label}: ${text}`)
const seconds = (from: number) => (performance.now() - from) / 1000
const databasePids = () => postgresPids()

/** CPU of this process (Orchard and its in-process devices) and of PostgreSQL, per unit. */
function cpuMeter(): (units: number, unit: string) => string {
  const process0 = process.cpuUsage()
  // Per process: a backend that ends meanwhile (the pool closes idle connections) takes its
  // CPU with it, and must not make the sum go down; one that starts counts from zero.
  const before = new Map(databasePids().map((pid) => [pid, cpuSeconds([pid])]))
  return (units, unit) => {
    const used = process.cpuUsage(process0)
    const orchardMs = (used.user + used.system) / 1000
    let postgresMs = 0
    for (const pid of databasePids()) postgresMs += (cpuSeconds([pid]) - (before.get(pid) ?? 0)) * 1000
    return `CPU ${((orchardMs + postgresMs) / units).toFixed(2)} ms per ${unit} (this process ${(orchardMs / units).toFixed(2)}, PostgreSQL ${(postgresMs / units).toFixed(2)})`
  }
}

const walLsn = async () => (await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(db)).rows[0]!.lsn
const walBytes = async (from: string) =>
  Number((await sql<{ n: string }>`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${from}::pg_lsn)::text as n`.execute(db)).rows[0]!.n)

async function settle(): Promise<void> {
  // As autovacuum would after bulk writes (this machine's cluster may run without it).
  await sql`vacuum analyze`.execute(db)
  await sql`checkpoint`.execute(db)
}

// --- The fleet, written by SQL ----------------------------------------------------------------
const tenants = Array.from({ length: 24 }, (_, i) => `dept-${String(i).padStart(2, '0')}`)
for (const id of tenants)
  await db
    .insertInto('tenants')
    .values({ id, name: `Department ${id}` })
    .execute()
let written = 0

/** Writes devices until the fleet (these rows and the devices enrolled through the protocol) has `total`. */
async function growFleet(total: number): Promise<void> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from devices`.execute(db)
  const from = written + 1
  const to = written + Math.max(0, total - rows[0]!.n)
  for (let start = from; start <= to; start += 20_000) {
    const end = Math.min(to, start + 19_999)
    await sql`
      insert into devices (id, udid, serial_number, device_name, model, model_name, product_name, os_version, build_version, kind, is_supervised,
        tenant_id, topic, identity_sha256, identity_not_after, authenticated_at, created_at)
      select id, id, upper(substr(md5('serial' || i), 1, 12)), 'iPad ' || i, 'MK2K3LL/A', 'iPad',
        (array['iPad13,1', 'iPad14,2', 'iPad13,18', 'iPhone15,2', 'iPhone16,1', 'iPhone14,7', 'iPad12,1', 'iPad16,3'])[1 + (i * 3) % 8],
        (array['16.7.10', '17.5.1', '17.6', '17.7.2', '18.0', '18.1.1', '18.2', '15.8.3'])[1 + (i * 11) % 8], '22B83',
        (array['work', 'function', 'personal', 'work', 'function'])[1 + (i * 17) % 5], (i * 19) % 10 < 7,
        (${tenants}::text[])[1 + (i * 13) % 24], 'com.apple.mgmt.External.bench', encode(sha256(id::bytea), 'hex'), now() + interval '365 days',
        now() - make_interval(mins => ${fleetSize + 1} - i), now() - make_interval(mins => ${fleetSize + 1} - i)
      from (select i, 'SCALE-' || lpad(i::text, 8, '0') as id from generate_series(${start}::int, ${end}::int) i) x`.execute(db)
    await sql`
      insert into enrollments (id, device_id, channel, enabled, topic, push_token, push_magic, token_update_count, token_updated_at, last_seen_at)
      select id, id, 'device', true, topic, sha256(id::bytea), md5(id), 1, authenticated_at,
        now() - make_interval(secs => abs(hashtext(id)) % (90 * 86400))
      from devices where id between ${`SCALE-${String(start).padStart(8, '0')}`} and ${`SCALE-${String(end).padStart(8, '0')}`}`.execute(db)
  }
  written = to
}

// --- Measures -------------------------------------------------------------------------------
const installedApps = Array.from({ length: 20 }, (_, i) => ({
  Identifier: `com.example.app${i}`,
  Name: `App ${i}`,
  ShortVersion: '1.0',
  Version: '100',
  BundleSize: 10_000_000 + i,
  DynamicSize: 0,
  IsValidated: true,
}))

async function newDevices(count: number, label: string): Promise<SimulatedDevice[]> {
  const devices: SimulatedDevice[] = []
  for (let i = 0; i < count; i++)
    devices.push(await SimulatedDevice.create(ca, injectTransport(app), { serialNumber: `${label}${String(i).padStart(6, '0')}`, keyAlgorithm: 'ec-p256' }))
  return devices
}

/** Enrolls `devices` through the MDM endpoints, `concurrency` in flight; prints and returns devices/s. */
async function enrollSample(size: number, devices: SimulatedDevice[], label = 'enrollment', from = ''): Promise<number> {
  const cpu = cpuMeter()
  const phase = await statements.start()
  const started = performance.now()
  await runPool(devices, concurrency, (device) => device.enroll())
  const took = seconds(started)
  const accounted = await phase()
  const rate = devices.length / took
  line(
    size,
    label,
    `${rate.toFixed(0)} devices/s (${devices.length} through the MDM endpoints${from}, ${concurrency} in flight, ${took.toFixed(0)} s); ${cpu(devices.length, 'enrollment')}`,
  )
  for (const text of statementLines(`${size} devices: ${label}`, accounted, devices.length, 'enrollment')) console.log(text)
  return rate
}

/** Idle, then each command answered as a device would, until the queue is empty. */
async function drain(size: number, label: string, devices: SimulatedDevice[], inFlight: number, report = true): Promise<void> {
  const deliveries: number[] = []
  const cpu = cpuMeter()
  const wal = await walLsn()
  let commands = 0
  const started = performance.now()
  await runPool(devices, inFlight, async (device) => {
    const state = newDeviceState({
      udid: device.udid,
      serialNumber: device.serialNumber,
      model: device.model,
      modelName: 'iPad',
      deviceName: `iPad ${device.serialNumber}`,
      supervised: true,
      identityCertificateDer: device.certificateDer,
      caCertificatesDer: [],
    })
    let response = await device.idle()
    for (;;) {
      if (response.status !== 200) throw new Error(`drain: ${response.status} ${response.body.toString()}`)
      const command = commandIn(response)
      if (!command) break
      deliveries.push(lastServerMs)
      commands++
      const answer =
        command.requestType === 'ProfileList'
          ? { status: 'Acknowledged', keys: { ProfileList: [] } }
          : command.requestType === 'InstalledApplicationList'
            ? { status: 'Acknowledged', keys: { InstalledApplicationList: installedApps } }
            : answerCommand(state, command.requestType, command.command)
      response = await device.answer(command.uuid, answer.status, answer.keys)
    }
  })
  const took = seconds(started)
  const wrote = await walBytes(wal)
  if (!report) return
  line(
    size,
    `drain${label}`,
    `${(commands / took).toFixed(0)} commands/s (${commands} commands, ${devices.length} devices, ${inFlight} in flight); ` +
      `server time of a request that delivered a command ${latencySummary(deliveries)}; ${cpu(commands, 'command')}; WAL ${(wrote / commands / 1024).toFixed(1)} KiB per command`,
  )
}

/**
 * Idle -> next command alone: each device of the sample sends Idle --idle-rounds times (20), one
 * request in flight, without answering (the head of its queue is handed out again each time):
 * the queue lookup and the request's own work, not the processing of an answer. 50 devices and
 * 20 rounds give 1,000 requests, so p99 is the 10th slowest (with 4 rounds it was the 2nd).
 */
async function nextCommand(size: number, label: string, devices: SimulatedDevice[]): Promise<void> {
  const samples: number[] = []
  const gc = gcPauses()
  for (let round = 0; round < idleRounds; round++)
    for (const device of devices) {
      const response = await device.idle()
      if (response.status !== 200 || !commandIn(response)) throw new Error(`Idle: ${response.status}, no command`)
      samples.push(lastServerMs)
    }
  const { rows } = await sql<{ n: string }>`select count(*)::text as n from command_targets where status in ('Pending', 'NotNow')`.execute(db)
  line(
    size,
    `Idle -> next command${label}, one request in flight`,
    `server time ${latencySummary(samples)}, max ${Math.max(...samples).toFixed(1)} ms (${samples.length} requests; ${rows[0]!.n} targets queued in all; ${gc()})`,
  )
}

/**
 * A quarter of the sample one device at a time (the latency of Idle -> next command, nothing
 * else running), the rest several in flight (the rate).
 */
async function drainSample(size: number, label: string, sample: SimulatedDevice[]): Promise<void> {
  const alone = Math.ceil(sample.length / 4)
  await nextCommand(size, label, sample.slice(0, alone))
  await drain(size, `${label}, one device at a time`, sample.slice(0, alone), 1)
  await drain(size, label, sample.slice(alone), concurrency)
}

const listVariants = [
  'sort=created_at',
  'sort=-created_at',
  'sort=last_seen_at',
  'sort=-last_seen_at',
  'sort=serial_number',
  'sort=-serial_number',
  'model=iPad14,2&sort=-last_seen_at',
  'kind=function&supervised=true&sort=serial_number',
  'tenant_id=dept-05&sort=-last_seen_at',
  'os_version=17.6&sort=-created_at',
]

/** The list statement a request ran (the one reading devices with a limit), and its plan. */
async function explainList(url: string): Promise<string[]> {
  captured = []
  await call('GET', url)
  const statements = captured.filter((s) => /from "?devices"?/i.test(s.text) && /limit/i.test(s.text))
  captured = null
  const statement = statements.at(-1)
  if (!statement) return ['(no statement captured)']
  const text = statement.text.replace(/^\/\*[^*]*\*\/\s*/, '')
  const client = new pg.Client({ connectionString: created.url! })
  await client.connect()
  try {
    await client.query('set jit = off')
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers, costs off, timing off) ${text}`, statement.values)
    return rows.map((row) => row['QUERY PLAN'])
  } finally {
    await client.end()
  }
}

async function deviceLists(size: number, explain: boolean): Promise<void> {
  const worst: number[] = []
  for (const variant of listVariants) {
    for (const page of [1, 3]) {
      let url: string | null = `/api/v1/devices?limit=100&${variant}`
      for (let p = 1; p < page && url; p++) {
        const { json } = await call('GET', url)
        url = json.next_cursor && `/api/v1/devices?limit=100&${variant}&cursor=${encodeURIComponent(json.next_cursor)}`
      }
      if (!url) continue // fewer than three pages
      const samples: number[] = []
      for (let i = 0; i < runs + 3; i++) {
        const started = performance.now()
        await call('GET', url)
        if (i >= 3) samples.push(performance.now() - started)
      }
      samples.sort((a, b) => a - b)
      worst.push(percentile(samples, 95))
      line(size, `device list ${variant}, page ${page}`, latencySummary(samples))
      if (explain && page === 1) {
        const plan = await explainList(url)
        const flagged = plan.filter((row) => /Seq Scan on (devices|enrollments)|Sort Method: (external|top-N heapsort)/.test(row))
        console.log(`  EXPLAIN ${variant}${flagged.length > 0 ? ` -- FLAGGED: ${flagged.map((r) => r.trim()).join('; ')}` : ''}`)
        for (const row of plan) console.log(`    ${row}`)
      }
    }
  }
  const max = Math.max(...worst)
  line(size, 'device lists, worst p95', `${max.toFixed(1)} ms over ${listVariants.length * 2} lists (target p95 < 50 ms: ${max < 50 ? 'met' : 'missed'})`)
}

async function fleetCommand(size: number): Promise<void> {
  const cpu = cpuMeter()
  const started = performance.now()
  const { json, bytes, status } = await call('POST', '/api/v1/commands', { filter: {}, command: { request_type: 'ProfileList' } })
  const requestSeconds = seconds(started)
  let job = status === 202 ? json : undefined
  while (job && !['succeeded', 'failed', 'cancelled'].includes(job.state)) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    job = (await call('GET', `/api/v1/jobs/${job.id}`)).json
  }
  const done = seconds(started)
  line(
    size,
    'one command to the whole fleet',
    `request ${(requestSeconds * 1000).toFixed(0)} ms (HTTP ${status}, ${bytes} bytes); ` +
      (job ? `job ${job.state} after ${done.toFixed(2)} s, outcomes ${JSON.stringify(job.outcomes)}` : 'no job (queued in the request)') +
      `; ${cpu(size, 'target')} (target < 3 s of request time)`,
  )
}

/** Bytes per row of each table (heap, TOAST and indexes): what the README's sizing table is built from. */
async function sizes(size: number): Promise<void> {
  const tables = ['devices', 'enrollments', 'installed_applications', 'installed_profiles', 'command_targets', 'commands']
  const { rows } = await sql<{ name: string; bytes: string; rows: string }>`
    select t as name, pg_total_relation_size(t::regclass)::text as bytes, (xpath('/row/n/text()', query_to_xml('select count(*) as n from ' || t, false, true, '')))[1]::text as rows
    from unnest(${tables}::text[]) t`.execute(db)
  const perRow = rows.map((row) => `${row.name} ${(Number(row.bytes) / Math.max(1, Number(row.rows))).toFixed(0)} (${row.rows} rows)`)
  line(size, 'sizes', `bytes per row, indexes included: ${perRow.join(', ')}; database ${((await dbSize()) / 1048576).toFixed(0)} MiB`)
}
const dbSize = async () => Number((await sql<{ n: string }>`select pg_database_size(current_database())::text as n`.execute(db)).rows[0]!.n)

/**
 * Devices enrolled and drained before each measured phase, not measured: the figures are then
 * the fleet's, not V8 optimising the request path or each pool connection preparing statements.
 */
const warmUpSize = Number(args.get('warm-up') ?? 200)
async function warmUp(label: string): Promise<void> {
  const devices = await newDevices(warmUpSize, `WARM${label}`)
  await runPool(devices, concurrency, (device) => device.enroll())
  await drain(0, '', devices, concurrency, false)
}

async function measureAt(size: number, label: string): Promise<void> {
  const started = performance.now()
  await growFleet(size - sampleSize - warmUpSize)
  await settle()
  console.log(`\n# ${size.toLocaleString('en')} devices (fleet written by SQL in ${seconds(started).toFixed(0)} s, not measured)`)
  await warmUp(label)
  const sample = await newDevices(sampleSize, `SCALE${label}`)
  await enrollSample(size, sample)
  await deviceLists(size, size === fleetSize)
  await fleetCommand(size)
  await drainSample(size, '', sample)
  await sizes(size)
}

/**
 * --tenths: the enrollment rate of the first and of the last tenth of the fleet, both enrolled
 * through the MDM endpoints (a tenth each: 10,000 devices of 100,000). The eight tenths between
 * are written by SQL; the database is vacuumed and analysed before each measured tenth, as
 * autovacuum would. Nothing else is measured in this mode.
 */
async function enrollmentTenths(): Promise<void> {
  const tenth = Math.ceil(fleetSize / 10)
  await warmUp('T')
  const rates: number[] = []
  for (const [index, label] of [
    [0, 'first'],
    [9, 'last'],
  ] as const) {
    await growFleet(index * tenth)
    await settle()
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from devices`.execute(db)
    const devices = await newDevices(index === 0 ? tenth - rows[0]!.n : tenth, `TENTH${index}`)
    rates.push(await enrollSample(rows[0]!.n + devices.length, devices, `enrollment, ${label} tenth`, ` from ${rows[0]!.n.toLocaleString('en')} devices`))
  }
  line(fleetSize, 'enrollment, last tenth against first', `${((rates[1]! / rates[0]! - 1) * 100).toFixed(1)}% (criterion: not below -10%)`)
}

async function fullRun(): Promise<void> {
  if (args.has('history-only')) {
    // The fleet written by SQL at once, then the history and its measures alone.
    const started = performance.now()
    await growFleet(fleetSize - sampleSize - warmUpSize)
    console.log(`\n# ${fleetSize.toLocaleString('en')} devices (fleet written by SQL in ${seconds(started).toFixed(0)} s, not measured; --history-only)`)
  } else {
    await measureAt(smallSize, 'S')
    await measureAt(fleetSize, 'L')
  }
  if (historyRows > 0) {
    // History: finished targets of earlier fleet commands, as retention keeps them.
    const started = performance.now()
    const commands = Math.ceil(historyRows / fleetSize)
    await sql`insert into commands (uuid, request_type, payload, created_at)
      select 'HISTORY-' || c, 'ProfileList', decode('00', 'hex'), now() - make_interval(days => c % 90) from generate_series(1, ${commands}::int) c`.execute(db)
    await sql`insert into command_targets (enrollment_id, command_uuid, status, delivery_count, first_delivered_at, last_delivered_at, result_at, result_raw, created_at, updated_at)
      select e.id, 'HISTORY-' || c, 'Acknowledged', 1, t, t, t, convert_to(repeat('<key>ProfileList</key><array/>', 8), 'UTF8'), t, t
      from generate_series(1, ${commands}::int) c cross join lateral (select now() - make_interval(days => c % 90) as t) time
      cross join (select id from enrollments where id like 'SCALE-%' order by id limit ${Math.ceil(historyRows / commands)}) e`.execute(db)
    await settle()
    console.log(
      `\n# ${fleetSize.toLocaleString('en')} devices with ${historyRows.toLocaleString('en')} finished targets of history (written by SQL in ${seconds(started).toFixed(0)} s, not measured)`,
    )
    await warmUp('H')
    const sample = await newDevices(sampleSize, 'SCALEH')
    await enrollSample(fleetSize, sample)
    await fleetCommand(fleetSize)
    await drainSample(fleetSize, ' (on history)', sample)
    await deviceLists(fleetSize, false)
    await sizes(fleetSize)

    // Retention pruning of the oldest history (older than 80 days: a ninth of it), in batches,
    // while devices take their commands one at a time: the queue is not held up.
    await call('PATCH', '/api/v1/settings', { command_retention_days: 80 })
    const busy = await newDevices(Math.ceil(sampleSize / 4), 'SCALEP')
    await runPool(busy, concurrency, (device) => device.enroll())
    const pruneStarted = performance.now()
    let pruneSeconds = 0
    const pruning = orchard.retention.prune().then((removed) => ((pruneSeconds = seconds(pruneStarted)), removed))
    await drain(fleetSize, ' while pruning, one device at a time', busy, 1)
    const drainedSeconds = seconds(pruneStarted)
    const removed = await pruning
    line(
      fleetSize,
      'retention pruning',
      `${removed.targets} targets and ${removed.commands} commands older than 80 days deleted in ${pruneSeconds.toFixed(1)} s, in batches; ` +
        `the drain above ran during its first ${Math.min(drainedSeconds, pruneSeconds).toFixed(1)} s`,
    )
  }
}

try {
  console.log(
    `# Scale bench: ${smallSize.toLocaleString('en')} then ${fleetSize.toLocaleString('en')} devices on PostgreSQL; node ${process.version}; ${concurrency} in flight`,
  )
  if (args.has('tenths')) await enrollmentTenths()
  else await fullRun()
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup()
}
