// PGlite's prepared statements (src/db/pglite-prepared.ts): named once per session, closed when
// planned again under a new name, and all dropped when the session's hour is over. The PGlite
// pass only: the PostgreSQL pass would test the same code again.
import { PGlite } from '@electric-sql/pglite'
import t from 'tap'
import { pgliteTypeOptions } from '../../src/db/database.js'
import { PreparedStatements } from '../../src/db/pglite-prepared.js'
import { testBackend } from '../helpers/database.js'
import { preparedLifetimeSeconds, preparedStatement, preparedStatementName, replanAfterUses } from '../../src/db/statement-names.js'

t.test(
  'statements are prepared once, and all prepared again after the lifetime, between transactions',
  { skip: testBackend !== 'pglite' && 'PGlite pass only' },
  async (t) => {
    const pglite = await PGlite.create(pgliteTypeOptions)
    t.teardown(() => pglite.close())
    let now = 1_000_000
    const statements = new PreparedStatements(pglite, () => now)
    const names = async () => (await pglite.query<{ name: string }>('select name from pg_prepared_statements order by name')).rows.map((row) => row.name)
    const marked = `${preparedStatement} select $1::int + 1 as n`
    const unmarked = 'select $1::text as s'
    t.same((await statements.run(marked, [1])).rows, [{ n: 2 }])
    t.same((await statements.run(unmarked, ['a'])).rows, [{ s: 'a' }])
    t.same(await names(), [preparedStatementName(marked, 1)], 'a marked statement from its first use, an unmarked one not yet')
    await statements.run(unmarked, ['b'])
    t.same(await names(), [preparedStatementName(marked, 1), preparedStatementName(unmarked, 2)].sort(), 'the unmarked one from its second use')

    await statements.run('begin', [])
    now += preparedLifetimeSeconds * 1_000
    t.same((await statements.run(marked, [2])).rows, [{ n: 3 }])
    t.equal((await names()).length, 2, 'kept while a transaction is open')
    await statements.run('commit', [])
    t.same((await statements.run(marked, [3])).rows, [{ n: 4 }], 'the hour is over: deallocated, and prepared again')
    t.same(await names(), [preparedStatementName(marked, 1)])
  },
)

t.test('a statement planned again under a new name closes the older one', { skip: testBackend !== 'pglite' && 'PGlite pass only' }, async (t) => {
  const pglite = await PGlite.create(pgliteTypeOptions)
  t.teardown(() => pglite.close())
  const statements = new PreparedStatements(pglite)
  const text = `${preparedStatement} select $1::int as n`
  for (let use = 1; use <= replanAfterUses[0] + 1; use += 1) await statements.run(text, [use])
  const { rows } = await pglite.query<{ name: string }>('select name from pg_prepared_statements')
  t.same(
    rows.map((row) => row.name),
    [preparedStatementName(text, replanAfterUses[0] + 1)],
  )
})

t.test(
  'a statement that does not parse is not kept as prepared; the next valid one runs',
  { skip: testBackend !== 'pglite' && 'PGlite pass only' },
  async (t) => {
    const pglite = await PGlite.create(pgliteTypeOptions)
    t.teardown(() => pglite.close())
    const statements = new PreparedStatements(pglite)
    const broken = `${preparedStatement} select $1::int from nowhere_at_all`
    await t.rejects(statements.run(broken, [1]), { code: '42P01' })
    await t.rejects(statements.run(broken, [1]), { code: '42P01' }, 'parsed again, fails again')
    await pglite.exec('create table nowhere_at_all (n int)')
    t.same((await statements.run(broken, [1])).rows, [], 'once the table exists it runs')
  },
)
