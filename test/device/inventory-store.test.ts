// Inventory lists (apps, profiles, certificates) write only what differs from the stored rows:
// a list that repeats what is stored leaves every row as it was (same row version), a changed
// item is rewritten, a new one inserted, a missing one deleted.
import { sql } from 'kysely'
import t from 'tap'
import { createInventoryStore } from '../../src/device/inventory-store.js'
import type { ApplicationFacts } from '../../src/mdm/inventory.js'
import { createTestDatabase } from '../helpers/database.js'

const app = (n: number, version = '1.0'): ApplicationFacts => ({
  identifier: `com.example.app${n}`,
  name: `App ${n}`,
  version,
  shortVersion: version,
  bundleSize: 1000 + n,
  isManaged: n % 2 === 0,
  attributes: { Identifier: `com.example.app${n}`, Version: version },
})

t.test('an app, profile and certificate list rewrites only the rows that changed', async (t) => {
  const { db } = await createTestDatabase(t)
  await sql`insert into devices (id, udid, topic) values ('D1', 'D1', 'com.apple.mgmt.test')`.execute(db)
  await sql`insert into enrollments (id, device_id, channel) values ('D1', 'D1', 'device')`.execute(db)
  const store = createInventoryStore(db)
  // xmin: the transaction that wrote the row's current version.
  const versions = async (table: 'installed_applications' | 'installed_profiles' | 'installed_certificates', key: 'identifier' | 'sha256') => {
    const { rows } = await sql<{
      key: string
      xmin: string
    }>`select ${sql.ref(key)} as key, xmin::text as xmin from ${sql.table(table)} where enrollment_id = 'D1'`.execute(db)
    return new Map(rows.map((row) => [row.key, row.xmin]))
  }

  const apps = Array.from({ length: 5 }, (_, n) => app(n))
  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: apps })
  const first = await versions('installed_applications', 'identifier')
  t.equal(first.size, 5)
  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: apps })
  t.same(await versions('installed_applications', 'identifier'), first, 'the same list again writes no row')

  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: [app(0), app(1, '2.0'), app(2), app(3), app(5)] })
  const after = await versions('installed_applications', 'identifier')
  t.same([...after.keys()].sort(), ['com.example.app0', 'com.example.app1', 'com.example.app2', 'com.example.app3', 'com.example.app5'])
  t.equal(after.get('com.example.app0'), first.get('com.example.app0'), 'unchanged: kept')
  t.equal(after.get('com.example.app3'), first.get('com.example.app3'), 'unchanged: kept')
  t.not(after.get('com.example.app1'), first.get('com.example.app1'), 'a new version: rewritten')
  const stored = await db
    .selectFrom('installed_applications')
    .select(['version', 'short_version'])
    .where('identifier', '=', 'com.example.app1')
    .executeTakeFirstOrThrow()
  t.same(stored, { version: '2.0', short_version: '2.0' })
  // Only the attributes differ: rewritten too.
  await store.applyInventory('D1', 'D1', {
    kind: 'applications',
    applications: [app(0), app(1, '2.0'), app(2), { ...app(3), attributes: { Identifier: 'com.example.app3', Version: '1.0', Extra: true } }, app(5)],
  })
  const attributes = await versions('installed_applications', 'identifier')
  t.not(attributes.get('com.example.app3'), after.get('com.example.app3'))
  t.equal(attributes.get('com.example.app2'), after.get('com.example.app2'))

  const profile = (n: number, name = `Profile ${n}`) => ({
    identifier: `com.example.profile${n}`,
    uuid: `U${n}`,
    displayName: name,
    isManaged: true,
    attributes: { n },
  })
  await store.applyInventory('D1', 'D1', { kind: 'profiles', profiles: [profile(1), profile(2)] })
  const profiles = await versions('installed_profiles', 'identifier')
  await store.applyInventory('D1', 'D1', { kind: 'profiles', profiles: [profile(1), profile(2, 'Renamed')] })
  const renamed = await versions('installed_profiles', 'identifier')
  t.equal(renamed.get('com.example.profile1'), profiles.get('com.example.profile1'), 'unchanged profile kept')
  t.not(renamed.get('com.example.profile2'), profiles.get('com.example.profile2'), 'renamed profile rewritten')

  const certificate = (n: number, isIdentity = false) => ({
    sha256: `${n}`.repeat(64).slice(0, 64),
    commonName: `Cert ${n}`,
    isIdentity,
    data: Buffer.from([n]),
  })
  await store.applyInventory('D1', 'D1', { kind: 'certificates', certificates: [certificate(1), certificate(2)] })
  const certificates = await versions('installed_certificates', 'sha256')
  await store.applyInventory('D1', 'D1', { kind: 'certificates', certificates: [certificate(1), certificate(2, true)] })
  const changed = await versions('installed_certificates', 'sha256')
  t.equal(changed.get(certificate(1).sha256), certificates.get(certificate(1).sha256))
  t.not(changed.get(certificate(2).sha256), certificates.get(certificate(2).sha256))
  await store.applyInventory('D1', 'D1', { kind: 'certificates', certificates: [certificate(2, true)] })
  t.same([...(await versions('installed_certificates', 'sha256')).keys()], [certificate(2).sha256], 'a certificate no longer listed is deleted')
})

t.test('a list sent again unchanged is not compared row by row; its digest goes with the channel', async (t) => {
  const { db } = await createTestDatabase(t)
  await sql`insert into devices (id, udid, topic) values ('D1', 'D1', 'com.apple.mgmt.test')`.execute(db)
  await sql`insert into enrollments (id, device_id, channel) values ('D1', 'D1', 'device')`.execute(db)
  const store = createInventoryStore(db)
  const identifiers = async () =>
    (await sql<{ identifier: string }>`select identifier from installed_applications where enrollment_id = 'D1' order by identifier`.execute(db)).rows.map(
      (row) => row.identifier,
    )
  const listA = [app(1), app(2)]
  const listB = [app(1)]
  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: listA })
  // A row the statement would delete if it compared the lists (only it writes them, so a real
  // one cannot appear): sent again unchanged, the list is left alone.
  await sql`insert into installed_applications (enrollment_id, identifier, attributes) values ('D1', 'com.example.planted', '{}')`.execute(db)
  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: listA })
  t.same(await identifiers(), ['com.example.app1', 'com.example.app2', 'com.example.planted'], 'the same answer again: skipped')
  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: listB })
  t.same(await identifiers(), ['com.example.app1'], 'a different answer: compared and written')
  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: listA })
  t.same(await identifiers(), ['com.example.app1', 'com.example.app2'], 'the first answer again differs from the last one: written')
  await store.applyInventory('D1', 'D1', { kind: 'applications', applications: [] })
  t.same(await identifiers(), [], 'an empty list empties it')
  await store.applyInventory('D1', 'D1', { kind: 'profiles', profiles: [] })
  await store.applyInventory('D1', 'D1', { kind: 'certificates', certificates: [] })
  const digests = async () => (await sql<{ list: string }>`select list from inventory_list_digests where enrollment_id = 'D1' order by list`.execute(db)).rows
  t.same(await digests(), [{ list: 'applications' }, { list: 'certificates' }, { list: 'profiles' }])
  await sql`delete from enrollments where id = 'D1'`.execute(db)
  t.same(await digests(), [], 'deleted with the channel')
})
