import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createGracefulShutdown } from '../../src/ops/shutdown.js'
import { buildTestApp, testLogger } from '../helpers/app.js'
import { httpGet } from '../helpers/http.js'
import { createTestDatabase } from '../helpers/database.js'

t.test('shutdown lets an in-flight request finish, refuses new ones, closes the database, exits 0', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  let arrived!: () => void
  const requestArrived = new Promise<void>((resolve) => (arrived = resolve))
  let finish!: () => void
  const mayFinish = new Promise<void>((resolve) => (finish = resolve))
  app.get('/slow', async () => {
    arrived()
    await mayFinish
    return { finished: true }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port

  const exitCodes: number[] = []
  let exited!: () => void
  const exitCalled = new Promise<void>((resolve) => (exited = resolve))
  const shutdown = createGracefulShutdown({
    logger: testLogger(),
    timeoutMs: 60_000,
    close: async () => {
      await app.close()
      await database.close()
    },
    exit: (code) => {
      exitCodes.push(code)
      exited()
    },
  })

  const inFlight = httpGet(`http://127.0.0.1:${port}/slow`)
  await requestArrived
  const done = shutdown('SIGTERM')
  // The listener closes at once: a new connection is refused, or reset when it reached the
  // accept queue in the few ticks before the close (Fastify closes the listener from an
  // onClose hook, after the other plugins' hooks).
  await t.rejects(httpGet(`http://127.0.0.1:${port}/healthz`), { code: /^(ECONNREFUSED|ECONNRESET)$/ })
  t.same(exitCodes, [], 'not exited while a request is in flight')
  finish()
  t.same(await inFlight, { status: 200, body: '{"finished":true}' })
  await done
  await exitCalled
  t.same(exitCodes, [0])
  await t.rejects(database.ping(), 'database closed after the server')
})

t.test('shutdown that takes longer than the timeout exits 1', async (t) => {
  const exitCodes: number[] = []
  let exited!: () => void
  const exitCalled = new Promise<void>((resolve) => (exited = resolve))
  const shutdown = createGracefulShutdown({
    logger: testLogger(),
    timeoutMs: 100,
    close: () => new Promise<void>(() => {}), // a request that never ends
    exit: (code) => {
      exitCodes.push(code)
      exited()
    },
  })
  void shutdown('SIGTERM')
  await exitCalled
  t.same(exitCodes, [1])
})

t.test('a second signal exits at once', async (t) => {
  const exitCodes: number[] = []
  const shutdown = createGracefulShutdown({
    logger: testLogger(),
    timeoutMs: 60_000,
    close: () => new Promise<void>(() => {}),
    exit: (code) => exitCodes.push(code),
  })
  void shutdown('SIGINT')
  await shutdown('SIGINT')
  t.same(exitCodes, [1])
})

t.test('a failing close exits 1', async (t) => {
  const exitCodes: number[] = []
  const shutdown = createGracefulShutdown({
    logger: testLogger(),
    timeoutMs: 60_000,
    close: async () => Promise.reject(new Error('pool end failed')),
    exit: (code) => exitCodes.push(code),
  })
  await shutdown('SIGTERM')
  t.same(exitCodes, [1])
})
