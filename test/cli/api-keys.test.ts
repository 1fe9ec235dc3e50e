import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { apiKeysUsage, runApiKeysCli } from '../../src/cli/api-keys.js'
import { createApiKeyService, splitApiKey } from '../../src/access/api-key-service.js'
import { createApiKeyStore } from '../../src/access/api-key-store.js'
import { openPgliteDatabase, type DatabaseHandle } from '../../src/db/database.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

// Not helpers/app.js's testLogger: these tests need no app (nor its imports).
const testLogger = () => pino({ level: process.env['ORCHARD_TEST_LOG_LEVEL'] ?? 'silent' })

type Teardown = Parameters<typeof createTestDatabase>[0]

interface Run {
  code: number
  stdout: string
  stderr: string
}

/**
 * The environment of an isolated database for the CLI: this test's own Postgres database,
 * or an embedded one in a fresh data directory (which the CLI migrates on first use).
 * `open` gives the test its own handle on that database while the CLI is not running.
 */
async function isolatedDatabase(t: Teardown): Promise<{ env: Record<string, string>; open(): Promise<DatabaseHandle> }> {
  if (testBackend === 'postgres') {
    const database = await createTestDatabase(t)
    return { env: { DATABASE_URL: database.url! }, open: async () => database }
  }
  const dataDir = join(mkdtempSync(join(tmpdir(), 'orchard-api-keys-cli-')), 'data')
  return {
    env: { ORCHARD_DATA_DIR: dataDir },
    open: () => openPgliteDatabase(dataDir),
  }
}

/** Runs `fn` on the test's own handle on the CLI's database, closed again before the CLI runs. */
async function withDatabase<T>(open: () => Promise<DatabaseHandle>, fn: (database: DatabaseHandle) => Promise<T>): Promise<T> {
  const database = await open()
  try {
    return await fn(database)
  } finally {
    if (testBackend === 'pglite') await database.close()
  }
}

/** Migrates the CLI's database (the first run does) and adds the tenant `physics` to it. */
async function withTenant(t: Test, env: Record<string, string>, open: () => Promise<DatabaseHandle>): Promise<void> {
  const empty = await cli(['list'], env)
  t.equal(empty.code, 0, empty.stderr)
  t.equal(empty.stdout, 'no API keys\n')
  await withDatabase(open, (database) => database.db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null }).execute())
}

async function cli(argv: string[], env: Record<string, string>): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await runApiKeysCli(argv, env, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) } })
  return { code, stdout, stderr }
}

t.test('create, list, revoke: a round trip', async (t) => {
  const { env, open } = await isolatedDatabase(t)
  await withTenant(t, env, open)

  const created = await cli(['create', '--name', 'deploy bot', '--role', 'admin', '--tenant', 'physics', '--expires-at', '2099-01-31T12:00:00Z'], env)
  t.equal(created.code, 0, created.stderr)
  t.match(created.stdout, /^orchard_[a-z0-9]{12}_[A-Za-z0-9_-]{43}\n$/, 'stdout is the key alone, on its own line')
  const key = created.stdout.trim()
  const { id, secret } = splitApiKey(key)!
  t.match(created.stderr, new RegExp(`API key ${id} "deploy bot" \\(admin in physics, expires 2099-01-31T12:00:00Z\\) created`))
  t.match(created.stderr, /not shown again/)

  const second = await cli(['create', '--name=read only', '--role=auditor'], env)
  t.equal(second.code, 0, second.stderr)
  const secondId = splitApiKey(second.stdout.trim())!.id
  t.match(second.stderr, new RegExp(`API key ${secondId} "read only" \\(auditor\\) created`), 'no --tenant: central IT')

  const third = await cli(['create', '--name', 'break glass', '--role', 'owner'], env)
  t.equal(third.code, 0, third.stderr)
  const ownerKey = third.stdout.trim()
  const thirdId = splitApiKey(ownerKey)!.id
  t.match(third.stderr, new RegExp(`API key ${thirdId} "break glass" \\(owner\\) created`))

  // The keys work for the server's service over the same database, with their role and tenant.
  await withDatabase(open, async (database) => {
    const store = createApiKeyStore(database.db)
    const touches: Promise<void>[] = []
    const service = createApiKeyService({
      store: { ...store, touchLastUsed: (keyId, now) => (touches.push(store.touchLastUsed(keyId, now)), touches.at(-1)!) },
      configKeys: [],
      logger: testLogger(),
    })
    t.same(await service.authenticate(key), { id, name: 'deploy bot', grants: [{ tenantId: 'physics', role: 'admin' }], source: 'database' })
    t.same(await service.authenticate(ownerKey), { id: thirdId, name: 'break glass', grants: [{ tenantId: null, role: 'owner' }], source: 'database' })
    await Promise.all(touches)
    const stored = await database.db.selectFrom('api_keys').select(['id', 'role', 'tenant_id']).execute()
    const byId = Object.fromEntries(stored.map((row) => [row.id, [row.role, row.tenant_id]]))
    t.same(byId, { [id]: ['admin', 'physics'], [secondId]: ['auditor', null], [thirdId]: ['owner', null] }, 'role and tenant_id are stored')
  })

  const listed = await cli(['list'], env)
  t.equal(listed.code, 0, listed.stderr)
  const lines = listed.stdout.trimEnd().split('\n')
  t.match(lines[0], /^ID +NAME +ROLE +TENANT +CREATED +LAST USED +EXPIRES +REVOKED$/)
  t.equal(lines.length, 4)
  const time = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ'
  const row = (keyId: string) => lines.find((line) => line.startsWith(`${keyId} `))
  t.match(row(id), new RegExp(`^${id} +deploy bot +admin +physics +${time} +${time} +2099-01-31T12:00:00Z +-$`), 'last used is set')
  t.match(row(secondId), new RegExp(`^${secondId} +read only +auditor +\\(central\\) +${time} +- +- +-$`))
  t.match(row(thirdId), new RegExp(`^${thirdId} +break glass +owner +\\(central\\) +${time} +${time} +- +-$`))
  t.equal(secret.length, 43, 'the whole secret, underscores and all')
  t.notOk(listed.stdout.includes(secret), 'the secret is never listed')

  const revoked = await cli(['revoke', id], env)
  t.equal(revoked.code, 0, revoked.stderr)
  t.equal(revoked.stdout, `revoked ${id}\n`)
  t.match(revoked.stderr, /within 30 seconds/)

  const again = await cli(['revoke', id], env)
  t.equal(again.code, 0)
  t.equal(again.stdout, `${id} was already revoked\n`)

  const missing = await cli(['revoke', 'nosuchkey123'], env)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /no API key with ID "nosuchkey123"/)

  const all = (await cli(['list'], env)).stdout.trimEnd().split('\n')
  t.match(
    all.find((line) => line.startsWith(`${id} `)),
    new RegExp(`${time}$`),
    'the revocation time is shown',
  )
  const active = (await cli(['list', '--active'], env)).stdout.trimEnd().split('\n')
  t.same(
    active
      .slice(1)
      .map((line) => line.split(' ')[0])
      .sort(),
    [secondId, thirdId].sort(),
    '--active hides revoked keys',
  )
})

t.test('usage errors exit 2 without touching the database', async (t) => {
  // No database at all: a usage error must be found first.
  const env = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }
  const cases: Array<[string[], RegExp]> = [
    [[], /a command is required/],
    [['rotate'], /rotate: unknown command/],
    [['create', '--role', 'admin'], /create needs --name/],
    [['create', '--name', 'x'], /create needs --role \(owner, admin, helpdesk or auditor\)/],
    [['create', '--name', 'x', '--tenant', 'physics'], /create needs --role/],
    [['create', '--name'], /--name needs a value/],
    [['create', '--name', 'x', '--role'], /--role needs a value/],
    [['create', '--name', 'x', '--role', 'admin', '--tenant'], /--tenant needs a value/],
    [['create', '--name', 'x', '--role', 'admin', '--scopes', 'read'], /unknown option --scopes/],
    [['create', '--name', 'x', '--role', 'admin', '--colour', 'red'], /unknown option --colour/],
    [['create', '--name', 'x', '--name', 'y', '--role', 'admin'], /--name is given more than once/],
    [['create', '--name', 'x', '--role', 'admin', '--role=auditor'], /--role is given more than once/],
    [['create', '--name', 'x', '--role', 'admin', '--expires-at', 'next tuesday'], /--expires-at: "next tuesday" is not an ISO 8601 date/],
    [['create', '--name', 'x', '--role', 'admin', 'extra'], /unexpected argument extra/],
    [['revoke'], /revoke needs exactly one key ID/],
    [['revoke', 'a', 'b'], /revoke needs exactly one key ID/],
    [['list', '--active=yes'], /--active takes no value/],
  ]
  for (const [argv, message] of cases) {
    const run = await cli(argv, env)
    t.equal(run.code, 2, argv.join(' ') || '(no arguments)')
    t.match(run.stderr, message)
    t.match(run.stderr, /Usage: orchard-api-keys/)
    t.equal(run.stdout, '')
  }
  const help = await cli(['--help'], env)
  t.equal(help.code, 0)
  t.equal(help.stdout, `${apiKeysUsage}\n`)
  const badConfig = await cli(['list'], { DATABASE_URL: 'mysql://x' })
  t.equal(badConfig.code, 2)
  t.match(badConfig.stderr, /invalid configuration: DATABASE_URL/)
})

t.test('invalid values are refused with the flag to fix, exit 2', async (t) => {
  const { env, open } = await isolatedDatabase(t)
  await withTenant(t, env, open)

  const roleList = 'must be one of owner, admin, helpdesk, auditor'
  const cases: Array<[string, string[], string]> = [
    [
      'several at once',
      ['--name', 'x'.repeat(201), '--role', 'root', '--expires-at', '2001-01-01'],
      `--name must be 1 to 200 characters; --role ${roleList}; --expires-at must be in the future`,
    ],
    ['an unknown role', ['--name', 'x', '--role', 'superuser'], `--role ${roleList}`],
    ['a role in the wrong case', ['--name', 'x', '--role', 'Admin'], `--role ${roleList}`],
    ['an owner in a tenant', ['--name', 'x', '--role', 'owner', '--tenant', 'physics'], '--tenant owner keys belong to central IT'],
    ['a tenant that does not exist', ['--name', 'x', '--role', 'admin', '--tenant', 'nowhere'], '--tenant no such tenant'],
    ['a blank name', ['--name', '  ', '--role', 'admin'], '--name must be 1 to 200 characters'],
  ]
  for (const [what, argv, message] of cases) {
    const run = await cli(['create', ...argv], env)
    t.equal(run.code, 2, what)
    t.match(run.stderr, `orchard-api-keys: ${message}`, what)
    t.notMatch(run.stderr, /Usage: orchard-api-keys/, `${what}: a value error, not a usage error`)
    t.equal(run.stdout, '', `${what}: no key printed`)
  }
  t.equal((await cli(['list'], env)).stdout, 'no API keys\n', 'nothing created')
})

t.test('an embedded database held by a running server is refused with the way around it', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'orchard-api-keys-locked-'))
  mkdirSync(dataDir, { recursive: true })
  // The lock of a live process that is not this one: the test runner that started us.
  writeFileSync(join(dataDir, 'pglite.lock'), String(process.ppid))
  const run = await cli(['list'], { ORCHARD_DATA_DIR: dataDir })
  t.equal(run.code, 1)
  t.match(run.stderr, `the running Orchard server (process ${process.ppid}) holds the embedded database`)
  t.match(run.stderr, 'POST /api/v1/api-keys with an admin key')
  t.match(run.stderr, 'stop the server')
})

t.test('an unreachable database exits 1', async (t) => {
  const run = await cli(['list'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' })
  t.equal(run.code, 1)
  t.match(run.stderr, /cannot reach PostgreSQL/)
})
