import { createHash } from 'node:crypto'
import t from 'tap'
import { createApiKeyStore, type NewApiKey } from '../../src/access/api-key-store.js'
import { fullAccess, tenantsAccess, type Role } from '../../src/model/access.js'
import { createTestDatabase } from '../helpers/database.js'

const created = new Date('2030-01-01T00:00:00.000Z')
const later = (seconds: number) => new Date(created.getTime() + seconds * 1000)
const digestOf = (text: string) => createHash('sha256').update(text).digest()

function newKey(id: string, overrides: Partial<NewApiKey> = {}): NewApiKey {
  return { id, name: `key ${id}`, role: 'auditor', tenantId: null, keySha256: digestOf(id), createdAt: created, expiresAt: null, ...overrides }
}

t.test('a key is stored and found by its digest, with its columns intact', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await database.db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null }).execute()
  const inserted = await store.insertKey(
    fullAccess,
    newKey('aaaaaaaaaaa1', { name: 'CI déploiement', role: 'helpdesk', tenantId: 'physics', expiresAt: later(3600) }),
  )
  if (!inserted) throw new Error('not inserted')
  t.same(inserted, {
    id: 'aaaaaaaaaaa1',
    name: 'CI déploiement',
    role: 'helpdesk',
    tenantId: 'physics',
    createdAt: created,
    lastUsedAt: null,
    expiresAt: later(3600),
    revokedAt: null,
  })
  t.same(await store.findActiveBySha256(digestOf('aaaaaaaaaaa1'), later(1)), inserted)
  t.same(await store.getKey(fullAccess, 'aaaaaaaaaaa1'), inserted)
  t.equal(await store.findActiveBySha256(digestOf('unknown'), later(1)), undefined)
  t.equal(await store.getKey(fullAccess, 'zzzzzzzzzzzz'), undefined)
  t.notOk('keySha256' in inserted, 'the digest is never read back')
})

t.test('expired and revoked keys are not active', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(fullAccess, newKey('expiring0001', { expiresAt: later(60) }))
  await store.insertKey(fullAccess, newKey('revoking0001'))
  t.ok(await store.findActiveBySha256(digestOf('expiring0001'), later(59)))
  t.equal(await store.findActiveBySha256(digestOf('expiring0001'), later(60)), undefined, 'expired at its expiry time')

  t.equal(await store.revokeKey(fullAccess, 'revoking0001', later(10)), 'revoked')
  t.equal(await store.revokeKey(fullAccess, 'revoking0001', later(20)), 'already_revoked')
  t.equal(await store.revokeKey(fullAccess, 'nosuchkey001', later(20)), 'not_found')
  t.equal(await store.findActiveBySha256(digestOf('revoking0001'), later(11)), undefined)
  t.same((await store.getKey(fullAccess, 'revoking0001'))?.revokedAt, later(10), 'the first revocation time is kept')
})

t.test('lists oldest first; revoked keys only when asked', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(fullAccess, newKey('second000001', { createdAt: later(2) }))
  await store.insertKey(fullAccess, newKey('first0000001', { createdAt: later(1) }))
  await store.insertKey(fullAccess, newKey('revoked00001', { createdAt: later(3) }))
  await store.revokeKey(fullAccess, 'revoked00001', later(4))
  t.same(
    (await store.listKeys(fullAccess, { includeRevoked: false })).map((k) => k.id),
    ['first0000001', 'second000001'],
  )
  t.same(
    (await store.listKeys(fullAccess, { includeRevoked: true })).map((k) => k.id),
    ['first0000001', 'second000001', 'revoked00001'],
  )
})

t.test('last use is recorded and never moves backwards', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(fullAccess, newKey('used00000001'))
  await store.touchLastUsed('used00000001', later(100))
  t.same((await store.getKey(fullAccess, 'used00000001'))?.lastUsedAt, later(100))
  await store.touchLastUsed('used00000001', later(50))
  t.same((await store.getKey(fullAccess, 'used00000001'))?.lastUsedAt, later(100), 'an older write from a slower replica is ignored')
})

t.test('the database enforces the key format and one row per digest', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(fullAccess, newKey('unique000001'))
  await t.rejects(store.insertKey(fullAccess, newKey('unique000002', { keySha256: digestOf('unique000001') })), /api_keys_key_sha256_key|duplicate key/)
  await t.rejects(store.insertKey(fullAccess, newKey('Not-An-Id')), /check constraint/)
  await t.rejects(store.insertKey(fullAccess, newKey('badrole00001', { role: 'root' as Role })), /check constraint/)
  await t.rejects(store.insertKey(fullAccess, newKey('badrole00002', { role: 'read' as Role })), /check constraint/, 'the old scope names are not roles')
  await database.db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null }).execute()
  await t.rejects(
    store.insertKey(fullAccess, newKey('tenantowner1', { role: 'owner', tenantId: 'physics' })),
    /api_keys_owner_is_central|check constraint/,
    'owner keys are central',
  )
  await t.rejects(store.insertKey(fullAccess, newKey('shortdigest1', { keySha256: Buffer.alloc(16) })), /check constraint/)
})

t.test('a tenant scope reaches only the keys of its tenants; a key of an unknown tenant is not inserted', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await database.db
    .insertInto('tenants')
    .values([
      { id: 'physics', name: 'Physics', parent_id: null },
      { id: 'chemistry', name: 'Chemistry', parent_id: null },
    ])
    .execute()
  const physics = tenantsAccess(['physics'])
  const own = await store.insertKey(physics, newKey('physics00001', { role: 'admin', tenantId: 'physics', createdAt: later(1) }))
  t.equal(own?.tenantId, 'physics')
  await store.insertKey(fullAccess, newKey('physics00002', { role: 'auditor', tenantId: 'physics', createdAt: later(2) }))
  await store.insertKey(fullAccess, newKey('chemistry001', { role: 'admin', tenantId: 'chemistry', createdAt: later(3) }))
  await store.insertKey(fullAccess, newKey('central00001', { role: 'owner', tenantId: null, createdAt: later(4) }))

  t.same(
    (await store.listKeys(physics, { includeRevoked: true })).map((k) => k.id),
    ['physics00001', 'physics00002'],
  )
  t.same(
    (await store.listKeys(tenantsAccess(['chemistry']), { includeRevoked: true })).map((k) => k.id),
    ['chemistry001'],
  )
  t.same(
    (await store.listKeys(tenantsAccess([]), { includeRevoked: true })).map((k) => k.id),
    [],
    'a scope of no tenants sees nothing',
  )
  t.same(
    (await store.listKeys(fullAccess, { includeRevoked: false })).map((k) => k.id),
    ['physics00001', 'physics00002', 'chemistry001', 'central00001'],
  )
  t.equal((await store.getKey(physics, 'physics00002'))?.role, 'auditor')
  t.equal(await store.getKey(physics, 'chemistry001'), undefined, "another tenant's key")
  t.equal(await store.getKey(physics, 'central00001'), undefined, 'a central key')

  t.equal(await store.revokeKey(physics, 'chemistry001', later(10)), 'not_found')
  t.equal(await store.revokeKey(physics, 'central00001', later(10)), 'not_found')
  t.equal((await store.getKey(fullAccess, 'chemistry001'))?.revokedAt, null, 'left alone')
  t.equal((await store.getKey(fullAccess, 'central00001'))?.revokedAt, null, 'left alone')
  t.equal(await store.revokeKey(physics, 'physics00001', later(11)), 'revoked')
  t.equal(await store.revokeKey(physics, 'physics00001', later(12)), 'already_revoked')
  t.same((await store.getKey(physics, 'physics00001'))?.revokedAt, later(11))
  t.equal(await store.revokeKey(fullAccess, 'chemistry001', later(13)), 'revoked')
  t.equal(await store.revokeKey(physics, 'chemistry001', later(14)), 'not_found', 'not already_revoked: existence does not leak')

  t.equal(await store.insertKey(fullAccess, newKey('nosuchtenant', { role: 'admin', tenantId: 'biology' })), undefined, 'the tenant does not exist')
  t.equal(await store.getKey(fullAccess, 'nosuchtenant'), undefined, 'nothing was stored')
  t.equal(await store.findActiveBySha256(digestOf('nosuchtenant'), later(20)), undefined)
})

t.test('an insert or revocation with an actor writes one audit row in the same transaction', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await database.db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null }).execute()
  const actor = (action: string) => ({
    principalId: 'config:0',
    principalName: 'config key 1',
    principalSource: 'config' as const,
    requestId: `req-${action}`,
    action,
    recorded: false,
  })
  await store.insertKey(tenantsAccess(['physics'], actor('createApiKey')), newKey('audited00001', { role: 'helpdesk', tenantId: 'physics' }))
  t.equal(
    await store.insertKey(tenantsAccess(['physics'], actor('createApiKey')), newKey('audited00002', { role: 'helpdesk', tenantId: 'biology' })),
    undefined,
  )
  t.equal(await store.revokeKey(tenantsAccess(['physics'], actor('revokeApiKey')), 'audited00001', later(1)), 'revoked')
  t.equal(await store.revokeKey(tenantsAccess(['physics'], actor('revokeApiKey')), 'audited00001', later(2)), 'already_revoked')
  const rows = await database.db
    .selectFrom('audit_events')
    .select(['action', 'tenant_id', 'target_type', 'target_id', 'principal_id', 'request_id', 'details'])
    .orderBy('id')
    .execute()
  t.match(rows, [
    {
      action: 'createApiKey',
      tenant_id: 'physics',
      target_type: 'api_key',
      target_id: 'audited00001',
      principal_id: 'config:0',
      details: { name: 'key audited00001', role: 'helpdesk' },
    },
    { action: 'revokeApiKey', tenant_id: 'physics', target_type: 'api_key', target_id: 'audited00001', principal_id: 'config:0', details: null },
    {
      action: 'revokeApiKey',
      tenant_id: 'physics',
      target_type: 'api_key',
      target_id: 'audited00001',
      principal_id: 'config:0',
      details: { already_revoked: true },
    },
  ])
  t.equal(rows.length, 3, 'the failed insert wrote nothing; the repeated revocation (a success with nothing to do) is audited as such')
})
