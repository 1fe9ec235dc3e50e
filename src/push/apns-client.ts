// Sends MDM pushes to APNs: one HTTP/2 connection per topic with the push certificate as TLS
// client identity, a bounded number of streams in flight, retries with backoff, and one
// outcome per target, in the targets' order.
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
// https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
// https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
//
// @parse/node-apn (8.1.0) builds each request (its Notification knows the MDM payload: exactly
// {"mdm":"<PushMagic>"}, no aps), but the connection and streams are node:http2 here, because:
// - its Provider checks the certificate with node-forge and refuses an RSA certificate without
//   Apple's environment extension (1.2.840.113635.100.6.3.2 when the address is
//   api.push.apple.com, else .3.1): "certificate does not support configured environment";
// - it retries 429/5xx itself, sleeping on the wall clock (Retry-After or 0 s, up to 3 times),
//   and its errors drop the HTTP status when the body is empty;
// - its lower-level Client (lib/client.js, which skips that check) spends ~105 µs of CPU per
//   push (seven listeners, a timer and a string decoder per stream) against ~90 µs for lean
//   stream handling: a median of ~10,000 pushes/s (8,100-11,900) through the benchmark's fake
//   APNs on this 2-core machine, at best at the target before any bookkeeping of ours.
import { createPrivateKey, X509Certificate } from 'node:crypto'
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import { setTimeout as delay } from 'node:timers/promises'
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import apn from '@parse/node-apn'
import type { Logger } from 'pino'

export interface PushTarget {
  enrollmentId: string
  /** The TokenUpdate Token bytes. */
  token: Buffer
  pushMagic: string
}

export type PushOutcome =
  | { enrollmentId: string; ok: true; apnsId: string }
  | {
      enrollmentId: string
      ok: false
      /** HTTP status from APNs; null when no answer came (connection error, sender closed). */
      status: number | null
      reason: string
      /** Unregistered, ExpiredToken, BadDeviceToken, DeviceTokenNotForTopic: stop pushing this token. */
      tokenInvalid: boolean
      /** A problem of the certificate/topic (BadCertificate, BadCertificateEnvironment, Forbidden, BadTopic, TopicDisallowed, MissingTopic ...): not the device's fault. */
      certificateProblem: boolean
    }

type Failure = Extract<PushOutcome, { ok: false }>

export interface ApnsSenderOptions {
  topic: string
  certificatePem: string
  privateKeyPem: string
  /** Origin such as https://api.push.apple.com or https://127.0.0.1:2197 (tests). */
  endpoint: string
  /** Extra CA to trust for the endpoint (the fake server's); production uses the system CAs. */
  ca?: string | Buffer
  /** Streams in flight at most, over all concurrent send() calls (default 1000). */
  concurrency?: number
  /** For 429, 5xx and connection errors. attempts counts the first try (default 4, 500 ms doubling up to 30 s). */
  retry?: { attempts: number; baseDelayMs: number; maxDelayMs: number }
  /** Injectable so tests do not wait on wall-clock time. */
  sleep?: (ms: number) => Promise<void>
  /** A connection with streams in flight and no traffic for this long is dropped and its pushes retried (default 30 s). */
  requestTimeoutMs?: number
  logger?: Logger
}

export interface ApnsSender {
  readonly topic: string
  send(targets: PushTarget[], options?: { expiration?: Date }): Promise<PushOutcome[]>
  /** Lets running sends finish their current round (no more retries), then closes the connection. */
  close(): Promise<void>
}

/** APNs wants the lowercase hex of the TokenUpdate Token bytes (32 bytes: 64 characters), not base64. */
export function deviceTokenHex(token: Buffer): string {
  return token.toString('hex')
}

// https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
// Trap: BadDeviceToken also answers a token of the other environment (a development device
// pushed through production, or the reverse), so a wrong endpoint looks like dead tokens.
const TOKEN_INVALID_REASONS = new Set(['Unregistered', 'ExpiredToken', 'BadDeviceToken', 'DeviceTokenNotForTopic'])
const CERTIFICATE_REASONS = new Set([
  'BadCertificate',
  'BadCertificateEnvironment',
  'Forbidden',
  'BadTopic',
  'TopicDisallowed',
  'MissingTopic',
  'InvalidProviderToken',
  'MissingProviderToken',
  'ExpiredProviderToken',
])
/** TLS alerts the server sends about our certificate (expired, revoked, unknown issuer ...). */
const CERTIFICATE_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:BAD_CERTIFICATE|UNSUPPORTED_CERTIFICATE|CERTIFICATE_\w+|UNKNOWN_CA|ACCESS_DENIED)$/

const DEFAULT_CONCURRENCY = 1000
const DEFAULT_RETRY = { attempts: 4, baseDelayMs: 500, maxDelayMs: 30_000 }
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000

type NotificationWithRequest = apn.Notification & {
  // Present in node-apn's lib/notification, missing from its typings.
  headers(): OutgoingHttpHeaders
  compile(): string
}

export function createApnsSender(options: ApnsSenderOptions): ApnsSender {
  const origin = parseEndpoint(options.endpoint)
  const topic = options.topic
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY))
  const retry = options.retry ?? DEFAULT_RETRY
  const attempts = Math.max(1, Math.floor(retry.attempts))
  const sleep = options.sleep ?? ((ms: number) => delay(ms))
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const log = options.logger?.child({ component: 'apns', topic })
  // Parsed once: a bad PEM or a key that does not match the certificate fails here, not per push
  // (OpenSSL alone accepts an EC key beside an RSA certificate, and fails only in the handshake).
  if (!new X509Certificate(options.certificatePem).checkPrivateKey(createPrivateKey(options.privateKeyPem))) {
    throw new Error('the private key does not belong to the push certificate')
  }
  const secureContext: SecureContext = createSecureContext({
    cert: options.certificatePem,
    key: options.privateKeyPem,
    ...(options.ca !== undefined ? { ca: [...rootCertificates, options.ca] } : {}),
  })

  let session: ClientHttp2Session | undefined
  let connecting: Promise<ClientHttp2Session> | undefined
  let slots = 0 // pushes under way (bounded by concurrency)
  let inFlight = 0 // open streams (the connection keeps the process alive only while there are some)
  const waiting: Array<() => void> = []
  let closing = false
  let closed: Promise<void> | undefined
  const running = new Set<Promise<unknown>>()

  function usable(s: ClientHttp2Session | undefined): s is ClientHttp2Session {
    return s !== undefined && !s.closed && !s.destroyed
  }

  function connect(): Promise<ClientHttp2Session> {
    if (usable(session)) return Promise.resolve(session)
    connecting ??= new Promise<ClientHttp2Session>((resolve, reject) => {
      const s = http2.connect(origin, { secureContext })
      let settled = false
      const fail = (error: Error) => {
        if (settled) return
        settled = true
        connecting = undefined
        s.destroy()
        reject(error)
      }
      // Established once APNs has sent its SETTINGS: with TLS 1.3 a refused client certificate
      // shows only after the handshake, as a connection closed before any HTTP/2 frame.
      s.once('remoteSettings', () => {
        settled = true
        connecting = undefined
        session = s
        if (inFlight === 0) s.unref()
        resolve(s)
      })
      s.on('error', (error) => {
        log?.warn({ err: error }, 'APNs connection error')
        fail(error)
      })
      s.once('close', () => {
        if (session === s) session = undefined
        fail(Object.assign(new Error('APNs closed the connection before sending its HTTP/2 settings'), { code: 'ConnectionClosed' }))
      })
      s.on('goaway', (code) => {
        // APNs closes connections with GOAWAY (e.g. Shutdown, IdleTimeout): new streams go to a new one.
        log?.debug({ code }, 'APNs sent GOAWAY')
        if (session === s) session = undefined
      })
      // One timer per connection rather than per stream: silence while streams wait means a dead peer.
      s.setTimeout(requestTimeoutMs, () => {
        if (inFlight > 0) s.destroy(Object.assign(new Error(`no answer from APNs for ${requestTimeoutMs} ms`), { code: 'ETIMEDOUT' }))
      })
    })
    return connecting
  }

  function connectionFailure(enrollmentId: string, error: unknown): Failure {
    // Streams cancelled by a failing connection carry the connection's error as cause.
    const cause = (error as { code?: unknown; cause?: unknown }).code === 'ERR_HTTP2_STREAM_CANCEL' ? (error as { cause?: unknown }).cause : undefined
    const code = ((cause ?? error) as { code?: unknown }).code
    const reason = typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)
    return { enrollmentId, ok: false, status: null, reason, tokenInvalid: false, certificateProblem: CERTIFICATE_ALERT.test(reason) }
  }

  function answer(enrollmentId: string, status: number, apnsId: string | undefined, body: string): PushOutcome {
    if (status === 200) return { enrollmentId, ok: true, apnsId: apnsId ?? '' }
    let reason: string | undefined
    try {
      const parsed = JSON.parse(body) as { reason?: unknown }
      if (typeof parsed.reason === 'string' && parsed.reason !== '') reason = parsed.reason
    } catch {
      // not JSON: keep the status as the reason
    }
    reason ??= `HTTP ${status}`
    return {
      enrollmentId,
      ok: false,
      status,
      reason,
      // 410: the token is no longer active for the topic, whatever the reason says.
      tokenInvalid: status === 410 || TOKEN_INVALID_REASONS.has(reason),
      certificateProblem: status === 403 || CERTIFICATE_REASONS.has(reason),
    }
  }

  function beginStream(): void {
    if (inFlight++ === 0) session?.ref()
  }

  function endStream(): void {
    if (--inFlight === 0) session?.unref()
  }

  async function acquireSlot(): Promise<void> {
    while (slots >= concurrency) await new Promise<void>((resolve) => waiting.push(resolve))
    slots++
  }

  function releaseSlot(): void {
    slots--
    waiting.shift()?.()
  }

  /** Never rejects: every failure is an outcome. Not async: one promise per push on the hot path. */
  function pushOne(target: PushTarget, expiry: number | undefined, round: Round): Promise<PushOutcome> {
    return usable(session) ? pushOn(session, target, expiry) : connectAndPush(target, expiry, round)
  }

  async function connectAndPush(target: PushTarget, expiry: number | undefined, round: Round): Promise<PushOutcome> {
    if (round.connectError) return connectionFailure(target.enrollmentId, round.connectError)
    let s: ClientHttp2Session
    try {
      s = await connect()
    } catch (error) {
      round.connectError = error
      return connectionFailure(target.enrollmentId, error)
    }
    return pushOn(s, target, expiry)
  }

  function pushOn(s: ClientHttp2Session, target: PushTarget, expiry: number | undefined): Promise<PushOutcome> {
    const note = new apn.Notification() as NotificationWithRequest
    note.mdm = target.pushMagic
    note.topic = topic
    note.pushType = 'mdm'
    note.priority = 10 // send now; 5 would let the device wait for a power-friendly moment
    if (expiry !== undefined) note.expiry = expiry // only when given: absent means APNs's default storage
    const headers = note.headers()
    headers[':method'] = 'POST'
    headers[':path'] = `/3/device/${deviceTokenHex(target.token)}`

    let stream: ClientHttp2Stream
    try {
      stream = s.request(headers)
    } catch (error) {
      // The session went away between the check and the request (GOAWAY, destroyed).
      if (session === s) session = undefined
      return Promise.resolve(connectionFailure(target.enrollmentId, error))
    }
    beginStream()
    return new Promise<PushOutcome>((resolve) => {
      let status = 0
      let apnsId: string | undefined
      let body = ''
      let failure: Error | undefined
      stream.on('response', (response: IncomingHttpHeaders) => {
        status = Number(response[':status'])
        const id = response['apns-id']
        apnsId = Array.isArray(id) ? id[0] : id
        if (status === 200) {
          stream.resume() // no body on success; drain so the stream closes
        } else {
          stream.setEncoding('utf8')
          stream.on('data', (chunk: string) => (body += chunk))
        }
      })
      stream.on('error', (error) => (failure = error))
      stream.on('close', () => {
        endStream()
        if (status !== 0) resolve(answer(target.enrollmentId, status, apnsId, body))
        else
          resolve(
            connectionFailure(
              target.enrollmentId,
              failure ?? Object.assign(new Error(`stream closed without an answer (code ${stream.rstCode})`), { code: 'StreamClosed' }),
            ),
          )
      })
      stream.end(note.compile())
    })
  }

  interface Round {
    connectError?: unknown
  }

  async function runRound(targets: PushTarget[], indexes: number[], outcomes: PushOutcome[], expiry: number | undefined, state: SendState): Promise<void> {
    const round: Round = {}
    let next = 0
    const worker = async () => {
      while (next < indexes.length) {
        const index = indexes[next++]!
        const target = targets[index]!
        if (state.certificateFailure) {
          outcomes[index] = { ...state.certificateFailure, enrollmentId: target.enrollmentId }
          state.notSent++
          continue
        }
        if (slots >= concurrency) await acquireSlot()
        else slots++
        let outcome: PushOutcome
        try {
          outcome = await pushOne(target, expiry, round)
        } finally {
          releaseSlot()
        }
        outcomes[index] = outcome
        // The certificate or topic is refused: every other push would be too. Stop here and
        // report it once per topic rather than hammering APNs with requests bound to fail.
        if (!outcome.ok && outcome.certificateProblem) state.certificateFailure ??= outcome
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, indexes.length) }, worker))
  }

  interface SendState {
    certificateFailure?: Failure
    /** Targets given the certificate failure without a request. */
    notSent: number
  }

  function retryable(outcome: PushOutcome): boolean {
    if (outcome.ok || outcome.tokenInvalid || outcome.certificateProblem) return false
    return outcome.status === null || outcome.status === 429 || outcome.status >= 500
  }

  async function send(targets: PushTarget[], sendOptions: { expiration?: Date } = {}): Promise<PushOutcome[]> {
    if (closing) {
      return targets.map((t) => ({
        enrollmentId: t.enrollmentId,
        ok: false,
        status: null,
        reason: 'SenderClosed',
        tokenInvalid: false,
        certificateProblem: false,
      }))
    }
    // apns-expiration: epoch seconds; 0 = deliver once, do not store.
    const expiry = sendOptions.expiration ? Math.max(0, Math.floor(sendOptions.expiration.getTime() / 1000)) : undefined
    const outcomes = new Array<PushOutcome>(targets.length)
    const state: SendState = { notSent: 0 }
    let pending = targets.map((_, index) => index)
    for (let attempt = 1; pending.length > 0; attempt++) {
      await runRound(targets, pending, outcomes, expiry, state)
      if (state.certificateFailure) {
        const failure = state.certificateFailure
        // warn, not error: the caller reports it once per topic (the push service logs the error).
        log?.warn(
          { status: failure.status, reason: failure.reason, targets: targets.length, not_sent: state.notSent },
          `APNs refused the push certificate or topic ${topic}: ${failure.reason}; the other pushes were not sent`,
        )
        break
      }
      const again = pending.filter((index) => retryable(outcomes[index]!))
      if (again.length === 0 || attempt >= attempts || closing) break
      const wait = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1))
      const first = outcomes[again[0]!] as Failure
      log?.warn({ retrying: again.length, attempt, delay_ms: wait, status: first.status, reason: first.reason }, 'APNs pushes to retry')
      await sleep(wait)
      pending = again
    }
    if (log?.isLevelEnabled('debug')) {
      const sent = outcomes.filter((o) => o.ok).length
      log.debug({ targets: targets.length, sent, failed: targets.length - sent }, 'APNs pushes sent')
    }
    return outcomes
  }

  return {
    topic,
    send(targets, sendOptions) {
      const run = send(targets, sendOptions)
      running.add(run)
      void run.finally(() => running.delete(run)).catch(() => {})
      return run
    },
    close() {
      closed ??= (async () => {
        closing = true
        await Promise.allSettled([...running])
        await connecting?.catch(() => undefined)
        const s = session
        session = undefined
        if (s && !s.destroyed) {
          s.ref() // an idle connection is unref'd: keep the process up until the close completes
          await new Promise<void>((resolve) => s.close(() => resolve()))
        }
      })()
      return closed
    },
  }
}

function parseEndpoint(endpoint: string): string {
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    throw new Error(`APNs endpoint is not a URL: ${endpoint}`)
  }
  if (url.protocol !== 'https:') throw new Error(`APNs endpoint must be https:// (HTTP/2 over TLS): ${endpoint}`)
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') throw new Error(`APNs endpoint must be an origin without a path: ${endpoint}`)
  return url.origin
}
