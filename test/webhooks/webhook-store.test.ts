import { sql } from 'kysely'
import t from 'tap'
import { openPostgresDatabase } from '../../src/db/database.js'
import { fullAccess } from '../../src/model/access.js'
import { createWebhookStore, type WebhookStore } from '../../src/webhooks/webhook-store.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

const t0 = new Date('2031-03-01T12:00:00.000Z')
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000)
const sealed = Buffer.from('not really sealed')

async function addWebhook(store: WebhookStore, id: string, eventTypes: string[], enabled = true) {
  return store.createWebhook(fullAccess, { id, url: `http://127.0.0.1/${id}`, secretSealed: sealed, eventTypes, enabled })
}

t.test('webhooks: create, read, update, delete', async (t) => {
  const database = await createTestDatabase(t)
  const store = createWebhookStore(database.db)
  const created = await store.createWebhook(fullAccess, {
    id: 'a',
    url: 'https://example.com/hook',
    secretSealed: sealed,
    eventTypes: ['*'],
    description: 'all',
  })
  t.match(created, { id: 'a', url: 'https://example.com/hook', eventTypes: ['*'], enabled: true, description: 'all' })
  t.ok(created.secretSealed.equals(sealed))
  t.ok(created.createdAt instanceof Date)
  t.same(await store.getWebhook('a'), created)
  t.equal(await store.getWebhook('nope'), undefined)
  await addWebhook(store, 'b', ['command.result'])
  t.same(
    (await store.listWebhooks()).map((w) => w.id),
    ['a', 'b'],
  )

  const updated = await store.updateWebhook(fullAccess, 'a', {
    enabled: false,
    eventTypes: ['checkin.authenticate', 'command.result'],
    description: null,
    secretSealed: Buffer.from('other'),
  })
  t.match(updated, { id: 'a', url: 'https://example.com/hook', enabled: false, eventTypes: ['checkin.authenticate', 'command.result'], description: null })
  t.ok(updated!.secretSealed.equals(Buffer.from('other')))
  t.match(await store.updateWebhook(fullAccess, 'a', { url: 'http://example.net/' }), { url: 'http://example.net/', enabled: false })
  t.equal(await store.updateWebhook(fullAccess, 'nope', { enabled: true }), undefined)

  t.equal(await store.deleteWebhook(fullAccess, 'a'), true)
  t.equal(await store.deleteWebhook(fullAccess, 'a'), false)
  t.same(
    (await store.listWebhooks()).map((w) => w.id),
    ['b'],
  )
})

t.test('an event fans out in one statement to enabled webhooks subscribed to its type or to *', async (t) => {
  const database = await createTestDatabase(t)
  const store = createWebhookStore(database.db)
  await addWebhook(store, 'auth', ['checkin.authenticate'])
  await addWebhook(store, 'star', ['*'])
  await addWebhook(store, 'results', ['command.result', 'checkin.checkout'])
  await addWebhook(store, 'off', ['checkin.authenticate', '*'], false)

  t.equal(await store.enqueueEvent({ id: 'e1', type: 'checkin.authenticate', payload: { n: 1 }, createdAt: t0 }), 2)
  t.equal(await store.enqueueEvent({ id: 'e1', type: 'checkin.authenticate', payload: { n: 1 }, createdAt: t0 }), 0, 'the same event is never queued twice')
  t.equal(await store.enqueueEvent({ id: 'e2', type: 'command.result', payload: { n: 2 }, createdAt: t0 }), 2)
  t.equal(await store.enqueueEvent({ id: 'e3', type: 'checkin.other', payload: { n: 3 } }), 1)

  const { rows } = await sql<{
    webhook_id: string
    event_id: string
  }>`select webhook_id, event_id from webhook_deliveries order by webhook_id, event_id`.execute(database.db)
  t.same(rows, [
    { webhook_id: 'auth', event_id: 'e1' },
    { webhook_id: 'results', event_id: 'e2' },
    { webhook_id: 'star', event_id: 'e1' },
    { webhook_id: 'star', event_id: 'e2' },
    { webhook_id: 'star', event_id: 'e3' },
  ])
  const [first] = await store.listDeliveries('auth', { limit: 10 })
  t.match(first, { eventId: 'e1', eventType: 'checkin.authenticate', payload: { n: 1 }, status: 'pending', attempts: 0, lastAttemptAt: null })
  t.same(first!.createdAt, t0, 'the event time is the delivery time')
  t.same(first!.nextAttemptAt, t0, 'due as soon as it happened')
})

t.test('claimDue hands out due deliveries once, leased until they are marked or the lease runs out', async (t) => {
  const database = await createTestDatabase(t)
  const store = createWebhookStore(database.db)
  await addWebhook(store, 'a', ['*'])
  await addWebhook(store, 'paused', ['*'])
  for (let i = 1; i <= 3; i++) await store.enqueueEvent({ id: `e${i}`, type: 'checkin.other', payload: { i }, createdAt: at(i) })
  await store.updateWebhook(fullAccess, 'paused', { enabled: false })

  t.same(await store.claimDue(at(0), 10, 60), [], 'nothing is due before it happened')
  const claimed = await store.claimDue(at(2), 10, 60)
  t.same(
    claimed.map((d) => d.eventId),
    ['e1', 'e2'],
    'due ones only, and none for a disabled webhook',
  )
  t.match(claimed[0], { webhookId: 'a', url: 'http://127.0.0.1/a', eventType: 'checkin.other', payload: { i: 1 }, attempts: 0 })
  t.ok(claimed[0]!.secretSealed.equals(sealed))
  t.same(claimed[0]!.createdAt, at(1))
  t.same(
    (await store.claimDue(at(3), 10, 1000)).map((d) => d.eventId),
    ['e3'],
    'claimed ones are leased',
  )
  t.same(await store.claimDue(at(61), 10, 60), [], 'still in their lease')
  t.same(
    (await store.claimDue(at(62), 10, 60)).map((d) => d.eventId),
    ['e1', 'e2'],
    'a lease that ran out (a worker died) frees them again',
  )

  await store.markDelivered(claimed[0]!.id, 204, at(62))
  await store.markFailedAttempt(claimed[1]!.id, { statusCode: 503, error: 'HTTP 503', nextAttemptAt: at(100) }, at(62))
  t.same(await store.claimDue(at(99), 10, 60), [])
  const again = await store.claimDue(at(100), 1, 60)
  t.same(
    again.map((d) => d.eventId),
    ['e2'],
  )
  t.equal(again[0]!.attempts, 1)

  const [e3, e2, e1] = await store.listDeliveries('a', { limit: 10 })
  t.match(e1, { status: 'delivered', attempts: 1, lastStatusCode: 204, lastError: null })
  t.same(e1!.deliveredAt, at(62))
  t.match(e2, { status: 'pending', attempts: 1, lastStatusCode: 503, lastError: 'HTTP 503' })
  t.same(e2!.lastAttemptAt, at(62))
  t.match(e3, { status: 'pending', attempts: 0 })

  await store.markFailedAttempt(again[0]!.id, { error: 'connect ECONNREFUSED', nextAttemptAt: null }, at(101))
  t.match((await store.listDeliveries('a', { limit: 10 }))[1], {
    eventId: 'e2',
    status: 'failed',
    attempts: 2,
    lastStatusCode: null,
    lastError: 'connect ECONNREFUSED',
  })
  await store.markDelivered(again[0]!.id, 200, at(102))
  t.match((await store.listDeliveries('a', { limit: 10 }))[1], { status: 'failed' }, 'a finished delivery is not marked again')
  t.same(await store.claimDue(at(10_000), 10, 60).then((rows) => rows.map((d) => d.eventId)), ['e3'], 'finished ones are never claimed')

  await store.updateWebhook(fullAccess, 'paused', { enabled: true })
  t.same(
    (await store.claimDue(at(10_000), 10, 60)).map((d) => d.webhookId),
    ['paused', 'paused', 'paused'],
    'a re-enabled webhook gets what waited',
  )
})

t.test('a failed delivery can be re-queued; others cannot', async (t) => {
  const database = await createTestDatabase(t)
  const store = createWebhookStore(database.db)
  await addWebhook(store, 'a', ['*'])
  await addWebhook(store, 'b', ['*'])
  await store.enqueueEvent({ id: 'e1', type: 'checkin.other', payload: {}, createdAt: t0 })
  const [delivery] = await store.claimDue(t0, 10, 60)
  t.match(await store.retryDelivery(fullAccess, 'a', delivery!.id, at(1)), { outcome: 'not_failed', delivery: { status: 'pending' } })
  await store.markFailedAttempt(delivery!.id, { statusCode: 500, error: 'HTTP 500', nextAttemptAt: null }, at(1))
  t.same(await store.retryDelivery(fullAccess, 'b', delivery!.id, at(2)), { outcome: 'not_found' }, 'it belongs to another webhook')
  t.same(await store.retryDelivery(fullAccess, 'a', 999_999, at(2)), { outcome: 'not_found' })
  const retried = await store.retryDelivery(fullAccess, 'a', delivery!.id, at(5))
  t.match(retried, { outcome: 'requeued', delivery: { status: 'pending', attempts: 1, lastError: 'HTTP 500' } })
  const claimed = await store.claimDue(at(5), 10, 60)
  t.same(
    claimed.map((d) => d.id),
    [delivery!.id],
  )
})

t.test('deliveries list newest first with paging, prune finished ones, and go with their webhook', async (t) => {
  const database = await createTestDatabase(t)
  const store = createWebhookStore(database.db)
  await addWebhook(store, 'a', ['*'])
  await addWebhook(store, 'b', ['*'])
  for (let i = 1; i <= 5; i++) await store.enqueueEvent({ id: `e${i}`, type: 'checkin.other', payload: { i }, createdAt: at(i * 100) })

  const page1 = await store.listDeliveries('a', { limit: 2 })
  t.same(
    page1.map((d) => d.eventId),
    ['e5', 'e4'],
  )
  const page2 = await store.listDeliveries('a', { limit: 2, beforeId: page1.at(-1)!.id })
  t.same(
    page2.map((d) => d.eventId),
    ['e3', 'e2'],
  )
  t.same(
    (await store.listDeliveries('a', { limit: 2, beforeId: page2.at(-1)!.id })).map((d) => d.eventId),
    ['e1'],
  )

  const claimed = await store.claimDue(at(1000), 100, 60)
  const of = (webhookId: string, eventId: string) => claimed.find((d) => d.webhookId === webhookId && d.eventId === eventId)!.id
  await store.markDelivered(of('a', 'e1'), 200, at(1000))
  await store.markFailedAttempt(of('a', 'e2'), { error: 'x', nextAttemptAt: null }, at(1000))
  await store.markDelivered(of('a', 'e4'), 200, at(1000))
  // Finished before 350 s: e1 and e2 of webhook a; pending e3 of a/b stays whatever its age.
  t.equal(await store.pruneFinished(at(350)), 2)
  t.same(
    (await store.listDeliveries('a', { limit: 10 })).map((d) => d.eventId),
    ['e5', 'e4', 'e3'],
  )
  t.equal(await store.pruneFinished(at(350)), 0)

  t.equal(await store.deleteWebhook(fullAccess, 'a'), true)
  const { rows } = await sql<{ webhook_id: string; n: number }>`select webhook_id, count(*)::int as n from webhook_deliveries group by webhook_id`.execute(
    database.db,
  )
  t.same(rows, [{ webhook_id: 'b', n: 5 }], 'the deleted webhook’s deliveries are gone, the others stay')
})

t.test(
  'concurrent claimers never get the same delivery',
  { skip: testBackend !== 'postgres' && 'needs several sessions (Postgres; PGlite has one)' },
  async (t) => {
    const database = await createTestDatabase(t)
    const store = createWebhookStore(database.db)
    await addWebhook(store, 'a', ['*'])
    await addWebhook(store, 'b', ['*'])
    await sql`
    insert into webhook_deliveries (webhook_id, event_id, event_type, payload, next_attempt_at, created_at)
    select w, 'e' || i, 'checkin.other', '{}'::jsonb, ${t0}::timestamptz, ${t0}::timestamptz
    from generate_series(1, 200) i, unnest(array['a', 'b']) w`.execute(database.db)
    const replicas = [0, 1, 2].map(() => openPostgresDatabase({ connectionString: database.url!, poolMax: 3 }))
    t.teardown(async () => {
      for (const replica of replicas) await replica.close()
    })
    const claims = await Promise.all(replicas.flatMap((replica) => [0, 1, 2].map(() => createWebhookStore(replica.db).claimDue(at(1), 50, 60))))
    const ids = claims.flat().map((d) => d.id)
    t.equal(new Set(ids).size, ids.length, 'no delivery claimed twice')
    t.equal(ids.length, 400, 'every due delivery claimed (9 claimers of 50 for 400)')
    t.same(await store.claimDue(at(1), 50, 60), [], 'all leased')
  },
)
