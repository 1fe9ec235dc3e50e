import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import http2 from 'node:http2'
import { createServer, type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import t from 'tap'
import { createApnsSender, deviceTokenHex, type ApnsSenderOptions, type PushOutcome, type PushTarget } from '../../src/push/apns-client.js'
import { createTestCa, mintPushCertificate, startFakeApns, type FakeApns, type FakeReply, type PushIdentity, type TestCa } from '../helpers/fake-apns.js'

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

let pushCa: TestCa
let identity: PushIdentity
let fake: FakeApns

t.before(async () => {
  pushCa = await createTestCa('Test push CA')
  identity = await mintPushCertificate(pushCa) // RSA-2048, as Apple issues them
  fake = await startFakeApns({ topic: identity.topic, clientCaPem: pushCa.pem })
})
t.teardown(() => fake.close())
t.beforeEach(() => {
  fake.reset()
  fake.respondWith(undefined)
})

function target(pushMagic = randomUUID().toUpperCase()): PushTarget {
  return { enrollmentId: `enrollment-${randomUUID()}`, token: randomBytes(32), pushMagic }
}

/** A sender against the shared fake, recording the backoff delays instead of waiting. */
function sender(overrides: Partial<ApnsSenderOptions> = {}) {
  const delays: number[] = []
  const apns = createApnsSender({
    topic: identity.topic,
    certificatePem: identity.certificatePem,
    privateKeyPem: identity.privateKeyPem,
    endpoint: fake.url,
    ca: fake.caPem,
    retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 10_000 },
    sleep: async (ms) => {
      delays.push(ms)
    },
    ...overrides,
  })
  return { apns, delays }
}

function failure(outcome: PushOutcome | undefined) {
  if (!outcome || outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome)}`)
  return outcome
}

t.test('deviceTokenHex is the lowercase hex of the Token bytes', async (t) => {
  const token = Buffer.from('0AFF10abcdef000000000000000000000000000000000000000000000000e0F1', 'hex')
  t.equal(deviceTokenHex(token), '0aff10abcdef000000000000000000000000000000000000000000000000e0f1')
  t.equal(deviceTokenHex(randomBytes(32)).length, 64)
})

t.test('a push: POST /3/device/<hex token>, MDM headers, body exactly {"mdm":PushMagic}, apns-id back', async (t) => {
  const { apns } = sender()
  t.teardown(() => apns.close())
  const push = target('8D0F1A36-7B7E-4A2F-9C3B-4E0B3C6E1D2A')
  const [outcome] = await apns.send([push])
  t.equal(apns.topic, identity.topic)
  t.equal(fake.requests.length, 1)
  const request = fake.requests[0]!
  t.same(outcome, { enrollmentId: push.enrollmentId, ok: true, apnsId: request.apnsId })
  t.match(request.apnsId, /^[0-9a-f-]{36}$/)
  t.equal(request.method, 'POST')
  t.equal(request.path, `/3/device/${push.token.toString('hex')}`)
  t.same(request.headers, { 'apns-push-type': 'mdm', 'apns-topic': identity.topic, 'apns-priority': '10' }, 'no apns-expiration, no apns-id, nothing else')
  t.equal(request.body, '{"mdm":"8D0F1A36-7B7E-4A2F-9C3B-4E0B3C6E1D2A"}', 'no aps dictionary')
  t.equal(request.certificateTopic, identity.topic, 'the push certificate is the TLS client identity')
})

t.test('apns-expiration is sent in epoch seconds only when given', async (t) => {
  const { apns } = sender()
  t.teardown(() => apns.close())
  await apns.send([target()], { expiration: new Date(1_900_000_000_999) })
  await apns.send([target()], { expiration: new Date(0) })
  await apns.send([target()])
  t.same(
    fake.requests.map((r) => r.headers['apns-expiration']),
    ['1900000000', '0', undefined],
  )
})

t.test('each APNs error reason maps to tokenInvalid or certificateProblem', async (t) => {
  const cases: Array<{ reply: FakeReply; tokenInvalid: boolean; certificateProblem: boolean; reason?: string }> = [
    { reply: { status: 410, reason: 'Unregistered', timestamp: 1_700_000_000_000 }, tokenInvalid: true, certificateProblem: false },
    { reply: { status: 410, reason: 'ExpiredToken' }, tokenInvalid: true, certificateProblem: false },
    { reply: { status: 400, reason: 'BadDeviceToken' }, tokenInvalid: true, certificateProblem: false },
    { reply: { status: 400, reason: 'DeviceTokenNotForTopic' }, tokenInvalid: true, certificateProblem: false },
    { reply: { status: 403, reason: 'BadCertificate' }, tokenInvalid: false, certificateProblem: true },
    { reply: { status: 403, reason: 'BadCertificateEnvironment' }, tokenInvalid: false, certificateProblem: true },
    { reply: { status: 403, reason: 'Forbidden' }, tokenInvalid: false, certificateProblem: true },
    { reply: { status: 400, reason: 'BadTopic' }, tokenInvalid: false, certificateProblem: true },
    { reply: { status: 400, reason: 'TopicDisallowed' }, tokenInvalid: false, certificateProblem: true },
    { reply: { status: 400, reason: 'MissingTopic' }, tokenInvalid: false, certificateProblem: true },
    { reply: { status: 413, reason: 'PayloadTooLarge' }, tokenInvalid: false, certificateProblem: false },
    { reply: { status: 400, reason: 'BadMessageId' }, tokenInvalid: false, certificateProblem: false },
    { reply: { status: 400, rawBody: '' }, tokenInvalid: false, certificateProblem: false, reason: 'HTTP 400' },
    { reply: { status: 410, rawBody: 'gone' }, tokenInvalid: true, certificateProblem: false, reason: 'HTTP 410' },
    { reply: { status: 403, rawBody: '{}' }, tokenInvalid: false, certificateProblem: true, reason: 'HTTP 403' },
  ]
  const { apns, delays } = sender()
  t.teardown(() => apns.close())
  for (const { reply, tokenInvalid, certificateProblem, reason } of cases) {
    fake.respondWith(() => reply)
    const push = target()
    const outcome = failure((await apns.send([push]))[0])
    t.same(
      outcome,
      { enrollmentId: push.enrollmentId, ok: false, status: reply.status, reason: reason ?? reply.reason, tokenInvalid, certificateProblem },
      `${reply.status} ${reason ?? reply.reason}`,
    )
  }
  t.same(delays, [], 'none of these is retried')
  t.equal(fake.requests.length, cases.length)
  t.equal(fake.stats.sessions, 1, 'one connection for all these sends')
})

t.test("the fake's own checks answer what APNs would, and the sender classifies them", async (t) => {
  await t.test('a token that is not 32 bytes: 400 BadDeviceToken, token invalid', async (t) => {
    const { apns } = sender()
    t.teardown(() => apns.close())
    const push = { ...target(), token: randomBytes(16) }
    t.match(failure((await apns.send([push]))[0]), { status: 400, reason: 'BadDeviceToken', tokenInvalid: true, certificateProblem: false })
  })
  await t.test('apns-topic other than the certificate UID: 400 BadTopic, a certificate/topic problem', async (t) => {
    const { apns } = sender({ topic: 'com.apple.mgmt.External.other' })
    t.teardown(() => apns.close())
    t.match(failure((await apns.send([target()]))[0]), { status: 400, reason: 'BadTopic', tokenInvalid: false, certificateProblem: true })
  })
  await t.test('a certificate from a CA APNs does not trust: 403 BadCertificate, not retried', async (t) => {
    const stranger = await mintPushCertificate(await createTestCa('Unknown CA'), identity.topic, { algorithm: 'ec-p256' })
    const { apns, delays } = sender({ certificatePem: stranger.certificatePem, privateKeyPem: stranger.privateKeyPem })
    t.teardown(() => apns.close())
    t.match(failure((await apns.send([target()]))[0]), { status: 403, reason: 'BadCertificate', tokenInvalid: false, certificateProblem: true })
    t.same(delays, [])
    t.equal(fake.requests.at(-1)!.certificateTopic, null)
  })
  await t.test('a trusted certificate for another topic: 403 BadCertificateEnvironment', async (t) => {
    const other = await mintPushCertificate(pushCa, 'com.apple.mgmt.External.elsewhere', { algorithm: 'ec-p256' })
    const { apns } = sender({ topic: other.topic, certificatePem: other.certificatePem, privateKeyPem: other.privateKeyPem })
    t.teardown(() => apns.close())
    t.match(failure((await apns.send([target()]))[0]), { status: 403, reason: 'BadCertificateEnvironment', certificateProblem: true })
  })
})

t.test('a certificate problem is one error for the topic, not one request and one log line per device', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
        done()
      },
    }),
  )
  fake.respondWith(() => ({ status: 403, reason: 'BadCertificate' }))
  const { apns, delays } = sender({ concurrency: 2, logger })
  t.teardown(() => apns.close())
  const pushes = Array.from({ length: 50 }, () => target())
  const outcomes = await apns.send(pushes)
  t.equal(outcomes.length, 50)
  outcomes.forEach((outcome, i) => {
    t.same(outcome, { enrollmentId: pushes[i]!.enrollmentId, ok: false, status: 403, reason: 'BadCertificate', tokenInvalid: false, certificateProblem: true })
  })
  t.ok(fake.requests.length <= 2, `APNs saw ${fake.requests.length} requests (at most the ones already in flight)`)
  t.same(delays, [])
  t.equal(lines.length, 1, 'one log line')
  t.match(lines[0], { level: 40, topic: identity.topic, reason: 'BadCertificate', targets: 50, not_sent: 50 - fake.requests.length, msg: /push certificate/ })
})

t.test('429 and 5xx are retried with exponential backoff through the injected sleep', async (t) => {
  for (const reply of [
    { status: 429, reason: 'TooManyRequests' },
    { status: 500, reason: 'InternalServerError' },
    { status: 503, reason: 'ServiceUnavailable' },
  ]) {
    await t.test(`${reply.status} ${reply.reason} twice, then accepted`, async (t) => {
      fake.reset()
      fake.respondWith((push) => (push.attempt <= 2 ? reply : undefined))
      const { apns, delays } = sender({ retry: { attempts: 4, baseDelayMs: 100, maxDelayMs: 10_000 } })
      t.teardown(() => apns.close())
      const push = target()
      const [outcome] = await apns.send([push])
      t.match(outcome, { enrollmentId: push.enrollmentId, ok: true })
      t.same(delays, [100, 200])
      t.same(
        fake.requests.map((r) => r.status),
        [reply.status, reply.status, 200],
      )
    })
  }
})

t.test('retries give up after the attempt limit with the last answer; delays are capped', async (t) => {
  fake.respondWith(() => ({ status: 503, reason: 'ServiceUnavailable' }))
  const { apns, delays } = sender({ retry: { attempts: 5, baseDelayMs: 100, maxDelayMs: 250 } })
  t.teardown(() => apns.close())
  const push = target()
  const [outcome] = await apns.send([push])
  t.same(outcome, { enrollmentId: push.enrollmentId, ok: false, status: 503, reason: 'ServiceUnavailable', tokenInvalid: false, certificateProblem: false })
  t.same(delays, [100, 200, 250, 250])
  t.equal(fake.requests.length, 5)
})

t.test('only the pushes that can be retried are sent again, once per round', async (t) => {
  const ok = target()
  const dead = target()
  const busy = target()
  const busyHex = deviceTokenHex(busy.token)
  const deadHex = deviceTokenHex(dead.token)
  fake.respondWith((push) => {
    if (push.token === deadHex) return { status: 410, reason: 'Unregistered', timestamp: Date.now() }
    if (push.token === busyHex && push.attempt === 1) return { status: 429, reason: 'TooManyRequests' }
    return undefined
  })
  const { apns, delays } = sender()
  t.teardown(() => apns.close())
  const outcomes = await apns.send([ok, dead, busy])
  t.match(outcomes, [
    { enrollmentId: ok.enrollmentId, ok: true },
    { enrollmentId: dead.enrollmentId, ok: false, status: 410, reason: 'Unregistered', tokenInvalid: true },
    { enrollmentId: busy.enrollmentId, ok: true },
  ])
  t.same(delays, [100], 'one backoff for the round')
  t.same(fake.requests.map((r) => r.token).sort(), [deadHex, busyHex, busyHex, deviceTokenHex(ok.token)].sort())
})

t.test('connection refused is retried, then reported for every target', async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
  const { apns, delays } = sender({ endpoint: `https://127.0.0.1:${closedPort}` })
  t.teardown(() => apns.close())
  const pushes = [target(), target(), target()]
  const outcomes = await apns.send(pushes)
  t.same(
    outcomes,
    pushes.map((p) => ({ enrollmentId: p.enrollmentId, ok: false, status: null, reason: 'ECONNREFUSED', tokenInvalid: false, certificateProblem: false })),
  )
  t.same(delays, [100, 200])
})

t.test('a connection closed during the TLS handshake (certificate refused there) is retried, then reported', async (t) => {
  // A Node TLS server refusing the client certificate just closes the connection (no alert);
  // with TLS 1.3 the client sees it only after its side of the handshake, before any HTTP/2 frame.
  const strict = await startFakeApns({ topic: identity.topic, clientCaPem: pushCa.pem, rejectUntrustedCertificates: true })
  t.teardown(() => strict.close())
  const stranger = await mintPushCertificate(await createTestCa('Unknown CA'), identity.topic, { algorithm: 'ec-p256' })
  const { apns, delays } = sender({ endpoint: strict.url, ca: strict.caPem, certificatePem: stranger.certificatePem, privateKeyPem: stranger.privateKeyPem })
  t.teardown(() => apns.close())
  const pushes = [target(), target()]
  t.same(
    await apns.send(pushes),
    pushes.map((p) => ({ enrollmentId: p.enrollmentId, ok: false, status: null, reason: 'ConnectionClosed', tokenInvalid: false, certificateProblem: false })),
  )
  t.same(delays, [100, 200])
  t.equal(strict.stats.received, 0, 'no request was sent on a connection APNs had not accepted')
})

t.test('a connection that stops answering is dropped after requestTimeoutMs and the push retried', async (t) => {
  fake.respondWith((push) => (push.attempt === 1 ? new Promise<undefined>(() => {}) : undefined))
  const { apns, delays } = sender({ requestTimeoutMs: 100 })
  t.teardown(() => apns.close())
  const push = target()
  const [outcome] = await apns.send([push])
  t.match(outcome, { enrollmentId: push.enrollmentId, ok: true })
  t.same(delays, [100])
  t.equal(fake.stats.sessions, 2, 'a new connection for the retry')
})

t.test('no more streams in flight than the concurrency bound', async (t) => {
  const bound = 5
  const total = 23
  let held: Array<() => void> = []
  // Hold answers until the sender has `bound` streams open (or all it has left), then answer them.
  fake.respondWith(
    () =>
      new Promise<undefined>((resolve) => {
        held.push(() => resolve(undefined))
        if (held.length === bound || fake.stats.received === total) {
          const release = held
          held = []
          release.forEach((answer) => answer())
        }
      }),
  )
  const { apns } = sender({ concurrency: bound })
  t.teardown(() => apns.close())
  const pushes = Array.from({ length: total }, () => target())
  const outcomes = await apns.send(pushes)
  t.ok(outcomes.every((o) => o.ok))
  t.equal(fake.stats.maxInFlight, bound)
})

t.test("the server's SETTINGS_MAX_CONCURRENT_STREAMS is respected above the sender's bound", async (t) => {
  const narrow = await startFakeApns({ topic: identity.topic, clientCaPem: pushCa.pem, maxConcurrentStreams: 2 })
  t.teardown(() => narrow.close())
  const { apns } = sender({ endpoint: narrow.url, ca: narrow.caPem, concurrency: 10 })
  t.teardown(() => apns.close())
  const outcomes = await apns.send(Array.from({ length: 12 }, () => target()))
  t.ok(
    outcomes.every((o) => o.ok),
    'all accepted',
  )
  t.ok(narrow.stats.maxInFlight <= 2, `at most 2 in flight (${narrow.stats.maxInFlight})`)
})

t.test('results come back in the order of the targets, whatever order APNs answers in', async (t) => {
  const total = 10
  const held: Array<() => void> = []
  fake.respondWith(
    () =>
      new Promise<undefined>((resolve) => {
        held.push(() => resolve(undefined))
        // All ten in flight: answer the last one first.
        if (held.length === total) setImmediate(() => held.reverse().forEach((answer) => answer()))
      }),
  )
  const { apns } = sender()
  t.teardown(() => apns.close())
  const pushes = Array.from({ length: total }, () => target())
  const outcomes = await apns.send(pushes)
  const idByToken = new Map(fake.requests.map((r) => [r.token, r.apnsId]))
  t.same(
    outcomes,
    pushes.map((p) => ({ enrollmentId: p.enrollmentId, ok: true, apnsId: idByToken.get(deviceTokenHex(p.token)) })),
  )
  t.same(
    fake.requests.map((r) => r.token),
    pushes.map((p) => deviceTokenHex(p.token)).reverse(),
    'APNs answered in reverse order',
  )
})

t.test('one sender, one connection, many sends (also concurrent ones)', async (t) => {
  const { apns } = sender({ concurrency: 3 })
  t.teardown(() => apns.close())
  for (let i = 0; i < 3; i++) t.ok((await apns.send([target(), target()])).every((o) => o.ok))
  const batches = await Promise.all([apns.send([target(), target()]), apns.send([target()]), apns.send([])])
  t.same(
    batches.map((b) => b.length),
    [2, 1, 0],
  )
  t.equal(fake.requests.length, 9)
  t.equal(fake.stats.sessions, 1)
  t.ok(fake.stats.maxInFlight <= 3, 'the bound holds across concurrent sends')
})

t.test('after close(), sends are refused without a request', async (t) => {
  const { apns } = sender()
  t.ok((await apns.send([target()]))[0]!.ok)
  await apns.close()
  await apns.close() // idempotent
  const push = target()
  t.same(await apns.send([push]), [
    { enrollmentId: push.enrollmentId, ok: false, status: null, reason: 'SenderClosed', tokenInvalid: false, certificateProblem: false },
  ])
  t.equal(fake.requests.length, 1)
})

t.test('close() waits for a running send', async (t) => {
  let answer: () => void = () => {}
  fake.respondWith(() => new Promise<undefined>((resolve) => (answer = () => resolve(undefined))))
  const { apns } = sender()
  const sending = apns.send([target()])
  while (fake.stats.received === 0) await new Promise((resolve) => setImmediate(resolve))
  let closed = false
  const closing = apns.close().then(() => (closed = true))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(closed, false, 'still waiting for the push')
  answer()
  t.ok((await sending)[0]!.ok)
  await closing
  t.equal(closed, true)
})

t.test('bad options fail when the sender is created', async (t) => {
  const base = { topic: identity.topic, certificatePem: identity.certificatePem, privateKeyPem: identity.privateKeyPem, endpoint: fake.url }
  t.throws(() => createApnsSender({ ...base, endpoint: 'http://127.0.0.1:1' }), /https/)
  t.throws(() => createApnsSender({ ...base, endpoint: 'https://api.push.apple.com/3/device' }), /origin/)
  t.throws(() => createApnsSender({ ...base, endpoint: 'not a url' }), /not a URL/)
  const other = await mintPushCertificate(pushCa, identity.topic, { algorithm: 'ec-p256' })
  t.throws(() => createApnsSender({ ...base, privateKeyPem: other.privateKeyPem }), /does not belong/)
  t.throws(() => createApnsSender({ ...base, certificatePem: 'not a certificate' }))
})

t.test('close() lets the process exit, and an idle sender does not keep it alive', async (t) => {
  const script = (closeIt: boolean) => `
    import { createApnsSender } from './src/push/apns-client.ts'
    const apns = createApnsSender(JSON.parse(process.env.SENDER_OPTIONS))
    const [outcome] = await apns.send([{ enrollmentId: 'e1', token: Buffer.alloc(32, 7), pushMagic: 'magic' }])
    ${closeIt ? 'await apns.close()' : ''}
    console.log(JSON.stringify(outcome))
  `
  const options = { topic: identity.topic, certificatePem: identity.certificatePem, privateKeyPem: identity.privateKeyPem, endpoint: fake.url, ca: fake.caPem }
  for (const closeIt of [true, false]) {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script(closeIt)], {
      cwd: repoRoot,
      env: { PATH: process.env['PATH'] ?? '', SENDER_OPTIONS: JSON.stringify(options) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve)) // after stdout is drained
    t.equal(code, 0, `exited by itself (${closeIt ? 'after close()' : 'idle, without close()'}) ${stderr}`)
    t.match(stdout, /^\{"enrollmentId":"e1","ok":true,"apnsId":"[0-9a-f-]{36}"\}\n$/, 'the push went out first')
  }
})

t.test("the fake APNs rejects requests that are not MDM pushes, with APNs's reasons", async (t) => {
  const session = http2.connect(fake.url, { ca: fake.caPem, cert: identity.certificatePem, key: identity.privateKeyPem })
  t.teardown(() => session.close())
  const token = randomBytes(32).toString('hex')
  const good = { ':method': 'POST', ':path': `/3/device/${token}`, 'apns-push-type': 'mdm', 'apns-topic': identity.topic, 'apns-priority': '10' }
  const request = (headers: http2.OutgoingHttpHeaders, body: string) =>
    new Promise<{ status: number; reason?: string }>((resolve, reject) => {
      const stream = session.request(headers, { endStream: false })
      let status = 0
      let text = ''
      stream.on('response', (h) => (status = Number(h[':status'])))
      stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
      stream.on('end', () => resolve(text ? { status, reason: (JSON.parse(text) as { reason: string }).reason } : { status }))
      stream.on('error', reject)
      stream.end(body)
    })
  const cases: Array<[string, http2.OutgoingHttpHeaders, string, number, string | undefined]> = [
    ['valid', good, '{"mdm":"magic"}', 200, undefined],
    ['GET', { ...good, ':method': 'GET' }, '', 405, 'MethodNotAllowed'],
    ['wrong path', { ...good, ':path': `/3/devices/${token}` }, '{"mdm":"magic"}', 404, 'BadPath'],
    ['no token', { ...good, ':path': '/3/device/' }, '{"mdm":"magic"}', 400, 'MissingDeviceToken'],
    ['uppercase hex', { ...good, ':path': `/3/device/${token.toUpperCase()}` }, '{"mdm":"magic"}', 400, 'BadDeviceToken'],
    [
      'base64 token',
      { ...good, ':path': `/3/device/${encodeURIComponent(Buffer.from(token, 'hex').toString('base64'))}` },
      '{"mdm":"magic"}',
      400,
      'BadDeviceToken',
    ],
    ['alert push type', { ...good, 'apns-push-type': 'alert' }, '{"mdm":"magic"}', 400, 'InvalidPushType'],
    ['no push type', { ...good, 'apns-push-type': undefined }, '{"mdm":"magic"}', 400, 'InvalidPushType'],
    ['no topic', { ...good, 'apns-topic': undefined }, '{"mdm":"magic"}', 400, 'MissingTopic'],
    ['other topic', { ...good, 'apns-topic': 'com.example.app' }, '{"mdm":"magic"}', 400, 'BadTopic'],
    ['priority 7', { ...good, 'apns-priority': '7' }, '{"mdm":"magic"}', 400, 'BadPriority'],
    ['expiration not a number', { ...good, 'apns-expiration': 'tomorrow' }, '{"mdm":"magic"}', 400, 'BadExpirationDate'],
    ['apns-id not a UUID', { ...good, 'apns-id': '42' }, '{"mdm":"magic"}', 400, 'BadMessageId'],
    ['empty body', good, '', 400, 'PayloadEmpty'],
    ['too large', good, JSON.stringify({ mdm: 'x'.repeat(5000) }), 413, 'PayloadTooLarge'],
    ['aps dictionary', good, '{"aps":{},"mdm":"magic"}', 400, 'BadPayload'],
    ['spaces', good, '{ "mdm": "magic" }', 400, 'BadPayload'],
    ['not JSON', good, 'mdm=magic', 400, 'BadPayload'],
  ]
  for (const [name, headers, body, status, reason] of cases) {
    const defined = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined))
    t.same(await request(defined, body), reason ? { status, reason } : { status }, name)
  }
})
