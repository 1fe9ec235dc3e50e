// The real entry point in a child process: start-up, configuration errors, SIGTERM.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { pino } from 'pino'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { createKeyFile, withSecretKeyFile } from '../src/db/secret-key-file.js'
import { createTestDatabase, testBackend } from './helpers/database.js'
import { httpGet } from './helpers/http.js'
import { spawnOrchard } from './helpers/server-process.js'

t.test('a wrong setting stops start-up with one line naming it', async (t) => {
  const server = spawnOrchard('src/main.ts', ['--port', 'eighty'])
  t.equal(await server.exited, 2)
  t.equal(server.stderr(), 'orchard: invalid configuration: --port: must be a whole number from 0 to 65535 (got "eighty")\n')
})

t.test('--help prints the options and exits 0', async (t) => {
  const server = spawnOrchard('src/main.ts', ['--help'])
  t.equal(await server.exited, 0)
})

t.test('the embedded master key is created once, reused, and never used with PostgreSQL', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'orchard-key-'))
  const logger = pino({ level: 'silent' })
  const config = loadConfig({ ORCHARD_DATA_DIR: dataDir }, [])
  const first = withSecretKeyFile(config, logger)
  t.equal(first.secretKeys.length, 1)
  const text = readFileSync(join(dataDir, 'secret.key'), 'utf8')
  t.match(text, /^[0-9a-f]{64}\n$/)
  t.ok(withSecretKeyFile(config, logger).secretKeys[0]!.equals(first.secretKeys[0]!), 'the same key on the next start')
  const configured = loadConfig({ ORCHARD_DATA_DIR: dataDir, ORCHARD_SECRET_KEYS: 'a'.repeat(64) }, [])
  t.equal(withSecretKeyFile(configured, logger), configured, 'configured keys win')
  const postgresDir = mkdtempSync(join(tmpdir(), 'orchard-key-'))
  const postgres = loadConfig({ ORCHARD_DATA_DIR: postgresDir, DATABASE_URL: 'postgres://x@127.0.0.1/y' }, [])
  t.equal(withSecretKeyFile(postgres, logger).secretKeys.length, 0, 'PostgreSQL: no per-instance key file')
  t.notOk(existsSync(join(postgresDir, 'secret.key')))
})

t.test('ORCHARD_SECRET_KEY_FILE: one key file shared by instances, created by exactly one of them', async (t) => {
  const shared = join(mkdtempSync(join(tmpdir(), 'orchard-key-')), 'volume', 'secret.key')
  const logger = pino({ level: 'silent' })
  const config = loadConfig({ DATABASE_URL: 'postgres://x@127.0.0.1/y', ORCHARD_SECRET_KEY_FILE: shared }, [])
  const created = Array.from({ length: 8 }, () => createKeyFile(shared))
  t.equal(created.filter(Boolean).length, 1, 'one creator, the rest read its key')
  const keys = Array.from({ length: 3 }, () => withSecretKeyFile(config, logger).secretKeys[0]!.toString('hex'))
  t.equal(new Set(keys).size, 1, 'every instance the same key')
  t.equal(readFileSync(shared, 'utf8'), `${keys[0]}\n`)
  t.equal(statSync(shared).mode & 0o777, 0o600)
  t.same(readdirSync(dirname(shared)), ['secret.key'], 'no temporary file left behind')
  const configured = loadConfig({ DATABASE_URL: 'postgres://x@127.0.0.1/y', ORCHARD_SECRET_KEY_FILE: shared, ORCHARD_SECRET_KEYS: 'b'.repeat(64) }, [])
  t.equal(withSecretKeyFile(configured, logger).secretKeys[0]!.toString('hex'), 'b'.repeat(64), 'ORCHARD_SECRET_KEYS wins over the file')
})

t.test('embedded database: starts with nothing set up, serves, stops on SIGTERM', { skip: testBackend !== 'pglite' && 'PGlite pass only' }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'orchard-main-'))
  const server = spawnOrchard('src/main.ts', ['--port', '0', '--data-dir', dataDir])
  const listening = await server.waitForLog(/^Orchard listening on /)
  const address = String(listening['address'])
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal((await httpGet(`${address}/healthz`)).status, 200)
  const ready = await httpGet(`${address}/readyz`)
  t.equal(ready.status, 200, ready.body)

  // The quick start creates the embedded database's master key and its device CA.
  const keyFile = join(dataDir, 'secret.key')
  t.ok(existsSync(keyFile), 'the master key of the embedded database is created')
  t.equal(statSync(keyFile).mode & 0o777, 0o600, 'readable by the owner only')
  const caCert = await httpGet(`${address}/scep?operation=GetCACert`)
  t.equal(caCert.status, 200, 'the device CA exists and SCEP serves it')

  // And prints an owner API key once, so the admin API can be used at once.
  const printed = await server.waitForLog(/^first start: created the owner API key /)
  const key = /(orchard_[a-z0-9]{12}_[A-Za-z0-9_-]{43})/.exec(String(printed['msg']))![1]!
  const tenants = await fetch(`${address}/api/v1/tenants`, { headers: { authorization: `Bearer ${key}` } })
  t.equal(tenants.status, 200, 'the printed key is an owner key')

  // A second server on the same data directory refuses to start instead of corrupting it.
  const second = spawnOrchard('src/main.ts', ['--port', '0', '--data-dir', dataDir])
  t.equal(await second.exited, 1)
  const refusal = await second.waitForLog(/^cannot start: /)
  t.match(refusal['msg'], /is in use by process \d+/)

  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
  await server.waitForLog(/^shutdown complete$/)
  t.notOk(existsSync(join(dataDir, 'pglite.lock')), 'lock released')

  const migrate = spawnOrchard('src/migrate.ts', ['--data-dir', dataDir])
  t.equal(await migrate.exited, 0, migrate.stderr())
  await migrate.waitForLog(/^database already current$/)
})

t.test(
  'Postgres: replicas starting together print one first owner key between them, and never again',
  { skip: testBackend !== 'postgres' && 'Postgres pass only' },
  async (t) => {
    const database = await createTestDatabase(t)
    const env = { DATABASE_URL: database.url!, ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') }
    const start = () => {
      const server = spawnOrchard('src/main.ts', ['--port', '0'], env)
      t.teardown(() => {
        if (server.child.exitCode === null) server.child.kill('SIGKILL')
      })
      return server
    }
    const replicas = [start(), start(), start()]
    const addresses = await Promise.all(replicas.map(async (replica) => String((await replica.waitForLog(/^Orchard listening on /))['address'])))
    const printed = replicas.map((replica) => replica.logs().filter((line) => /^first start: created the owner API key /.test(String(line['msg']))))
    t.same(printed.map((lines) => lines.length).sort(), [0, 0, 1], 'exactly one replica created and printed it')
    const key = /(orchard_[a-z0-9]{12}_[A-Za-z0-9_-]{43})/.exec(String(printed.flat()[0]!['msg']))![1]!
    for (const address of addresses) {
      const response = await fetch(`${address}/api/v1/api-keys`, { headers: { authorization: `Bearer ${key}` } })
      t.equal(response.status, 200, `accepted by ${address}`)
    }
    const listed = (await (await fetch(`${addresses[0]}/api/v1/api-keys`, { headers: { authorization: `Bearer ${key}` } })).json()) as {
      items: Array<{ id: string; role: string }>
    }
    t.same(
      listed.items.map((item) => item.role),
      ['owner'],
      'one key, an owner',
    )
    // Revoked: the installation is no longer new, so no later start makes another.
    const revoked = await fetch(`${addresses[0]}/api/v1/api-keys/${listed.items[0]!.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } })
    t.ok(revoked.ok, `revoked (${revoked.status})`)
    const later = start()
    await later.waitForLog(/^Orchard listening on /)
    t.equal(later.logs().filter((line) => /first start/.test(String(line['msg']))).length, 0, 'no second first start')
  },
)

t.test('Postgres: SIGTERM during a request finishes that request and exits 0', { skip: testBackend !== 'postgres' && 'Postgres pass only' }, async (t) => {
  const database = await createTestDatabase(t)
  // A master key, so the device CA that /readyz needs is created (there is no embedded one on Postgres).
  const server = spawnOrchard('src/main.ts', ['--port', '0'], { DATABASE_URL: database.url!, ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const address = String((await server.waitForLog(/^Orchard listening on /))['address'])
  t.teardown(() => {
    if (server.child.exitCode === null) server.child.kill('SIGKILL')
  })

  // Hold a lock the readiness check needs, so a /readyz request stays in flight.
  const blocker = new pg.Client({ connectionString: database.url! })
  await blocker.connect()
  t.teardown(() => blocker.end())
  await blocker.query('begin')
  await blocker.query('lock table kysely_migration in access exclusive mode')
  const inFlight = httpGet(`${address}/readyz`)
  let waiting = 0
  for (let i = 0; i < 10_000 && waiting === 0; i++) {
    const { rows } = await blocker.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)
    waiting = (rows[0] as { n: number }).n
  }
  t.equal(waiting, 1, 'the request is waiting inside the server')

  server.child.kill('SIGTERM')
  await server.waitForLog(/^shutting down$/)
  await blocker.query('commit')
  const response = await inFlight
  t.equal(response.status, 200, response.body)
  t.equal(await server.exited, 0)
  await server.waitForLog(/^shutdown complete$/)
})
