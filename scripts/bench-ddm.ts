// Declarative device management at fleet scale (issue 20), in-process, on PostgreSQL or PGlite:
//  1. tokens poll: the DeclarativeManagement `tokens` check-in of enrolled DDM devices, at a
//     small fleet and at N devices; server time measured inside the process (fastify's onRequest
//     to onResponse: body parsing, Mdm-Signature verification, certificate binding, the set
//     read, the answer), one request in flight; at N, a first pass (certificate chains validated)
//     and a second (steady state);
//  2. retarget: PUT /api/v1/declarations/{id} on a declaration a blueprint carries to every
//     device: the request returns once the sets are recomputed and DeclarativeManagement is
//     queued (then a declaration with per-device {{serial_number}} content: one token per device);
//  3. status ingest: full status reports (21 status items with management.declarations) from
//     every device, several in flight, as reports per second: the first report of each device
//     (rows inserted), then a second (rows updated).
// Every measured request is a real MDM check-in (PUT /mdm/checkin through app.inject, CMS
// Mdm-Signature by an RSA 2048 device identity, verified by the server). Set-up is not measured:
// device and enrollment rows are written directly (certificate-bound, push token, enabled), the
// identity certificates are issued for a few RSA keys shared by many devices (generating 10,000
// RSA keys takes minutes; the server's cost per request is the same), and the requests are
// signed before the timed phases so the figures are Orchard's, not the simulator's. One probe
// device enrolls and syncs through the real endpoints (SimulatedDevice + DdmDevice) as a check.
// No APNs: the pushes after queueing find no push certificate (npm run bench -- --only push
// measures APNs). CPU: this process (Orchard, plus inject's small client share) and the PostgreSQL
// processes of the bench's database with the shared ones (WAL writer, checkpointer...).
// Run: npx tsx scripts/bench-ddm.ts [--backend postgres|pglite] [--devices 10000] [--small 100]
//   [--concurrency 12] [--keys 16] [--profile DIR]
// (`npm run bench -- --only ddm` runs it with the V8 flags `npm start` gives the server.)
// --profile: a V8 CPU profile of each measured phase (this process: Orchard), DIR/ddm-<backend>-<phase>.cpuprofile;
// the figures of a profiled run are slower.
import { createHash, KeyObject, randomBytes, randomUUID, sign, X509Certificate } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { sql } from 'kysely'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { certificateToPem, createCertificate, generateKeyPair } from '../src/crypto/certificates.js'
import { readIssuerAndSerialNumber } from '../src/crypto/der-certificate.js'
import { algorithm, bitString, sequence, unsignedInteger } from '../src/crypto/der-writer.js'
import { openPostgresDatabase, type DatabaseHandle } from '../src/db/database.js'
import { createOrchard } from '../src/main.js'
import { declarationSchema } from '../src/mdm/generated/declaration-schema.js'
import { statusItemNames } from '../src/mdm/generated/status-items.js'
import { encodePlist } from '../src/mdm/plist.js'
import { DdmDevice } from '../test/helpers/ddm-device.js'
import { createDeviceSigner, type MdmSigner } from '../test/helpers/device-signer.js'
import { createDeviceCa, injectTransport, SimulatedDevice, testTopic } from '../test/helpers/simulated-device.js'
import { gcPauses, quietServerEnv } from './bench-common.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const backend = args.get('backend') ?? 'postgres'
const deviceCount = Number(args.get('devices') ?? 10_000)
const smallCount = Math.min(deviceCount, Number(args.get('small') ?? 100))
const concurrency = Number(args.get('concurrency') ?? 12)
const keyCount = Number(args.get('keys') ?? 16)
process.env['ORCHARD_TEST_BACKEND'] = backend
const { createTestDatabase } = await import('../test/helpers/database.js')

const apiKey = 'bench-api-key-0123456789abcdef'
const checkinType = 'application/x-apple-aspen-mdm-checkin'
const cleanups: Array<() => unknown> = []
const created = await createTestDatabase({ teardown: (fn) => void cleanups.push(fn) })
// The server's default pool (DATABASE_POOL_MAX 10), not the test helper's 5.
const database: DatabaseHandle = created.url ? openPostgresDatabase({ connectionString: created.url, poolMax: 10 }) : created
if (created.url) cleanups.push(() => database.close())
const db = database.db
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
const orchard = await createOrchard(config, database, pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }))).catch(async (error) => {
  for (const cleanup of cleanups.reverse()) await cleanup() // the bench database is dropped
  throw error
})
const { app, ddm } = orchard

// Server time: from fastify's onRequest to its onResponse, for check-ins only.
const startedAt = new WeakMap<object, number>()
let serverSamples: number[] | null = null
app.addHook('onRequest', async (request) => void startedAt.set(request, performance.now()))
app.addHook('onResponse', async (request) => {
  const started = startedAt.get(request)
  if (started !== undefined && serverSamples && request.url === '/mdm/checkin') serverSamples.push(performance.now() - started)
})

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

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

const latency = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return `p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`
}

/** CPU ticks (1/100 s) of a process so far; undefined when it ended. */
function cpuTicks(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

/**
 * The PostgreSQL processes working for this bench: the backends connected to its database and the
 * shared ones (WAL writer, checkpointer...; other databases' clients, e.g. tests run meanwhile,
 * are not counted). None on PGlite: it runs inside this process.
 */
async function postgresPids(): Promise<number[]> {
  if (backend !== 'postgres') return []
  const { rows } = await sql<{ pid: number }>`select pid from pg_stat_activity where datname = current_database() or datname is null`.execute(db)
  return rows.map((row) => row.pid)
}

/** Starts a CPU meter; stopping it gives the CPU per unit used in between. */
async function cpuMeter(): Promise<() => Promise<(units: number, unit: string) => string>> {
  const cpu = process.cpuUsage()
  const before = new Map((await postgresPids()).map((pid) => [pid, cpuTicks(pid)]))
  return async () => {
    const used = process.cpuUsage(cpu)
    const orchardMs = (used.user + used.system) / 1000
    const kernelMs = used.system / 1000
    let ticks = 0
    for (const pid of new Set([...before.keys(), ...(await postgresPids())])) {
      const now = cpuTicks(pid)
      if (now !== undefined) ticks += now - (before.get(pid) ?? 0)
    }
    const postgresMs = ticks * 10
    return (units, unit) =>
      `CPU ${((orchardMs + postgresMs) / units).toFixed(3)} ms per ${unit} (Orchard ${(orchardMs / units).toFixed(3)}, of it kernel ${(kernelMs / units).toFixed(3)}` +
      `${backend === 'postgres' ? `, PostgreSQL ${(postgresMs / units).toFixed(3)}` : ', database inside'})`
  }
}

let session: Session | undefined

/** Runs a measured phase, under the V8 profiler with --profile. */
async function profiled<T>(phase: string, run: () => Promise<T>): Promise<T> {
  const dir = args.get('profile')
  if (dir === undefined) return run()
  if (!session) {
    session = new Session()
    session.connect()
    await session.post('Profiler.enable')
  }
  await session.post('Profiler.start')
  try {
    return await run()
  } finally {
    const { profile } = await session.post('Profiler.stop')
    mkdirSync(dir || '/tmp/orchard-profile', { recursive: true })
    writeFileSync(join(dir || '/tmp/orchard-profile', `ddm-${backend}-${phase}.cpuprofile`), JSON.stringify(profile))
  }
}

async function runPool<T>(items: readonly T[], workers: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(workers, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!)
    }),
  )
}

// ---------------------------------------------------------------------------------------
// Device identities: RSA 2048 keys shared by many certificates, each certificate its own.

interface Identity {
  certificateDer: Buffer
  sha256: string
  /** The Mdm-Signature header of a body (test/helpers/device-signer.ts, as the tests' devices sign). */
  sign: MdmSigner
}

/** The DER element at `offset`: where its content starts and ends. */
function elementAt(der: Buffer, offset: number): { start: number; end: number } {
  let length = der[offset + 1]!
  let start = offset + 2
  if (length & 0x80) {
    const octets = length & 0x7f
    length = 0
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i]!
    start += octets
  }
  return { start, end: start + length }
}

/**
 * Certificates for `count` devices: one template per key issued by the test CA (pkijs, ~3 ms
 * each), then per device the template's TBSCertificate with its own serial number and subject,
 * signed by the CA with node:crypto (a valid certificate, ~0.1 ms).
 */
async function issueIdentities(count: number, firstIndex: number, templates: Array<{ tbs: Buffer; serial: Buffer; key: KeyObject }>): Promise<Identity[]> {
  const caKey = KeyObject.from(ca.privateKey)
  const signatureAlgorithm = algorithm('1.2.840.10045.4.3.2') // ecdsa-with-SHA256, as in the template
  const identities: Identity[] = []
  for (let i = 0; i < count; i++) {
    const template = templates[i % templates.length]!
    const tbs = Buffer.from(template.tbs)
    const serial = randomBytes(template.serial.length)
    serial[0] = (serial[0]! & 0x7f) | 0x40
    serial.copy(tbs, tbs.indexOf(template.serial))
    const commonName = `device ${String(firstIndex + i).padStart(8, '0')}`
    Buffer.from(commonName, 'latin1').copy(tbs, tbs.indexOf('device 00000000', 0, 'latin1'))
    const signature = sign('sha256', tbs, { key: caKey, dsaEncoding: 'der' })
    const certificateDer = sequence(tbs, signatureAlgorithm, bitString(signature))
    const { issuer, serialNumber } = readIssuerAndSerialNumber(certificateDer)
    identities.push({
      certificateDer,
      sha256: createHash('sha256').update(certificateDer).digest('hex'),
      sign: await createDeviceSigner({ certificateDer, privateKey: template.key, issuerAndSerial: sequence(issuer, unsignedInteger(serialNumber)) }),
    })
  }
  return identities
}

async function identityTemplates(): Promise<Array<{ tbs: Buffer; serial: Buffer; key: KeyObject }>> {
  const templates = []
  for (let k = 0; k < keyCount; k++) {
    const keys = await generateKeyPair('rsa-2048')
    const certificate = await createCertificate({
      subject: { commonName: 'device 00000000' },
      publicKey: keys.publicKey,
      issuer: { certificate: ca.certificate, privateKey: ca.privateKey },
      validDays: 365,
      usage: 'client',
    })
    const der = Buffer.from(certificate.toSchema(true).toBER(false))
    const outer = elementAt(der, 0)
    const tbs = der.subarray(outer.start, elementAt(der, outer.start).end)
    templates.push({ tbs: Buffer.from(tbs), serial: Buffer.from(certificate.serialNumber.valueBlock.valueHexView), key: KeyObject.from(keys.privateKey) })
  }
  return templates
}

interface SignedRequest {
  body: Buffer
  signature: string
}

const udidOf = (index: number) => `DDM-BENCH-${String(index).padStart(6, '0')}`
const serialOf = (index: number) => `DDMB${String(index).padStart(8, '0')}`

function ddmCheckin(index: number, identity: Identity, endpoint: string, data?: unknown): SignedRequest {
  const body = encodePlist({
    UDID: udidOf(index),
    MessageType: 'DeclarativeManagement',
    Endpoint: endpoint,
    ...(data !== undefined ? { Data: Buffer.from(JSON.stringify(data)) } : {}),
  })
  return { body, signature: identity.sign(body) }
}

async function send(request: SignedRequest): Promise<{ status: number; body: string }> {
  const response = await app.inject({
    method: 'PUT',
    url: '/mdm/checkin',
    payload: request.body,
    headers: { 'content-type': checkinType, 'mdm-signature': request.signature },
  })
  return { status: response.statusCode, body: response.body }
}

/** Device and enrollment rows as Authenticate + TokenUpdate leave them (bound certificate, push token, enabled). */
async function insertDevices(firstIndex: number, identities: Identity[]): Promise<void> {
  for (let i = 0; i < identities.length; i += 2000) {
    const rows = identities.slice(i, i + 2000).map((identity, j) => ({
      id: udidOf(firstIndex + i + j),
      serial: serialOf(firstIndex + i + j),
      sha: identity.sha256,
      token: randomBytes(32).toString('hex'),
      magic: randomUUID(),
    }))
    const json = JSON.stringify(rows)
    await sql`insert into devices (id, udid, serial_number, model, model_name, product_name, device_name, os_version, build_version, topic,
        identity_sha256, identity_not_after, authenticated_at, kind)
      select x.id, x.id, x.serial, 'iPad13,1', 'iPad', 'iPad13,1', 'iPad ' || x.serial, '18.1', '22B83', ${testTopic},
        x.sha, now() + interval '365 days', now(), 'work'
      from jsonb_to_recordset(${json}::text::jsonb) as x(id text, serial text, sha text)`.execute(db)
    await sql`insert into enrollments (id, device_id, channel, enabled, topic, push_token, push_magic, token_update_count, token_updated_at, last_seen_at)
      select x.id, x.id, 'device', true, ${testTopic}, decode(x.token, 'hex'), x.magic, 1, now(), now()
      from jsonb_to_recordset(${json}::text::jsonb) as x(id text, token text, magic text)`.execute(db)
  }
}

async function settle(): Promise<void> {
  // Vacuum and analyze after the bulk writes, so autovacuum does not run through them mid-measurement.
  await sql`vacuum analyze`.execute(db)
  if (backend === 'postgres') await sql`checkpoint`.execute(db)
}

/** Sequential tokens polls; checks each answer carries the device's token. */
async function pollTokens(requests: SignedRequest[], expected: string): Promise<{ server: number[]; roundTrip: number[] }> {
  serverSamples = []
  const roundTrip: number[] = []
  for (const request of requests) {
    const start = performance.now()
    const response = await send(request)
    roundTrip.push(performance.now() - start)
    if (response.status !== 200) throw new Error(`tokens: ${response.status} ${response.body}`)
    const token = (JSON.parse(response.body) as { SyncTokens: { DeclarationsToken: string } }).SyncTokens.DeclarationsToken
    if (token !== expected) throw new Error(`tokens: DeclarationsToken ${token}, expected ${expected}`)
  }
  const server = serverSamples
  serverSamples = null
  return { server, roundTrip }
}

async function pendingDeclarativeManagement(since: Date): Promise<{ commands: number; targets: number }> {
  const row = await db
    .selectFrom('commands as c')
    .innerJoin('command_targets as ct', 'ct.command_uuid', 'c.uuid')
    .select((eb) => [eb.fn.count<string>('c.uuid').distinct().as('commands'), eb.fn.countAll<string>().as('targets')])
    .where('c.request_type', '=', 'DeclarativeManagement')
    .where('c.created_at', '>=', since)
    .executeTakeFirstOrThrow()
  return { commands: Number(row.commands), targets: Number(row.targets) }
}

async function storedSet(deviceId: string): Promise<{ token: string; items: Array<{ identifier: string; kind: string; server_token: string }> }> {
  const row = await db.selectFrom('device_declaration_sets').select(['declarations_token', 'items']).where('device_id', '=', deviceId).executeTakeFirstOrThrow()
  return { token: row.declarations_token, items: row.items }
}

/** A full status report as an iPad sends it: 20 status items and management.declarations. */
function statusReport(index: number, set: Awaited<ReturnType<typeof storedSet>>, round: number) {
  const declarations: Record<string, unknown[]> = { activations: [], configurations: [], assets: [], management: [] }
  const group: Record<string, string> = { activation: 'activations', configuration: 'configurations', asset: 'assets', management: 'management' }
  for (const item of set.items)
    declarations[group[item.kind]!]!.push({ identifier: item.identifier, active: true, valid: 'valid', 'server-token': item.server_token })
  const declarationTypes = Object.keys(declarationSchema)
  return {
    StatusItems: {
      device: {
        identifier: { 'serial-number': serialOf(index), udid: udidOf(index) },
        model: { family: 'iPad', identifier: 'iPad13,1', 'marketing-name': 'iPad Air (4th generation)' },
        'operating-system': {
          'build-version': round === 0 ? '22B83' : '22C152',
          family: 'iPadOS',
          'marketing-name': 'iPadOS 18',
          supplemental: { 'build-version': round === 0 ? '22B83' : '22C152' },
          version: round === 0 ? '18.1' : '18.2',
        },
        power: { 'battery-health': 'normal' },
      },
      management: {
        'client-capabilities': {
          'supported-features': {},
          'supported-payloads': {
            declarations: {
              activations: declarationTypes.filter((type) => declarationSchema[type]!.kind === 'activation'),
              assets: declarationTypes.filter((type) => declarationSchema[type]!.kind === 'asset'),
              configurations: declarationTypes.filter((type) => declarationSchema[type]!.kind === 'configuration'),
              management: declarationTypes.filter((type) => declarationSchema[type]!.kind === 'management'),
            },
            'status-items': [...statusItemNames],
          },
          'supported-versions': ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0', '1.5.0'],
        },
        declarations,
      },
      passcode: { 'is-compliant': true, 'is-present': true },
      softwareupdate: {
        'beta-enrollment': '',
        'device-id': 'J307AP',
        'failure-reason': { count: 0 },
        'install-reason': { reason: ['system-scheduled'] },
        'install-state': round === 0 ? 'downloading' : 'none',
        'pending-version': round === 0 ? { 'build-version': '22C152', 'os-version': '18.2' } : {},
      },
    },
    Errors: [],
    FullReport: true,
  }
}

const line = (label: string, text: string) => console.log(`${backend}: ${label}: ${text}`)

try {
  console.log(
    `${backend}: ${deviceCount} DDM devices (tokens also at ${smallCount}), RSA 2048 identities from ${keyCount} keys, status reports ${concurrency} in flight; node ${process.version}`,
  )
  let started = performance.now()
  const templates = await identityTemplates()
  const identities = await issueIdentities(deviceCount, 0, templates)
  // The server checks every certificate against the CA; one check here that they are sound.
  if (!new X509Certificate(identities[0]!.certificateDer).verify(new X509Certificate(certificateToPem(ca.certificate)).publicKey))
    throw new Error('the issued certificate does not verify')
  line('set-up', `${keyCount} RSA keys and ${deviceCount} certificates in ${((performance.now() - started) / 1000).toFixed(1)} s (not measured)`)

  // The small fleet: a probe enrolled through the real endpoints, the rest written as rows.
  const probe = new DdmDevice(await SimulatedDevice.create(ca, injectTransport(app), { keyAlgorithm: 'rsa-2048', serialNumber: 'DDMBPROBE001' }))
  await probe.device.enroll()
  await insertDevices(0, identities.slice(0, smallCount - 1))
  const declarations = {
    passcode: await call<{ id: string }>('POST', '/api/v1/declarations', {
      identifier: 'com.example.passcode',
      type: 'com.apple.configuration.passcode.settings',
      payload: { RequirePasscode: true, MinimumLength: 6 },
    }),
    updates: await call<{ id: string }>('POST', '/api/v1/declarations', {
      identifier: 'com.example.softwareupdate',
      type: 'com.apple.configuration.softwareupdate.settings',
      payload: { Notifications: true, Deferrals: { MajorPeriodInDays: 30, MinorPeriodInDays: 7 }, AutomaticActions: { Download: 'AlwaysOn' } },
    }),
    organization: await call<{ id: string }>('POST', '/api/v1/declarations', {
      identifier: 'com.example.organization',
      type: 'com.apple.management.organization-info',
      payload: { Name: 'Orchard bench', Email: 'it@example.test' },
    }),
  }
  const organizationInfo = { identifier: 'com.example.organization', type: 'com.apple.management.organization-info' }
  await call('POST', '/api/v1/blueprints', { name: 'ddm bench', declaration_ids: Object.values(declarations).map((d) => d.id) })
  await probe.runQueue()
  if (!probe.active('com.example.passcode')) throw new Error('the probe device did not activate the passcode declaration')
  const smallSet = await storedSet(udidOf(0))
  if (smallSet.items.length !== 5) throw new Error(`expected 5 declarations in a set, got ${smallSet.items.length}`)

  started = performance.now()
  const tokenRequests = identities.slice(0, deviceCount - 1).map((identity, i) => ddmCheckin(i, identity, 'tokens'))
  const signMs = (performance.now() - started) / tokenRequests.length
  await settle()

  // 1. tokens at the small fleet: 10 rounds over every device right after start-up (5 rounds of
  // warm-up before: each device's certificate chain validated, statements prepared), then 10
  // more once V8 has optimised the request path (30 rounds later): the steady state, as the
  // second pass at N devices measures it.
  const small = tokenRequests.slice(0, smallCount - 1)
  for (let round = 0; round < 5; round++) await pollTokens(small, smallSet.token)
  let meter = await cpuMeter()
  const rounds = Array.from({ length: 10 }, () => small).flat()
  let polled = await profiled('tokens-small', () => pollTokens(rounds, smallSet.token))
  let cpu = await meter()
  line(
    `tokens poll, ${smallCount} devices, after start-up`,
    `server ${latency(polled.server)} (inject round trip ${latency(polled.roundTrip)}); ${rounds.length} polls; ${cpu(rounds.length, 'poll')}`,
  )
  for (let round = 0; round < 30; round++) await pollTokens(small, smallSet.token)
  meter = await cpuMeter()
  let gc = gcPauses()
  polled = await profiled('tokens-small-steady', () => pollTokens(rounds, smallSet.token))
  cpu = await meter()
  line(
    `tokens poll, ${smallCount} devices, steady state`,
    `server ${latency(polled.server)} (inject round trip ${latency(polled.roundTrip)}); ${rounds.length} polls; ${cpu(rounds.length, 'poll')}; ${gc()}`,
  )

  // The rest of the fleet, then their sets (what the enrollment of each computes, here at once).
  await insertDevices(smallCount - 1, identities.slice(smallCount - 1))
  meter = await cpuMeter()
  started = performance.now()
  const since = new Date()
  const grown = await profiled('new-sets', () => ddm.sets.recompute({ all: true }))
  const grownSeconds = (performance.now() - started) / 1000
  cpu = await meter()
  const queued = await pendingDeclarativeManagement(since)
  line(
    `sets of ${deviceCount - smallCount} new devices`,
    `${grownSeconds.toFixed(2)} s for ${grown.devices} devices (${grown.changed} changed, ${grown.notified} notified; ${queued.commands} command(s), ${queued.targets} targets); ${cpu(grown.changed, 'new device')}`,
  )
  await settle()

  // 2. tokens at N devices, every device once in random order: a first pass (each device's first
  // request since the server started: its certificate chain is validated, then cached), then a
  // second pass (steady state: the verifier's certificate cache, an LRU of 10,000, holds the fleet).
  const order = [...tokenRequests]
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  for (const pass of ['first', 'second'] as const) {
    meter = await cpuMeter()
    gc = gcPauses()
    polled = await profiled(`tokens-${pass}`, () => pollTokens(order, smallSet.token))
    cpu = await meter()
    line(
      `tokens poll, ${deviceCount} devices, ${pass} pass`,
      `server ${latency(polled.server)} (inject round trip ${latency(polled.roundTrip)}); ${order.length} polls; ${cpu(order.length, 'poll')}; ${gc()}` +
        (pass === 'first' ? ' (certificate chains validated)' : `; requests signed beforehand (${signMs.toFixed(2)} ms each, RSA 2048)`),
    )
  }

  // 3. retarget: the passcode declaration every device gets changes.
  meter = await cpuMeter()
  let since2 = new Date()
  started = performance.now()
  await profiled('retarget', () =>
    call('PUT', `/api/v1/declarations/${declarations.passcode.id}`, {
      identifier: 'com.example.passcode',
      type: 'com.apple.configuration.passcode.settings',
      payload: { RequirePasscode: true, MinimumLength: 8 },
    }),
  )
  let seconds = (performance.now() - started) / 1000
  cpu = await meter()
  let retargeted = await pendingDeclarativeManagement(since2)
  line(
    'retarget (PUT declaration, same content for all)',
    `${seconds.toFixed(2)} s until the sets are stored and DeclarativeManagement queued: ${retargeted.commands} command(s), ${retargeted.targets} targets; ${cpu(deviceCount, 'device')}`,
  )
  await probe.runQueue()
  if (probe.declarations.get('com.example.passcode')?.payload['MinimumLength'] !== 8)
    throw new Error('the probe device did not get the changed passcode declaration')
  const set = await storedSet(udidOf(0))

  // 4. status ingest: a full report from every device, `concurrency` in flight; twice (first
  // report: rows inserted; second: the same items updated, OS version changed).
  for (let round = 0; round < 2; round++) {
    started = performance.now()
    const reports = identities.slice(0, deviceCount - 1).map((identity, i) => ddmCheckin(i, identity, 'status', statusReport(i, set, round)))
    const preparing = (performance.now() - started) / 1000
    await settle()
    meter = await cpuMeter()
    serverSamples = []
    started = performance.now()
    await profiled(`status-${round + 1}`, () =>
      runPool(reports, concurrency, async (report) => {
        const response = await send(report)
        if (response.status !== 200) throw new Error(`status: ${response.status} ${response.body}`)
      }),
    )
    seconds = (performance.now() - started) / 1000
    cpu = await meter()
    const server = serverSamples
    serverSamples = null
    line(
      `status ingest, ${round === 0 ? 'first' : 'second'} full report`,
      `${Math.round(reports.length / seconds)} reports/s (${reports.length} in ${seconds.toFixed(2)} s, ${(reports[0]!.body.length / 1024).toFixed(1)} KiB each, 21 items); server ${latency(server)}; ${cpu(reports.length, 'report')} (signed beforehand: ${preparing.toFixed(1)} s)`,
    )
  }
  const stored = await sql<{ items: string; declarations: string; upgraded: string }>`
    select (select count(*) from device_status_items) as items, (select count(*) from device_declaration_status) as declarations,
      (select count(*) from devices where os_version = '18.2') as upgraded`.execute(db)
  line(
    'status stored',
    `${stored.rows[0]!.items} status items, ${stored.rows[0]!.declarations} declaration states, ${stored.rows[0]!.upgraded} devices on 18.2`,
  )

  // 5. retarget with per-device content: every device's set gets its own token.
  meter = await cpuMeter()
  since2 = new Date()
  started = performance.now()
  await profiled('retarget-per-device', () =>
    call('PUT', `/api/v1/declarations/${declarations.organization.id}`, {
      ...organizationInfo,
      payload: { Name: 'Orchard bench', Email: 'it+{{serial_number}}@example.test' },
    }),
  )
  seconds = (performance.now() - started) / 1000
  cpu = await meter()
  retargeted = await pendingDeclarativeManagement(since2)
  line(
    'retarget (PUT declaration, per-device {{serial_number}} content)',
    `${seconds.toFixed(2)} s until the sets are stored and DeclarativeManagement queued: ${retargeted.commands} command(s), ${retargeted.targets} targets; ${cpu(deviceCount, 'device')}`,
  )
} finally {
  await app.close()
  for (const cleanup of cleanups.reverse()) await cleanup()
}
