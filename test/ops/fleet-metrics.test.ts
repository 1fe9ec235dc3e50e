// The fleet gauges of /metrics follow the rows: queues, devices, backlogs, syncs, expiries.
import { randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import t from 'tap'
import { pino } from 'pino'
import { createMetrics } from '../../src/ops/metrics.js'
import { registerFleetMetrics } from '../../src/ops/fleet-metrics.js'
import type { FleetMetricsSnapshot } from '../../src/ops/fleet-metrics-store.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

/** Every sample of `name` in a Prometheus text body: labels → value. */
function samples(body: string, name: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const line of body.split('\n')) {
    const match = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line)
    if (match) found.set(match[1] ?? '', Number(match[2]))
  }
  return found
}

t.test('the fleet gauges follow the database', async (t) => {
  const database = await createTestDatabase(t)
  const { app, orchard } = await buildTestApp(t, database, {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_WEBHOOK_WORKER: 'false',
    ORCHARD_REPUSH_LOOP_SECONDS: '0',
    ORCHARD_DEP_SYNC_SECONDS: '0',
    ORCHARD_VPP_SYNC_SECONDS: '0',
  })
  const db = database.db
  const scrape = async () => {
    orchard.fleetMetrics.invalidate()
    const response = await app.inject({ method: 'GET', url: '/metrics' })
    t.equal(response.statusCode, 200)
    return response.body
  }

  // An empty installation: zeros, and no tenant series.
  let body = await scrape()
  t.equal(samples(body, 'orchard_fleet_metrics_up').get(''), 1)
  t.equal(samples(body, 'orchard_commands_pending').size, 0)
  t.equal(samples(body, 'orchard_repush_backlog').get(''), 0)
  t.equal(samples(body, 'orchard_webhook_outbox_pending').get(''), 0)
  t.equal(samples(body, 'orchard_webhook_outbox_oldest_pending_age_seconds').get(''), 0)
  t.equal(samples(body, 'orchard_webhook_deliveries_failed').get(''), 0)
  const caDays = [...samples(body, 'orchard_certificate_expiry_days')].filter(([labels]) => labels.includes('kind="device_ca"'))
  t.equal(caDays.length, 1, 'the generated device CA')
  t.ok(caDays[0]![1] > 3000, `the device CA has years left (${caDays[0]![1]} days)`)

  await db.insertInto('tenants').values({ id: 'physics', name: 'Physics', parent_id: null }).execute()
  await db
    .insertInto('devices')
    .values([
      { id: 'd1', udid: 'd1', kind: 'work', tenant_id: 'physics' },
      { id: 'd2', udid: 'd2', kind: 'work', tenant_id: 'physics' },
      { id: 'd3', udid: 'd3', kind: 'work', tenant_id: 'physics', lifecycle_state: 'lost' },
      { id: 'd4', udid: 'd4', kind: 'personal', tenant_id: null },
    ])
    .execute()
  await db
    .insertInto('enrollments')
    .values([
      { id: 'd1', device_id: 'd1', channel: 'device', enabled: true, next_repush_at: sql<Date>`now() - interval '10 minutes'` },
      { id: 'd4', device_id: 'd4', channel: 'device', enabled: true, next_repush_at: sql<Date>`now() + interval '10 minutes'` },
    ])
    .execute()
  await db
    .insertInto('commands')
    .values([
      { uuid: 'c1', request_type: 'DeviceInformation', payload: Buffer.from('x'), tenant_id: 'physics', created_at: sql<Date>`now() - interval '2 hours'` },
      { uuid: 'c2', request_type: 'DeviceLock', payload: Buffer.from('x'), tenant_id: null },
    ])
    .execute()
  await db
    .insertInto('command_targets')
    .values([
      { enrollment_id: 'd1', command_uuid: 'c1', created_at: sql<Date>`now() - interval '2 hours'` },
      { enrollment_id: 'd1', command_uuid: 'c2' },
      { enrollment_id: 'd4', command_uuid: 'c2', status: 'Acknowledged' },
    ])
    .execute()
  await db.insertInto('device_config_state').values({ device_id: 'd2', item_type: 'profile', identifier: 'wifi', status: 'failed' }).execute()
  await db
    .insertInto('webhooks')
    .values({ id: 'w1', url: 'https://hooks.example.test', secret_sealed: Buffer.alloc(100), event_types: ['device.enrolled'] })
    .execute()
  await db
    .insertInto('webhook_deliveries')
    .values([
      {
        webhook_id: 'w1',
        event_id: 'e1',
        event_type: 'device.enrolled',
        payload: '{}',
        next_attempt_at: sql<Date>`now() + interval '1 day'`,
        created_at: sql<Date>`now() - interval '30 minutes'`,
      },
      { webhook_id: 'w1', event_id: 'e2', event_type: 'device.enrolled', payload: '{}', next_attempt_at: sql<Date>`now() + interval '1 day'` },
      { webhook_id: 'w1', event_id: 'e3', event_type: 'device.enrolled', payload: '{}', status: 'failed', next_attempt_at: sql<Date>`now()` },
    ])
    .execute()
  await db
    .insertInto('dep_tokens')
    .values({
      id: '00000000-0000-4000-8000-0000000000a1',
      name: 'Main ABM',
      exchange_certificate_der: Buffer.alloc(1),
      exchange_private_key_sealed: Buffer.alloc(1),
      access_token_expiry: sql<Date>`now() + interval '20 days'`,
      last_sync_at: new Date('2030-01-01T00:00:00Z'),
      status: 'token_expired',
    })
    .execute()
  await db
    .insertInto('vpp_tokens')
    .values({
      id: '00000000-0000-4000-8000-0000000000b1',
      name: 'Apps',
      token_sealed: Buffer.alloc(1),
      tenant_id: 'physics',
      expires_at: sql<Date>`now() + interval '100 days'`,
      status: 'ok',
    })
    .execute()
  await db
    .insertInto('push_certificates')
    .values({
      topic: 'com.apple.mgmt.External.test',
      certificate_pem: '-',
      private_key_sealed: Buffer.alloc(1),
      serial_number: '1',
      subject: 'x',
      sha256: 'a'.repeat(64),
      not_before: new Date('2020-01-01T00:00:00Z'),
      not_after: sql<Date>`now() - interval '2 days'`,
    })
    .execute()

  body = await scrape()
  t.same(
    samples(body, 'orchard_commands_pending'),
    new Map([['{tenant="physics"}', 2]]),
    'both open commands are queued for d1, a physics device; the acknowledged one does not count',
  )
  const age = samples(body, 'orchard_commands_oldest_pending_age_seconds').get('{tenant="physics"}')!
  t.ok(age >= 7200 && age < 7500, `oldest pending is two hours old (${age})`)
  t.same(
    samples(body, 'orchard_devices'),
    new Map([
      ['{tenant="none",kind="personal",lifecycle_state="active"}', 1],
      ['{tenant="physics",kind="work",lifecycle_state="active"}', 2],
      ['{tenant="physics",kind="work",lifecycle_state="lost"}', 1],
    ]),
  )
  t.equal(samples(body, 'orchard_tenant_info').get('{tenant="physics",name="Physics"}'), 1)
  t.equal(samples(body, 'orchard_repush_backlog').get(''), 1, 'd1 is due, d4 is not yet')
  const overdue = samples(body, 'orchard_repush_oldest_due_seconds').get('')!
  t.ok(overdue >= 600 && overdue < 900, `due for ten minutes (${overdue})`)
  t.equal(samples(body, 'orchard_webhook_outbox_pending').get(''), 2)
  const outboxAge = samples(body, 'orchard_webhook_outbox_oldest_pending_age_seconds').get('')!
  t.ok(outboxAge >= 1800 && outboxAge < 2100, `oldest undelivered event is 30 minutes old (${outboxAge})`)
  t.equal(samples(body, 'orchard_webhook_deliveries_failed').get(''), 1)
  t.same(samples(body, 'orchard_blueprint_items_failed'), new Map([['{tenant="physics",item_type="profile"}', 1]]))
  t.same(
    samples(body, 'orchard_abm_token_status'),
    new Map([['{token="00000000-0000-4000-8000-0000000000a1",name="Main ABM",tenant="none",status="token_expired"}', 1]]),
  )
  t.same(
    samples(body, 'orchard_abm_sync_last_success_timestamp_seconds'),
    new Map([['{token="00000000-0000-4000-8000-0000000000a1",name="Main ABM",tenant="none"}', 1893456000]]),
  )
  t.same(samples(body, 'orchard_vpp_token_status'), new Map([['{token="00000000-0000-4000-8000-0000000000b1",name="Apps",tenant="physics",status="ok"}', 1]]))
  t.equal(samples(body, 'orchard_vpp_sync_last_success_timestamp_seconds').size, 0, 'never synced: no sample')
  const expiry = samples(body, 'orchard_certificate_expiry_days')
  const days = (labels: string) => Math.round(expiry.get(labels)! * 100) / 100
  t.equal(days('{kind="push_certificate",id="com.apple.mgmt.External.test",name="com.apple.mgmt.External.test"}'), -2, 'expired two days ago')
  t.equal(days('{kind="abm_token",id="00000000-0000-4000-8000-0000000000a1",name="Main ABM"}'), 20)
  t.equal(days('{kind="vpp_token",id="00000000-0000-4000-8000-0000000000b1",name="Apps"}'), 100)

  // Rows change, the gauges follow; a vanished tenant's series vanish.
  await db.updateTable('command_targets').set({ status: 'Acknowledged' }).where('enrollment_id', '=', 'd1').execute()
  await db.updateTable('devices').set({ lifecycle_state: 'active' }).where('id', '=', 'd3').execute()
  await db.updateTable('webhook_deliveries').set({ status: 'delivered' }).where('status', '=', 'pending').execute()
  await db.updateTable('dep_tokens').set({ status: 'ok' }).execute()
  await db.updateTable('enrollments').set({ next_repush_at: null }).execute()
  await db.deleteFrom('device_config_state').execute()
  body = await scrape()
  t.equal(samples(body, 'orchard_commands_pending').size, 0)
  t.equal(samples(body, 'orchard_commands_oldest_pending_age_seconds').size, 0)
  t.same(
    samples(body, 'orchard_devices'),
    new Map([
      ['{tenant="none",kind="personal",lifecycle_state="active"}', 1],
      ['{tenant="physics",kind="work",lifecycle_state="active"}', 3],
    ]),
  )
  t.equal(samples(body, 'orchard_webhook_outbox_pending').get(''), 0)
  t.equal(samples(body, 'orchard_webhook_outbox_oldest_pending_age_seconds').get(''), 0)
  t.equal(samples(body, 'orchard_repush_backlog').get(''), 0)
  t.equal(samples(body, 'orchard_blueprint_items_failed').size, 0)
  t.same(samples(body, 'orchard_abm_token_status'), new Map([['{token="00000000-0000-4000-8000-0000000000a1",name="Main ABM",tenant="none",status="ok"}', 1]]))
  // A label value that is exactly a device id; not a substring, since the device CA's id is a random hex digest.
  t.notMatch(body, /udid|="d[1-4]"/, 'no device appears as a label')
})

t.test('a scrape reads the database at most once per 15 s; a failure is reported, not thrown', async (t) => {
  let clock = 0
  let reads = 0
  let fail = false
  const snapshot: FleetMetricsSnapshot = {
    now: new Date('2030-01-01T00:00:00Z'),
    tenants: [],
    pendingCommands: [],
    devices: [],
    repush: { due: 0, oldestDueSeconds: 0 },
    webhookOutbox: { pending: 0, oldestPendingAgeSeconds: 0, failed: 0 },
    blueprintItemsFailed: [],
    abmTokens: [],
    vppTokens: [],
    pushCertificates: [],
    jobs: [],
  }
  const metrics = createMetrics()
  registerFleetMetrics(metrics, {
    store: {
      snapshot: async () => {
        reads++
        if (fail) throw new Error('database down')
        return { ...snapshot, repush: { due: reads, oldestDueSeconds: 0 } }
      },
    },
    deviceCa: () => null,
    profileSigning: { id: 'sig', subject: 'CN=Signer', notAfter: new Date('2030-01-31T00:00:00Z') },
    logger: pino({ level: 'silent' }),
    now: () => clock,
  })
  const scrape = async () => metrics.registry.metrics()
  let body = await scrape()
  t.equal(reads, 1, 'one read serves every gauge of a scrape')
  t.equal(samples(body, 'orchard_repush_backlog').get(''), 1)
  t.equal(samples(body, 'orchard_certificate_expiry_days').get('{kind="profile_signing",id="sig",name="CN=Signer"}'), 30)
  clock = 14_999
  await scrape()
  t.equal(reads, 1, 'a scrape within 15 s is served from the last read')
  clock = 15_000
  body = await scrape()
  t.equal(reads, 2)
  t.equal(samples(body, 'orchard_repush_backlog').get(''), 2)
  fail = true
  clock = 30_000
  body = await scrape()
  t.equal(reads, 3)
  t.equal(samples(body, 'orchard_fleet_metrics_up').get(''), 0)
  t.ok(Number.isNaN(samples(body, 'orchard_repush_backlog').get('')), 'no stale value after a failed read: NaN, unknown')
  t.equal(samples(body, 'orchard_certificate_expiry_days').size, 0, 'labelled gauges are absent')
  await scrape()
  t.equal(reads, 3, 'a failure is not retried by every scrape either')
})
