// `npm run bench -- --only realistic [--backend postgres|pglite|both] [--devices 1000] [--commands 5] [--concurrency 50] [--warmup 50]`
// The workload of issue 24, shaped like real use: devices with RSA-2048 identities signing CMS with
// signed attributes; enrollment = Authenticate, TokenUpdate, Idle; commands enqueued one API call
// per command (POST /api/v1/enqueue/{id}, a raw plist, push off) cycling DeviceInformation,
// SecurityInfo, ProfileList, InstalledApplicationList and CertificateList; devices answering with
// realistic payloads (~150 apps, a full DeviceInformation, several certificates) until the server
// sends an empty body; then the same through the batched typed path (POST /api/v1/commands).
// 50 concurrent devices, logs at warn, a fresh database, inventory at enrollment off (so the
// first Idle is empty, as with NanoMDM). Prints server and database CPU separately, per command
// and per enrollment, latency percentiles per message type, and the server's peak RSS.
import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { encodePlist, type PlistDict } from '../src/mdm/plist.js'
import { spawnServer } from '../test/helpers/server-process.js'
import { commandIn, createDeviceCa, httpTransport, SimulatedDevice } from '../test/helpers/simulated-device.js'
import { cpuSeconds, latencySummary, pgliteBackend, postgresBackend, runPool, serverNodeFlags, timed, type Backend } from './bench-common.js'
import { freePort } from '../test/helpers/http.js'
import { phaseStatements, statementLines } from './bench-statements.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const deviceCount = Number(args.get('devices') ?? 1000)
const commandsPerDevice = Number(args.get('commands') ?? 5)
const concurrency = Number(args.get('concurrency') ?? 50)
// Devices that enroll and drain before anything is measured, so that V8's compilation of the
// request paths and the preparation of statements on each pooled connection are not counted
// (a server runs for days; its first seconds are not its cost per enrollment). 0: none.
const warmupDevices = Number(args.get('warmup') ?? 50)
const backendArg = args.get('backend') ?? 'postgres'
const apiKey = randomBytes(24).toString('hex')
const requestTypes = ['DeviceInformation', 'SecurityInfo', 'ProfileList', 'InstalledApplicationList', 'CertificateList'] as const
type RequestType = (typeof requestTypes)[number]

const queries = [
  'DeviceName',
  'OSVersion',
  'BuildVersion',
  'ModelName',
  'Model',
  'ProductName',
  'SerialNumber',
  'DeviceCapacity',
  'AvailableDeviceCapacity',
  'BatteryLevel',
  'CellularTechnology',
  'IMEI',
  'MEID',
  'ModemFirmwareVersion',
  'IsSupervised',
  'IsDeviceLocatorServiceEnabled',
  'IsActivationLockEnabled',
  'IsDoNotDisturbInEffect',
  'IsCloudBackupEnabled',
  'WiFiMAC',
  'BluetoothMAC',
  'ICCID',
  'PhoneNumber',
  'CurrentCarrierNetwork',
  'SIMCarrierNetwork',
  'DataRoamingEnabled',
  'VoiceRoamingEnabled',
  'PersonalHotspotEnabled',
  'IsRoaming',
  'SubscriberMCC',
  'SubscriberMNC',
  'CurrentMCC',
  'CurrentMNC',
  'Languages',
  'Locales',
  'TimeZone',
  'SoftwareUpdateDeviceID',
  'ServiceSubscriptions',
]

function commandPlist(requestType: RequestType): Buffer {
  const command: PlistDict = { RequestType: requestType }
  if (requestType === 'DeviceInformation') command['Queries'] = queries
  if (requestType === 'InstalledApplicationList') command['ManagedAppsOnly'] = false
  return encodePlist({ CommandUUID: randomUUID(), Command: command })
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex')
const mac = () => Array.from(randomBytes(6), (b) => b.toString(16).padStart(2, '0')).join(':')

/** What a real iPad answers, sizes included: the InstalledApplicationList is tens of KB. */
function answerFor(requestType: string, device: SimulatedDevice, certificates: Buffer[]): PlistDict {
  switch (requestType) {
    case 'DeviceInformation':
      return {
        QueryResponses: {
          DeviceName: `iPad of ${device.serialNumber}`,
          OSVersion: '18.1',
          BuildVersion: '22B83',
          ModelName: 'iPad',
          Model: 'MK2K3LL/A',
          ProductName: 'iPad13,1',
          SerialNumber: device.serialNumber,
          DeviceCapacity: 59.6,
          AvailableDeviceCapacity: 31.2,
          BatteryLevel: 0.87,
          CellularTechnology: 1,
          IMEI: '35 123456 789012 3',
          MEID: '35123456789012',
          ModemFirmwareVersion: '3.02.01',
          IsSupervised: true,
          IsDeviceLocatorServiceEnabled: false,
          IsActivationLockEnabled: false,
          IsDoNotDisturbInEffect: false,
          IsCloudBackupEnabled: false,
          WiFiMAC: mac(),
          BluetoothMAC: mac(),
          ICCID: '8931 0800 1234 5678 9012',
          PhoneNumber: '+31 6 12345678',
          CurrentCarrierNetwork: 'KPN NL',
          SIMCarrierNetwork: 'KPN',
          DataRoamingEnabled: false,
          VoiceRoamingEnabled: true,
          PersonalHotspotEnabled: false,
          IsRoaming: false,
          SubscriberMCC: '204',
          SubscriberMNC: '08',
          CurrentMCC: '204',
          CurrentMNC: '08',
          Languages: ['nl-NL', 'en-GB'],
          Locales: ['nl_NL'],
          TimeZone: 'Europe/Amsterdam',
          SoftwareUpdateDeviceID: 'J307AP',
          ServiceSubscriptions: [
            {
              Slot: 'CTSubscriptionSlotOne',
              CarrierSettingsVersion: '56.0',
              CurrentCarrierNetwork: 'KPN NL',
              ICCID: '8931080012345678901',
              IMEI: '351234567890123',
              IsDataPreferred: true,
              IsRoaming: false,
              IsVoicePreferred: true,
              Label: 'Primary',
              LabelID: hex(8),
              PhoneNumber: '+31612345678',
            },
          ],
        },
      }
    case 'SecurityInfo':
      return {
        SecurityInfo: {
          HardwareEncryptionCaps: 3,
          PasscodePresent: true,
          PasscodeCompliant: true,
          PasscodeCompliantWithProfiles: true,
          PasscodeLockGracePeriodEnforced: 0,
          FDE_Enabled: true,
          ManagementStatus: { EnrolledViaDEP: true, IsActivationLockManageable: true, IsUserEnrollment: false, UserApprovedEnrollment: true },
          FirewallSettings: { FirewallEnabled: false },
          SystemIntegrityProtectionEnabled: true,
        },
      }
    case 'ProfileList':
      return {
        ProfileList: Array.from({ length: 6 }, (_, i) => ({
          PayloadIdentifier: `nl.gemeente.profile.${i}`,
          PayloadUUID: randomUUID(),
          PayloadDisplayName: `Profile ${i}`,
          PayloadOrganization: 'Gemeente',
          PayloadVersion: 1,
          PayloadRemovalDisallowed: i === 0,
          IsEncrypted: false,
          IsManaged: true,
          PayloadContent: Array.from({ length: 3 }, (_, j) => ({
            PayloadIdentifier: `nl.gemeente.profile.${i}.${j}`,
            PayloadType: 'com.apple.wifi.managed',
            PayloadVersion: 1,
            PayloadDisplayName: `Payload ${j}`,
          })),
        })),
      }
    case 'InstalledApplicationList':
      return {
        InstalledApplicationList: Array.from({ length: 150 }, (_, i) => ({
          Identifier: `com.vendor${i % 40}.app${i}`,
          Name: `Application number ${i}`,
          ShortVersion: `${1 + (i % 9)}.${i % 20}.${i % 7}`,
          Version: String(1000 + i),
          BundleSize: 20_000_000 + i * 1_000,
          DynamicSize: 4_000_000 + i * 333,
          ExternalVersionIdentifier: 850_000_000 + i,
          IsValidated: true,
          AdHocCodeSigned: false,
          AppStoreVendable: true,
          BetaApp: false,
          DeviceBasedVPP: i % 3 === 0,
          HasUpdateAvailable: i % 11 === 0,
          Installing: false,
          IsAppClip: false,
        })),
      }
    case 'CertificateList':
      return { CertificateList: certificates.map((data, i) => ({ CommonName: `Certificate ${i}`, Data: data, IsIdentity: i === 0 })) }
    default:
      return {}
  }
}

/** CPU seconds of one process so far; undefined once it has ended. */
function processCpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** Peak resident memory of a process (VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) / 1024 : NaN
}

async function benchBackend(backend: Backend): Promise<void> {
  console.log(
    `\n### ${backend.name}: ${deviceCount} devices (RSA-2048, CMS with signed attributes), ${commandsPerDevice} commands each, ${concurrency} concurrent`,
  )
  const ca = await createDeviceCa('Bench device CA')
  // Logs at warn, so the "listening" line is not printed: a port chosen here, and /healthz polled.
  const port = await freePort()
  // BENCH_SERVER_PROFILE=DIR: a V8 CPU profile of the whole server run, written to DIR when it stops.
  const profileFlags = process.env['BENCH_SERVER_PROFILE'] ? ['--cpu-prof', '--cpu-prof-dir', process.env['BENCH_SERVER_PROFILE']] : []
  const server = spawnServer([...serverNodeFlags, ...profileFlags, 'dist/src/main.js', '--port', String(port)], {
    ...backend.env,
    ORCHARD_DEVICE_CA_FILES: ca.pemFile,
    ORCHARD_API_KEYS: apiKey,
    ORCHARD_LOG_LEVEL: 'warn',
    ORCHARD_INVENTORY_AT_ENROLLMENT: 'false',
  })
  process.once('exit', () => server.child.exitCode === null && server.child.kill('SIGKILL'))
  const address = `http://127.0.0.1:${port}`
  for (let tries = 0; ; tries++) {
    const healthy = await fetch(`${address}/healthz`).then(
      (response) => response.ok,
      () => false,
    )
    if (healthy) break
    if (tries === 600 || server.child.exitCode !== null) throw new Error(`the server did not start: ${server.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  server.discardOutput()
  const serverPid = server.child.pid!
  // PostgreSQL CPU: the backends connected to this bench's database and the shared processes
  // (WAL writer, checkpointer...), not other databases' clients (tests run meanwhile).
  const watcher = backend.name === 'postgres' ? new pg.Client({ connectionString: backend.env['DATABASE_URL'] }) : null
  await watcher?.connect()
  const databasePids = async () =>
    watcher
      ? (await watcher.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database() or datname is null')).rows.map(
          (row) => row.pid,
        )
      : []
  // PostgreSQL's own account of each phase: WAL, and the top statements when pg_stat_statements is preloaded.
  const statements = watcher ? await phaseStatements(watcher) : null
  if (statements?.unavailable) console.log(`postgres: ${statements.unavailable}; statement figures left out`)
  const meter = async (label?: string, unit = 'command') => {
    const phase = label ? await statements?.start() : undefined
    const serverBefore = cpuSeconds([serverPid])
    const before = new Map((await databasePids()).map((pid) => [pid, processCpuSeconds(pid) ?? 0]))
    return async (units: number) => {
      let database = 0
      for (const pid of new Set([...before.keys(), ...(await databasePids())])) {
        const now = processCpuSeconds(pid)
        if (now !== undefined) database += now - (before.get(pid) ?? 0)
      }
      const serverMs = ((cpuSeconds([serverPid]) - serverBefore) * 1000) / units
      const databaseMs = (database * 1000) / units
      // Read after the CPU figures, so that reading them is not counted.
      if (phase && label) for (const line of statementLines(`postgres ${label}`, await phase(), units, unit)) console.log(line)
      return { serverMs, databaseMs, totalMs: serverMs + databaseMs }
    }
  }
  const show = (cpu: { serverMs: number; databaseMs: number; totalMs: number }, unit: string) =>
    `${cpu.totalMs.toFixed(2)} ms server + database CPU per ${unit} (server ${cpu.serverMs.toFixed(2)}, ${backend.name === 'postgres' ? `postgres ${cpu.databaseMs.toFixed(2)}` : 'database inside it'})`

  const transport = httpTransport(address)
  const devices: SimulatedDevice[] = []
  for (let i = 0; i < deviceCount; i++) devices.push(await SimulatedDevice.create(ca, transport, { keyAlgorithm: 'rsa-2048' }))
  const certificates = devices.slice(0, 6).map((device) => device.certificateDer)

  /** One command queued by one API call (a raw plist, push off); `samples`: the time to its answer's headers. */
  const enqueueCall = async (device: SimulatedDevice, requestType: RequestType, samples?: number[]) => {
    const request = () =>
      fetch(`${address}/api/v1/enqueue/${device.udid}?push=false`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/x-apple-plist' },
        body: commandPlist(requestType),
      })
    const response = await (samples ? timed(samples, request) : request())
    if (response.status !== 200) throw new Error(`enqueue: ${response.status} ${await response.text()}`)
    await response.arrayBuffer()
  }

  // 0. Warm-up, not measured: the whole workload on devices of their own.
  if (warmupDevices > 0) {
    const warm: SimulatedDevice[] = []
    for (let i = 0; i < warmupDevices; i++) warm.push(await SimulatedDevice.create(ca, transport, { keyAlgorithm: 'rsa-2048' }))
    await runPool(warm, concurrency, async (device) => {
      await device.enroll()
      for (let k = 0; k < commandsPerDevice; k++) {
        await enqueueCall(device, requestTypes[k % requestTypes.length]!)
      }
      let command = commandIn(await device.idle())
      while (command) command = commandIn(await device.answer(command.uuid, 'Acknowledged', answerFor(command.requestType, device, certificates)))
    })
    console.log(`warm-up:  ${warmupDevices} devices enrolled and drained ${commandsPerDevice} commands each (not measured)`)
  }

  // 1. Enrollment.
  const latency = new Map<string, number[]>(['Authenticate', 'TokenUpdate', 'Idle', 'Acknowledged', 'enqueue'].map((name) => [name, []]))
  const enrollCpu = await meter('enrollment', 'enrollment')
  let start = performance.now()
  await runPool(devices, concurrency, async (device) => {
    for (const [name, step] of [
      ['Authenticate', () => device.authenticate()],
      ['TokenUpdate', () => device.tokenUpdate()],
      ['Idle', () => device.idle()],
    ] as const) {
      const response = await timed(latency.get(name)!, step)
      if (response.status !== 200 || (name === 'Idle' && response.body.length > 0)) throw new Error(`${name}: ${response.status} ${response.body.toString()}`)
    }
  })
  let seconds = (performance.now() - start) / 1000
  const enrollment = await enrollCpu(deviceCount)
  console.log(`enroll:   ${(deviceCount / seconds).toFixed(0)} devices/s; ${show(enrollment, 'enrollment')}`)

  // 2. One API call per command, push off.
  const jobs = devices.flatMap((device) =>
    Array.from({ length: commandsPerDevice }, (_, k) => ({ device, requestType: requestTypes[k % requestTypes.length]! })),
  )
  const enqueueCpu = await meter('enqueue')
  start = performance.now()
  await runPool(jobs, concurrency, async ({ device, requestType }) => {
    await enqueueCall(device, requestType, latency.get('enqueue'))
  })
  seconds = (performance.now() - start) / 1000
  const enqueued = await enqueueCpu(jobs.length)
  console.log(`enqueue:  ${(jobs.length / seconds).toFixed(0)} API calls/s; ${show(enqueued, 'command')}`)

  // 3. The drain, with realistic answers.
  const drain = async (label: string) => {
    let drained = 0
    let answeredBytes = 0
    const types = new Map<string, number>()
    const cpu = await meter(`drain (${label})`)
    const began = performance.now()
    await runPool(devices, concurrency, async (device) => {
      let command = commandIn(await timed(latency.get('Idle')!, () => device.idle()))
      while (command) {
        const { uuid, requestType } = command
        types.set(requestType, (types.get(requestType) ?? 0) + 1)
        const keys = answerFor(requestType, device, certificates)
        answeredBytes += encodePlist(keys).length
        command = commandIn(await timed(latency.get('Acknowledged')!, () => device.answer(uuid, 'Acknowledged', keys)))
        drained++
      }
    })
    const took = (performance.now() - began) / 1000
    // Every queued command must come back; Orchard may ask for more on its own (with secret keys, as
    // PGlite's data directory has: ActivationLockBypassCode after DeviceInformation shows supervision).
    const ours = requestTypes.reduce((sum, type) => sum + (types.get(type) ?? 0), 0)
    if (ours !== jobs.length)
      throw new Error(`${label}: drained ${ours} of the queued commands, expected ${jobs.length}: ${JSON.stringify(Object.fromEntries(types))}`)
    const extra = [...types].filter(([type]) => !(requestTypes as readonly string[]).includes(type))
    if (extra.length > 0) console.log(`drain:    ${label}: also answered, asked by Orchard itself: ${extra.map(([type, n]) => `${n} ${type}`).join(', ')}`)
    const used = await cpu(drained)
    console.log(
      `drain:    ${label}: ${(drained / took).toFixed(0)} commands/s, answers ${(answeredBytes / drained / 1024).toFixed(1)} KiB on average; ${show(used, 'command')}`,
    )
    return used
  }
  const drained = await drain('one API call per command')
  const perCommand = {
    serverMs: enqueued.serverMs + drained.serverMs,
    databaseMs: enqueued.databaseMs + drained.databaseMs,
    totalMs: enqueued.totalMs + drained.totalMs,
  }
  console.log(`command:  enqueue + drain: ${show(perCommand, 'command')}`)
  for (const name of ['Authenticate', 'TokenUpdate', 'Idle', 'Acknowledged', 'enqueue'])
    console.log(`latency:  ${name.padEnd(12)} ${latencySummary(latency.get(name)!)}`)

  // 4. The batched typed path: one call per request type for up to 1,000 devices.
  const batchCpu = await meter('batched enqueue')
  const ids = devices.map((device) => device.udid)
  for (let k = 0; k < commandsPerDevice; k++) {
    const requestType = requestTypes[k % requestTypes.length]!
    for (let i = 0; i < ids.length; i += 1000) {
      const command: Record<string, unknown> = { request_type: requestType, ...(requestType === 'DeviceInformation' ? { Queries: queries } : {}) }
      const response = await fetch(`${address}/api/v1/commands`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ enrollment_ids: ids.slice(i, i + 1000), command, push: false }),
      })
      if (response.status !== 201) throw new Error(`batched enqueue: ${response.status} ${await response.text()}`)
      await response.arrayBuffer()
    }
  }
  const batched = await batchCpu(jobs.length)
  console.log(`batched:  typed, up to 1,000 targets per call: ${show(batched, 'command')} to enqueue`)
  const batchDrain = await drain('batched')
  console.log(
    `batched:  enqueue + drain: ${show({ serverMs: batched.serverMs + batchDrain.serverMs, databaseMs: batched.databaseMs + batchDrain.databaseMs, totalMs: batched.totalMs + batchDrain.totalMs }, 'command')}`,
  )
  console.log(`memory:   server peak RSS ${peakRssMb(serverPid).toFixed(0)} MB${backend.name === 'pglite' ? ' (the embedded database included)' : ''}`)
  await watcher?.end()
  server.child.kill('SIGTERM')
  await server.exited
}

if (backendArg === 'postgres' || backendArg === 'both') await benchBackend(await postgresBackend('orchard_bench_realistic'))
if (backendArg === 'pglite' || backendArg === 'both') await benchBackend(pgliteBackend())
