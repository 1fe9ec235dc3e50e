// A fake APNs provider API for tests and the push benchmark: HTTP/2 over TLS on loopback,
// certificate-based (the client's TLS certificate must come from the CA it is told to trust
// and carry the expected topic as its UID), checking each request the way MDM pushes must
// look and answering with APNs statuses and reasons.
// https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
// https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
import { randomUUID } from 'node:crypto'
import { constants, createSecureServer, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem, type KeyAlgorithm } from '../../src/crypto/certificates.js'
import { createTestCa, type TestCa } from './test-ca.js'

export { createTestCa, type TestCa }

/** What the fake answers instead of 200: a status, and the APNs reason for its JSON body. */
export interface FakeReply {
  status: number
  reason?: string
  /** Milliseconds since the epoch; APNs sends it with 410 (when the token stopped being valid). */
  timestamp?: number
  /** Replaces the JSON body (e.g. '' for an empty error body). */
  rawBody?: string
}

/** A request that passed every check, as the responder sees it. */
export interface IncomingPush {
  token: string
  headers: Record<string, string>
  body: string
  /** 1 for the first request for this token, 2 for the next (a retry) ... */
  attempt: number
}

/** undefined = the default answer: 200 with an apns-id. A promise holds the stream open until it settles. */
export type Responder = (push: IncomingPush) => FakeReply | undefined | Promise<FakeReply | undefined>

export interface RecordedPush {
  method: string
  path: string
  /** The path's token part ('' when the path is not /3/device/<token>). */
  token: string
  /** Request headers other than the HTTP/2 pseudo-headers, lowercase names. */
  headers: Record<string, string>
  body: string
  /** UID of the client certificate when it was trusted, else null. */
  certificateTopic: string | null
  attempt: number
  status: number
  reason?: string
  /** The apns-id answered (APNs sends one with errors too). */
  apnsId: string
}

export interface FakeApnsOptions {
  /** The topic the trusted push certificate must carry as UID. */
  topic: string
  /** CA certificate(s) (PEM) whose client certificates are accepted. */
  clientCaPem: string | string[]
  /** Keep every request in `requests` (default true; the benchmark turns it off). */
  record?: boolean
  /** Refuse the TLS handshake of an untrusted client certificate instead of answering 403 BadCertificate. */
  rejectUntrustedCertificates?: boolean
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to clients (default: Node's, unlimited). */
  maxConcurrentStreams?: number
  port?: number
}

export interface FakeApns {
  /** https://127.0.0.1:<port> */
  url: string
  port: number
  /** The CA that issued the server certificate: give it to the client as `ca`. */
  caPem: string
  requests: RecordedPush[]
  stats: { received: number; inFlight: number; maxInFlight: number; sessions: number }
  respondWith(responder: Responder | undefined): void
  /** Forgets recorded requests, attempt counts and statistics (sessions: those still open). */
  reset(): void
  close(): Promise<void>
}

const TOKEN = /^[0-9a-f]{64}$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const MAX_PAYLOAD = 4096

interface SessionIdentity {
  trusted: boolean
  topic: string | null
}

export async function startFakeApns(options: FakeApnsOptions): Promise<FakeApns> {
  const serverCa = await createTestCa('Fake APNs server CA')
  const serverKeys = await generateKeyPair('ec-p256')
  const serverCertificate = await createCertificate({
    subject: { commonName: 'localhost' },
    publicKey: serverKeys.publicKey,
    issuer: { certificate: serverCa.certificate, privateKey: serverCa.privateKey },
    validDays: 2,
    usage: 'server',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  })

  const record = options.record ?? true
  const requests: RecordedPush[] = []
  const stats = { received: 0, inFlight: 0, maxInFlight: 0, sessions: 0 }
  const attempts = new Map<string, number>()
  const identities = new WeakMap<Http2Session, SessionIdentity>()
  const sessions = new Set<ServerHttp2Session>()
  let responder: Responder | undefined

  const server = createSecureServer({
    cert: certificateToPem(serverCertificate),
    key: await privateKeyToPem(serverKeys.privateKey),
    // APNs asks for the provider certificate during the handshake; by default it is checked per
    // request below, so that a wrong one gets APNs's 403 answer rather than a failed handshake.
    requestCert: true,
    rejectUnauthorized: options.rejectUntrustedCertificates ?? false,
    ca: options.clientCaPem,
    settings: options.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: options.maxConcurrentStreams } : {},
  })
  server.on('session', (session: ServerHttp2Session) => {
    stats.sessions++
    sessions.add(session)
    session.on('close', () => sessions.delete(session))
    session.on('error', () => {})
  })
  server.on('stream', (stream, headers) => {
    stats.received++
    stats.inFlight++
    if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight
    stream.once('close', () => stats.inFlight--)
    stream.on('error', () => {})
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')
      void handle(stream, headers, body).catch(() => stream.close(constants.NGHTTP2_INTERNAL_ERROR))
    })
  })
  server.on('sessionError', () => {})

  function identityOf(session: Http2Session): SessionIdentity {
    let identity = identities.get(session)
    if (!identity) {
      const socket = session.socket as TLSSocket
      const subject = socket.authorized ? socket.getPeerCertificate().subject : undefined
      const uid = subject?.['UID' as keyof typeof subject]
      identity = { trusted: socket.authorized, topic: typeof uid === 'string' ? uid : null }
      identities.set(session, identity)
    }
    return identity
  }

  async function handle(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, body: string): Promise<void> {
    const identity = identityOf(stream.session!)
    const method = String(headers[':method'])
    const path = String(headers[':path'])
    const plain: Record<string, string> = {}
    for (const [name, value] of Object.entries(headers)) {
      if (!name.startsWith(':') && value !== undefined) plain[name] = Array.isArray(value) ? value.join(', ') : value
    }
    const token = /^\/3\/device\/([^/?]*)$/.exec(path)?.[1] ?? ''
    const attempt = (attempts.get(token) ?? 0) + 1
    attempts.set(token, attempt)

    let reply = check(identity, method, path, token, plain, body)
    if (!reply && responder) reply = await responder({ token, headers: plain, body, attempt })
    reply ??= { status: 200 }

    // APNs echoes the request's apns-id, or makes one (in both success and error answers).
    const apnsId = plain['apns-id'] ?? randomUUID()
    if (record) {
      const entry: RecordedPush = {
        method,
        path,
        token,
        headers: plain,
        body,
        certificateTopic: identity.trusted ? identity.topic : null,
        attempt,
        status: reply.status,
        apnsId,
      }
      if (reply.reason !== undefined) entry.reason = reply.reason
      requests.push(entry)
    }
    if (stream.closed || stream.destroyed) return
    if (reply.status === 200) {
      stream.respond({ ':status': 200, 'apns-id': apnsId }, { endStream: true })
      return
    }
    const json =
      reply.rawBody ?? JSON.stringify(reply.timestamp === undefined ? { reason: reply.reason } : { reason: reply.reason, timestamp: reply.timestamp })
    stream.respond({ ':status': reply.status, 'apns-id': apnsId, 'content-type': 'application/json' }, { endStream: json === '' })
    if (json !== '') stream.end(json)
  }

  function check(identity: SessionIdentity, method: string, path: string, token: string, headers: Record<string, string>, body: string): FakeReply | undefined {
    // Certificate-based connections: the certificate decides which topics may be pushed.
    if (!identity.trusted || !identity.topic) return { status: 403, reason: 'BadCertificate' }
    if (identity.topic !== options.topic) return { status: 403, reason: 'BadCertificateEnvironment' }
    if (method !== 'POST') return { status: 405, reason: 'MethodNotAllowed' }
    if (!path.startsWith('/3/device/') || path.includes('?') || path.slice('/3/device/'.length).includes('/')) return { status: 404, reason: 'BadPath' }
    if (token === '') return { status: 400, reason: 'MissingDeviceToken' }
    // The token is the hex of the TokenUpdate Token bytes (32 bytes), not base64.
    if (!TOKEN.test(token)) return { status: 400, reason: 'BadDeviceToken' }
    if (headers['apns-push-type'] !== 'mdm') return { status: 400, reason: 'InvalidPushType' }
    if (headers['apns-topic'] === undefined) return { status: 400, reason: 'MissingTopic' }
    if (headers['apns-topic'] !== identity.topic) return { status: 400, reason: 'BadTopic' }
    const priority = headers['apns-priority']
    if (priority !== undefined && !['1', '5', '10'].includes(priority)) return { status: 400, reason: 'BadPriority' }
    const expiration = headers['apns-expiration']
    if (expiration !== undefined && !/^\d+$/.test(expiration)) return { status: 400, reason: 'BadExpirationDate' }
    const id = headers['apns-id']
    if (id !== undefined && !UUID.test(id)) return { status: 400, reason: 'BadMessageId' }
    if (body === '') return { status: 400, reason: 'PayloadEmpty' }
    if (Buffer.byteLength(body) > MAX_PAYLOAD) return { status: 413, reason: 'PayloadTooLarge' }
    // MDM payload: exactly {"mdm":"<PushMagic>"}, no aps dictionary. Apple documents no reason
    // for other bodies (they are simply not MDM pushes): this fake is stricter and says BadPayload.
    if (!isMdmPayload(body)) return { status: 400, reason: 'BadPayload' }
    return undefined
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port

  return {
    url: `https://127.0.0.1:${port}`,
    port,
    caPem: serverCa.pem,
    requests,
    stats,
    respondWith(next) {
      responder = next
    },
    reset() {
      requests.length = 0
      attempts.clear()
      stats.sessions = sessions.size
      stats.received = 0
      stats.inFlight = 0
      stats.maxInFlight = 0
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const session of sessions) session.destroy()
      await closed
    },
  }
}

function isMdmPayload(body: string): boolean {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return false
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return false
  const keys = Object.keys(parsed)
  const magic = (parsed as Record<string, unknown>)['mdm']
  return keys.length === 1 && typeof magic === 'string' && magic !== '' && JSON.stringify(parsed) === body
}

export interface PushIdentity {
  topic: string
  certificatePem: string
  privateKeyPem: string
}

/** A push certificate as the Apple Push Certificates Portal issues it: client auth, subject UID = topic. */
export async function mintPushCertificate(
  ca: TestCa,
  topic: string = `com.apple.mgmt.External.${randomUUID()}`,
  options: { algorithm?: KeyAlgorithm; validDays?: number } = {},
): Promise<PushIdentity> {
  const keys = await generateKeyPair(options.algorithm ?? 'rsa-2048')
  const certificate = await createCertificate({
    subject: { uid: topic, commonName: `APSP:${randomUUID()}` },
    publicKey: keys.publicKey,
    issuer: { certificate: ca.certificate, privateKey: ca.privateKey },
    validDays: options.validDays ?? 2,
    usage: 'client',
  })
  return { topic, certificatePem: certificateToPem(certificate), privateKeyPem: await privateKeyToPem(keys.privateKey) }
}
