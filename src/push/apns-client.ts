// Sends MDM pushes to APNs: one HTTP/2 connection per topic with the push certificate as TLS
// client identity, a bounded number of streams in flight, retries with backoff, and one
// outcome per target, in the targets' order.
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
// https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
// https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
//
// The connection and its streams are in apns-session.ts (why not node-apn's Provider: there);
// what an answer means is in apns-outcomes.ts.
import { setTimeout as delay } from 'node:timers/promises'
import type { ClientHttp2Session } from 'node:http2'
import type { Logger } from 'pino'
import { outcomeFromConnectionError, retryable, type PushFailure, type PushOutcome, type PushTarget } from './apns-outcomes.js'
import { createApnsSession } from './apns-session.js'

export type { PushOutcome, PushTarget } from './apns-outcomes.js'
export { deviceTokenHex } from './apns-session.js'

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

const DEFAULT_CONCURRENCY = 1000
const DEFAULT_RETRY = { attempts: 4, baseDelayMs: 500, maxDelayMs: 30_000 }
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000

export function createApnsSender(options: ApnsSenderOptions): ApnsSender {
  const origin = parseEndpoint(options.endpoint)
  const topic = options.topic
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? DEFAULT_CONCURRENCY))
  const retry = options.retry ?? DEFAULT_RETRY
  const attempts = Math.max(1, Math.floor(retry.attempts))
  const sleep = options.sleep ?? ((ms: number) => delay(ms))
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const log = options.logger?.child({ component: 'apns', topic })
  const connection = createApnsSession({
    origin,
    topic,
    certificatePem: options.certificatePem,
    privateKeyPem: options.privateKeyPem,
    ca: options.ca,
    requestTimeoutMs,
    log,
  })

  let slots = 0 // pushes under way (bounded by concurrency)
  const waiting: Array<() => void> = []
  let closing = false
  let closed: Promise<void> | undefined
  const running = new Set<Promise<unknown>>()

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
    const s = connection.current()
    return s ? connection.push(s, target, expiry) : connectAndPush(target, expiry, round)
  }

  async function connectAndPush(target: PushTarget, expiry: number | undefined, round: Round): Promise<PushOutcome> {
    if (round.connectError) return outcomeFromConnectionError(target.enrollmentId, round.connectError)
    let s: ClientHttp2Session
    try {
      s = await connection.connect()
    } catch (error) {
      round.connectError = error
      return outcomeFromConnectionError(target.enrollmentId, error)
    }
    return connection.push(s, target, expiry)
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
    certificateFailure?: PushFailure
    /** Targets given the certificate failure without a request. */
    notSent: number
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
      const first = outcomes[again[0]!] as PushFailure
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
        await connection.close()
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
