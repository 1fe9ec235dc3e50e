// What /readyz means: database reachable and migrated, a device CA loaded, every sealed secret
// openable with ORCHARD_SECRET_KEYS. push_certificates is informational. Each check is shown.
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { pino } from 'pino'
import t from 'tap'
import { masterKeyId } from '../../src/crypto/secret-box.js'
import { createReadinessCheck, type ReadinessDeps } from '../../src/ops/readiness.js'
import { sealedColumns } from '../../src/ops/readiness-store.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

const key = () => randomBytes(32).toString('hex')
const keyId = (hex: string) => masterKeyId(Buffer.from(hex, 'hex'))

async function readyz(app: Awaited<ReturnType<typeof buildTestApp>>['app']) {
  const response = await app.inject({ method: 'GET', url: '/readyz' })
  return { status: response.statusCode, body: response.json() }
}

t.test('ready with a master key: the device CA is generated and its sealed key opens', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { ORCHARD_SECRET_KEYS: key() })
  const { status, body } = await readyz(app)
  t.equal(status, 200, JSON.stringify(body))
  t.match(body, {
    status: 'ready',
    checks: {
      database: 'ok',
      migrations: /^current/,
      device_ca: /^ok \(expires \d{4}-\d\d-\d\d\)$/,
      secret_keys: /^ok \([1-9]\d* sealed secrets? open with the configured keys\)$/,
    },
  })
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /^orchard_ready 1$/m)
  t.match(metrics, /^orchard_readiness_check\{check="device_ca"\} 1$/m)
})

t.test('not ready without a device CA (no master key to seal one: none is generated)', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  const { status, body } = await readyz(app)
  t.equal(status, 503)
  t.match(body, { status: 'not_ready', checks: { database: 'ok', device_ca: /^missing: /, secret_keys: 'ok (no sealed secrets; 0 keys configured)' } })
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /^orchard_ready 0$/m, 'the gauge alerts can use says the same')
  t.match(metrics, /^orchard_readiness_check\{check="device_ca"\} 0$/m)
  t.match(metrics, /^orchard_readiness_check\{check="secret_keys"\} 1$/m)
})

t.test('sealed secrets and no ORCHARD_SECRET_KEYS, or only a key they were not sealed with: not ready; the old key back: ready', async (t) => {
  const database = await createTestDatabase(t)
  const first = key()
  t.equal((await readyz((await buildTestApp(t, database, { ORCHARD_SECRET_KEYS: first })).app)).status, 200, 'the first instance seals the CA key')

  const keyless = await readyz((await buildTestApp(t, database)).app)
  t.equal(keyless.status, 503)
  t.match(keyless.body.checks, {
    device_ca: /^missing: .*ORCHARD_SECRET_KEYS/,
    secret_keys: /^missing: \d+ sealed secrets? in the database and no ORCHARD_SECRET_KEYS to open them$/,
  })

  const second = key()
  const wrong = await readyz((await buildTestApp(t, database, { ORCHARD_SECRET_KEYS: second })).app)
  t.equal(wrong.status, 503)
  t.match(wrong.body.checks, {
    device_ca: /^missing: /,
    secret_keys: new RegExp(`^missing: \\d+ sealed with key ${keyId(first)}, which ORCHARD_SECRET_KEYS does not hold$`),
  })

  // Rotation: the new key first (it seals), the old one still listed (it opens).
  const rotated = await readyz((await buildTestApp(t, database, { ORCHARD_SECRET_KEYS: `${second},${first}` })).app)
  t.equal(rotated.status, 200, JSON.stringify(rotated.body))
  t.match(rotated.body.checks, { device_ca: /^ok/, secret_keys: /^ok/ })
})

function fakeDeps(overrides: Partial<ReadinessDeps> = {}): ReadinessDeps {
  return {
    ping: async () => {},
    migrationStatus: async () => ({ applied: ['0001_init'], pending: [] }),
    deviceCa: () => ({ loaded: true, notAfter: new Date('2036-01-01T00:00:00Z') }),
    masterKeyIds: ['aa'],
    sealedSecretsByKey: async () => [{ keyId: 'aa', count: 2 }],
    expiringPushCertificates: async () => [],
    timeoutMs: 1_000,
    ...overrides,
  }
}

t.test('each check decides the status alone; push certificates never do', async (t) => {
  const ready = await createReadinessCheck(fakeDeps())()
  t.same(ready, {
    ready: true,
    failing: [],
    checks: {
      database: 'ok',
      migrations: 'current (1 applied)',
      device_ca: 'ok (expires 2036-01-01)',
      secret_keys: 'ok (2 sealed secrets open with the configured keys)',
      push_certificates: 'ok',
    },
  })

  const noCa = await createReadinessCheck(fakeDeps({ deviceCa: () => ({ loaded: false, reason: 'no CA' }) }))()
  t.match(noCa, { ready: false, failing: ['device_ca'], checks: { device_ca: 'missing: no CA', secret_keys: /^ok/ } })

  const unknownKey = await createReadinessCheck(
    fakeDeps({
      sealedSecretsByKey: async () => [
        { keyId: 'aa', count: 1 },
        { keyId: 'bb', count: 3 },
      ],
    }),
  )()
  t.match(unknownKey, {
    ready: false,
    failing: ['secret_keys'],
    checks: { device_ca: /^ok/, secret_keys: 'missing: 3 sealed with key bb, which ORCHARD_SECRET_KEYS does not hold' },
  })

  const noKeys = await createReadinessCheck(fakeDeps({ masterKeyIds: [] }))()
  t.match(noKeys, {
    ready: false,
    failing: ['secret_keys'],
    checks: { secret_keys: 'missing: 2 sealed secrets in the database and no ORCHARD_SECRET_KEYS to open them' },
  })

  const pending = await createReadinessCheck(fakeDeps({ migrationStatus: async () => ({ applied: [], pending: ['0001_init'] }) }))()
  t.match(pending, { ready: false, checks: { migrations: 'pending: 0001_init', device_ca: /^ok/, secret_keys: /^not checked/ } })

  const down = await createReadinessCheck(
    fakeDeps({
      ping: async () => {
        throw new Error('connection refused')
      },
    }),
  )()
  t.match(down, { ready: false, checks: { database: 'unavailable: connection refused', migrations: 'unknown', secret_keys: /^not checked/ } })

  const expiring = await createReadinessCheck(
    fakeDeps({
      expiringPushCertificates: async () => [
        { topic: 'com.apple.mgmt.External.a', notAfter: new Date('2026-01-10T00:00:00Z'), daysLeft: 3 },
        { topic: 'com.apple.mgmt.External.b', notAfter: new Date('2025-12-01T00:00:00Z'), daysLeft: -5 },
      ],
    }),
  )()
  t.equal(expiring.ready, true, 'expiring and expired push certificates are informational')
  t.equal(expiring.checks.push_certificates, 'com.apple.mgmt.External.a expires in 3 days; com.apple.mgmt.External.b expired on 2025-12-01')
})

t.test('the secret_keys check reads every sealed column of the schema', async (t) => {
  const database = await createTestDatabase(t)
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = current_schema() and column_name like '%\\_sealed' escape '\\'
    order by table_name, column_name`.execute(database.db)
  t.same(
    rows.map((row) => `${row.table_name}.${row.column_name}`).sort(),
    sealedColumns.map(([table, column]) => `${table}.${column}`).sort(),
    'a new sealed column must be added to sealedColumns in src/ops/readiness-store.ts',
  )
})

t.test('autovacuum off on PostgreSQL: shown in /readyz, warned about at start-up, never unready', async (t) => {
  const database = await createTestDatabase(t)
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) })
  const { app, orchard } = await buildTestApp(t, database, { ORCHARD_SECRET_KEYS: key() }, { logger })
  if (database.kind === 'pglite') {
    t.notOk((await readyz(app)).body.checks.autovacuum, 'PGlite has no autovacuum worker: nothing to report')
    await orchard.operations.warnAtStart()
    t.same(lines, [])
    return
  }
  // This machine's test cluster may run with autovacuum off: the expectations follow the server.
  const { rows } = await sql<{ on: boolean }>`select current_setting('autovacuum')::boolean and current_setting('track_counts')::boolean as on`.execute(
    database.db,
  )
  const server = rows[0]!.on ? [] : ['autovacuum (or track_counts) is off on the server']
  const bloat = '. Dead rows from check-ins and commands will bloat the database'
  t.equal((await readyz(app)).body.checks.autovacuum, server.length === 0 ? 'on' : `off: ${server[0]}${bloat}`)
  await orchard.operations.warnAtStart()
  t.equal(lines.length, server.length, server.length === 0 ? 'no warning while it is on' : 'warned: the server has it off')

  await sql`alter table command_targets set (autovacuum_enabled = false)`.execute(database.db)
  await sql`alter table enrollments set (autovacuum_enabled = false, fillfactor = 90)`.execute(database.db)
  const { status, body } = await readyz(app)
  t.equal(status, 200, 'informational only')
  const expected = `off: ${[...server, 'autovacuum_enabled=false on command_targets, enrollments'].join('; ')}${bloat}`
  t.equal(body.checks.autovacuum, expected)
  lines.length = 0
  await orchard.operations.warnAtStart()
  t.match(lines, [{ level: 40, autovacuum: expected }])
})
