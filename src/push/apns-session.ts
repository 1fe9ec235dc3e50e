// The HTTP/2 connection to APNs for one topic, with the push certificate as TLS client
// identity, and one stream per push.
// https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
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
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls'
import apn from '@parse/node-apn'
import type { Logger } from 'pino'
import { outcomeFromConnectionError, outcomeFromResponse, type PushOutcome, type PushTarget } from './apns-outcomes.js'

export interface ApnsSessionOptions {
  /** https origin of APNs (checked by the caller). */
  origin: string
  topic: string
  certificatePem: string
  privateKeyPem: string
  ca?: string | Buffer | undefined
  requestTimeoutMs: number
  log: Logger | undefined
}

export interface ApnsSession {
  /** The established connection, if it is still usable. */
  current(): ClientHttp2Session | undefined
  /** The established connection, or a new one once APNs has sent its settings; concurrent callers share one attempt. */
  connect(): Promise<ClientHttp2Session>
  /** Never rejects: every failure is an outcome. */
  push(s: ClientHttp2Session, target: PushTarget, expiry: number | undefined): Promise<PushOutcome>
  /** Waits for a connection attempt under way, then closes the connection gracefully. */
  close(): Promise<void>
}

/** APNs wants the lowercase hex of the TokenUpdate Token bytes (32 bytes: 64 characters), not base64. */
export function deviceTokenHex(token: Buffer): string {
  return token.toString('hex')
}

type NotificationWithRequest = apn.Notification & {
  // Present in node-apn's lib/notification, missing from its typings.
  headers(): OutgoingHttpHeaders
  compile(): string
}

export function createApnsSession(options: ApnsSessionOptions): ApnsSession {
  const { origin, topic, requestTimeoutMs, log } = options
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
  let inFlight = 0 // open streams (the connection keeps the process alive only while there are some)

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
      s.on('error', (error: Error) => {
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

  function beginStream(): void {
    if (inFlight++ === 0) session?.ref()
  }

  function endStream(): void {
    if (--inFlight === 0) session?.unref()
  }

  function push(s: ClientHttp2Session, target: PushTarget, expiry: number | undefined): Promise<PushOutcome> {
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
      return Promise.resolve(outcomeFromConnectionError(target.enrollmentId, error))
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
      stream.on('error', (error: Error) => (failure = error))
      stream.on('close', () => {
        endStream()
        if (status !== 0) resolve(outcomeFromResponse(target.enrollmentId, status, apnsId, body))
        else
          resolve(
            outcomeFromConnectionError(
              target.enrollmentId,
              failure ?? Object.assign(new Error(`stream closed without an answer (code ${stream.rstCode})`), { code: 'StreamClosed' }),
            ),
          )
      })
      stream.end(note.compile())
    })
  }

  return {
    current: () => (usable(session) ? session : undefined),
    connect,
    push,
    async close() {
      await connecting?.catch(() => undefined)
      const s = session
      session = undefined
      if (s && !s.destroyed) {
        s.ref() // an idle connection is unref'd: keep the process up until the close completes
        await new Promise<void>((resolve) => s.close(() => resolve()))
      }
    },
  }
}
