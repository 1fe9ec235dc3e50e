import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { apiKeysUsage, runApiKeysCli } from '../../src/cli/api-keys.js'
import { createApiKeyService } from '../../src/services/api-key-service.js'
import { createApiKeyStore } from '../../src/storage/api-key-store.js'
import { openPgliteDatabase, type DatabaseHandle } from '../../src/storage/database.js'
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

async function cli(argv: string[], env: Record<string, string>): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await runApiKeysCli(argv, env, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) } })
  return { code, stdout, stderr }
}

t.test('create, list, revoke: a round trip', async (t) => {
  const { env, open } = await isolatedDatabase(t)

  const created = await cli(['create', '--name', 'deploy bot', '--scopes', 'read,write', '--expires-at', '2099-01-31T12:00:00Z'], env)
  t.equal(created.code, 0, created.stderr)
  t.match(created.stdout, /^orchard_[a-z0-9]{12}_[A-Za-z0-9_-]{43}\n$/, 'stdout is the key alone, on its own line')
  const key = created.stdout.trim()
  const id = key.split('_')[1]!
  t.match(created.stderr, new RegExp(`API key ${id} "deploy bot" \\(read,write, expires 2099-01-31T12:00:00Z\\) created`))
  t.match(created.stderr, /not shown again/)

  const second = await cli(['create', '--name=read only', '--scopes=read'], env)
  t.equal(second.code, 0, second.stderr)
  const secondId = second.stdout.trim().split('_')[1]!

  // The key works for the server's service over the same database.
  const database = await open()
  try {
    const store = createApiKeyStore(database.db)
    const touches: Promise<void>[] = []
    const service = createApiKeyService({
      store: { ...store, touchLastUsed: (keyId, now) => (touches.push(store.touchLastUsed(keyId, now)), touches.at(-1)!) },
      configKeys: [],
      logger: testLogger(),
    })
    t.match(await service.authenticate(key), { keyId: id, name: 'deploy bot', scopes: ['read', 'write'], source: 'database' })
    await Promise.all(touches)
  } finally {
    if (testBackend === 'pglite') await database.close()
  }

  const listed = await cli(['list'], env)
  t.equal(listed.code, 0, listed.stderr)
  const lines = listed.stdout.trimEnd().split('\n')
  t.match(lines[0], /^ID +NAME +SCOPES +CREATED +LAST USED +EXPIRES +REVOKED$/)
  t.equal(lines.length, 3)
  const time = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ'
  t.match(lines[1], new RegExp(`^${id} +deploy bot +read,write +${time} +${time} +2099-01-31T12:00:00Z +-$`), 'last used is set')
  t.match(lines[2], new RegExp(`^${secondId} +read only +read +${time} +- +- +-$`))
  t.notOk(listed.stdout.includes(key.split('_')[2]!), 'the secret is never listed')

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
  t.match(all.find((line) => line.startsWith(id)), /Z$/, 'the revocation time is shown')
  const active = (await cli(['list', '--active'], env)).stdout.trimEnd().split('\n')
  t.same(active.slice(1).map((line) => line.split(' ')[0]), [secondId], '--active hides revoked keys')
})

t.test('usage errors exit 2 without touching the database', async (t) => {
  // No database at all: a usage error must be found first.
  const env = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }
  const cases: Array<[string[], RegExp]> = [
    [[], /a command is required/],
    [['rotate'], /rotate: unknown command/],
    [['create', '--scopes', 'read'], /create needs --name/],
    [['create', '--name', 'x'], /create needs --scopes/],
    [['create', '--name'], /--name needs a value/],
    [['create', '--name', 'x', '--scopes', 'read', '--colour', 'red'], /unknown option --colour/],
    [['create', '--name', 'x', '--name', 'y', '--scopes', 'read'], /--name is given more than once/],
    [['create', '--name', 'x', '--scopes', 'read', '--expires-at', 'next tuesday'], /--expires-at: "next tuesday" is not an ISO 8601 date/],
    [['create', '--name', 'x', '--scopes', 'read', 'extra'], /unexpected argument extra/],
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
  const { env } = await isolatedDatabase(t)
  const run = await cli(['create', '--name', 'x'.repeat(201), '--scopes', 'read,root', '--expires-at', '2001-01-01'], env)
  t.equal(run.code, 2)
  t.match(run.stderr, '--name must be 1 to 200 characters; --scopes must be one of read, write, admin; --expires-at must be in the future')
  t.equal(run.stdout, '')
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
