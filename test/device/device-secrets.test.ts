// Device secrets stored in clear before migration 0010 are sealed at start-up, once; a
// secret sealed for one row does not open for another; without a master key nothing opens.
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import t from 'tap'
import { createSecretBox } from '../../src/crypto/secret-box.js'
import { createDeviceSecrets } from '../../src/device/device-secrets.js'
import { fullAccess } from '../../src/model/access.js'
import { createDeviceSecretStore } from '../../src/device/device-secret-store.js'
import { testLogger } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

async function seedClearRows(db: Awaited<ReturnType<typeof createTestDatabase>>['db'], count: number) {
  for (let i = 0; i < count; i++) {
    const id = `DEVICE-${i}`
    await sql`insert into devices (id, udid, topic) values (${id}, ${id}, 'com.apple.mgmt.test')`.execute(db)
    await sql`insert into enrollments (id, device_id, channel, unlock_token) values (${id}, ${id}, 'device', ${Buffer.from(`unlock-${i}`)})`.execute(db)
    await sql`insert into bootstrap_tokens (device_id, token) values (${id}, ${Buffer.from(`bootstrap-${i}`)})`.execute(db)
  }
}

t.test('start-up seals clear UnlockTokens and BootstrapTokens, in batches, and only once', async (t) => {
  const database = await createTestDatabase(t)
  await seedClearRows(database.db, 3)
  const box = createSecretBox([randomBytes(32)])
  const secrets = createDeviceSecrets({ store: createDeviceSecretStore(database.db), secretBox: box, logger: testLogger() })
  t.same(await secrets.sealClearSecrets(), { sealed: 6, left: 0 })
  const enrollments = await database.db.selectFrom('enrollments').select(['id', 'unlock_token', 'unlock_token_sealed']).orderBy('id').execute()
  const bootstrap = await database.db.selectFrom('bootstrap_tokens').select(['device_id', 'token', 'token_sealed']).orderBy('device_id').execute()
  t.same(
    enrollments.map((row) => row.unlock_token),
    [null, null, null],
    'no clear UnlockToken is left',
  )
  t.same(
    bootstrap.map((row) => row.token),
    [null, null, null],
    'no clear BootstrapToken is left',
  )
  for (const [i, row] of enrollments.entries()) t.notOk(row.unlock_token_sealed!.includes(Buffer.from(`unlock-${i}`)), 'not readable in the sealed form')
  t.same(
    await secrets.reveal(fullAccess, 'DEVICE-1'),
    { deviceId: 'DEVICE-1', unlockToken: Buffer.from('unlock-1'), bootstrapToken: Buffer.from('bootstrap-1') },
    'they open again, for their own rows',
  )
  t.same(await secrets.getBootstrapToken('DEVICE-2'), Buffer.from('bootstrap-2'))
  t.same(await secrets.unlockTokenFor(fullAccess, 'DEVICE-0'), Buffer.from('unlock-0'))
  t.same(await secrets.sealClearSecrets(), { sealed: 0, left: 0 }, 'the next start finds nothing to seal')

  // A sealed value moved to another row does not open there.
  await sql`update enrollments set unlock_token_sealed = (select unlock_token_sealed from enrollments where id = 'DEVICE-0') where id = 'DEVICE-1'`.execute(
    database.db,
  )
  await t.rejects(secrets.unlockTokenFor(fullAccess, 'DEVICE-1'), /./, 'a token pasted into another row does not open')
})

t.test('without a master key the clear rows stay, and are reported', async (t) => {
  const database = await createTestDatabase(t)
  await seedClearRows(database.db, 1)
  const secrets = createDeviceSecrets({ store: createDeviceSecretStore(database.db), secretBox: null, logger: testLogger() })
  t.same(await secrets.sealClearSecrets(), { sealed: 0, left: 1 })
  t.same(
    await secrets.reveal(fullAccess, 'DEVICE-0'),
    { deviceId: 'DEVICE-0', unlockToken: null, bootstrapToken: null },
    'a clear legacy value is never handed out',
  )
  t.equal(await secrets.getBootstrapToken('DEVICE-0'), undefined)
  await sql`update enrollments set unlock_token_sealed = ${randomBytes(120)} where id = 'DEVICE-0'`.execute(database.db)
  await t.rejects(secrets.reveal(fullAccess, 'DEVICE-0'), { code: 'not_ready' }, 'a sealed secret cannot be opened without the key')
})
