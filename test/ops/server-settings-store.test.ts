import t from 'tap'
import { fullAccess } from '../../src/model/access.js'
import { createServerSettingsStore } from '../../src/ops/server-settings-store.js'
import { createTestDatabase } from '../helpers/database.js'

t.test('settings round-trip any JSON value', async (t) => {
  const database = await createTestDatabase(t)
  const store = createServerSettingsStore(database.db)
  t.equal(await store.getSetting('missing'), undefined)
  const values: unknown[] = ['text', 42, true, null, [1, 'two', { three: 3 }], { nested: { list: [] } }]
  for (const value of values) {
    await store.putSetting(fullAccess, 'example.value', value)
    t.same(await store.getSetting('example.value'), value, JSON.stringify(value))
  }
})

t.test('the installation has an id from its first migration', async (t) => {
  const database = await createTestDatabase(t)
  const id = await createServerSettingsStore(database.db).getSetting('installation_id')
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
})

t.test('keys are checked by the database', async (t) => {
  const database = await createTestDatabase(t)
  const store = createServerSettingsStore(database.db)
  await t.rejects(store.putSetting(fullAccess, 'Bad Key!', 1), /check constraint/)
  t.equal(await store.getSetting('Bad Key!'), undefined, 'nothing written')
})
