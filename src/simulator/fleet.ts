// A fleet of simulated iPads: each enrolls through a real enrollment link as a device does
// (downloads the profile, gets its identity over SCEP, Authenticate, TokenUpdate), then answers
// its commands. Simulated devices cannot receive APNs pushes, so they poll: every few seconds
// each sends Idle and runs its queue to the end.
import { randomBytes } from 'node:crypto'
import { isPlistDict, type PlistDict } from '../mdm/plist.js'
import { answerCommand, newDeviceState, type SimulatedDeviceState } from './device-answers.js'
import { readEnrollmentProfile } from './enrollment-profile.js'
import { FaithfulDevice, type CommandAnswer } from './faithful-device.js'
import { deviceAgent, mdmTransport, scepTransport, send, type TlsTrust } from './http-client.js'
import { scepEnroll } from './scep-client.js'
import { modelName, plistText, SimulatedDevice } from './simulated-device.js'

export interface FleetOptions {
  /** The enrollment link (or open /enroll URL) every device downloads its profile from. */
  link: string
  model: string
  supervised: boolean
  trust: TlsTrust
  /** Stops the devices: requests underway are abandoned. */
  signal?: AbortSignal
}

export interface FleetDevice {
  device: SimulatedDevice
  /** Its kept-alive connections (destroy it to let the process end). */
  agent: { destroy(): void }
  faithful: FaithfulDevice
  state: SimulatedDeviceState
}

export class EnrollmentError extends Error {
  override readonly name = 'EnrollmentError'
}

/** Why a profile download failed, from a problem document's detail when there is one. */
function downloadFailure(status: number, body: Buffer, contentType: string | undefined): string {
  if (contentType?.includes('json')) {
    try {
      const problem = JSON.parse(body.toString('utf8')) as { detail?: unknown; title?: unknown }
      const detail = typeof problem.detail === 'string' ? problem.detail : typeof problem.title === 'string' ? problem.title : undefined
      if (detail) return `HTTP ${status}: ${detail}`
    } catch {
      // not JSON after all: the status says enough
    }
  }
  return `HTTP ${status}`
}

/** An IOKit-style UDID of a recent iPad: 8 hex digits, a dash, 16 hex digits. */
const newUdid = () => `00008103-${randomBytes(8).toString('hex').toUpperCase()}`
/** Serial numbers of simulated devices start with SIM, so they are easy to tell apart. */
const newSerialNumber = () => `SIM${randomBytes(5).toString('hex').toUpperCase().slice(0, 9)}`

/** Enrolls one device through the link; throws EnrollmentError with the reason when a step fails. */
export async function enrollDevice(options: FleetOptions, index: number): Promise<FleetDevice> {
  const signal = options.signal ? { signal: options.signal } : {}
  const download = await send(new URL(options.link), {
    method: 'GET',
    headers: { accept: 'application/x-apple-aspen-config' },
    trust: options.trust,
    ...signal,
  })
  if (download.status !== 200) {
    throw new EnrollmentError(`the enrollment link answered ${downloadFailure(download.status, download.body, download.contentType)}`)
  }
  const profile = readEnrollmentProfile(download.body)
  const serialNumber = newSerialNumber()
  const udid = newUdid()

  const scep = await scepEnroll(scepTransport(profile.scep.url, options.trust, options.signal), {
    path: new URL(profile.scep.url).pathname,
    challenge: profile.scep.challenge,
    subject: profile.scep.subject,
  })
  if (!scep.certificateDer) {
    throw new EnrollmentError(`SCEP refused the identity: ${scep.certRep.pkiStatus}${scep.certRep.failInfo ? ` (${scep.certRep.failInfo})` : ''}`)
  }
  const identity = { certificateDer: scep.certificateDer, privateKey: scep.key.privateKey }
  const agent = deviceAgent(new URL(profile.mdm.serverUrl), options.trust, {
    certificatePem: `-----BEGIN CERTIFICATE-----\n${scep.certificateDer.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`,
    privateKeyPem: scep.key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  })
  const transport = mdmTransport(profile.mdm, agent, options.trust, options.signal)
  const device = await SimulatedDevice.fromIdentity(identity, transport, { udid, serialNumber, topic: profile.mdm.topic, model: options.model })
  for (const [step, run] of [
    ['Authenticate', () => device.authenticate()],
    ['TokenUpdate', () => device.tokenUpdate()],
  ] as const) {
    const response = await run()
    if (response.status !== 200) throw new EnrollmentError(`${step} answered HTTP ${response.status}: ${response.body.toString('utf8').slice(0, 300)}`)
  }

  const family = modelName(options.model)
  const state = newDeviceState({
    udid,
    serialNumber,
    model: options.model,
    modelName: family,
    deviceName: `Simulated ${family} ${index + 1}`,
    supervised: options.supervised,
    identityCertificateDer: scep.certificateDer,
    caCertificatesDer: profile.certificates,
  })
  const faithful = new FaithfulDevice(device)
  // The enrollment profile itself is installed, and a device lists it.
  faithful.profiles.set(profile.identifier, profile.uuid)
  faithful.answerOther = (requestType, command) => answerCommand(state, requestType, command)
  return { device, agent, faithful, state }
}

/** A line saying what a device answered, e.g. `SIM0A1B2C3D4 InstallProfile com.example.wifi: Acknowledged`. */
export function describeAnswer(device: FleetDevice, requestType: string, command: PlistDict, answer: CommandAnswer): string {
  let what = requestType
  if (requestType === 'InstallProfile' || requestType === 'RemoveProfile') {
    const identifier = requestType === 'RemoveProfile' ? plistText(command['Identifier']) : device.faithful.ran.at(-1)?.split(' ')[1]
    if (identifier) what += ` ${identifier}`
  }
  if (requestType === 'DeviceLock' && device.state.lockMessage) what += ` "${device.state.lockMessage}"`
  const chain = answer.keys['ErrorChain']
  const first = Array.isArray(chain) ? chain[0] : undefined
  const reason = isPlistDict(first) ? ` (${plistText(first['USEnglishDescription'])})` : ''
  return `${device.state.serialNumber} ${what}: ${answer.status}${reason}`
}

/** Runs `work` over `items`, at most `limit` at a time. */
export async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      await work(items[index]!, index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}
