// A simulated Apple device: it holds an identity key and certificate (from SCEP, or issued by a
// CA it is given), signs every request with Mdm-Signature, and speaks check-in and command
// reports to the real HTTP surface through a Transport (the simulator's HTTPS, loopback HTTP
// for benchmarks, app.inject in tests).
import { randomBytes, randomUUID, webcrypto, type KeyObject } from 'node:crypto'
import { Agent, request } from 'node:http'
import type * as pkijs from 'pkijs'
import { createCertificate, generateKeyPair, type KeyAlgorithm } from '../crypto/certificates.js'
import { decodePlist, encodePlist, isPlistDict, type PlistDict, type PlistValue } from '../mdm/plist.js'
import { createDeviceSigner, type DeviceSignerOptions, type MdmSigner } from './device-signer.js'

/** A CA that issues device identities directly (no SCEP): the tests' device CA. */
export interface DeviceCa {
  certificate: pkijs.Certificate
  privateKey: CryptoKey
}

type CryptoKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey']

export interface MdmResponse {
  status: number
  body: Buffer
  contentType: string | undefined
}

export type Transport = (path: string, body: Buffer, headers: Record<string, string>) => Promise<MdmResponse>

/** Real HTTP over loopback with kept-alive connections, as devices reuse theirs. */
export function httpTransport(baseUrl: string, agent: Agent = new Agent({ keepAlive: true })): Transport {
  const url = new URL(baseUrl)
  return (path, body, headers) =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: url.hostname, port: url.port, path, method: 'PUT', agent, headers: { ...headers, 'content-length': String(body.length) } },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), contentType: res.headers['content-type'] }))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(body)
    })
}

export interface DeviceOptions {
  udid?: string
  serialNumber?: string
  keyAlgorithm?: KeyAlgorithm
  signer?: DeviceSignerOptions
  /** Certificate validity override, for expired or not-yet-valid identities. */
  validDays?: number
  /** User Enrollment: identify by EnrollmentID instead of UDID. */
  userEnrollment?: boolean
  topic?: string
  /** The model identifier Authenticate reports (default iPad13,1). */
  model?: string
}

/** The topic of devices not told one (the tests' push certificate has it). */
export const defaultTopic = 'com.apple.mgmt.External.00000000-0000-4000-8000-000000000001'

/** What a model identifier's family is called (ModelName): iPad13,1 is an iPad. */
export function modelName(model: string): string {
  const families: Array<[string, string]> = [
    ['iPad', 'iPad'],
    ['iPhone', 'iPhone'],
    ['iPod', 'iPod touch'],
    ['AppleTV', 'Apple TV'],
    ['Watch', 'Apple Watch'],
    ['RealityDevice', 'Apple Vision Pro'],
    ['Mac', 'Mac'],
  ]
  return families.find(([prefix]) => model.startsWith(prefix))?.[1] ?? model
}

export class SimulatedDevice {
  readonly udid: string
  readonly serialNumber: string
  readonly token = randomBytes(32)
  readonly pushMagic = randomUUID()
  readonly unlockToken = randomBytes(48)
  readonly topic: string
  readonly userEnrollment: boolean
  readonly model: string
  certificateDer: Buffer
  /** The identity's private key (for TLS client authentication). */
  privateKey: CryptoKey
  sign: MdmSigner
  transport: Transport

  private constructor(options: {
    udid: string
    serialNumber: string
    certificateDer: Buffer
    privateKey: CryptoKey
    sign: MdmSigner
    transport: Transport
    topic: string
    userEnrollment: boolean
    model: string
  }) {
    this.udid = options.udid
    this.serialNumber = options.serialNumber
    this.certificateDer = options.certificateDer
    this.privateKey = options.privateKey
    this.sign = options.sign
    this.transport = options.transport
    this.topic = options.topic
    this.userEnrollment = options.userEnrollment
    this.model = options.model
  }

  static async create(ca: DeviceCa, transport: Transport, options: DeviceOptions = {}): Promise<SimulatedDevice> {
    const udid = options.udid ?? randomUUID().toUpperCase()
    const identity = await issueIdentity(ca, udid, options)
    return new SimulatedDevice({
      udid,
      serialNumber: options.serialNumber ?? `SIM${randomBytes(5).toString('hex').toUpperCase()}`,
      certificateDer: identity.certificateDer,
      privateKey: identity.privateKey,
      sign: await createDeviceSigner(identity, options.signer),
      transport,
      topic: options.topic ?? defaultTopic,
      userEnrollment: options.userEnrollment === true,
      model: options.model ?? 'iPad13,1',
    })
  }

  /** A device holding an identity obtained elsewhere (e.g. over SCEP), with a node:crypto key. */
  static async fromIdentity(
    identity: { certificateDer: Buffer; privateKey: KeyObject },
    transport: Transport,
    options: DeviceOptions = {},
  ): Promise<SimulatedDevice> {
    const udid = options.udid ?? randomUUID().toUpperCase()
    const privateKey = await toCryptoKey(identity.privateKey)
    return new SimulatedDevice({
      udid,
      serialNumber: options.serialNumber ?? `SIM${randomBytes(5).toString('hex').toUpperCase()}`,
      certificateDer: identity.certificateDer,
      privateKey,
      sign: await createDeviceSigner({ certificateDer: identity.certificateDer, privateKey }, options.signer),
      transport,
      topic: options.topic ?? defaultTopic,
      userEnrollment: options.userEnrollment === true,
      model: options.model ?? 'iPad13,1',
    })
  }

  /** Switches to an identity obtained elsewhere (SCEP renewal). */
  async useIdentity(identity: { certificateDer: Buffer; privateKey: KeyObject }, options: DeviceOptions = {}): Promise<void> {
    this.certificateDer = identity.certificateDer
    this.privateKey = await toCryptoKey(identity.privateKey)
    this.sign = await createDeviceSigner({ certificateDer: identity.certificateDer, privateKey: this.privateKey }, options.signer)
  }

  /** A fresh identity certificate (renewal or re-enrollment), optionally from another CA. */
  async renewIdentity(ca: DeviceCa, options: DeviceOptions = {}): Promise<void> {
    const identity = await issueIdentity(ca, this.udid, options)
    this.certificateDer = identity.certificateDer
    this.privateKey = identity.privateKey
    this.sign = await createDeviceSigner(identity, options.signer)
  }

  /** The identity keys every message carries. */
  identityKeys(user?: { userId?: string; userShortName?: string; userLongName?: string }): PlistDict {
    const keys: PlistDict = this.userEnrollment ? { EnrollmentID: this.udid } : { UDID: this.udid }
    if (user?.userId) keys['UserID'] = user.userId
    if (user?.userShortName) keys['UserShortName'] = user.userShortName
    if (user?.userLongName) keys['UserLongName'] = user.userLongName
    return keys
  }

  /** Sends raw bytes, signed (unless `signature` overrides the header; null = unsigned). */
  async send(path: string, body: Buffer, contentType: string, signature?: string | null): Promise<MdmResponse> {
    const headers: Record<string, string> = { 'content-type': contentType }
    const value = signature === undefined ? this.sign(body) : signature
    if (value !== null) headers['mdm-signature'] = value
    return this.transport(path, body, headers)
  }

  checkin(message: PlistDict, signature?: string | null): Promise<MdmResponse> {
    return this.send('/mdm/checkin', encodePlist({ ...this.identityKeys(), ...message }), 'application/x-apple-aspen-mdm-checkin', signature)
  }

  authenticate(): Promise<MdmResponse> {
    return this.checkin({
      MessageType: 'Authenticate',
      Topic: this.topic,
      ...(this.userEnrollment ? {} : { SerialNumber: this.serialNumber, IMEI: '35 123456 789012 3' }),
      Model: this.model,
      ModelName: modelName(this.model),
      ProductName: this.model,
      OSVersion: '18.1',
      BuildVersion: '22B83',
    })
  }

  tokenUpdate(extra: PlistDict = {}): Promise<MdmResponse> {
    return this.checkin({
      MessageType: 'TokenUpdate',
      Topic: this.topic,
      Token: this.token,
      PushMagic: this.pushMagic,
      ...(this.userEnrollment ? {} : { UnlockToken: this.unlockToken }),
      AwaitingConfiguration: false,
      ...extra,
    })
  }

  checkOut(): Promise<MdmResponse> {
    return this.checkin({ MessageType: 'CheckOut', Topic: this.topic })
  }

  /** Authenticate + TokenUpdate; throws unless both answer 200. */
  async enroll(): Promise<void> {
    for (const step of [() => this.authenticate(), () => this.tokenUpdate()]) {
      const response = await step()
      if (response.status !== 200) throw new Error(`enrollment step failed: ${response.status} ${response.body.toString()}`)
    }
  }

  report(status: string, extra: PlistDict = {}, signature?: string | null, user?: Parameters<SimulatedDevice['identityKeys']>[0]): Promise<MdmResponse> {
    return this.send('/mdm/connect', encodePlist({ ...this.identityKeys(user), Status: status, ...extra }), 'application/x-apple-aspen-mdm', signature)
  }

  idle(): Promise<MdmResponse> {
    return this.report('Idle')
  }

  /** Answers a command: Acknowledged (with response keys), Error, NotNow... */
  answer(commandUuid: string, status: string, responseKeys: PlistDict = {}): Promise<MdmResponse> {
    return this.report(status, { CommandUUID: commandUuid, ...responseKeys })
  }
}

async function toCryptoKey(key: KeyObject): Promise<CryptoKey> {
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' })
  const algorithm =
    key.asymmetricKeyType === 'ec'
      ? { name: 'ECDSA', namedCurve: key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256' }
      : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  return await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, true, ['sign'])
}

async function issueIdentity(ca: DeviceCa, udid: string, options: DeviceOptions) {
  const keys = await generateKeyPair(options.keyAlgorithm ?? 'ec-p256')
  const certificate = await createCertificate({
    subject: { commonName: `device ${udid}` },
    publicKey: keys.publicKey,
    issuer: { certificate: ca.certificate, privateKey: ca.privateKey },
    validDays: options.validDays ?? 365,
    usage: 'client',
  })
  return { certificateDer: Buffer.from(certificate.toSchema(true).toBER(false)), privateKey: keys.privateKey }
}

/**
 * A scalar plist value as text, exactly as `String()` writes it (an absent key reads 'undefined'); a dict
 * or an array is not text and throws here, where `String()` would give "[object Object]" or a joined list.
 */
export function plistText(value: PlistValue | undefined): string {
  if (isPlistDict(value) || Array.isArray(value)) throw new TypeError(`expected a scalar plist value, got ${Array.isArray(value) ? 'an array' : 'a dict'}`)
  return String(value)
}

/** The command in a 200 response: { CommandUUID, Command } — or undefined for the zero-byte body. */
export function commandIn(response: MdmResponse): { uuid: string; requestType: string; command: PlistDict } | undefined {
  if (response.status !== 200) throw new Error(`expected 200, got ${response.status}: ${response.body.toString()}`)
  if (response.body.length === 0) return undefined
  const envelope: PlistValue = decodePlist(response.body)
  if (!isPlistDict(envelope) || !isPlistDict(envelope['Command'])) throw new Error('not a command envelope')
  return { uuid: plistText(envelope['CommandUUID']), requestType: plistText(envelope['Command']['RequestType']), command: envelope['Command'] }
}
