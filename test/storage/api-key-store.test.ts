import { createHash } from 'node:crypto'
import t from 'tap'
import { createApiKeyStore, type NewApiKey } from '../../src/storage/api-key-store.js'
import { createTestDatabase } from '../helpers/database.js'

const created = new Date('2030-01-01T00:00:00.000Z')
const later = (seconds: number) => new Date(created.getTime() + seconds * 1000)
const digestOf = (text: string) => createHash('sha256').update(text).digest()

function newKey(id: string, overrides: Partial<NewApiKey> = {}): NewApiKey {
  return { id, name: `key ${id}`, scopes: ['read'], keySha256: digestOf(id), createdAt: created, expiresAt: null, ...overrides }
}

t.test('a key is stored and found by its digest, with its columns intact', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  const inserted = await store.insertKey(newKey('aaaaaaaaaaa1', { name: 'CI déploiement', scopes: ['read', 'admin'], expiresAt: later(3600) }))
  t.same(inserted, {
    id: 'aaaaaaaaaaa1',
    name: 'CI déploiement',
    scopes: ['read', 'admin'],
    createdAt: created,
    lastUsedAt: null,
    expiresAt: later(3600),
    revokedAt: null,
  })
  t.same(await store.findActiveBySha256(digestOf('aaaaaaaaaaa1'), later(1)), inserted)
  t.same(await store.getKey('aaaaaaaaaaa1'), inserted)
  t.equal(await store.findActiveBySha256(digestOf('unknown'), later(1)), undefined)
  t.equal(await store.getKey('zzzzzzzzzzzz'), undefined)
  t.notOk('keySha256' in inserted, 'the digest is never read back')
})

t.test('expired and revoked keys are not active', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(newKey('expiring0001', { expiresAt: later(60) }))
  await store.insertKey(newKey('revoking0001'))
  t.ok(await store.findActiveBySha256(digestOf('expiring0001'), later(59)))
  t.equal(await store.findActiveBySha256(digestOf('expiring0001'), later(60)), undefined, 'expired at its expiry time')

  t.equal(await store.revokeKey('revoking0001', later(10)), 'revoked')
  t.equal(await store.revokeKey('revoking0001', later(20)), 'already_revoked')
  t.equal(await store.revokeKey('nosuchkey001', later(20)), 'not_found')
  t.equal(await store.findActiveBySha256(digestOf('revoking0001'), later(11)), undefined)
  t.same((await store.getKey('revoking0001'))?.revokedAt, later(10), 'the first revocation time is kept')
})

t.test('lists oldest first; revoked keys only when asked', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(newKey('second000001', { createdAt: later(2) }))
  await store.insertKey(newKey('first0000001', { createdAt: later(1) }))
  await store.insertKey(newKey('revoked00001', { createdAt: later(3) }))
  await store.revokeKey('revoked00001', later(4))
  t.same((await store.listKeys({ includeRevoked: false })).map((k) => k.id), ['first0000001', 'second000001'])
  t.same((await store.listKeys({ includeRevoked: true })).map((k) => k.id), ['first0000001', 'second000001', 'revoked00001'])
})

t.test('last use is recorded and never moves backwards', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(newKey('used00000001'))
  await store.touchLastUsed('used00000001', later(100))
  t.same((await store.getKey('used00000001'))?.lastUsedAt, later(100))
  await store.touchLastUsed('used00000001', later(50))
  t.same((await store.getKey('used00000001'))?.lastUsedAt, later(100), 'an older write from a slower replica is ignored')
})

t.test('the database enforces the key format and one row per digest', async (t) => {
  const database = await createTestDatabase(t)
  const store = createApiKeyStore(database.db)
  await store.insertKey(newKey('unique000001'))
  await t.rejects(store.insertKey(newKey('unique000002', { keySha256: digestOf('unique000001') })), /api_keys_key_sha256_key|duplicate key/)
  await t.rejects(store.insertKey(newKey('Not-An-Id')), /check constraint/)
  await t.rejects(store.insertKey(newKey('badscope0001', { scopes: ['root' as 'read'] })), /check constraint/)
  await t.rejects(store.insertKey(newKey('shortdigest1', { keySha256: Buffer.alloc(16) })), /check constraint/)
})
