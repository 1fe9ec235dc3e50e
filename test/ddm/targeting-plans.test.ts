// The per-device reads of an enrollment keep one plan per connection on PostgreSQL: the
// declaration-set read has a large targeting predicate (smart groups) that took 5 ms to plan,
// and it was planned on every call while it named the device as `= any($1)`.
import { sql } from 'kysely'
import t from 'tap'
import { openPostgresDatabase } from '../../src/db/database.js'
import { createDeclarationSetStore } from '../../src/ddm/declaration-set-store.js'
import { createUserChannelStore } from '../../src/ddm/user-channel-store.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'

t.test(
  "one device's declaration set and user channels are read with a kept (generic) plan",
  { skip: testBackend !== 'postgres' && 'PostgreSQL pass only (PGlite does not prepare statements)' },
  async (t) => {
    const created = await createTestDatabase(t)
    // One connection, so every read below is on the one whose pg_prepared_statements we look at.
    const database = openPostgresDatabase({ connectionString: created.url!, poolMax: 1 })
    t.teardown(() => database.close())
    const db = database.db
    // A fleet's worth of rows: on a handful every plan is cheap and the generic one wins anyway.
    await sql`insert into devices (id, udid, serial_number) select 'dev' || i, 'dev' || i, 'SER' || i from generate_series(1, 20000) i`.execute(db)
    await sql`insert into enrollments (id, device_id, channel, enabled) select id, id, 'device', true from devices`.execute(db)
    await sql`analyze`.execute(db)
    const sets = createDeclarationSetStore(db)
    const channels = createUserChannelStore(db)
    for (let i = 1; i <= 12; i++) {
      t.equal((await sets.devicesIn({ deviceIds: [`dev${i}`] }))[0]?.deviceId, `dev${i}`)
      t.same(await channels.channelsOf([`dev${i}`]), [])
    }
    const { rows } = await sql<{ statement: string; generic_plans: string; custom_plans: string }>`
      select statement, generic_plans::text, custom_plans::text from pg_prepared_statements
      where statement like '%"declarationIds"%' or statement like '%"deviceUserEmail"%'`.execute(db)
    t.equal(rows.length, 2, 'both reads are prepared statements')
    for (const row of rows) {
      const which = row.statement.includes('"declarationIds"') ? 'declaration-set read' : 'user channels read'
      t.ok(Number(row.generic_plans) >= 6, `${which}: the generic plan is used (${row.generic_plans} generic, ${row.custom_plans} custom)`)
      t.ok(Number(row.custom_plans) <= 5, `${which}: at most PostgreSQL's five custom plans before it settles`)
    }
  },
)
