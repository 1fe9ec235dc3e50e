// `npm run simulate -- enroll --link URL --count 20`: simulated iPads for trying Orchard without
// one. They enroll through a real enrollment link as devices do (profile, SCEP, Authenticate,
// TokenUpdate), then answer their commands until stopped. `simulate push-certificate` makes the
// push certificate enrollment needs when there is no Apple one. Exit codes: 0 stopped, 1 failed,
// 2 usage error.
import { randomUUID } from 'node:crypto'
import { readFileSync, realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem } from '../crypto/certificates.js'
import { describeAnswer, eachLimited, enrollDevice, EnrollmentError, pause, type FleetDevice, type FleetOptions } from './fleet.js'
import { ScepHttpError } from './scep-client.js'

export interface SimulateOutput {
  write(text: string): unknown
}

export interface SimulateIo {
  stdout: SimulateOutput
  stderr: SimulateOutput
  env: Record<string, string | undefined>
  /** Stops the devices (the direct run aborts it on SIGINT and SIGTERM). */
  signal?: AbortSignal
}

export const simulateUsage = `Usage: simulate <command> [options]

Commands:
  enroll --link URL --count N [--model MODEL] [--poll-seconds N] [--ca-file PEM] [--supervised]
        Enrolls N simulated devices through an enrollment link (the "url" of POST
        /api/v1/enrollment-links) as real ones do: each downloads the enrollment profile, gets
        its identity over SCEP, then sends Authenticate and TokenUpdate. Then they answer their
        commands as devices do (DeviceInformation, SecurityInfo, ProfileList, InstallProfile,
        RemoveProfile, InstalledApplicationList, CertificateList, DeviceLock, EraseDevice, Lost
        Mode...; anything else with an Error) until stopped with Ctrl-C. One line per device
        enrolled and per command answered.
        Simulated devices cannot receive APNs pushes: each one polls the server (Idle) every
        --poll-seconds instead (default 10), so a command reaches it within that time.
        --count N         how many devices (1 to 10000)
        --model MODEL     the model identifier they report (default iPad13,1)
        --poll-seconds N  seconds between polls (1 to 3600, default 10)
        --ca-file PEM     the CA to trust for the server's HTTPS certificate instead of
                          the system's (certs/dev/ca.pem after npm run certs:dev)
        --supervised      the devices say they are supervised (Lost Mode, restart and
                          Activation Lock bypass codes then work)
  push-certificate [--topic TOPIC]
        Prints a push certificate made up for simulated devices, with its key, as the JSON
        body of POST /api/v1/push-certificates: devices enroll only once the server has one.
        APNs refuses it (Apple did not issue it): use it on a server with no real devices.
        TOPIC: com.apple.mgmt.External.<UUID> (default a new one).

Exit codes: 0 stopped, 1 failed, 2 usage error.`

class UsageError extends Error {}

type Parsed =
  | { kind: 'help' }
  | { kind: 'enroll'; link: string; count: number; model: string; pollSeconds: number; caFile: string | null; supervised: boolean }
  | { kind: 'push-certificate'; topic: string }

const flagsOf: Record<string, Record<string, boolean>> = {
  enroll: { '--link': true, '--count': true, '--model': true, '--poll-seconds': true, '--ca-file': true, '--supervised': false },
  'push-certificate': { '--topic': true },
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max} (got "${value}")`)
  return n
}

function parse(argv: readonly string[]): Parsed {
  if (argv.some((arg) => arg === '--help' || arg === '-h') || argv.length === 0) return { kind: 'help' }
  const [command, ...rest] = argv
  const allowed = flagsOf[command!]
  if (!allowed) throw new UsageError(`${command}: unknown command (enroll or push-certificate)`)
  const flags = new Map<string, string>()
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    const takesValue = allowed[flag]
    if (takesValue === undefined) throw new UsageError(`${command}: unknown ${flag.startsWith('--') ? 'option' : 'argument'} ${flag}`)
    let value = 'true'
    if (takesValue) {
      const next = eq === -1 ? rest[++i] : arg.slice(eq + 1)
      if (next === undefined || next === '') throw new UsageError(`${flag} needs a value`)
      value = next
    } else if (eq !== -1) throw new UsageError(`${flag} takes no value`)
    flags.set(flag, value)
  }
  if (command === 'push-certificate') {
    const topic = flags.get('--topic') ?? `com.apple.mgmt.External.${randomUUID()}`
    if (!topic.startsWith('com.apple.mgmt.')) throw new UsageError(`--topic must start with com.apple.mgmt. (got "${topic}")`)
    return { kind: 'push-certificate', topic }
  }
  const link = flags.get('--link')
  if (!link) throw new UsageError('enroll needs --link URL (an enrollment link)')
  let url: URL
  try {
    url = new URL(link)
  } catch {
    throw new UsageError(`--link must be a URL (got "${link}")`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`--link must be an http(s) URL (got "${link}")`)
  const count = flags.get('--count')
  if (count === undefined) throw new UsageError('enroll needs --count N')
  return {
    kind: 'enroll',
    link,
    count: integer('--count', count, 1, 10_000),
    model: flags.get('--model') ?? 'iPad13,1',
    pollSeconds: integer('--poll-seconds', flags.get('--poll-seconds') ?? '10', 1, 3600),
    caFile: flags.get('--ca-file') ?? null,
    supervised: flags.has('--supervised'),
  }
}

/** A self-issued push certificate (subject UID = the topic) and its key, as the upload's JSON body. */
async function pushCertificate(topic: string): Promise<string> {
  const keys = await generateKeyPair('rsa-2048')
  const certificate = await createCertificate({
    subject: { uid: topic, commonName: `APSP:${randomUUID()}`, organization: 'Orchard device simulator (not issued by Apple)' },
    publicKey: keys.publicKey,
    selfSignKey: keys.privateKey,
    validDays: 365,
    usage: 'client',
  })
  return `${JSON.stringify({ certificate_pem: certificateToPem(certificate), private_key_pem: await privateKeyToPem(keys.privateKey) })}\n`
}

function reasonOf(error: unknown): string {
  if (error instanceof ScepHttpError) return `SCEP: ${error.message}: ${error.body.toString('utf8').slice(0, 300)}`
  if (error instanceof EnrollmentError) return error.message
  const cause = (error as { cause?: { code?: string; message?: string } }).cause
  const message = (error as Error).message ?? String(error)
  return cause?.message && !message.includes(cause.message) ? `${message}: ${cause.message}` : message
}

async function enroll(options: Extract<Parsed, { kind: 'enroll' }>, io: SimulateIo): Promise<number> {
  const signal = io.signal ?? new AbortController().signal
  const out = (line: string) => io.stdout.write(`${line}\n`)
  const trust = options.caFile ? { ca: readFileSync(options.caFile) } : {}
  const fleetOptions: FleetOptions = { link: options.link, model: options.model, supervised: options.supervised, trust, signal }

  const devices: FleetDevice[] = []
  const failures: string[] = []
  await eachLimited(
    Array.from({ length: options.count }, (_, i) => i),
    4,
    async (index) => {
      if (failures.length > 0 || signal.aborted) return
      try {
        const enrolled = await enrollDevice(fleetOptions, index)
        devices.push(enrolled)
        out(`enrolled ${devices.length}/${options.count}: ${enrolled.state.serialNumber} (UDID ${enrolled.state.udid}, ${options.model})`)
      } catch (error) {
        if (!signal.aborted) failures.push(reasonOf(error))
      }
    },
  )
  if (failures.length > 0 || signal.aborted) for (const device of devices) device.agent.destroy()
  if (failures.length > 0) {
    io.stderr.write(`simulate: enrollment failed after ${devices.length} of ${options.count} devices: ${failures[0]}\n`)
    return 1
  }
  if (signal.aborted) {
    out(`stopped: ${devices.length} of ${options.count} devices enrolled`)
    return 0
  }
  out(`${devices.length} devices enrolled. Simulated devices cannot receive APNs pushes: each polls every ${options.pollSeconds} s. ` + 'Ctrl-C stops them.')

  let answered = 0
  for (const device of devices) {
    device.faithful.onAnswer = (requestType, command, answer) => {
      answered++
      out(describeAnswer(device, requestType, command, answer))
    }
  }
  let active = devices
  while (!signal.aborted) {
    await eachLimited(active, 8, async (device) => {
      if (signal.aborted) return
      try {
        await device.faithful.sync()
      } catch (error) {
        if (!signal.aborted) io.stderr.write(`${device.state.serialNumber}: ${reasonOf(error)}\n`)
      } finally {
        device.faithful.reset()
      }
    })
    for (const device of active.filter((d) => d.state.erased)) out(`${device.state.serialNumber} erased: it no longer talks to the server`)
    active = active.filter((d) => !d.state.erased)
    await pause(options.pollSeconds * 1000, signal)
  }
  for (const device of devices) device.agent.destroy()
  out(`stopped: ${devices.length} devices, ${answered} commands answered`)
  return 0
}

export async function runSimulateCommand(argv: string[], io: SimulateIo): Promise<number> {
  let parsed: Parsed
  try {
    parsed = parse(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr.write(`simulate: ${error.message}\n\n${simulateUsage}\n`)
    return 2
  }
  if (parsed.kind === 'help') {
    io.stdout.write(`${simulateUsage}\n`)
    return 0
  }
  if (parsed.kind === 'push-certificate') {
    io.stdout.write(await pushCertificate(parsed.topic))
    return 0
  }
  try {
    return await enroll(parsed, io)
  } catch (error) {
    io.stderr.write(`simulate: ${reasonOf(error)}\n`)
    return 1
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const stop = new AbortController()
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort())
  process.exitCode = await runSimulateCommand(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: stop.signal })
}
