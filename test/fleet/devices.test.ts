import { sql } from 'kysely'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import type { PlistDict } from '../../src/mdm/plist.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

t.test('list: filters, sort and keyset pages that neither repeat nor skip under concurrent inserts', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const db = mdm.database.db
  // 23 devices with distinct creation times; every third is not enrolled (no channel).
  await sql`insert into devices (id, udid, serial_number, product_name, os_version, is_supervised, created_at)
    select 'dev' || lpad(i::text, 3, '0'), 'dev' || lpad(i::text, 3, '0'), 'SER' || lpad((100 - i)::text, 3, '0'),
           case when i % 2 = 0 then 'iPad13,1' else 'iPhone15,2' end, case when i % 4 = 0 then '17.5' else '18.1' end,
           i % 5 = 0, now() - make_interval(secs => 1000 - i)
    from generate_series(1, 23) i`.execute(db)
  await sql`insert into enrollments (id, device_id, channel, enabled, last_seen_at)
    select id, id, 'device', true, now() - make_interval(mins => (row_number() over (order by id))::int) from devices where right(id, 3)::int % 3 <> 0`.execute(
    db,
  )

  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const response = await api('GET', `/api/v1/devices?limit=5${cursor ? `&cursor=${cursor}` : ''}`)
    t.equal(response.statusCode, 200)
    seen.push(...response.json.items.map((d: { id: string }) => d.id))
    cursor = response.json.next_cursor
    pages++
    // Devices created meanwhile, before and after the page boundary, must not disturb paging.
    if (pages === 2) {
      await sql`insert into devices (id, udid, created_at) values ('new-old', 'new-old', now() - interval '1 hour'), ('new-late', 'new-late', now() + interval '1 hour')`.execute(
        db,
      )
    }
  } while (cursor)
  const original = Array.from({ length: 23 }, (_, i) => `dev${String(i + 1).padStart(3, '0')}`)
  t.same(
    seen.filter((id) => id.startsWith('dev')),
    original,
    'every original device once, in creation order',
  )
  t.same(
    seen.filter((id) => id.startsWith('new')),
    ['new-late'],
    'a device created behind the cursor is not seen; one ahead of it is',
  )

  const bySerial = await api('GET', '/api/v1/devices?sort=-serial_number&limit=3&udid=dev005')
  t.same(
    bySerial.json.items.map((d: { serial_number: string }) => d.serial_number),
    ['SER095'],
  )

  const filtered = await api('GET', '/api/v1/devices?model=iPad13,1&os_version=17.5&enrolled=true&limit=100')
  t.same(
    filtered.json.items.map((d: { id: string }) => d.id),
    ['dev004', 'dev008', 'dev016', 'dev020'],
  )
  t.match(filtered.json.items[0], { platform: 'iOS', enrolled: true, model: 'iPad13,1' })

  const notEnrolled = await api('GET', '/api/v1/devices?enrolled=false&limit=100')
  t.same(
    notEnrolled.json.items.map((d: { id: string }) => d.id).filter((id: string) => id.startsWith('dev')),
    ['dev003', 'dev006', 'dev009', 'dev012', 'dev015', 'dev018', 'dev021'],
  )

  const supervised = await api('GET', '/api/v1/devices?supervised=true&limit=100')
  t.same(
    supervised.json.items.map((d: { id: string }) => d.id),
    ['dev005', 'dev010', 'dev015', 'dev020'],
  )

  // Last seen, newest first, in pages of 4: the same order as one big page.
  const all = (await api('GET', '/api/v1/devices?sort=-last_seen_at&limit=500')).json.items.map((d: { id: string }) => d.id)
  const paged: string[] = []
  cursor = null
  do {
    const response = await api('GET', `/api/v1/devices?sort=-last_seen_at&limit=4${cursor ? `&cursor=${cursor}` : ''}`)
    paged.push(...response.json.items.map((d: { id: string }) => d.id))
    cursor = response.json.next_cursor
  } while (cursor)
  t.same(paged, all, 'paging by last_seen_at (nulls first when descending) matches one page')
  t.equal(all.length, 25)
  // The order is the channels' last contact (the device row's copy, kept by a trigger, which
  // the sort's index reads), also right after a channel's row changes: unseen first, then newest.
  await sql`update enrollments set last_seen_at = now() + interval '1 hour' where id = 'dev001'`.execute(db)
  const { rows: expected } = await sql<{ id: string; last_seen_at: Date | null }>`
    select d.id, e.last_seen_at from devices d left join enrollments e on e.id = d.id and e.channel = 'device'
    order by e.last_seen_at desc nulls first, d.id desc`.execute(db)
  const resorted = (await api('GET', '/api/v1/devices?sort=-last_seen_at&limit=500')).json.items as Array<{ id: string; last_seen_at: string | null }>
  t.same(
    resorted.map((d) => [d.id, d.last_seen_at]),
    expected.map((row) => [row.id, row.last_seen_at && row.last_seen_at.toISOString()]),
    'sorted by the channel last contact, and showing it',
  )
  t.equal(resorted.find((d) => d.last_seen_at !== null)?.id, 'dev001', 'the channel seen last comes first after the unseen')
  const ascending = (await api('GET', '/api/v1/devices?sort=last_seen_at&limit=500')).json.items as Array<{ id: string }>
  t.same(
    ascending.map((d) => d.id),
    [...expected].reverse().map((row) => row.id),
    'ascending is the reverse (unseen last)',
  )

  const stale = await api('GET', `/api/v1/devices?last_seen_before=${encodeURIComponent(new Date(Date.now() - 10 * 60_000).toISOString())}&limit=500`)
  t.ok(stale.json.items.length > 0 && stale.json.items.every((d: { last_seen_at: string }) => Date.parse(d.last_seen_at) < Date.now() - 10 * 60_000))

  const mixed = await api(
    'GET',
    `/api/v1/devices?sort=serial_number&cursor=${encodeURIComponent((await api('GET', '/api/v1/devices?limit=1')).json.next_cursor)}`,
  )
  t.equal(mixed.statusCode, 400, 'a cursor belongs to its sort')
})

t.test('one device: channels, push state and inventory from its answers; forgetting it', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()

  const refresh = await api('POST', `/api/v1/devices/${device.udid}/refresh-inventory`)
  t.equal(refresh.statusCode, 201)
  t.same(
    refresh.json.commands.map((c: { request_type: string }) => c.request_type),
    ['DeviceInformation', 'SecurityInfo', 'InstalledApplicationList', 'ProfileList', 'CertificateList'],
  )
  t.ok(refresh.json.commands.every((c: { targets: Array<{ result: string }> }) => c.targets[0]!.result === 'queued'))

  const answers: Record<string, PlistDict> = {
    DeviceInformation: { QueryResponses: { IsSupervised: true, DeviceName: 'Front desk', OSVersion: '18.1', SerialNumber: device.serialNumber } },
    SecurityInfo: { SecurityInfo: { PasscodePresent: true, HardwareEncryptionCaps: 3 } },
    InstalledApplicationList: {
      InstalledApplicationList: [{ Identifier: 'com.example.app', Name: 'Example', Version: '42', ShortVersion: '4.2', BundleSize: 1000, IsManaged: true }],
    },
    ProfileList: { ProfileList: [{ PayloadIdentifier: 'org.example.wifi', PayloadUUID: 'U-1', PayloadDisplayName: 'Wi-Fi', IsManaged: true }] },
    CertificateList: { CertificateList: [] },
  }
  let response = await device.idle()
  for (let i = 0; i < 5; i++) {
    const command = commandIn(response)!
    response = await device.answer(command.uuid, 'Acknowledged', answers[command.requestType] ?? {})
  }
  t.equal(response.body.length, 0, 'queue drained')

  const detail = await api('GET', `/api/v1/devices/${device.udid}`)
  t.equal(detail.statusCode, 200)
  t.match(detail.json, {
    id: device.udid,
    serial_number: device.serialNumber,
    supervised: true,
    enrolled: true,
    platform: 'iOS',
    identity: { certificate_sha256: /^[0-9a-f]{64}$/ },
    inventory: {
      device_information: { DeviceName: 'Front desk' },
      security_info: { PasscodePresent: true },
      applications: [{ identifier: 'com.example.app', name: 'Example', short_version: '4.2', is_managed: true }],
      profiles: [{ identifier: 'org.example.wifi', display_name: 'Wi-Fi' }],
    },
  })
  t.equal(detail.json.enrollments.length, 1)
  t.match(detail.json.enrollments[0], { id: device.udid, channel: 'device', enrolled: true, push: { topic: device.topic, token_valid: true } })
  t.ok(detail.json.enrollments[0].last_seen_at)

  t.equal((await api('GET', '/api/v1/devices/nope')).statusCode, 404)
  t.equal((await api('DELETE', `/api/v1/devices/${device.udid}`)).statusCode, 204)
  t.equal((await api('GET', `/api/v1/devices/${device.udid}`)).statusCode, 404)
  t.equal((await api('DELETE', `/api/v1/devices/${device.udid}`)).statusCode, 404)
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from command_targets where enrollment_id = ${device.udid}`.execute(mdm.database.db)
  t.equal(rows[0]!.n, 0, 'its queue and history went with it')
  const after = await device.idle()
  t.not(after.status, 200, 'the forgotten device is refused on its next poll')
  t.not(after.status, 401, '(never 401: that would unenroll it)')
})
