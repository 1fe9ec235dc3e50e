// The production Apps and Books client against the fake v2 server, and the .vpptoken reader:
// Apple's error numbers as codes, Retry-After and backoff (with an injected sleep), events,
// per-serial failures and batch limits.
import t, { type Test } from 'tap'
import { createVppClient, VppError } from '../../src/apps/vpp-client.js'
import { readVppTokenFile } from '../../src/apps/vpp-token-file.js'
import { OrchardError } from '../../src/errors.js'
import { startFakeVpp, vppError, vppTokenFile } from '../helpers/fake-vpp.js'

async function rejectsWith(t: Test, promise: Promise<unknown>, code: string, message?: RegExp) {
  try {
    await promise
    t.fail(`expected ${code}`)
  } catch (error) {
    t.ok(error instanceof VppError, 'a VppError')
    t.equal((error as VppError).code, code)
    if (message) t.match((error as Error).message, message)
    return error as VppError
  }
  return undefined
}

t.test('the .vpptoken file: base64 JSON, whitespace tolerated, the whole text is the sToken', async (t) => {
  const file = vppTokenFile({ token: 'inner-token', expDate: '2027-03-04T05:06:07-0800', orgName: 'Council' })
  const read = readVppTokenFile(`  ${file.slice(0, 20)}\n${file.slice(20)}\n`)
  t.equal(read.sToken, file)
  t.equal(read.orgName, 'Council')
  t.equal(read.expiresAt?.toISOString(), '2027-03-04T13:06:07.000Z', 'an offset without colon')
  for (const [content, reason] of [
    ['', /empty/],
    ['not base64!', /not base64/],
    [Buffer.from('plain text').toString('base64'), /not JSON/],
    [Buffer.from('[1]').toString('base64'), /not a JSON object/],
    [Buffer.from('{"expDate":"2030-01-01"}').toString('base64'), /no "token"/],
    ['A'.repeat(20_000), /larger than/],
  ] as const) {
    try {
      readVppTokenFile(content)
      t.fail(`accepted ${content.slice(0, 20)}`)
    } catch (error) {
      t.ok(error instanceof OrchardError && error.code === 'validation_failed')
      t.match((error as Error).message, reason)
    }
  }
  t.equal(readVppTokenFile(vppTokenFile({ token: 'x', expDate: 'soon', orgName: '' })).expiresAt, null, 'an unreadable expiry is unknown, not a failure')
})

t.test("Apple's refusals become codes; 200 with an error body is an error", async (t) => {
  const fake = await startFakeVpp({ invalidTokenStatus: 200 })
  t.teardown(() => fake.close())
  const location = fake.addLocation({ locationName: 'Council' })
  const client = (sToken: string) => createVppClient({ baseUrl: `${fake.url}/mdm/v2`, sToken, sleep: async () => {} })

  const config = await client(location.sToken).clientConfig()
  t.match(config, { locationName: 'Council', uId: location.uId, mdmInfo: null })
  t.ok(config.tokenExpirationDate instanceof Date)

  const unknown = await rejectsWith(
    t,
    client(vppTokenFile({ token: 'nobody', expDate: '2030-01-01T00:00:00+0000', orgName: 'x' })).clientConfig(),
    'token_rejected',
  )
  t.equal(unknown?.details.errorNumber, 9622, 'Apple answered 200 with 9622')
  await rejectsWith(t, client(location.innerToken).clientConfig(), 'token_rejected', /refused the content token/)
  location.revoked = true
  await rejectsWith(t, client(location.sToken).assets(0), 'token_revoked', /revoked/)
  location.revoked = false
  location.expDate = new Date(Date.now() - 1000)
  await rejectsWith(t, client(location.sToken).assets(0), 'token_expired', /expired/)
})

t.test('throttling: Retry-After is what the client waits; it gives up after its attempts', async (t) => {
  const fake = await startFakeVpp()
  t.teardown(() => fake.close())
  const location = fake.addLocation()
  fake.addAsset(location, { adamId: '361309726' })
  const waits: number[] = []
  const client = createVppClient({ baseUrl: `${fake.url}/mdm/v2`, sToken: location.sToken, sleep: async (ms) => void waits.push(ms) })

  fake.throttleNext(3, { retryAfter: 7 })
  const page = await client.assets(0)
  t.equal(page.items.length, 1)
  t.same(waits, [7000, 7000, 7000])
  t.equal(client.requestsSent(), 4)

  waits.length = 0
  fake.throttleNext(4, { status: 503, retryAfter: 30 })
  const error = await rejectsWith(t, client.assets(0), 'throttled', /retry after 30 s/)
  t.equal(error?.details.retryAfterSeconds, 30)
  t.equal(waits.length, 3, 'four attempts, three waits')
})

t.test('associate and disassociate: events, licence counts, per-serial failures and batch limits', async (t) => {
  const fake = await startFakeVpp({ pollsUntilComplete: 1, limits: { maxSerialNumbers: 5 } })
  t.teardown(() => fake.close())
  const location = fake.addLocation()
  fake.addAsset(location, { adamId: '361309726', totalCount: 3 })
  const client = createVppClient({ baseUrl: `${fake.url}/mdm/v2`, sToken: location.sToken, sleep: async () => {} })
  t.match(await client.serviceLimits(), { maxSerialNumbers: 5, maxAssets: 25 })

  const asset = [{ adamId: '361309726', pricingParam: 'STDQ' }]
  fake.failSerials.set('SERIAL2', vppError(9603))
  const eventId = await client.associate(asset, ['SERIAL1', 'SERIAL2'])
  t.match(await client.eventStatus(eventId), { eventStatus: 'PENDING', numRequested: 2 })
  const done = await client.eventStatus(eventId)
  t.equal(done.eventStatus, 'FAILED')
  t.equal(done.numCompleted, 1)
  t.match(done.failures, [{ errorNumber: 9603, serialNumbers: ['SERIAL2'] }])
  t.match((await client.assets(0)).items, [{ adamId: '361309726', assignedCount: 1, availableCount: 2 }])
  t.match((await client.assignments(0)).items, [{ adamId: '361309726', serialNumber: 'SERIAL1', clientUserId: null }])

  const tooMany = await client.associate(asset, ['S3', 'S4', 'S5'])
  await client.eventStatus(tooMany)
  const short = await client.eventStatus(tooMany)
  t.equal(short.numCompleted, 2, 'two licences were left')
  t.match(short.failures, [{ errorNumber: 9709, serialNumbers: ['S5'] }])

  const overLimit = await rejectsWith(t, client.associate(asset, ['A', 'B', 'C', 'D', 'E', 'F']), 'bad_request')
  t.equal(overLimit?.details.errorNumber, 9702)

  const freed = await client.disassociate(asset, ['SERIAL1'])
  await client.eventStatus(freed)
  t.equal((await client.eventStatus(freed)).eventStatus, 'COMPLETE')
  t.match((await client.assets(0)).items, [{ assignedCount: 2, availableCount: 1 }])
})

t.test('a connection failure is tried once more at once, then reported as unreachable', async (t) => {
  const fake = await startFakeVpp()
  const location = fake.addLocation()
  const url = `${fake.url}/mdm/v2`
  await fake.close()
  const client = createVppClient({ baseUrl: url, sToken: location.sToken, sleep: async () => void t.fail('no wait for a refused connection') })
  await rejectsWith(t, client.clientConfig(), 'unreachable', /unreachable/)
  t.equal(client.requestsSent(), 2)
})
