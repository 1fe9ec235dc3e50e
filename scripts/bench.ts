// `npm run bench -- [--backend postgres|pglite|both] [--devices 1000] [--commands 5]
//   [--concurrency 50] [--fill 1000000] [--profile DIR] [--only mdm|push|dep|reports|vpp|ddm|groups|realistic|scale] [--pushes 100000] [--dep-devices 20000] [--report-devices 10000] [--vpp-devices 10000]
//   [--ddm-devices 10000] [--group-devices 100000] [--scale-devices 100000] [--history 10000000] [--tenths 1] [--history-only 1] [--warmup 50]`
// (--profile: V8 CPU profile of the server). Then the push benchmark (scripts/bench-push.ts),
// run with the server's production heap setting, and the ADE sync benchmark (scripts/bench-dep.ts).
// Load generator: N simulated signing devices on loopback against the compiled server in
// a child process. Measures enrollment (Authenticate + TokenUpdate + first Idle), draining
// K commands per device, server and database CPU per command, and whether one device's
// next-command time grows when the queue holds a million commands for other devices.
// Not part of `npm test`: figures depend on the machine.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { encodePlist } from '../src/mdm/plist.js'
import { spawnServer, type ServerProcess } from '../test/helpers/server-process.js'
import { cpuSeconds, latencySummary, pgliteBackend, postgresBackend, runPool, serverNodeFlags, timed, type Backend } from './bench-common.js'
import { commandIn, createDeviceCa, httpTransport, SimulatedDevice, type DeviceCa } from '../test/helpers/simulated-device.js'

const root = fileURLToPath(new URL('../', import.meta.url))
const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const deviceCount = Number(args.get('devices') ?? 1000)
const commandsPerDevice = Number(args.get('commands') ?? 5)
const concurrency = Number(args.get('concurrency') ?? 50)
const fillRows = Number(args.get('fill') ?? 1_000_000)
const backendArg = args.get('backend') ?? 'both'
const apiKey = 'bench-api-key-0123456789abcdef'

async function enqueue(address: string, ids: string[], requestType: string): Promise<void> {
  for (let i = 0; i < ids.length; i += 200) {
    const uuid = crypto.randomUUID()
    const response = await fetch(`${address}/api/v1/enqueue/${ids.slice(i, i + 200).join(',')}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/x-apple-plist' },
      body: encodePlist({ CommandUUID: uuid, Command: { RequestType: requestType } }),
    })
    if (response.status !== 200) throw new Error(`enqueue failed: ${response.status} ${await response.text()}`)
  }
}

async function startServer(backend: Backend, ca: DeviceCa): Promise<{ server: ServerProcess; address: string }> {
  // Default settings, info-level logs included (one access-log line per request).
  const profile = args.has('profile') ? ['--cpu-prof', `--cpu-prof-dir=${args.get('profile') || '/tmp/orchard-profile'}`] : []
  const server = spawnServer([...serverNodeFlags, ...profile, 'dist/src/main.js', '--port', '0'], {
    ...backend.env,
    ORCHARD_DEVICE_CA_FILES: ca.pemFile,
    ORCHARD_API_KEYS: apiKey,
  })
  const listening = await server.waitForLog(/^Orchard listening on /)
  server.discardOutput()
  return { server, address: String(listening['address']) }
}

async function stopServer(server: ServerProcess): Promise<void> {
  server.child.kill('SIGTERM')
  await server.exited
}

async function benchBackend(backend: Backend): Promise<void> {
  console.log(`\n## ${backend.name}: ${deviceCount} devices, ${commandsPerDevice} commands each, ${concurrency} concurrent`)
  const ca = await createDeviceCa('Bench device CA')
  let { server, address } = await startServer(backend, ca)
  // A failed run must not leave a server behind.
  const killOnExit = () => server.child.exitCode === null && server.child.kill('SIGKILL')
  process.once('exit', killOnExit)

  const transport = httpTransport(address)
  const devices: SimulatedDevice[] = []
  for (let i = 0; i < deviceCount; i++) devices.push(await SimulatedDevice.create(ca, transport))

  const serverPid = server.child.pid!
  const cpuMeter = () => {
    const server = cpuSeconds([serverPid])
    const database = cpuSeconds(backend.databasePids())
    const simulator = process.cpuUsage()
    return (units: number, unit: string) => {
      const serverCpu = cpuSeconds([serverPid]) - server
      const databaseCpu = cpuSeconds(backend.databasePids()) - database
      const usage = process.cpuUsage(simulator)
      const per = (seconds: number) => ((seconds * 1000) / units).toFixed(2)
      return (
        `${per(serverCpu + databaseCpu)} ms server + database CPU per ${unit} (server ${per(serverCpu)}` +
        `${backend.name === 'postgres' ? `, postgres ${per(databaseCpu)}` : ', database inside it'}; simulator ${per((usage.user + usage.system) / 1e6)})`
      )
    }
  }

  // 1. Enrollment: Authenticate + TokenUpdate + first Idle.
  const enrollLatency: number[] = []
  const enrollCpu = cpuMeter()
  let start = performance.now()
  await runPool(devices, concurrency, async (device) => {
    for (const step of [() => device.authenticate(), () => device.tokenUpdate(), () => device.idle()]) {
      const response = await timed(enrollLatency, step)
      if (response.status !== 200) throw new Error(`enroll: ${response.status} ${response.body.toString()}`)
    }
  })
  let seconds = (performance.now() - start) / 1000
  console.log(`enroll:  ${(deviceCount / seconds).toFixed(0)} devices/s (${seconds.toFixed(2)} s); per request ${latencySummary(enrollLatency)}`)
  console.log(`cpu:     ${enrollCpu(deviceCount, 'device')}`)

  // 2. Drain K commands per device: result in, next command out.
  const ids = devices.map((d) => d.udid)
  for (let k = 0; k < commandsPerDevice; k++) await enqueue(address, ids, k % 2 ? 'SecurityInfo' : 'ProfileList')
  const drainLatency: number[] = []
  let drained = 0
  const drainCpu = cpuMeter()
  start = performance.now()
  await runPool(devices, concurrency, async (device) => {
    let command = commandIn(await timed(drainLatency, () => device.idle()))
    while (command) {
      const uuid = command.uuid
      command = commandIn(
        await timed(drainLatency, () =>
          device.answer(uuid, 'Acknowledged', command!.requestType === 'ProfileList' ? { ProfileList: [] } : { SecurityInfo: { PasscodePresent: true } }),
        ),
      )
      drained++
    }
  })
  seconds = (performance.now() - start) / 1000
  if (drained !== deviceCount * commandsPerDevice) throw new Error(`drained ${drained}, expected ${deviceCount * commandsPerDevice}`)
  console.log(`drain:   ${(drained / seconds).toFixed(0)} commands/s (${seconds.toFixed(2)} s); per request ${latencySummary(drainLatency)}`)
  console.log(`cpu:     ${drainCpu(drained, 'command')}`)

  // 3. Next-command time for one device, before and after filling the queue for others.
  const probe = devices[0]!
  const measureNext = async (label: string) => {
    const samples: number[] = []
    // The first 100 rounds warm up a freshly started server (JIT, connections, prepared statements).
    for (let i = 0; i < 300; i++) {
      if (i === 100) samples.length = 0
      await enqueue(address, [probe.udid], 'ProfileList')
      const command = commandIn(await timed(samples, () => probe.idle()))
      if (!command) throw new Error('probe got no command')
      await probe.answer(command.uuid, 'Acknowledged', { ProfileList: [] })
    }
    console.log(`next:    ${label}: Idle -> next command ${latencySummary(samples)}`)
  }
  await measureNext('queue without backlog')
  if (fillRows > 0) {
    await stopServer(server)
    const enrollmentsForFill = 10_000
    const commandsForFill = Math.ceil(fillRows / enrollmentsForFill)
    const fillStart = performance.now()
    await backend.withDatabase(async (query) => {
      await query(
        `insert into devices (id, udid, topic) select 'FILL-' || i, 'FILL-' || i, 'com.apple.mgmt.fill' from generate_series(1, ${enrollmentsForFill}) i`,
      )
      await query(
        `insert into enrollments (id, device_id, channel, enabled) select 'FILL-' || i, 'FILL-' || i, 'device', true from generate_series(1, ${enrollmentsForFill}) i`,
      )
      await query(
        `insert into commands (uuid, request_type, payload) select 'FILL-CMD-' || c, 'ProfileList', '\\x00'::bytea from generate_series(1, ${commandsForFill}) c`,
      )
      await query(
        `insert into command_targets (enrollment_id, command_uuid) select 'FILL-' || i, 'FILL-CMD-' || c from generate_series(1, ${commandsForFill}) c, generate_series(1, ${enrollmentsForFill}) i`,
      )
      // Vacuum and checkpoint now, so neither autovacuum nor the checkpointer works through
      // the fresh rows during the measurement.
      await query('vacuum analyze')
      await query('checkpoint')
    })
    console.log(
      `fill:    ${(enrollmentsForFill * commandsForFill).toLocaleString('en')} pending commands for ${enrollmentsForFill.toLocaleString('en')} other enrollments (${((performance.now() - fillStart) / 1000).toFixed(1)} s)`,
    )
    ;({ server, address } = await startServer(backend, ca))
    probe.transport = httpTransport(address)
    await measureNext(`with ${(enrollmentsForFill * commandsForFill).toLocaleString('en')} queued for others`)
  }
  await stopServer(server)
}

const only = args.get('only')
if (only === undefined || only === 'mdm') {
  console.log('building (npm run build) ...')
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' })
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} cores; simulator and server on this machine`)
  if (backendArg === 'postgres' || backendArg === 'both') await benchBackend(await postgresBackend())
  if (backendArg === 'pglite' || backendArg === 'both') await benchBackend(pgliteBackend())
}
if (only === 'realistic') {
  // Issue 24's workload; not in the default set (1,000 RSA identities take a while to generate).
  console.log('building (npm run build) ...')
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' })
  console.log(
    `\n## Realistic workload (scripts/bench-realistic.ts): node ${process.version}, ${(await import('node:os')).cpus().length} cores; simulator and server on this machine`,
  )
  execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'scripts/bench-realistic.ts'),
      ...['backend', 'devices', 'commands', 'concurrency', 'warmup'].flatMap((name) => (args.has(name) ? [`--${name}`, args.get(name)!] : [])),
    ],
    { stdio: 'inherit', cwd: root },
  )
}
if (only === undefined || only === 'push') {
  console.log(`\n## push: through the fake APNs (sender process started as \`npm start\` starts the server: ${serverNodeFlags.join(' ')})`)
  execFileSync(process.execPath, [...serverNodeFlags, '--import', 'tsx', join(root, 'scripts/bench-push.ts'), '--count', args.get('pushes') ?? '100000'], {
    stdio: 'inherit',
    cwd: root,
  })
}
if (only === undefined || only === 'reports') {
  console.log('\n## Reports: device-days (billing) and device counts over a year of history (scripts/bench-reports.ts)')
  for (const backend of backendArg === 'both' ? ['postgres', 'pglite'] : [backendArg]) {
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(root, 'scripts/bench-reports.ts'), '--backend', backend, '--devices', args.get('report-devices') ?? '10000'],
      { stdio: 'inherit', cwd: root },
    )
  }
}
if (only === undefined || only === 'dep') {
  console.log('\n## ADE: ABM/ASM device sync through the fake ABM server (scripts/bench-dep.ts)')
  for (const backend of backendArg === 'both' ? ['postgres', 'pglite'] : [backendArg]) {
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(root, 'scripts/bench-dep.ts'), '--backend', backend, '--devices', args.get('dep-devices') ?? '20000'],
      { stdio: 'inherit', cwd: root },
    )
  }
}
if (only === undefined || only === 'vpp') {
  console.log('\n## Apps and Books: one asset to N devices through a blueprint, licences in batches (scripts/bench-vpp.ts)')
  for (const backend of backendArg === 'both' ? ['postgres', 'pglite'] : [backendArg]) {
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(root, 'scripts/bench-vpp.ts'), '--backend', backend, '--devices', args.get('vpp-devices') ?? '10000'],
      { stdio: 'inherit', cwd: root },
    )
  }
}
if (only === undefined || only === 'ddm') {
  console.log(
    `\n## Declarative device management: tokens polls, a retarget of every device, status reports (scripts/bench-ddm.ts; Orchard in the bench process, ${serverNodeFlags.join(' ')} as \`npm start\`)`,
  )
  // --profile: a V8 CPU profile of each measured phase (Orchard runs in the bench process).
  const profile = args.has('profile') ? ['--profile', args.get('profile') || '/tmp/orchard-profile'] : []
  // PostgreSQL unless --backend says otherwise (10,000 devices on PGlite take a while).
  const ddmBackends = !args.has('backend') ? ['postgres'] : backendArg === 'both' ? ['postgres', 'pglite'] : [backendArg]
  for (const backend of ddmBackends) {
    execFileSync(
      process.execPath,
      [
        ...serverNodeFlags,
        '--import',
        'tsx',
        join(root, 'scripts/bench-ddm.ts'),
        '--backend',
        backend,
        '--devices',
        args.get('ddm-devices') ?? args.get('devices') ?? '10000',
        ...profile,
      ],
      { stdio: 'inherit', cwd: root },
    )
  }
}
if (only === undefined || only === 'groups') {
  console.log('\n## Device groups and search: pages of 100 over 100,000 devices (scripts/bench-groups.ts; PostgreSQL unless --backend says otherwise)')
  const groupBackends = !args.has('backend') ? ['postgres'] : backendArg === 'both' ? ['postgres', 'pglite'] : [backendArg]
  for (const backend of groupBackends) {
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(root, 'scripts/bench-groups.ts'), '--backend', backend, '--devices', args.get('group-devices') ?? '100000'],
      { stdio: 'inherit', cwd: root },
    )
  }
}
if (only === 'scale') {
  // Not in the default run: it writes 100,000 devices and 10,000,000 command targets (minutes, GBs).
  console.log(
    '\n## Scale: one PostgreSQL, 1,000 then 100,000 devices, then 10,000,000 targets of history (scripts/bench-scale.ts; Orchard in the bench process)',
  )
  execFileSync(
    process.execPath,
    [
      ...serverNodeFlags,
      '--import',
      'tsx',
      join(root, 'scripts/bench-scale.ts'),
      '--devices',
      args.get('scale-devices') ?? '100000',
      '--history',
      args.get('history') ?? '10000000',
      // The enrollment rate of the first and last tenth of the fleet alone.
      ...(args.has('tenths') ? ['--tenths', '1'] : []),
      // The fleet by SQL, then only the measures on the history.
      ...(args.has('history-only') ? ['--history-only', '1'] : []),
    ],
    { stdio: 'inherit', cwd: root },
  )
}
