import { randomBytes } from 'node:crypto'
import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

t.test('/healthz answers while the process runs, whatever the database does', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  const live = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(live.statusCode, 200)
  t.same(live.json(), { status: 'ok' })
  await database.kill()
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still alive with the database gone')
})

// A master key, so the device CA is generated at start-up (readiness needs one: test/ops/readiness.test.ts).
const withKeys = () => ({ ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })

t.test('/readyz is 200 when the database answers and is migrated', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, withKeys())
  const response = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(response.statusCode, 200)
  t.match(response.json(), { status: 'ready', checks: { database: 'ok', migrations: /^current \(\d+ applied\)$/, device_ca: /^ok \(expires / } })
})

t.test('/readyz is 503 when the database is gone', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, withKeys())
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  await database.kill()
  const response = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(response.statusCode, 503)
  t.match(response.json(), { status: 'not_ready', checks: { database: /^unavailable: / } })
})

t.test('/readyz is 503 when migrations are pending', async (t) => {
  const database = await createTestDatabase(t, { migrated: false })
  const { app } = await buildTestApp(t, database)
  const response = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(response.statusCode, 503)
  t.match(response.json(), { status: 'not_ready', checks: { database: 'ok', migrations: /^pending: 0001_init/ } })
})
