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

t.test('/readyz is 200 when the database answers and is migrated', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  const response = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(response.statusCode, 200)
  t.match(response.json(), { status: 'ready', checks: { database: 'ok', migrations: /^current \(\d+ applied\)$/ } })
})

t.test('/readyz is 503 when the database is gone', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
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
