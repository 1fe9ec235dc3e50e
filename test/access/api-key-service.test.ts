import { createHash } from 'node:crypto'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { OrchardError } from '../../src/errors.js'
import { createApiKeyService, looksLikeApiKey, splitApiKey, type ApiKeyServiceDeps } from '../../src/access/api-key-service.js'
import { fullAccess, tenantsAccess, type Role } from '../../src/model/access.js'
import { createApiKeyStore, type ApiKeyStore } from '../../src/access/api-key-store.js'
import { createTestDatabase } from '../helpers/database.js'

// Not helpers/app.js's testLogger: these tests need no app (nor its imports).
const testLogger = () => pino({ level: process.env['ORCHARD_TEST_LOG_LEVEL'] ?? 'silent' })

type Teardown = Parameters<typeof createTestDatabase>[0]

const configKey = 'bootstrap-key-0123456789abcdef'

/** A service over a real test database, a clock the test moves, and a store that counts lookups. */
async function setup(t: Teardown, options: Partial<ApiKeyServiceDeps> = {}) {
  const database = await createTestDatabase(t)
  const real = createApiKeyStore(database.db)
  let clock = new Date('2030-06-01T12:00:00.000Z').getTime()
  const lookups: Buffer[] = []
  const touches: Promise<void>[] = []
  const store: ApiKeyStore = {
    ...real,
    findActiveBySha256(digest, now) {
      lookups.push(digest)
      return real.findActiveBySha256(digest, now)
    },
    touchLastUsed(id, now) {
      const touch = real.touchLastUsed(id, now)
      touches.push(touch)
      return touch
    },
  }
  const service = createApiKeyService({ store, configKeys: [configKey], logger: testLogger(), now: () => new Date(clock), ...options })
  return {
    database,
    service,
    lookups,
    touches,
    advance(ms: number) {
      clock += ms
    },
    now: () => new Date(clock),
  }
}

t.test('a created key authenticates with its role', async (t) => {
  const { service, now, touches } = await setup(t)
  const { key, view } = await service.createKey(fullAccess, { name: '  deploy bot ', role: 'helpdesk' })
  t.match(key, /^orchard_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/)
  t.ok(looksLikeApiKey(key))
  t.equal(splitApiKey(key)?.id, view.id, 'the ID is part of the key')
  t.same(view, { id: view.id, name: 'deploy bot', role: 'helpdesk', tenantId: null, createdAt: now(), lastUsedAt: null, expiresAt: null, revokedAt: null })
  t.same(await service.authenticate(key), { id: view.id, name: 'deploy bot', source: 'database', grants: [{ tenantId: null, role: 'helpdesk' }] })
  await Promise.all(touches)
  t.same(await service.getKey(fullAccess, view.id), { ...view, lastUsedAt: now() })
  t.same(
    (await service.listKeys(fullAccess)).map((k) => k.id),
    [view.id],
  )
})

t.test('a key splits into its ID and its whole secret, underscores in the secret included', async (t) => {
  // base64url has '_' and '-': secrets that start, end or are full of them.
  for (const secret of ['_'.repeat(43), `_${'a'.repeat(41)}_`, `ab_${'-'.repeat(38)}_c`, 'A'.repeat(43)]) {
    t.same(splitApiKey(`orchard_abcdefghij12_${secret}`), { id: 'abcdefghij12', secret })
  }
  for (const bad of [
    'orchard_abcdefghij12',
    'orchard_ABCDEFGHIJ12_' + 'a'.repeat(43),
    'orchard_abcdefghij12_' + 'a'.repeat(42),
    'x_abcdefghij12_' + 'a'.repeat(43),
  ]) {
    t.equal(splitApiKey(bad), null, `${bad.slice(0, 30)}... has not the shape of a key`)
  }
})

t.test('only the SHA-256 of the key is stored: the key text appears nowhere in the row', async (t) => {
  const { service, database } = await setup(t)
  const { key, view } = await service.createKey(fullAccess, { name: 'secret holder', role: 'owner' })
  const secret = splitApiKey(key)!.secret
  const row = await database.db.selectFrom('api_keys').selectAll().where('id', '=', view.id).executeTakeFirstOrThrow()
  const rowText = JSON.stringify(row, (_name, value: unknown) =>
    value instanceof Buffer ? value.toString('latin1') + value.toString('base64') + value.toString('hex') + value.toString('base64url') : value,
  )
  t.notOk(rowText.includes(key), 'no key')
  t.notOk(rowText.includes(secret), 'no secret, in any encoding')
  t.equal(row.key_sha256.length, 32)
  for (const view of await service.listKeys(fullAccess, { includeRevoked: true })) t.notOk('keySha256' in view || 'key_sha256' in view, 'views carry no hash')
})

t.test('wrong, garbled and unknown tokens do not authenticate', async (t) => {
  const { service, lookups } = await setup(t)
  const { key } = await service.createKey(fullAccess, { name: 'real', role: 'auditor' })
  const flipped = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A')
  const unknown = `orchard_${'z'.repeat(12)}_${'A'.repeat(43)}`
  for (const token of [flipped, unknown]) t.equal(await service.authenticate(token), undefined, `well-formed but unknown: ${token.slice(0, 20)}...`)
  t.equal(lookups.length, 2, 'well-formed tokens are looked up')
  for (const token of ['', 'orchard', key.toUpperCase(), `${key}x`, ` ${key}`, key.slice(0, -1), key.replace('orchard_', 'orchid_'), 'x'.repeat(10_000)]) {
    t.equal(await service.authenticate(token), undefined, `garbled: ${JSON.stringify(token.slice(0, 30))}`)
  }
  t.equal(lookups.length, 2, 'tokens that cannot be keys never reach the database')
})

t.test('successful and failed lookups are cached for the TTL, then asked again', async (t) => {
  const { service, lookups, advance } = await setup(t, { cacheTtlMs: 10_000 })
  const { key } = await service.createKey(fullAccess, { name: 'hot client', role: 'auditor' })
  const unknown = `orchard_${'q'.repeat(12)}_${'B'.repeat(43)}`
  const results = await Promise.all([service.authenticate(key), service.authenticate(key), service.authenticate(unknown), service.authenticate(unknown)])
  t.same(
    results.map((r) => r?.name),
    ['hot client', 'hot client', undefined, undefined],
  )
  t.equal(lookups.length, 2, 'concurrent requests share one lookup per token')
  advance(9_999)
  t.ok(await service.authenticate(key))
  t.equal(await service.authenticate(unknown), undefined)
  t.equal(lookups.length, 2, 'answered from the cache within the TTL')
  advance(1)
  t.ok(await service.authenticate(key))
  t.equal(await service.authenticate(unknown), undefined)
  t.equal(lookups.length, 4, 'looked up again once the TTL has passed')
})

t.test('the cache is bounded: the least recently used entries go first', async (t) => {
  const database = await createTestDatabase(t)
  const real = createApiKeyStore(database.db)
  let lookups = 0
  // Unknown tokens are answered without the database: ten thousand queries would only slow the test.
  const store: ApiKeyStore = {
    ...real,
    async findActiveBySha256(digest, now) {
      lookups++
      return known.equals(digest) ? real.findActiveBySha256(digest, now) : undefined
    },
  }
  const service = createApiKeyService({ store, configKeys: [], logger: testLogger(), cacheTtlMs: 60_000, now: () => new Date('2030-01-01T00:00:00Z') })
  const { key } = await service.createKey(fullAccess, { name: 'kept warm', role: 'auditor' })
  // Only `authenticate` looks keys up, so the store above first reads this after it is set.
  const known = createHash('sha256').update(key).digest()
  t.ok(await service.authenticate(key))
  for (let i = 0; i < 10_050; i++) {
    await service.authenticate(`orchard_${String(i).padStart(12, '0')}_${'C'.repeat(43)}`)
    if (i % 1000 === 0) t.ok(await service.authenticate(key)) // a hit keeps it recent
  }
  const before = lookups
  t.ok(await service.authenticate(key), 'still cached')
  t.equal(lookups, before, 'the warm key was not evicted')
  await service.authenticate(`orchard_${String(10_049).padStart(12, '0')}_${'C'.repeat(43)}`)
  t.equal(lookups, before, 'a recent unknown token is still cached')
  await service.authenticate(`orchard_${'0'.repeat(12)}_${'C'.repeat(43)}`)
  t.equal(lookups, before + 1, 'the oldest unknown token was evicted')
})

t.test('a revoked key fails at once in this process, even when cached', async (t) => {
  const { service, lookups } = await setup(t, { cacheTtlMs: 60_000 })
  const { key, view } = await service.createKey(fullAccess, { name: 'to revoke', role: 'admin' })
  t.ok(await service.authenticate(key))
  t.equal(await service.revokeKey(fullAccess, view.id), 'revoked')
  t.equal(await service.authenticate(key), undefined)
  t.equal(await service.revokeKey(fullAccess, view.id), 'already_revoked')
  t.equal(await service.revokeKey(fullAccess, 'nosuchkey123'), 'not_found')
  t.equal(await service.revokeKey(fullAccess, '../etc/passwd'), 'not_found')
  t.same(
    (await service.listKeys(fullAccess)).map((k) => k.id),
    [],
    'revoked keys are not listed by default',
  )
  t.same(
    (await service.listKeys(fullAccess, { includeRevoked: true })).map((k) => k.id),
    [view.id],
  )
  t.ok((await service.getKey(fullAccess, view.id))?.revokedAt)
  t.equal(lookups.length, 2, 'revocation dropped the cached answer')
})

t.test('a revocation during a lookup in flight still wins', async (t) => {
  const database = await createTestDatabase(t)
  const real = createApiKeyStore(database.db)
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  let fetched!: (found: boolean) => void
  const lookupDone = new Promise<boolean>((resolve) => (fetched = resolve))
  let gated = false
  const store: ApiKeyStore = {
    ...real,
    async findActiveBySha256(digest, now) {
      const row = await real.findActiveBySha256(digest, now)
      if (gated) {
        fetched(row !== undefined)
        await gate
      }
      return row
    },
  }
  const service = createApiKeyService({ store, configKeys: [], logger: testLogger(), cacheTtlMs: 60_000, now: () => new Date('2030-01-01T00:00:00Z') })
  const { key, view } = await service.createKey(fullAccess, { name: 'racing', role: 'auditor' })
  gated = true
  const inFlight = service.authenticate(key)
  t.equal(await lookupDone, true, 'the lookup found the key before it was revoked')
  t.equal(await service.revokeKey(fullAccess, view.id), 'revoked')
  release()
  t.equal(await inFlight, undefined, 'the answer that arrived after the revocation is refused')
  t.equal(await service.authenticate(key), undefined)
})

t.test('an expired key fails, even when its lookup is cached', async (t) => {
  const { service, advance, now } = await setup(t, { cacheTtlMs: 60_000 })
  const { key } = await service.createKey(fullAccess, { name: 'short-lived', role: 'auditor', expiresAt: new Date(now().getTime() + 5_000) })
  t.ok(await service.authenticate(key))
  advance(4_999)
  t.ok(await service.authenticate(key), 'cached, and not expired yet')
  advance(1)
  t.equal(await service.authenticate(key), undefined, 'expired though the cached answer is fresh')
  advance(60_000)
  t.equal(await service.authenticate(key), undefined, 'and the database agrees')
})

t.test('config keys authenticate as central owners', async (t) => {
  const { service, lookups, database } = await setup(t)
  const other = createApiKeyService({
    store: createApiKeyStore(database.db),
    configKeys: ['first-config-key-0123456789abcdef', 'second-config-key-0123456789abcdef'],
    logger: testLogger(),
  })
  t.same(await service.authenticate(configKey), { id: 'config:0', name: 'config key 1', source: 'config', grants: [{ tenantId: null, role: 'owner' }] })
  t.same(await other.authenticate('second-config-key-0123456789abcdef'), {
    id: 'config:1',
    name: 'config key 2',
    source: 'config',
    grants: [{ tenantId: null, role: 'owner' }],
  })
  t.equal(await other.authenticate('second-config-key-0123456789abcdeF'), undefined)
  t.equal(await service.authenticate(configKey.slice(0, -1)), undefined)
  t.equal(lookups.length, 0, 'config keys never reach the database')
})

/** The "pointer detail" lines of a validation error thrown by `attempt`. */
async function validationErrors(t: Test, attempt: () => Promise<unknown>): Promise<string[]> {
  try {
    await attempt()
  } catch (error) {
    t.ok(error instanceof OrchardError)
    t.equal((error as OrchardError).code, 'validation_failed')
    return ((error as OrchardError).details?.['errors'] as Array<{ pointer: string; detail: string }>).map((e) => `${e.pointer} ${e.detail}`)
  }
  throw new Error('accepted')
}

t.test('a key holds one role in one tenant; a tenant-scoped caller reaches only its own keys', async (t) => {
  const { service, database, touches } = await setup(t)
  await database.db
    .insertInto('tenants')
    .values([
      { id: 'physics', name: 'Physics', parent_id: null },
      { id: 'chemistry', name: 'Chemistry', parent_id: null },
    ])
    .execute()
  const physics = tenantsAccess(['physics'])

  const central = await service.createKey(fullAccess, { name: 'central owner', role: 'owner' })
  const chemistry = await service.createKey(fullAccess, { name: 'chemistry admin', role: 'admin', tenantId: 'chemistry' })
  const own = await service.createKey(physics, { name: 'physics helpdesk', role: 'helpdesk' })
  t.equal(central.view.tenantId, null, 'a central caller naming no tenant makes a central key')
  t.equal(chemistry.view.tenantId, 'chemistry')
  t.equal(own.view.tenantId, 'physics', 'a tenant-scoped caller naming no tenant makes a key of its own tenant')
  t.same(await service.authenticate(own.key), {
    id: own.view.id,
    name: 'physics helpdesk',
    source: 'database',
    grants: [{ tenantId: 'physics', role: 'helpdesk' }],
  })
  t.same(await service.authenticate(chemistry.key), {
    id: chemistry.view.id,
    name: 'chemistry admin',
    source: 'database',
    grants: [{ tenantId: 'chemistry', role: 'admin' }],
  })
  t.same(await service.authenticate(central.key), {
    id: central.view.id,
    name: 'central owner',
    source: 'database',
    grants: [{ tenantId: null, role: 'owner' }],
  })
  await Promise.all(touches)

  t.same(
    (await service.listKeys(physics, { includeRevoked: true })).map((k) => k.id),
    [own.view.id],
    'only its own tenant is listed',
  )
  t.same((await service.listKeys(fullAccess)).map((k) => k.id).sort(), [central.view.id, chemistry.view.id, own.view.id].sort(), 'central IT sees every key')
  t.equal((await service.getKey(physics, own.view.id))?.name, 'physics helpdesk')
  t.equal(await service.getKey(physics, chemistry.view.id), undefined, "another tenant's key does not exist for it")
  t.equal(await service.getKey(physics, central.view.id), undefined, 'nor does a central key')
  t.equal(await service.revokeKey(physics, chemistry.view.id), 'not_found')
  t.equal(await service.revokeKey(physics, central.view.id), 'not_found')
  t.ok(await service.authenticate(chemistry.key), 'the other tenant key still works')
  t.ok(await service.authenticate(central.key), 'the central key still works')
  t.equal((await service.getKey(fullAccess, chemistry.view.id))?.revokedAt, null)
  t.equal(await service.revokeKey(physics, own.view.id), 'revoked')
  t.equal(await service.authenticate(own.key), undefined)
  t.equal(await service.revokeKey(fullAccess, chemistry.view.id), 'revoked')
  t.equal(await service.revokeKey(physics, chemistry.view.id), 'not_found', 'a revoked key of another tenant is not found either, not already revoked')

  const before = await database.db.selectFrom('api_keys').select('id').execute()
  t.same(await validationErrors(t, () => service.createKey(physics, { name: 'x', role: 'admin', tenantId: 'chemistry' })), [
    '/tenant_id chemistry is not a tenant you manage',
  ])
  t.same(
    await validationErrors(t, () => service.createKey(physics, { name: 'x', role: 'admin', tenantId: 'nosuchtenant' })),
    ['/tenant_id nosuchtenant is not a tenant you manage'],
    'an unknown tenant gets the same answer',
  )
  t.same(await validationErrors(t, () => service.createKey(physics, { name: 'x', role: 'owner' })), [
    '/tenant_id owner keys belong to central IT: leave tenant_id out (or null)',
  ])
  t.same(await validationErrors(t, () => service.createKey(physics, { name: 'x', role: 'owner', tenantId: 'physics' })), [
    '/tenant_id owner keys belong to central IT: leave tenant_id out (or null)',
  ])
  t.same(await validationErrors(t, () => service.createKey(physics, { name: 'x', role: 'auditor', tenantId: null })), [
    '/tenant_id only central IT can create central keys',
  ])
  t.same(await validationErrors(t, () => service.createKey(physics, { name: 'x', role: 'owner', tenantId: null })), [
    '/tenant_id only central IT can create central keys',
  ])
  t.same(
    await validationErrors(t, () => service.createKey(fullAccess, { name: 'x', role: 'owner', tenantId: 'physics' })),
    ['/tenant_id owner keys belong to central IT: leave tenant_id out (or null)'],
    'not even central IT makes an owner key in a tenant',
  )
  t.same(
    await validationErrors(t, () => service.createKey(fullAccess, { name: 'x', role: 'admin', tenantId: 'nosuchtenant' })),
    ['/tenant_id no such tenant'],
    'central IT is told the tenant does not exist',
  )
  t.same(await database.db.selectFrom('api_keys').select('id').execute(), before, 'no refused key was stored')
})

t.test('invalid keys are refused with a pointer per problem', async (t) => {
  const { service, now, database } = await setup(t)
  const errorsOf = (input: Parameters<typeof service.createKey>[1]) => validationErrors(t, () => service.createKey(fullAccess, input))
  const roleError = '/role must be one of owner, admin, helpdesk, auditor'
  t.same(await errorsOf({ name: '', role: 'auditor' }), ['/name must be 1 to 200 characters'])
  t.same(await errorsOf({ name: '   ', role: 'auditor' }), ['/name must be 1 to 200 characters'])
  t.same(await errorsOf({ name: 'x'.repeat(201), role: 'auditor' }), ['/name must be 1 to 200 characters'])
  t.same(await errorsOf({ name: 'line\nbreak', role: 'auditor' }), ['/name must not contain control characters'])
  t.same(await errorsOf({ name: 42 as unknown as string, role: 'auditor' }), ['/name must be a string'])
  t.same(await errorsOf({ name: 'ok', role: 'root' as Role }), [roleError])
  t.same(await errorsOf({ name: 'ok', role: 'read' as Role }), [roleError], 'the old scope names are not roles')
  t.same(await errorsOf({ name: 'ok', role: undefined as unknown as Role }), [roleError], 'a role is required')
  t.same(await errorsOf({ name: 'ok', role: 'auditor', expiresAt: now() }), ['/expires_at must be in the future'])
  t.same(await errorsOf({ name: 'ok', role: 'auditor', expiresAt: new Date('nonsense') }), ['/expires_at must be a date and time'])
  t.same(await errorsOf({ name: '', role: 'root' as Role, expiresAt: new Date(0) }), [
    '/name must be 1 to 200 characters',
    roleError,
    '/expires_at must be in the future',
  ])
  t.same(await errorsOf({ name: '', role: 'owner', tenantId: 'physics', expiresAt: new Date(0) }), [
    '/name must be 1 to 200 characters',
    '/tenant_id owner keys belong to central IT: leave tenant_id out (or null)',
    '/expires_at must be in the future',
  ])
  t.same(await database.db.selectFrom('api_keys').select('id').execute(), [], 'nothing stored')
  const longest = await service.createKey(fullAccess, { name: 'é'.repeat(200), role: 'owner', expiresAt: new Date(now().getTime() + 1) })
  t.equal(longest.view.name.length, 200, '200 characters is allowed')
})

t.test('last use is recorded, at most once a minute, without holding up the request', async (t) => {
  const { service, touches, advance, now, database } = await setup(t, { cacheTtlMs: 1_000 })
  const { key, view } = await service.createKey(fullAccess, { name: 'busy', role: 'auditor' })
  await service.authenticate(key)
  t.equal(touches.length, 1)
  await Promise.all(touches)
  t.same((await service.getKey(fullAccess, view.id))?.lastUsedAt, now())
  const first = now()
  for (let i = 0; i < 59; i++) {
    advance(1_000)
    t.ok(await service.authenticate(key))
  }
  t.equal(touches.length, 1, 'not written again within the minute')
  advance(1_000)
  await service.authenticate(key)
  t.equal(touches.length, 2, 'written again after a minute')
  await Promise.all(touches)
  t.same((await service.getKey(fullAccess, view.id))?.lastUsedAt, now())
  t.not(now().getTime(), first.getTime())

  // A failing write is logged, never thrown into the request.
  let logged!: (line: string) => void
  const warning = new Promise<string>((resolve) => (logged = resolve))
  const failing = createApiKeyService({
    store: {
      ...createApiKeyStore(database.db),
      findActiveBySha256: async () => ({ ...view, lastUsedAt: null }),
      touchLastUsed: async () => {
        throw new Error('database down')
      },
    },
    configKeys: [],
    logger: pino({ level: 'warn' }, { write: (line: string) => logged(line) }),
  })
  t.ok(await failing.authenticate(key), 'authenticated though recording the use fails')
  t.match(JSON.parse(await warning), { level: 40, key_id: view.id, msg: 'cannot record API key use', err: { message: 'database down' } })
})

t.test('a database failure is an error, not a refusal, and is not cached', async (t) => {
  const { service, database } = await setup(t)
  const { key } = await service.createKey(fullAccess, { name: 'outage', role: 'auditor' })
  await database.kill()
  await t.rejects(service.authenticate(key))
  await t.rejects(service.authenticate(key), 'asked again: the failure was not cached')
})
