// Self-test of the fake Apple Apps and Books (VPP) v2 server, with raw fetch.
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startFakeVpp, vppError, type FakeVpp, type FakeVppLocation, type FakeVppOptions } from '../helpers/fake-vpp.js'

interface Answer {
  status: number
  json: any
  headers: Headers
}

async function call(fake: FakeVpp, method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${fake.url}/mdm/v2/${path}`, {
    method,
    headers: {
      ...(token !== undefined ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  return { status: res.status, json: text === '' ? undefined : JSON.parse(text), headers: res.headers }
}

async function withFake(t: Test, options: FakeVppOptions = {}): Promise<FakeVpp> {
  const fake = await startFakeVpp(options)
  t.teardown(() => fake.close())
  return fake
}

interface Received {
  headers: IncomingHttpHeaders
  body: any
}

/** A small notification receiver on loopback answering `status` (default 200). */
async function receiver(t: Test, status = 200): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = []
  const server = createServer((req, res) => {
    let raw = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (raw += chunk))
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(raw) })
      res.writeHead(status)
      res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/vpp/notify`, received }
}

const associate = (fake: FakeVpp, loc: FakeVppLocation, adamId: string, serialNumbers: string[]): Promise<Answer> =>
  call(fake, 'POST', 'assets/associate', loc.sToken, { assets: [{ adamId, pricingParam: 'STDQ' }], serialNumbers })

const asset = async (fake: FakeVpp, loc: FakeVppLocation, adamId: string): Promise<any> =>
  (await call(fake, 'GET', `assets?adamId=${adamId}`, loc.sToken)).json.assets[0]

t.test('the sToken is the .vpptoken file contents: base64 JSON with token, expDate and orgName', async (t) => {
  const fake = await withFake(t)
  const loc = fake.addLocation({ orgName: 'Orchard School', expDate: new Date('2030-11-08T22:33:22Z') })
  const decoded = JSON.parse(Buffer.from(loc.sToken, 'base64').toString('utf8'))
  t.same(decoded, { token: loc.innerToken, expDate: '2030-11-08T22:33:22+0000', orgName: 'Orchard School' })
  const config = await call(fake, 'GET', 'client/config', loc.sToken)
  t.equal(config.status, 200)
  t.equal(config.json.tokenExpirationDate, '2030-11-08T22:33:22+0000')
  t.equal(config.json.uId, loc.uId)
})

t.test('bad tokens are refused with Apple error numbers', async (t) => {
  const now = new Date('2026-01-01T00:00:00Z')
  const fake = await withFake(t, { now: () => now })
  const loc = fake.addLocation()
  const none = await call(fake, 'GET', 'assets')
  t.equal(none.status, 401)
  t.equal(none.json.errorNumber, 9722)
  const basic = await call(fake, 'GET', 'assets', undefined, undefined, { Authorization: `Basic ${loc.sToken}` })
  t.equal(basic.json.errorNumber, 9722)
  const unknown = await call(fake, 'GET', 'assets', 'bm90LWEtdG9rZW4=')
  t.equal(unknown.status, 401)
  t.same(unknown.json, { errorNumber: 9622, errorMessage: 'Invalid authentication token' })
  t.equal((await call(fake, 'GET', 'assets', loc.innerToken)).json.errorNumber, 9622, 'the inner token is not the Bearer value')
  loc.revoked = true
  const revoked = await call(fake, 'GET', 'client/config', loc.sToken)
  t.equal(revoked.status, 401)
  t.equal(revoked.json.errorNumber, 9625)
  loc.revoked = false
  loc.expDate = new Date('2025-12-31T00:00:00Z')
  const expired = await call(fake, 'GET', 'client/config', loc.sToken)
  t.equal(expired.status, 401)
  t.equal(expired.json.errorNumber, 9621)
  t.equal(fake.requests.at(-1)?.errorNumber, 9621)
  t.equal(fake.requests.at(-1)?.sToken, loc.sToken)

  const lenient = await withFake(t, { invalidTokenStatus: 200 })
  const answer = await call(lenient, 'GET', 'client/config', 'nope')
  t.equal(answer.status, 200, 'Apple has been seen answering 200 with the error body')
  t.equal(answer.json.errorNumber, 9622)
})

t.test('service config needs no token and lists limits, urls and error codes', async (t) => {
  const fake = await withFake(t, { limits: { maxSerialNumbers: 3 } })
  const res = await call(fake, 'GET', 'service/config')
  t.equal(res.status, 200)
  t.equal(res.json.limits.maxSerialNumbers, 3)
  t.equal(res.json.limits.maxAssets, 25)
  t.equal(res.json.urls.associateAssets, `${fake.url}/mdm/v2/assets/associate`)
  t.ok(res.json.errorCodes.some((e: any) => e.errorNumber === 9709))
  t.ok(res.json.notificationTypes.includes('ASSET_MANAGEMENT'))
  t.equal((await call(fake, 'POST', 'service/config', undefined, {})).json.errorNumber, 9726)
})

t.test('client config: GET, POST mdmInfo, roundtrip, another MDM, validation', async (t) => {
  const fake = await withFake(t)
  const loc = fake.addLocation({ locationName: 'Main Campus' })
  const before = await call(fake, 'GET', 'client/config', loc.sToken)
  t.equal(before.json.locationName, 'Main Campus')
  t.equal(before.json.countryISO2ACode, 'US')
  t.notOk('mdmInfo' in before.json, 'no mdmInfo until one is set')
  t.same(before.json.subscribedNotificationTypes, [])

  const mdmInfo = { id: 'orchard-1', name: 'Orchard', metadata: 'orchard.example.org' }
  const posted = await call(fake, 'POST', 'client/config', loc.sToken, { mdmInfo, notificationTypes: ['ASSET_MANAGEMENT'] })
  t.equal(posted.status, 200)
  t.same(posted.json.mdmInfo, mdmInfo)
  t.same(posted.json.subscribedNotificationTypes, ['ASSET_MANAGEMENT'])
  const after = await call(fake, 'GET', 'client/config', loc.sToken)
  t.same(after.json.mdmInfo, mdmInfo)
  t.same((await call(fake, 'GET', 'assets', loc.sToken)).json.mdmInfo, mdmInfo, 'every answer carries mdmInfo')

  loc.mdmInfo = { id: 'other-mdm', name: 'Other MDM', metadata: '' }
  t.equal((await call(fake, 'GET', 'client/config', loc.sToken)).json.mdmInfo.id, 'other-mdm', 'a test can claim the location for another MDM')

  loc.clientContext = '{"guid":"b92","hostname":"legacy.example.org"}'
  t.equal((await call(fake, 'GET', 'client/config', loc.sToken)).json.clientContext, loc.clientContext, 'a legacy claim can be staged too')

  t.equal((await call(fake, 'POST', 'client/config', loc.sToken, { mdmInfo: { id: 'x' } })).json.errorNumber, 9723)
  t.equal((await call(fake, 'POST', 'client/config', loc.sToken, { mdmInfo: { ...mdmInfo, name: 'n'.repeat(101) } })).json.errorNumber, 9725)
  t.equal((await call(fake, 'POST', 'client/config', loc.sToken, { notificationUrl: 'https://example.org/n' })).json.errorNumber, 9710)
  const wrongType = await call(fake, 'POST', 'client/config', loc.sToken, {}, { 'Content-Type': 'text/plain' })
  t.equal(wrongType.status, 415)
  t.equal(wrongType.json.errorNumber, 9727)
  t.equal((await call(fake, 'DELETE', 'client/config', loc.sToken)).status, 405)
})

t.test('assets: paging, filters, versionId', async (t) => {
  const fake = await withFake(t, { pageSize: 2 })
  const loc = fake.addLocation({ assets: ['1', '2', '3', '4', '5'].map((adamId) => ({ adamId })) })
  fake.addAsset(loc, { adamId: '6', productType: 'Book', deviceAssignable: false, totalCount: 4 })
  const first = await call(fake, 'GET', 'assets', loc.sToken)
  t.equal(first.json.currentPageIndex, 0)
  t.equal(first.json.nextPageIndex, 1)
  t.equal(first.json.size, 2)
  t.equal(first.json.totalPages, 3)
  t.type(first.json.versionId, 'string')
  t.same(Object.keys(first.json.assets[0]).sort(), [
    'adamId',
    'assignedCount',
    'availableCount',
    'deviceAssignable',
    'pricingParam',
    'productType',
    'retiredCount',
    'revocable',
    'supportedPlatforms',
    'totalCount',
  ])
  const last = await call(fake, 'GET', 'assets?pageIndex=2', loc.sToken)
  t.equal(last.json.currentPageIndex, 2)
  t.notOk('nextPageIndex' in last.json)
  t.same(
    last.json.assets.map((a: any) => a.adamId),
    ['5', '6'],
  )
  const beyond = await call(fake, 'GET', 'assets?pageIndex=3', loc.sToken)
  t.equal(beyond.status, 400)
  t.equal(beyond.json.errorNumber, 9650)
  const books = await call(fake, 'GET', 'assets?productType=Book', loc.sToken)
  t.same(
    books.json.assets.map((a: any) => [a.adamId, a.availableCount, a.deviceAssignable]),
    [['6', 4, false]],
  )
  t.equal((await call(fake, 'GET', 'assets?deviceAssignable=true', loc.sToken)).json.totalPages, 3)
  t.equal(fake.requestCount('/mdm/v2/assets'), 5)
})

t.test('associate: event PENDING then COMPLETE, counts move only then, assignments listed', async (t) => {
  const fake = await withFake(t)
  const loc = fake.addLocation({ assets: [{ adamId: '361309726', totalCount: 3 }] })
  const res = await associate(fake, loc, '361309726', ['SER1', 'SER2'])
  t.equal(res.status, 200)
  t.type(res.json.eventId, 'string')
  t.equal(res.json.uId, loc.uId)
  t.type(res.json.tokenExpirationDate, 'string')
  t.equal((await asset(fake, loc, '361309726')).assignedCount, 0, 'nothing counted while pending')

  const pending = await call(fake, 'GET', `status?eventId=${res.json.eventId}`, loc.sToken)
  t.match(pending.json, { eventStatus: 'PENDING', eventType: 'ASSOCIATE', numCompleted: 0, numRequested: 2 })
  t.equal((await call(fake, 'GET', 'assignments', loc.sToken)).json.assignments.length, 0)
  const done = await call(fake, 'GET', `status?eventId=${res.json.eventId}`, loc.sToken)
  t.match(done.json, { eventStatus: 'COMPLETE', eventType: 'ASSOCIATE', numCompleted: 2, numRequested: 2 })
  t.notOk('failures' in done.json)

  t.match(await asset(fake, loc, '361309726'), { assignedCount: 2, availableCount: 1, totalCount: 3 })
  const assignments = await call(fake, 'GET', 'assignments', loc.sToken)
  t.same(assignments.json.assignments, [
    { adamId: '361309726', pricingParam: 'STDQ', serialNumber: 'SER1' },
    { adamId: '361309726', pricingParam: 'STDQ', serialNumber: 'SER2' },
  ])
  const bySerial = await call(fake, 'GET', 'assignments?serialNumber=SER2', loc.sToken)
  t.same(
    bySerial.json.assignments.map((a: any) => a.serialNumber),
    ['SER2'],
  )
  const since = await call(fake, 'GET', `assignments?sinceVersionId=${assignments.json.versionId}`, loc.sToken)
  t.equal(since.json.assignments.length, 0, 'nothing modified since that version')
  t.equal((await call(fake, 'GET', 'assignments?sinceVersionId=garbage', loc.sToken)).json.errorNumber, 9721)
  t.equal((await call(fake, 'GET', 'status?eventId=nope', loc.sToken)).json.errorNumber, 9708)
  t.equal(fake.requestCount('GET /mdm/v2/status'), 3)
})

t.test('not enough licences and injected failures are per-serial failures of the event', async (t) => {
  const fake = await withFake(t, { pollsUntilComplete: 0 })
  const loc = fake.addLocation({ assets: [{ adamId: '408709785', totalCount: 2 }] })
  fake.failSerials.set('BROKEN', vppError(9603))
  const res = await associate(fake, loc, '408709785', ['A', 'BROKEN', 'B', 'C'])
  const status = await call(fake, 'GET', `status?eventId=${res.json.eventId}`, loc.sToken)
  t.match(status.json, { eventStatus: 'FAILED', numCompleted: 2, numRequested: 4 })
  t.same(status.json.failures, [
    { errorNumber: 9603, errorMessage: 'Internal error.', errorInfo: { assets: [{ adamId: '408709785', pricingParam: 'STDQ' }], serialNumbers: ['BROKEN'] } },
    {
      errorNumber: 9709,
      errorMessage: "There aren't enough assets available to complete this association.",
      errorInfo: { assets: [{ adamId: '408709785', pricingParam: 'STDQ' }], serialNumbers: ['C'] },
    },
  ])
  t.match(await asset(fake, loc, '408709785'), { assignedCount: 2, availableCount: 0 })
})

t.test('throttling answers 429 (or 503) with Retry-After, then recovers', async (t) => {
  const fake = await withFake(t)
  const loc = fake.addLocation()
  fake.throttleNext(2)
  for (let i = 0; i < 2; i++) {
    const res = await call(fake, 'GET', 'assets', loc.sToken)
    t.equal(res.status, 429)
    t.equal(res.headers.get('retry-after'), '1')
    t.equal(res.json.errorNumber, 9646)
  }
  t.equal((await call(fake, 'GET', 'assets', loc.sToken)).status, 200)
  fake.throttleNext(1, { status: 503, retryAfter: 120 })
  const unavailable = await call(fake, 'GET', 'service/config')
  t.equal(unavailable.status, 503)
  t.equal(unavailable.headers.get('retry-after'), '120')
  t.equal(unavailable.json.errorNumber, 9729)
})

t.test('batch limits and request validation are synchronous errors without an event', async (t) => {
  const fake = await withFake(t, { limits: { maxSerialNumbers: 3 } })
  const loc = fake.addLocation({ assets: [{ adamId: '1' }, { adamId: '2', deviceAssignable: false }] })
  const tooMany = await associate(fake, loc, '1', ['A', 'B', 'C', 'D'])
  t.equal(tooMany.status, 400)
  t.equal(tooMany.json.errorNumber, 9702)
  t.equal((await associate(fake, loc, '1', ['A', 'B', 'C'])).status, 200, 'the limit itself is fine')
  t.equal((await associate(fake, loc, '1', ['A', 'A'])).json.errorNumber, 9705)
  t.equal((await associate(fake, loc, '1', [])).json.errorNumber, 9719)
  t.equal((await call(fake, 'POST', 'assets/associate', loc.sToken, { assets: [], serialNumbers: ['A'] })).json.errorNumber, 9718)
  t.equal((await associate(fake, loc, '2', ['A'])).json.errorNumber, 9707)
  const unknown = await associate(fake, loc, '999', ['A'])
  t.equal(unknown.json.errorNumber, 9602)
  t.same(unknown.json.errorInfo, { assets: [{ adamId: '999', pricingParam: 'STDQ' }] })
  fake.limits.maxAssets = 1
  const assets = [{ adamId: '1' }, { adamId: '2' }]
  t.equal((await call(fake, 'POST', 'assets/disassociate', loc.sToken, { assets, serialNumbers: ['A'] })).json.errorNumber, 9700)
  t.equal(fake.events.size, 1)
})

t.test('disassociate frees the licences when its event completes', async (t) => {
  const fake = await withFake(t, { pollsUntilComplete: Infinity })
  const loc = fake.addLocation({ assets: [{ adamId: '1', totalCount: 5 }] })
  await associate(fake, loc, '1', ['A', 'B'])
  t.equal(fake.completeEvents().length, 1)
  const res = await call(fake, 'POST', 'assets/disassociate', loc.sToken, { assets: [{ adamId: '1' }], serialNumbers: ['A', 'NEVER-ASSIGNED'] })
  t.equal(res.status, 200)
  t.equal((await call(fake, 'GET', `status?eventId=${res.json.eventId}`, loc.sToken)).json.eventStatus, 'PENDING')
  t.equal(fake.completeEvents(res.json.eventId).length, 1)
  t.match((await call(fake, 'GET', `status?eventId=${res.json.eventId}`, loc.sToken)).json, {
    eventStatus: 'COMPLETE',
    eventType: 'DISASSOCIATE',
    numCompleted: 2,
    numRequested: 2,
  })
  t.match(await asset(fake, loc, '1'), { assignedCount: 1, availableCount: 4 })
  t.same(
    (await call(fake, 'GET', 'assignments', loc.sToken)).json.assignments.map((a: any) => a.serialNumber),
    ['B'],
  )
})

t.test('notifications: TEST_NOTIFICATION on config, ASSET_MANAGEMENT for finished events, with the bearer token', async (t) => {
  const fake = await withFake(t, { pollsUntilComplete: Infinity })
  const loc = fake.addLocation({ assets: [{ adamId: '1', totalCount: 1 }] })
  const inbox = await receiver(t)
  const config = await call(fake, 'POST', 'client/config', loc.sToken, {
    notificationUrl: inbox.url,
    notificationAuthToken: 'sh4red-s3cret',
    notificationTypes: ['ASSET_MANAGEMENT'],
  })
  t.equal(config.status, 200)
  t.equal(config.json.notificationUrl, inbox.url)
  t.equal(config.json.notificationAuthToken, 'sh4red-s3cret')
  t.equal(inbox.received.length, 1)
  t.equal(inbox.received[0]?.headers.authorization, 'Bearer sh4red-s3cret')
  t.match(inbox.received[0]?.body, { notification: {}, notificationType: 'TEST_NOTIFICATION', uId: loc.uId })

  const unsubscribed = fake.addLocation({ assets: [{ adamId: '1' }] })
  await call(fake, 'POST', 'client/config', unsubscribed.sToken, { notificationUrl: inbox.url, notificationAuthToken: 'other' })
  await associate(fake, unsubscribed, '1', ['X'])
  const ok = await associate(fake, loc, '1', ['A', 'B'])
  t.same(await fake.sendNotifications(), [], 'nothing for a pending event')
  fake.completeEvents()
  const sent = await fake.sendNotifications()
  t.same(
    sent.map((d) => d.status),
    [200, 200],
  )
  const [success, failure] = inbox.received.slice(2)
  t.equal(success?.headers.authorization, 'Bearer sh4red-s3cret')
  t.match(success?.body, {
    notification: { assignments: [{ adamId: '1', pricingParam: 'STDQ', serialNumber: 'A' }], eventId: ok.json.eventId, result: 'SUCCESS', type: 'ASSOCIATE' },
    notificationType: 'ASSET_MANAGEMENT',
    uId: loc.uId,
  })
  t.type(success?.body.notificationId, 'string')
  t.match(failure?.body.notification, {
    assignments: [{ adamId: '1', pricingParam: 'STDQ', serialNumber: 'B' }],
    error: { errorNumber: 9709 },
    eventId: ok.json.eventId,
    result: 'FAILURE',
  })
  t.same(await fake.sendNotifications(), [], 'each event is notified once')
  const count = await fake.notify(loc, 'ASSET_COUNT', { adamId: '1', countDelta: 5, pricingParam: 'STDQ' })
  t.equal(count.status, 200)
  t.match(inbox.received.at(-1)?.body, { notificationType: 'ASSET_COUNT', notification: { countDelta: 5 } })

  const broken = await receiver(t, 500)
  const refused = await call(fake, 'POST', 'client/config', loc.sToken, { notificationUrl: broken.url, notificationAuthToken: 'x' })
  t.equal(refused.json.errorNumber, 9728, 'an unreachable notification URL is refused')
  t.equal(loc.notificationUrl, inbox.url, 'and the old one is kept')
})
