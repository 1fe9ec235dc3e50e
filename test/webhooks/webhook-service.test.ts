import { randomBytes } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { createSecretBox } from '../../src/crypto/secret-box.js'
import {
  createWebhookService,
  signWebhookBody,
  verifyWebhookSignature,
  webhookEventTypes,
  type WebhookServiceDeps,
} from '../../src/webhooks/webhook-service.js'
import { fullAccess } from '../../src/model/access.js'
import { createWebhookStore, type WebhookStore } from '../../src/webhooks/webhook-store.js'
import { createTestDatabase } from '../helpers/database.js'

/** Silent unless ORCHARD_TEST_LOG_LEVEL asks (as test/helpers/app.ts, without loading the whole app). */
const testLogger = () => pino({ level: process.env['ORCHARD_TEST_LOG_LEVEL'] ?? 'silent' })

type Teardown = { teardown(fn: () => unknown): void }

interface Received {
  path: string
  headers: IncomingHttpHeaders
  body: string
}

type Answer = number | 'hang'

/** A real HTTP receiver on 127.0.0.1; `answer` picks each response's status (or never answers). */
async function startReceiver(t: Teardown, answer: (request: Received) => Answer = () => 200, port = 0) {
  const requests: Received[] = []
  let onRequest: (() => void) | null = null
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const request = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      requests.push(request)
      onRequest?.()
      const status = answer(request)
      if (status !== 'hang') res.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  let closed = false
  const close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve()
      closed = true
      server.closeAllConnections()
      server.close(() => resolve())
    })
  t.teardown(close)
  const actualPort = (server.address() as AddressInfo).port
  return {
    port: actualPort,
    url: (path = '/hook') => `http://127.0.0.1:${actualPort}${path}`,
    requests,
    close,
    /** Resolves when the next request has arrived. */
    nextRequest: () => new Promise<void>((resolve) => (onRequest = resolve)),
  }
}

/** A clock the test moves by hand. */
function manualClock(start = new Date('2031-06-01T08:00:00.000Z')) {
  let current = start.getTime()
  return {
    now: () => new Date(current),
    set: (date: Date) => (current = date.getTime()),
    advance: (seconds: number) => (current += seconds * 1000),
    seconds: () => Math.floor(current / 1000),
    at: (seconds: number) => new Date(start.getTime() + seconds * 1000),
    offset: (date: Date) => (date.getTime() - start.getTime()) / 1000,
  }
}

async function setup(t: Teardown, options: Partial<WebhookServiceDeps> = {}) {
  const database = await createTestDatabase(t)
  const store = createWebhookStore(database.db)
  const clock = manualClock()
  const service = createWebhookService({ store, secretBox: createSecretBox([randomBytes(32)]), logger: testLogger(), now: clock.now, ...options })
  t.teardown(() => service.stop())
  return { database, store, clock, service }
}

function logCapture() {
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
  return { logger, lines }
}

const code = (expected: string) => ({ name: 'OrchardError', code: expected })

t.test('webhooks are created with a secret shown once, validated, listed without secrets, updated, rotated and deleted', async (t) => {
  const receiver = await startReceiver(t)
  const { service, store } = await setup(t)
  const created = await service.createWebhook(fullAccess, { url: receiver.url(), eventTypes: ['checkin.authenticate', 'command.result'], description: 'SIEM' })
  t.match(created, { url: receiver.url(), eventTypes: ['checkin.authenticate', 'command.result'], enabled: true, description: 'SIEM' })
  t.match(created.id, /^wh_[0-9a-f]{24}$/)
  t.match(created.secret, /^whsec_[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
  const given = await service.createWebhook(fullAccess, { url: 'https://hooks.example.com/orchard?x=1', eventTypes: ['*'], secret: 'a-secret-of-16-chars' })
  t.equal(given.secret, 'a-secret-of-16-chars')

  const listed = await service.listWebhooks()
  t.same(listed.map((w) => w.id).sort(), [created.id, given.id].sort())
  for (const webhook of [...listed, await service.getWebhook(created.id)]) {
    t.same(Object.keys(webhook).sort(), ['createdAt', 'description', 'enabled', 'eventTypes', 'id', 'updatedAt', 'url'])
  }
  const text = JSON.stringify(listed)
  t.notOk(text.includes(created.secret) || text.includes(given.secret), 'no secret in the list')
  const stored = (await store.getWebhook(given.id))!
  t.notOk(stored.secretSealed.includes(Buffer.from(given.secret)), 'the secret is sealed at rest')

  for (const [input, why] of [
    [{ url: 'ftp://example.com/', eventTypes: ['*'] }, 'not http(s)'],
    [{ url: 'not a url', eventTypes: ['*'] }, 'not a URL'],
    [{ url: 'http://user:pw@example.com/', eventTypes: ['*'] }, 'credentials in the URL'],
    [{ url: 'https://example.com/', eventTypes: [] }, 'no event types'],
    [{ url: 'https://example.com/', eventTypes: ['device.enrolled'] }, 'unknown event type'],
    [{ url: 'https://example.com/', eventTypes: ['*'], secret: 'short' }, 'secret too short'],
    [{ url: 'https://example.com/', eventTypes: ['*'], description: 'x'.repeat(501) }, 'description too long'],
  ] as const) {
    await t.rejects(service.createWebhook(fullAccess, input), code('validation_failed'), why)
  }

  const updated = await service.updateWebhook(fullAccess, created.id, { enabled: false, eventTypes: ['*', '*'], description: null })
  t.match(updated, { id: created.id, enabled: false, eventTypes: ['*'], description: null, url: receiver.url() })
  t.notOk('secret' in updated)
  await t.rejects(service.updateWebhook(fullAccess, created.id, { url: 'gopher://x' }), code('validation_failed'))
  await t.rejects(service.updateWebhook(fullAccess, 'wh_nope', { enabled: true }), code('not_found'))
  await t.rejects(service.getWebhook('wh_nope'), code('not_found'))

  const rotated = await service.rotateSecret(fullAccess, created.id)
  t.match(rotated, { id: created.id, secret: /^whsec_/ })
  t.not(rotated.secret, created.secret)
  t.equal((await service.rotateSecret(fullAccess, created.id, 'another-secret-16+')).secret, 'another-secret-16+')
  await t.rejects(service.rotateSecret(fullAccess, 'wh_nope'), code('not_found'))

  await service.deleteWebhook(fullAccess, created.id)
  await t.rejects(service.deleteWebhook(fullAccess, created.id), code('not_found'))
  t.same(
    (await service.listWebhooks()).map((w) => w.id),
    [given.id],
  )
  t.ok(webhookEventTypes.includes('*') && webhookEventTypes.includes('command.result'))
})

t.test('without ORCHARD_SECRET_KEYS webhooks are refused with a clear error', async (t) => {
  const { service } = await setup(t, { secretBox: null })
  await t.rejects(service.createWebhook(fullAccess, { url: 'https://example.com/', eventTypes: ['*'] }), {
    code: 'conflict',
    message: 'webhooks need ORCHARD_SECRET_KEYS to seal their signing secrets',
  })
  await t.rejects(service.rotateSecret(fullAccess, 'wh_any'), { code: 'conflict', message: /ORCHARD_SECRET_KEYS/ })
  t.same(await service.listWebhooks(), [])
  t.same(await service.deliverDue(), { attempted: 0, delivered: 0, failed: 0 })
})

t.test('a delivery is signed; the receiver verifies it, and a tampered body fails', async (t) => {
  const receiver = await startReceiver(t)
  const { logger, lines } = logCapture()
  const { service, clock } = await setup(t, { logger })
  const webhook = await service.createWebhook(fullAccess, { url: receiver.url('/orchard'), eventTypes: ['checkin.authenticate'] })
  await service.emit('checkin.authenticate', { udid: 'UDID-1', serial_number: 'C02X' })
  t.same(await service.deliverDue(), { attempted: 1, delivered: 1, failed: 0 })
  t.equal(receiver.requests.length, 1)
  const [request] = receiver.requests
  t.equal(request!.path, '/orchard')
  const event = JSON.parse(request!.body) as Record<string, unknown>
  t.same(Object.keys(event).sort(), ['created_at', 'data', 'id', 'type'])
  t.match(event, { type: 'checkin.authenticate', created_at: clock.now().toISOString(), data: { udid: 'UDID-1', serial_number: 'C02X' } })
  t.match(request!.headers, {
    'content-type': 'application/json',
    'user-agent': 'Orchard-Webhooks/1',
    'orchard-event-id': event['id'],
    'orchard-event-type': 'checkin.authenticate',
    'orchard-delivery-attempt': '1',
  })
  const header = request!.headers['orchard-signature'] as string
  t.match(header, /^t=\d+,v1=[0-9a-f]{64}$/)
  t.equal(header, signWebhookBody(webhook.secret, clock.seconds(), request!.body))
  t.ok(verifyWebhookSignature(webhook.secret, header, request!.body, 300, clock.seconds()), 'the receiver verifies the signature')
  t.ok(verifyWebhookSignature(webhook.secret, header, Buffer.from(request!.body), 300, clock.seconds() + 300), 'within the tolerance')
  t.notOk(verifyWebhookSignature(webhook.secret, header, request!.body.replace('UDID-1', 'UDID-2'), 300, clock.seconds()), 'a tampered body fails')
  t.notOk(verifyWebhookSignature('whsec_someone-else', header, request!.body, 300, clock.seconds()), 'another secret fails')
  t.notOk(verifyWebhookSignature(webhook.secret, header, request!.body, 300, clock.seconds() + 301), 'a replay outside the tolerance fails')
  t.notOk(
    verifyWebhookSignature(webhook.secret, header.replace(/t=\d+/, `t=${clock.seconds() + 1}`), request!.body, 300, clock.seconds()),
    'a moved timestamp fails',
  )
  t.notOk(verifyWebhookSignature(webhook.secret, undefined, request!.body, 300, clock.seconds()))
  t.notOk(verifyWebhookSignature(webhook.secret, 'garbage', request!.body, 300, clock.seconds()))
  t.ok(verifyWebhookSignature(webhook.secret, `${header},v1=${'0'.repeat(64)}`, request!.body, 300, clock.seconds()), 'any one v1 may match')

  const [delivery] = await service.listDeliveries(webhook.id)
  t.match(delivery, { eventId: event['id'], eventType: 'checkin.authenticate', status: 'delivered', attempts: 1, lastStatusCode: 200, nextAttemptAt: null })
  t.same(await service.deliverDue(), { attempted: 0, delivered: 0, failed: 0 }, 'delivered once')

  const outcome = lines.filter((line) => line['msg'] === 'webhook delivered')
  t.equal(outcome.length, 1, 'one log line per outcome')
  t.match(outcome[0], { level: 30, webhook_id: webhook.id, event_id: event['id'], event_type: 'checkin.authenticate', status_code: 200, attempts: 1 })
  t.notOk(JSON.stringify(lines).includes(webhook.secret), 'the secret is never logged')

  // A rotated secret signs from the next attempt on.
  const rotated = await service.rotateSecret(fullAccess, webhook.id)
  await service.emit('checkin.authenticate', { udid: 'UDID-3' })
  await service.deliverDue()
  const last = receiver.requests[1]!
  t.ok(verifyWebhookSignature(rotated.secret, last.headers['orchard-signature'] as string, last.body, 300, clock.seconds()))
  t.notOk(verifyWebhookSignature(webhook.secret, last.headers['orchard-signature'] as string, last.body, 300, clock.seconds()))
})

t.test('events reach only enabled webhooks subscribed to their type, or to *', async (t) => {
  const receiver = await startReceiver(t)
  const { service } = await setup(t)
  await service.createWebhook(fullAccess, { url: receiver.url('/auth'), eventTypes: ['checkin.authenticate'] })
  await service.createWebhook(fullAccess, { url: receiver.url('/all'), eventTypes: ['*'] })
  await service.createWebhook(fullAccess, { url: receiver.url('/results'), eventTypes: ['command.result', 'checkin.checkout'] })
  const off = await service.createWebhook(fullAccess, { url: receiver.url('/off'), eventTypes: ['*'] })
  await service.updateWebhook(fullAccess, off.id, { enabled: false })

  await service.emit('checkin.authenticate', { n: 1 })
  await service.emit('command.result', { n: 2 })
  await service.emit('checkin.token_update', { n: 3 })
  t.same(await service.deliverDue(), { attempted: 5, delivered: 5, failed: 0 })
  const seen = receiver.requests.map((r) => `${r.path} ${r.headers['orchard-event-type'] as string}`).sort()
  t.same(seen, ['/all checkin.authenticate', '/all checkin.token_update', '/all command.result', '/auth checkin.authenticate', '/results command.result'])
})

t.test('a receiver down for an hour: backoff, then every event delivered once, in order', async (t) => {
  let up = false
  let receiver = await startReceiver(t, () => (up ? 200 : 503))
  const { service, clock } = await setup(t)
  const webhook = await service.createWebhook(fullAccess, { url: receiver.url(), eventTypes: ['*'] })
  const eventIds: string[] = []
  for (let i = 0; i < 3; i++) {
    await service.emit('command.result', { seq: i })
    eventIds.push((await service.listDeliveries(webhook.id, { limit: 1 }))[0]!.eventId)
    clock.advance(1)
  }

  // Each event's attempts, as offsets in seconds from the first event.
  const attemptsAt = new Map<string, number[]>(eventIds.map((id) => [id, []]))
  const codes = new Map<string, Array<number | null>>(eventIds.map((id) => [id, []]))
  const record = async () => {
    for (const delivery of await service.listDeliveries(webhook.id)) {
      const seen = attemptsAt.get(delivery.eventId)!
      if (delivery.attempts > seen.length) {
        t.equal(delivery.attempts, seen.length + 1, 'one attempt per round')
        seen.push(clock.offset(delivery.lastAttemptAt!))
        codes.get(delivery.eventId)!.push(delivery.lastStatusCode)
      }
    }
  }
  const nextDue = async () => {
    const pending = (await service.listDeliveries(webhook.id)).filter((d) => d.status === 'pending')
    return Math.min(...pending.map((d) => d.nextAttemptAt!.getTime()))
  }

  // Step the clock from one due time to the next for an hour: 503 for half of it, then nothing listening.
  clock.set(clock.at(0))
  let closedAt: number | null = null
  for (let step = 0; step < 100; step++) {
    const due = await nextDue()
    if (due > clock.at(3600).getTime()) break
    clock.set(new Date(Math.max(due, clock.now().getTime())))
    if (closedAt === null && clock.offset(clock.now()) >= 1800) {
      closedAt = clock.offset(clock.now())
      await receiver.close()
    }
    const round = await service.deliverDue()
    t.equal(round.delivered, 0)
    t.equal(round.failed, round.attempted)
    await record()
  }
  t.ok(closedAt !== null, 'the receiver went away for the second half hour')

  const delays = (offsets: number[]) => offsets.slice(1).map((offset, i) => offset - offsets[i]!)
  eventIds.forEach((id, i) => {
    t.same(
      attemptsAt.get(id),
      [0, 10, 30, 70, 150, 310, 630, 1270, 2170, 3070].map((s) => s + i),
      `event ${i}: attempts within the hour`,
    )
    t.same(delays(attemptsAt.get(id)!), [10, 20, 40, 80, 160, 320, 640, 900, 900], 'delays double from 10 s up to 15 min')
    t.same(codes.get(id), [503, 503, 503, 503, 503, 503, 503, 503, null, null], '503 while it answered, then no answer')
  })
  const stillPending = await service.listDeliveries(webhook.id)
  t.match(stillPending[0], { status: 'pending', attempts: 10, lastError: /ECONNREFUSED/ })
  t.equal(receiver.requests.length, 3 * 8, 'the receiver saw the attempts it was listening for')
  t.same(
    receiver.requests.filter((r) => r.headers['orchard-event-id'] === eventIds[0]).map((r) => r.headers['orchard-delivery-attempt']),
    ['1', '2', '3', '4', '5', '6', '7', '8'],
  )

  // Back up on the same address after the hour; the next attempts are due at 3970-3972 s.
  clock.set(clock.at(3600))
  up = true
  receiver = await startReceiver(t, () => 200, receiver.port)
  t.same(await service.deliverDue(), { attempted: 0, delivered: 0, failed: 0 }, 'nothing before it is due')
  clock.set(clock.at(3972))
  t.same(await service.deliverDue(), { attempted: 3, delivered: 3, failed: 0 }, 'all three in one round')
  t.same(
    receiver.requests.map((r) => r.headers['orchard-event-id']),
    eventIds,
    'in the order the events were created',
  )
  t.same(
    receiver.requests.map((r) => r.headers['orchard-delivery-attempt']),
    ['11', '11', '11'],
  )
  clock.advance(86_400)
  t.same(await service.deliverDue(), { attempted: 0, delivered: 0, failed: 0 })
  t.equal(receiver.requests.length, 3, 'each delivered exactly once')
  t.same(
    (await service.listDeliveries(webhook.id)).map((d) => [d.status, d.attempts]),
    [
      ['delivered', 11],
      ['delivered', 11],
      ['delivered', 11],
    ],
  )
})

t.test('past the retry window a delivery fails for good; retryDelivery queues it again', async (t) => {
  let status = 500
  const receiver = await startReceiver(t, () => status)
  const { service, clock } = await setup(t, { retry: { baseSeconds: 10, maxSeconds: 900, giveUpAfterSeconds: 60 } })
  const webhook = await service.createWebhook(fullAccess, { url: receiver.url(), eventTypes: ['checkin.checkout'] })
  await service.emit('checkin.checkout', { udid: 'U' })

  const schedule: Array<number | null> = []
  for (const offset of [0, 10, 30, 60]) {
    clock.set(clock.at(offset))
    t.same(await service.deliverDue(), { attempted: 1, delivered: 0, failed: 1 }, `attempt at ${offset} s`)
    const [delivery] = await service.listDeliveries(webhook.id)
    schedule.push(delivery!.nextAttemptAt && clock.offset(delivery!.nextAttemptAt))
  }
  t.same(schedule, [10, 30, 60, null], 'the last attempt falls when the window closes, then it gives up')
  const [failed] = await service.listDeliveries(webhook.id)
  t.match(failed, { status: 'failed', attempts: 4, lastStatusCode: 500, lastError: 'HTTP 500', nextAttemptAt: null })
  clock.advance(3600)
  t.same(await service.deliverDue(), { attempted: 0, delivered: 0, failed: 0 }, 'a failed delivery is not retried by itself')

  await t.rejects(service.retryDelivery(fullAccess, webhook.id, failed!.id + 1000), code('not_found'))
  await t.rejects(service.retryDelivery(fullAccess, 'wh_nope', failed!.id), code('not_found'))
  const requeued = await service.retryDelivery(fullAccess, webhook.id, failed!.id)
  t.match(requeued, { id: failed!.id, status: 'pending', attempts: 4 })
  t.same(requeued.nextAttemptAt, clock.now())
  status = 204
  t.same(await service.deliverDue(), { attempted: 1, delivered: 1, failed: 0 })
  t.equal(receiver.requests.at(-1)!.headers['orchard-delivery-attempt'], '5')
  t.match((await service.listDeliveries(webhook.id))[0], { status: 'delivered', lastStatusCode: 204, lastError: null })
  await t.rejects(service.retryDelivery(fullAccess, webhook.id, failed!.id), code('conflict'), 'only a failed one can be retried')
})

t.test('a receiver that does not answer times out; the rest of its round is not sent', async (t) => {
  const slow = await startReceiver(t, () => 'hang')
  const fine = await startReceiver(t)
  const { service } = await setup(t, { timeoutMs: 100 })
  const hanging = await service.createWebhook(fullAccess, { url: slow.url(), eventTypes: ['*'] })
  await service.createWebhook(fullAccess, { url: fine.url(), eventTypes: ['*'] })
  await service.emit('checkin.other', { n: 1 })
  await service.emit('checkin.other', { n: 2 })
  t.same(await service.deliverDue(), { attempted: 4, delivered: 2, failed: 2 })
  t.equal(slow.requests.length, 1, 'one request to the silent receiver')
  t.equal(fine.requests.length, 2, 'the other webhook is not held up')
  const [second, first] = await service.listDeliveries(hanging.id)
  t.match(first, { status: 'pending', attempts: 1, lastStatusCode: null, lastError: 'no answer within 100 ms' })
  t.match(second, { status: 'pending', attempts: 1, lastError: /^not sent: the receiver was unreachable earlier in this round/ })
})

t.test('the redirect of a receiver is a failed attempt, not followed', async (t) => {
  const target = await startReceiver(t)
  const redirecting = await startReceiver(t, () => 307)
  const { service } = await setup(t)
  const webhook = await service.createWebhook(fullAccess, { url: redirecting.url(), eventTypes: ['*'] })
  await service.emit('checkin.other', {})
  t.same(await service.deliverDue(), { attempted: 1, delivered: 0, failed: 1 })
  t.match((await service.listDeliveries(webhook.id))[0], { lastStatusCode: 307, lastError: 'HTTP 307' })
  t.equal(target.requests.length, 0)
})

t.test('emit never throws into the caller, and writes nothing without subscribers', async (t) => {
  const { logger, lines } = logCapture()
  const { store, service } = await setup(t)
  await service.emit('checkin.authenticate', {})
  t.same(await service.deliverDue(), { attempted: 0, delivered: 0, failed: 0 })

  // With a subscriber, emit writes to the outbox; a failing write is logged, not thrown.
  await service.createWebhook(fullAccess, { url: 'http://127.0.0.1:9/hook', eventTypes: ['*'] })
  const broken: WebhookStore = { ...store, enqueueEvent: () => Promise.reject(new Error('database is down')) }
  const failing = createWebhookService({ store: broken, secretBox: createSecretBox([randomBytes(32)]), logger })
  await t.resolves(failing.emit('command.result', { n: 1 }))
  t.match(lines, [{ level: 50, event_type: 'command.result', msg: 'webhook event not recorded', err: { message: 'database is down' } }])
})

t.test('the loop delivers as soon as an event is emitted, and stop() waits for the round in flight', async (t) => {
  const receiver = await startReceiver(t)
  const { service } = await setup(t)
  const webhook = await service.createWebhook(fullAccess, { url: receiver.url(), eventTypes: ['*'] })
  service.start(3_600_000) // an hour: only emit's kick can explain a delivery now
  const arrived = receiver.nextRequest()
  await service.emit('checkin.token_update', { n: 1 })
  await arrived
  await service.stop()
  t.match((await service.listDeliveries(webhook.id))[0], { status: 'delivered', attempts: 1 }, 'the round finished before stop returned')
  await service.emit('checkin.token_update', { n: 2 })
  t.match((await service.listDeliveries(webhook.id))[0], { status: 'pending', attempts: 0 }, 'a stopped loop is not woken')
  t.equal(receiver.requests.length, 1)
})

t.test('listing deliveries pages newest first', async (t) => {
  const receiver = await startReceiver(t)
  const { service } = await setup(t)
  const webhook = await service.createWebhook(fullAccess, { url: receiver.url(), eventTypes: ['*'] })
  for (let i = 0; i < 5; i++) await service.emit('checkin.other', { i })
  const page1 = await service.listDeliveries(webhook.id, { limit: 3 })
  t.same(
    page1.map((d) => (d.payload as { data: { i: number } }).data.i),
    [4, 3, 2],
  )
  const page2 = await service.listDeliveries(webhook.id, { limit: 3, beforeId: page1.at(-1)!.id })
  t.same(
    page2.map((d) => (d.payload as { data: { i: number } }).data.i),
    [1, 0],
  )
  await t.rejects(service.listDeliveries(webhook.id, { limit: 0 }), code('validation_failed'))
  await t.rejects(service.listDeliveries('wh_nope'), code('not_found'))
})

t.test('without a subscriber for the type, emit does not touch the outbox; a new subscription counts at once', async (t) => {
  const { store } = await setup(t)
  let writes = 0
  const counting: WebhookStore = { ...store, enqueueEvent: (event) => (writes++, store.enqueueEvent(event)) }
  const counted = createWebhookService({ store: counting, secretBox: createSecretBox([randomBytes(32)]), logger: pino({ level: 'silent' }) })
  await counted.emit('checkin.authenticate', {})
  t.equal(writes, 0, 'no webhooks: no write')
  await counted.createWebhook(fullAccess, { url: 'http://127.0.0.1:9/hook', eventTypes: ['command.result'] })
  await counted.emit('checkin.authenticate', {})
  t.equal(writes, 0, 'not subscribed to this type: no write')
  await counted.emit('command.result', {})
  t.equal(writes, 1, 'subscribed: written')
})
