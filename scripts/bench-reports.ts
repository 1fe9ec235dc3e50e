// Report queries on a large history, in-process against the real store: the device-days
// report (billing) and the device counts, for N devices in 20 tenants over a year (a third
// re-enrolled once, some moved between tenants), on PGlite or PostgreSQL.
// Run: npx tsx scripts/bench-reports.ts [--backend postgres|pglite] [--devices 10000]
import { sql } from 'kysely'
import { fullAccess, tenantsAccess } from '../src/model/access.js'
import { createReportStore } from '../src/tenancy/report-store.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const backend = args.get('backend') ?? 'postgres'
const devices = Number(args.get('devices') ?? 10_000)
process.env['ORCHARD_TEST_BACKEND'] = backend
const { createTestDatabase } = await import('../test/helpers/database.js')

const cleanups: Array<() => unknown> = []
const database = await createTestDatabase({ teardown: (fn) => void cleanups.push(fn) })
const db = database.db
try {
  await sql`insert into tenants (id, name) select 't' || g, 'Tenant ' || g from generate_series(0, 19) g`.execute(db)
  await sql`insert into devices (id, udid, serial_number, tenant_id, kind, product_name, os_version)
    select 'dev-' || g, 'dev-' || g, 'SER' || g, 't' || (g % 20), case when g % 4 = 0 then 'function' else 'work' end, 'iPad13,' || (g % 5), '18.' || (g % 3)
    from generate_series(1, ${devices}) g`.execute(db)
  // Enrolled during 2025; a third checked out in June 2026 and enrolled again two hours later; 5% moved in September.
  await sql`insert into device_tenancy (device_id, tenant_id, started_at, ended_at)
    select 'dev-' || g, 't' || (g % 20), timestamptz '2025-01-01' + (g % 365) * interval '1 day',
      case when g % 3 = 0 then timestamptz '2026-06-01' + (g % 30) * interval '1 hour' when g % 20 = 1 then timestamptz '2026-09-01' end
    from generate_series(1, ${devices}) g`.execute(db)
  await sql`insert into device_tenancy (device_id, tenant_id, started_at)
    select 'dev-' || g, 't' || (g % 20), timestamptz '2026-06-01' + (g % 30) * interval '1 hour' + interval '2 hours' from generate_series(1, ${devices}) g where g % 3 = 0`.execute(
    db,
  )
  await sql`insert into device_tenancy (device_id, tenant_id, started_at)
    select 'dev-' || g, 't' || ((g + 1) % 20), timestamptz '2026-09-01' from generate_series(1, ${devices}) g where g % 20 = 1 and g % 3 <> 0`.execute(db)
  await sql`analyze`.execute(db)

  const store = createReportStore(db)
  const now = new Date('2026-12-31T23:59:59Z')
  const time = async (label: string, run: () => Promise<unknown>) => {
    await run()
    const runs = 5
    const started = process.hrtime.bigint()
    for (let i = 0; i < runs; i++) await run()
    const ms = Number(process.hrtime.bigint() - started) / 1e6 / runs
    console.log(`${backend}: ${label}: ${ms.toFixed(1)} ms`)
  }
  let total = 0
  await time(`device-days, 2026, all ${devices} devices`, async () => {
    total = (await store.deviceDays(fullAccess, { from: '2026-01-01', to: '2026-12-31', now })).reduce((sum, row) => sum + row.days, 0)
  })
  console.log(`${backend}: ${total} device-days`)
  await time('device-days, 2026, one tenant', () => store.deviceDays(tenantsAccess(['t3']), { from: '2026-01-01', to: '2026-12-31', now }))
  await time(`device counts, all ${devices} devices`, () => store.deviceCounts(fullAccess, {}, now))
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup()
}
