// DDM status reports that arrive together are written together (one statement for several
// devices); each must land exactly as it would alone. Devices d1..d5 get their reports at the
// same time (gathered into batches); their twins e1..e5 get the same reports one after another.
// Every stored row, timeline event and inventory column of a device must equal its twin's. A
// report of a device deleted meanwhile fails alone; the others of its batch land.
import { sql } from 'kysely'
import { pino } from 'pino'
import t from 'tap'
import { createStatusChannel } from '../../src/ddm/status-channel.js'
import { createStatusStore, type StatusStore, type StatusWrite } from '../../src/ddm/status-store.js'
import { createUserChannelStore } from '../../src/ddm/user-channel-store.js'
import { createTestDatabase } from '../helpers/database.js'

const declarations = (entries: Array<Record<string, unknown>>) => ({
  activations: entries.filter((entry) => String(entry['identifier']).startsWith('act')),
  configurations: entries.filter((entry) => String(entry['identifier']).startsWith('cfg')),
  assets: [],
  management: [],
})

const state = (identifier: string, token: string, extra: Record<string, unknown> = {}) => ({
  identifier,
  active: true,
  valid: 'valid',
  'server-token': token,
  ...extra,
})

/** What each device already reported, then what it reports in the gathered round. */
const histories: Array<{ before: Record<string, unknown>[]; now: Record<string, unknown> }> = [
  // 1: a full report that drops an item and a declaration, changes the OS and an update item.
  {
    before: [
      {
        FullReport: true,
        StatusItems: {
          device: { 'operating-system': { version: '17.5', 'build-version': '21F79' }, model: { identifier: 'iPad13,1' } },
          passcode: { 'is-compliant': true },
          softwareupdate: { 'install-state': 'downloading', 'pending-version': { 'os-version': '18.1' } },
          management: { declarations: declarations([state('act1', 'a1'), state('cfg1', 'c1'), state('cfg2', 'c2')]) },
        },
      },
    ],
    now: {
      FullReport: true,
      StatusItems: {
        device: { 'operating-system': { version: '18.1', 'build-version': '22B83' }, model: { identifier: 'iPad13,1' } },
        softwareupdate: { 'install-state': 'none', 'pending-version': {} },
        management: {
          declarations: declarations([
            state('act1', 'a1'),
            state('cfg1', 'c1b', { valid: 'invalid', reasons: [{ code: 'Error.ConfigurationCannotBeApplied' }] }),
          ]),
        },
      },
    },
  },
  // 2: a partial report: one declaration removed, one app added to a list, one item changed.
  {
    before: [
      {
        FullReport: true,
        StatusItems: {
          device: { 'operating-system': { version: '18.0' } },
          app: { managed: { list: [{ identifier: 'com.example.one', state: 'managed' }] } },
          management: { declarations: declarations([state('act1', 'a1'), state('cfg9', 'c9')]) },
        },
      },
    ],
    now: {
      FullReport: false,
      StatusItems: {
        passcode: { 'is-compliant': false },
        app: { managed: { list: [{ identifier: 'com.example.two', state: 'installing' }] } },
        management: { declarations: declarations([{ identifier: 'cfg9', _removed: true }]) },
      },
    },
  },
  // 3: a first report (everything new).
  {
    before: [],
    now: {
      FullReport: true,
      StatusItems: {
        device: { 'operating-system': { version: '18.2', 'build-version': '22C152' }, model: { identifier: 'iPhone15,2' } },
        softwareupdate: { 'install-state': 'installing' },
        management: { declarations: declarations([state('act1', 'a1'), state('cfg1', 'c1')]) },
      },
    },
  },
  // 4: the same report again: nothing changes, no event.
  {
    before: [
      {
        FullReport: true,
        StatusItems: { device: { 'operating-system': { version: '18.2' } }, management: { declarations: declarations([state('act1', 'a1')]) } },
      },
    ],
    now: {
      FullReport: true,
      StatusItems: { device: { 'operating-system': { version: '18.2' } }, management: { declarations: declarations([state('act1', 'a1')]) } },
    },
  },
  // 5: a report with no items at all.
  { before: [], now: { FullReport: false, StatusItems: {} } },
]

t.test('reports gathered into one statement land as each would alone; a bad one fails alone', async (t) => {
  const database = await createTestDatabase(t)
  const db = database.db
  const ids = (prefix: string) => histories.map((_, i) => `${prefix}${i + 1}`)
  await db
    .insertInto('devices')
    .values(
      [...ids('d'), ...ids('e')].map((id) => ({ id, udid: id, kind: 'work' as const, os_version: '17.0', build_version: '21A1', product_name: 'iPad8,1' })),
    )
    .execute()

  const store = createStatusStore(db)
  const batches: string[][] = []
  const recording: StatusStore = {
    ...store,
    applyMany: (batch: readonly StatusWrite[]) => {
      batches.push(batch.map((write) => write.deviceId))
      return store.applyMany(batch)
    },
  }
  let clock = Date.parse('2026-12-01T10:00:00Z')
  const channel = createStatusChannel({
    store: recording,
    userStore: createUserChannelStore(db),
    log: pino({ level: 'silent' }),
    now: () => new Date(clock),
  })

  for (const [i, history] of histories.entries()) {
    for (const report of history.before) {
      await channel.receive(`d${i + 1}`, structuredClone(report))
      await channel.receive(`e${i + 1}`, structuredClone(report))
    }
  }
  clock += 60_000

  // The twins, one after another.
  for (const [i, history] of histories.entries()) await channel.receive(`e${i + 1}`, structuredClone(history.now))
  // The devices, all at once: the first goes alone (nothing runs), the others queue behind it.
  batches.length = 0
  await Promise.all(histories.map((history, i) => channel.receive(`d${i + 1}`, structuredClone(history.now))))
  t.ok(
    batches.some((batch) => batch.length > 2),
    `reports were written together (batches: ${batches.map((batch) => batch.join(',')).join(' | ')})`,
  )

  const stateOf = async (id: string) => {
    const items = await db.selectFrom('device_status_items').select(['item', 'value', 'updated_at']).where('device_id', '=', id).orderBy('item').execute()
    const states = await db
      .selectFrom('device_declaration_status')
      .select(['identifier', 'kind', 'server_token', 'active', 'valid', 'reasons', 'updated_at'])
      .where('device_id', '=', id)
      .orderBy('identifier')
      .execute()
    const events = await db.selectFrom('audit_events').select(['action', 'details', 'at']).where('device_id', '=', id).orderBy('id').execute()
    const device = await db.selectFrom('devices').select(['os_version', 'build_version', 'product_name', 'updated_at']).where('id', '=', id).executeTakeFirst()
    return { items, states, events, device }
  }
  for (const [i] of histories.entries()) {
    const batched = await stateOf(`d${i + 1}`)
    t.same(batched, await stateOf(`e${i + 1}`), `device ${i + 1}: what the batch stored is what one report alone stored`)
    t.ok(batched.items.length + batched.states.length > 0 || i === 4, `device ${i + 1} has stored status`)
  }

  // Spot checks that the comparison compares something.
  const first = await stateOf('d1')
  t.same(
    first.items.map((row) => row.item),
    [
      'device.model.identifier',
      'device.operating-system.build-version',
      'device.operating-system.version',
      'softwareupdate.install-state',
      'softwareupdate.pending-version',
    ],
    'the full report dropped passcode.is-compliant',
  )
  t.same(
    first.states.map((row) => [row.identifier, row.server_token, row.valid]),
    [
      ['act1', 'a1', 'valid'],
      ['cfg1', 'c1b', 'invalid'],
    ],
    'cfg2 is gone, cfg1 changed',
  )
  t.match(first.device, { os_version: '18.1', build_version: '22B83', product_name: 'iPad13,1' })
  t.same(
    first.events.map((event) => event.action),
    ['declaration_status', 'softwareupdate_status', 'declaration_status', 'softwareupdate_status'],
    'each report that changed states and update items: one event of each, declarations first',
  )
  const second = await stateOf('d2')
  t.same(
    second.states.map((row) => row.identifier),
    ['act1'],
    'the partial report removed cfg9',
  )
  t.same(
    (second.items.find((row) => row.item === 'app.managed.list')?.value as Array<{ identifier: string }>).map((app) => app.identifier),
    ['com.example.one', 'com.example.two'],
    'the list was merged',
  )
  t.equal((await stateOf('d4')).events.length, 1, 'a repeated report writes no event')

  // A batch that holds the report of a device deleted meanwhile fails; its reports are written
  // again one by one, and only the deleted device's fails.
  await db.deleteFrom('devices').where('id', '=', 'd5').execute()
  batches.length = 0
  const again = { FullReport: false, StatusItems: { passcode: { 'is-compliant': true } } }
  const outcomes = await Promise.all(
    ['d4', 'd5', 'd3', 'd1'].map((id) =>
      channel.receive(id, structuredClone(again)).then(
        () => 'stored',
        (error: Error) => `failed: ${error.message}`,
      ),
    ),
  )
  t.same(batches, [['d4'], ['d5', 'd3', 'd1'], ['d5'], ['d3'], ['d1']], 'the failed batch, then each of its reports alone')
  t.match(outcomes, ['stored', /^failed: .*foreign key/, 'stored', 'stored'])
  for (const id of ['d4', 'd3', 'd1'])
    t.equal((await stateOf(id)).items.find((row) => row.item === 'passcode.is-compliant')?.value, true, `${id}'s report landed`)
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from device_status_items where device_id = 'd5'`.execute(db)
  t.equal(rows[0]!.n, 0, 'nothing stored for the deleted device')
})
