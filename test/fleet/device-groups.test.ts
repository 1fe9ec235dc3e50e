// Device groups (static and smart), device search and the enrollment group filter, over the
// real admin API on both databases. Smart filters are checked against a reference evaluation in
// JavaScript over seeded random devices, through both of their SQL forms: the group as a value
// (GET /devices?group_id=) and as a column (a device's `groups`, which blueprint targeting
// shares). Blueprints targeting groups are converged by simulated devices that answer
// ProfileList truthfully.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import type { SmartGroupFilter } from '../../src/db/schema-groups.js'
import { apiClient } from '../helpers/api.js'
import { FaithfulDevice, wifiProfile } from '../helpers/faithful-device.js'
import { setupMdm, type MdmFixture } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

type Api = ReturnType<typeof apiClient>
const day = 86_400_000

async function world(t: Parameters<typeof setupMdm>[0]): Promise<{ mdm: MdmFixture; api: Api }> {
  const mdm = await setupMdm(t)
  return { mdm, api: apiClient(mdm.app) }
}

async function keyFor(api: Api, role: string, tenantId: string | null): Promise<string> {
  const created = await api('POST', '/api/v1/api-keys', { body: { name: `${role} ${tenantId ?? 'central'} ${randomUUID()}`, role, tenant_id: tenantId } })
  if (created.statusCode !== 201) throw new Error(`key: ${created.body}`)
  return created.json.key as string
}

/** Every page of GET /devices with this query: the device IDs, sorted. */
async function listed(api: Api, query: string, key?: string): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | null = null
  do {
    const response = await api('GET', `/api/v1/devices?limit=50&${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, key ? { key } : {})
    if (response.statusCode !== 200) throw new Error(`list ${query}: ${response.statusCode} ${response.body}`)
    ids.push(...response.json.items.map((item: { id: string }) => item.id))
    cursor = response.json.next_cursor
  } while (cursor)
  return ids.sort()
}

/** A small deterministic generator (mulberry32), so a failure names a reproducible seed. */
function random(seed: number) {
  let a = seed
  const next = () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  return { next, pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]! }
}

interface FakeDevice {
  id: string
  product_name: string | null
  model: string | null
  os_version: string | null
  kind: 'personal' | 'work' | 'function'
  is_supervised: boolean | null
  user_enrollment: boolean
  lifecycle_state: 'active' | 'lost' | 'retired'
  enrollment_group: string | null
  enrolled: boolean
  last_seen_days_ago: number | null
  apps: string[]
  profiles: string[]
}

const versionParts = (v: string | null) => (v !== null && /^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$/.test(v) ? [...v.split('.').map(Number), 0, 0].slice(0, 3) : null)
function compare(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return 0
}

/** What a smart filter means, written independently of the SQL. */
function matches(d: FakeDevice, f: SmartGroupFilter): boolean {
  const version = versionParts(d.os_version)
  const checks: boolean[] = [
    f.model === undefined || d.product_name === f.model || d.model === f.model,
    f.model_prefix === undefined || (d.product_name ?? '').startsWith(f.model_prefix),
    f.os_version_at_least === undefined || (version !== null && compare(version, versionParts(f.os_version_at_least)!) >= 0),
    f.os_version_below === undefined || (version !== null && compare(version, versionParts(f.os_version_below)!) < 0),
    f.kinds === undefined || f.kinds.includes(d.kind),
    f.lifecycle_states === undefined || f.lifecycle_states.includes(d.lifecycle_state),
    f.supervised === undefined || (d.is_supervised ?? false) === f.supervised,
    f.user_enrollment === undefined || d.user_enrollment === f.user_enrollment,
    f.enrolled === undefined || d.enrolled === f.enrolled,
    f.enrollment_group === undefined || d.enrollment_group === f.enrollment_group,
    f.not_seen_for_days === undefined || d.last_seen_days_ago === null || d.last_seen_days_ago > f.not_seen_for_days,
    f.seen_within_days === undefined || (d.last_seen_days_ago !== null && d.last_seen_days_ago < f.seen_within_days),
    f.app_installed === undefined || d.apps.includes(f.app_installed),
    f.app_not_installed === undefined || !d.apps.includes(f.app_not_installed),
    f.profile_installed === undefined || d.profiles.includes(f.profile_installed),
    f.profile_not_installed === undefined || !d.profiles.includes(f.profile_not_installed),
  ]
  return checks.every(Boolean)
}

t.test('smart filters: the device list and the device view agree with a reference evaluation', async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  const rnd = random(20261206)
  const products = ['iPad13,1', 'iPad14,2', 'iPhone15,2', 'iPhone16,1', 'Mac14,3', null]
  const versions = ['16.7.2', '17', '17.5', '17.5.1', '17.10', '18.1', '14.6', '17.0 beta', null]
  const devices: FakeDevice[] = []
  for (let i = 0; i < 60; i++) {
    const product = rnd.pick(products)
    const enrolled = rnd.next() < 0.8
    const userEnrollment = rnd.next() < 0.2
    devices.push({
      id: `GROUP-TEST-${String(i).padStart(3, '0')}`,
      product_name: product,
      model: product === null ? null : rnd.pick(['MK2K3LL/A', 'MQ2Y3ZD/A', null]),
      os_version: rnd.pick(versions),
      kind: userEnrollment ? 'personal' : rnd.pick(['personal', 'work', 'function'] as const),
      is_supervised: rnd.pick([true, false, null]),
      user_enrollment: userEnrollment,
      lifecycle_state: rnd.pick(['active', 'active', 'lost', 'retired'] as const),
      enrollment_group: rnd.pick(['lab', 'library', null]),
      enrolled,
      last_seen_days_ago: enrolled ? rnd.pick([0, 3, 20, 100]) : rnd.pick([null, 40]),
      apps: ['com.example.maps', 'com.example.notes'].filter(() => rnd.next() < 0.5),
      profiles: ['org.example.wifi', 'org.example.vpn'].filter(() => rnd.next() < 0.5),
    })
    // A device that never finished enrolling has no channel, so no lists either.
    const last = devices.at(-1)!
    if (!last.enrolled && last.last_seen_days_ago === null) Object.assign(last, { apps: [], profiles: [] })
  }
  const now = Date.now()
  for (const d of devices) {
    await db
      .insertInto('devices')
      .values({
        id: d.id,
        udid: d.id,
        serial_number: d.id,
        product_name: d.product_name,
        model: d.model,
        os_version: d.os_version,
        kind: d.kind,
        is_supervised: d.is_supervised,
        user_enrollment: d.user_enrollment,
        lifecycle_state: d.lifecycle_state,
        enrollment_group: d.enrollment_group,
      })
      .execute()
    if (d.last_seen_days_ago !== null || d.enrolled) {
      await db
        .insertInto('enrollments')
        .values({
          id: d.id,
          device_id: d.id,
          channel: 'device',
          enabled: d.enrolled,
          last_seen_at: d.last_seen_days_ago === null ? null : new Date(now - d.last_seen_days_ago * day - 3_600_000),
        })
        .execute()
      for (const app of d.apps) await db.insertInto('installed_applications').values({ enrollment_id: d.id, identifier: app, attributes: '{}' }).execute()
      for (const profile of d.profiles) {
        await db.insertInto('installed_profiles').values({ enrollment_id: d.id, identifier: profile, attributes: '{}' }).execute()
      }
    }
  }

  const filters: SmartGroupFilter[] = [
    { os_version_below: '17.5' },
    { os_version_at_least: '17.5', os_version_below: '18' },
    { os_version_at_least: '17.10' },
    { model: 'iPad13,1' },
    { model: 'MK2K3LL/A' },
    { model_prefix: 'iPhone' },
    { kinds: ['function', 'work'], supervised: true },
    { supervised: false },
    { user_enrollment: true },
    { enrolled: false },
    { lifecycle_states: ['lost', 'retired'] },
    { not_seen_for_days: 30 },
    { seen_within_days: 7 },
    { enrollment_group: 'lab', kinds: ['function'] },
    { app_installed: 'com.example.maps' },
    { app_not_installed: 'com.example.maps', profile_installed: 'org.example.wifi' },
    { profile_not_installed: 'org.example.vpn', model_prefix: 'iPad' },
  ]
  const groupIds: string[] = []
  for (const [index, filter] of filters.entries()) {
    const created = await api('POST', '/api/v1/device-groups', { body: { name: `smart ${index}`, filter } })
    t.equal(created.statusCode, 201, created.body)
    t.match(created.json, { type: 'smart', filter, tenant_id: null })
    groupIds.push(created.json.id)
    const expected = devices
      .filter((d) => matches(d, filter))
      .map((d) => d.id)
      .sort()
    t.same(await listed(api, `group_id=${created.json.id}`), expected, `list: ${JSON.stringify(filter)} (${expected.length} devices)`)
    const one = await api('GET', `/api/v1/device-groups/${created.json.id}`)
    t.equal(one.json.device_count, expected.length, 'device_count')
  }
  t.same(
    filters.filter((f) => devices.filter((d) => matches(d, f)).length === 0),
    [],
    'every filter matches some devices and misses others (the seed is meaningful)',
  )
  t.same(
    filters.filter((f) => devices.every((d) => matches(d, f))),
    [],
  )
  // The column form (a device's groups), on a sample of devices.
  for (const d of devices.slice(0, 20)) {
    const view = await api('GET', `/api/v1/devices/${d.id}`)
    t.equal(view.statusCode, 200, view.body)
    const expected = filters.flatMap((f, index) => (matches(d, f) ? [groupIds[index]] : [])).sort()
    t.same(view.json.groups.map((g: { id: string }) => g.id).sort(), expected, `groups of ${d.id}`)
  }

  // The device list's other new filters.
  t.same(
    await listed(api, 'enrollment_group=lab'),
    devices
      .filter((d) => d.enrollment_group === 'lab')
      .map((d) => d.id)
      .sort(),
    'enrollment_group filter',
  )
  const view = await api('GET', `/api/v1/devices?serial_number=${devices[0]!.id}`)
  t.equal(view.json.items[0].enrollment_group, devices[0]!.enrollment_group, 'the enrollment group is shown')

  // Bulk commands take a group: the dry run counts its enrolled devices.
  const dry = await api('POST', '/api/v1/commands', {
    body: { filter: { group_id: groupIds[0] }, command: { request_type: 'ProfileList' }, dry_run: true },
  })
  t.equal(dry.statusCode, 200, dry.body)
  t.equal(dry.json.count, devices.filter((d) => d.enrolled && matches(d, filters[0]!)).length, 'a bulk command reaches the enrolled devices of the group')
  const unknown = await api('POST', '/api/v1/commands', {
    body: { filter: { group_id: randomUUID() }, command: { request_type: 'ProfileList' }, dry_run: true },
  })
  t.equal(unknown.statusCode, 404, 'an unknown group is not an empty one')
  t.equal((await api('GET', `/api/v1/devices?group_id=${randomUUID()}`)).statusCode, 404)
})

t.test('groups: validation, static members, renames, deletion while targeted, tenants', async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  for (const [id, name] of [
    ['alpha', 'Alpha'],
    ['beta', 'Beta'],
  ])
    t.equal((await api('POST', '/api/v1/tenants', { body: { id, name } })).statusCode, 201)
  const alphaAdmin = await keyFor(api, 'admin', 'alpha')
  const betaAdmin = await keyFor(api, 'admin', 'beta')
  const alphaAuditor = await keyFor(api, 'auditor', 'alpha')
  const [a1, a2, b1] = [await mdm.enrolledDevice(), await mdm.enrolledDevice(), await mdm.enrolledDevice()]
  await db.updateTable('devices').set({ tenant_id: 'alpha' }).where('id', 'in', [a1.udid, a2.udid]).execute()
  await db.updateTable('devices').set({ tenant_id: 'beta' }).where('id', '=', b1.udid).execute()

  // Validation: each refusal names the field.
  const refusals: Array<[unknown, string]> = [
    [{ name: 'x', filter: { os_version_below: '17.a' } }, '/filter/os_version_below'],
    [{ name: 'x', filter: { colour: 'red' } }, '/filter'],
    [{ name: 'x', filter: {} }, '/filter'],
    [{ name: 'x', filter: { os_version_at_least: '18', os_version_below: '17.5' } }, '/filter/os_version_below'],
    [{ name: 'x', filter: { app_installed: 'a.b', app_not_installed: 'a.b' } }, '/filter/app_not_installed'],
    [{ name: 'x', members: [] }, '/members'],
    [{ name: '' }, '/name'],
  ]
  for (const [body, pointer] of refusals) {
    const response = await api('POST', '/api/v1/device-groups', { body, key: alphaAdmin })
    t.equal(response.statusCode, 400, `${JSON.stringify(body)}: ${response.body}`)
    t.ok(
      response.json.errors.some((e: { pointer?: string }) => e.pointer?.startsWith(pointer)),
      `${JSON.stringify(body)} names ${pointer}: ${JSON.stringify(response.json.errors)}`,
    )
  }
  t.equal((await api('POST', '/api/v1/device-groups', { body: { name: 'x' }, key: alphaAuditor })).statusCode, 403, 'an auditor reads only')

  const group = await api('POST', '/api/v1/device-groups', { body: { name: 'Front desk' }, key: alphaAdmin })
  t.equal(group.statusCode, 201, group.body)
  t.match(group.json, { tenant_id: 'alpha', type: 'static', filter: null })
  const groupId = group.json.id as string
  t.equal((await api('POST', '/api/v1/device-groups', { body: { name: 'FRONT DESK' }, key: alphaAdmin })).statusCode, 409, 'names are unique per tenant')
  t.equal((await api('POST', '/api/v1/device-groups', { body: { name: 'Front desk' }, key: betaAdmin })).statusCode, 201, 'another tenant may use it')

  // Members: another tenant's device and unknown devices are refused, the rest changes.
  const change = await api('POST', `/api/v1/device-groups/${groupId}/members`, { body: { add: [a1.udid, b1.udid, 'NO-SUCH'] }, key: alphaAdmin })
  t.equal(change.statusCode, 200, change.body)
  t.same(change.json, { added: [a1.udid], removed: [], unchanged: [], refused: [b1.udid, 'NO-SUCH'].sort() })
  const again = await api('POST', `/api/v1/device-groups/${groupId}/members`, { body: { add: [a1.udid, a2.udid] }, key: alphaAdmin })
  t.same(again.json, { added: [a2.udid], removed: [], unchanged: [a1.udid], refused: [] })
  t.same(await listed(api, `group_id=${groupId}`, alphaAdmin), [a1.udid, a2.udid].sort())
  const both = await api('POST', `/api/v1/device-groups/${groupId}/members`, { body: { add: [a1.udid], remove: [a1.udid] }, key: alphaAdmin })
  t.equal(both.statusCode, 400, 'adding and removing one device at once is refused')
  const removed = await api('POST', `/api/v1/device-groups/${groupId}/members`, { body: { remove: [a2.udid, a2.udid.toLowerCase()] }, key: alphaAdmin })
  t.same(removed.json, { added: [], removed: [a2.udid], unchanged: [], refused: [a2.udid.toLowerCase()] })
  t.equal((await api('GET', `/api/v1/device-groups/${groupId}`, { key: alphaAuditor })).json.device_count, 1)
  const audit = await api('GET', `/api/v1/audit-events?tenant_id=alpha&action=changeDeviceGroupMembers`, { key: alphaAdmin })
  t.ok(audit.json.items.length >= 3, 'membership changes are audited')

  // Another tenant sees none of it.
  t.equal((await api('GET', `/api/v1/device-groups/${groupId}`, { key: betaAdmin })).statusCode, 404)
  t.equal((await api('GET', `/api/v1/devices?group_id=${groupId}`, { key: betaAdmin })).statusCode, 404)
  t.equal((await api('POST', `/api/v1/device-groups/${groupId}/members`, { body: { add: [b1.udid] }, key: betaAdmin })).statusCode, 404)
  t.notOk(
    (await api('GET', '/api/v1/device-groups', { key: betaAdmin })).json.items.some((g: { id: string }) => g.id === groupId),
    'not in the other tenant list',
  )
  // A device moved to another tenant leaves the group's view (its membership no longer counts).
  await db.updateTable('devices').set({ tenant_id: 'beta' }).where('id', '=', a1.udid).execute()
  t.same(await listed(api, `group_id=${groupId}`), [], 'a group holds only its tenant devices')
  await db.updateTable('devices').set({ tenant_id: 'alpha' }).where('id', '=', a1.udid).execute()

  // Static stays static; smart stays smart; members of a smart group are refused.
  const toSmart = await api('PUT', `/api/v1/device-groups/${groupId}`, { body: { name: 'Front desk', filter: { kinds: ['work'] } }, key: alphaAdmin })
  t.equal(toSmart.statusCode, 409)
  const smart = await api('POST', '/api/v1/device-groups', { body: { name: 'Old iPads', filter: { os_version_below: '17' } }, key: alphaAdmin })
  t.equal((await api('POST', `/api/v1/device-groups/${smart.json.id}/members`, { body: { add: [a1.udid] }, key: alphaAdmin })).statusCode, 409)
  const renamed = await api('PUT', `/api/v1/device-groups/${groupId}`, { body: { name: 'Reception', description: 'Front desk iPads' }, key: alphaAdmin })
  t.equal(renamed.statusCode, 200, renamed.body)
  t.match(renamed.json, { name: 'Reception', description: 'Front desk iPads', type: 'static' })

  // Blueprints and update policies may target their tenant's groups (and central IT's), not another tenant's.
  const foreign = await api('POST', '/api/v1/blueprints', { body: { name: 'b', group_ids: [groupId] }, key: betaAdmin })
  t.equal(foreign.statusCode, 400, foreign.body)
  t.match(foreign.json.errors, [{ pointer: '/group_ids' }])
  const foreignPolicy = await api('POST', '/api/v1/update-policies', {
    body: { name: 'p', mode: 'latest', latest_within_days: 7, group_ids: [groupId] },
    key: betaAdmin,
  })
  t.equal(foreignPolicy.statusCode, 400, foreignPolicy.body)
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'Reception', group_ids: [groupId] }, key: alphaAdmin })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  t.same(blueprint.json.group_ids, [groupId])
  const policy = await api('POST', '/api/v1/update-policies', {
    body: { name: 'Reception', mode: 'latest', latest_within_days: 7, group_ids: [groupId] },
    key: alphaAdmin,
  })
  t.equal(policy.statusCode, 201, policy.body)
  t.same(policy.json.group_ids, [groupId])
  const blocked = await api('DELETE', `/api/v1/device-groups/${groupId}`, { key: alphaAdmin })
  t.equal(blocked.statusCode, 409, 'a targeted group cannot be deleted')
  t.match(blocked.json, { detail: /blueprint Reception, update policy Reception/, blueprint_ids: [blueprint.json.id], update_policy_ids: [policy.json.id] })
  t.equal((await api('DELETE', `/api/v1/blueprints/${blueprint.json.id}`, { key: alphaAdmin })).statusCode, 204)
  t.equal((await api('DELETE', `/api/v1/update-policies/${policy.json.id}`, { key: alphaAdmin })).statusCode, 204)
  t.equal((await api('DELETE', `/api/v1/device-groups/${groupId}`, { key: alphaAdmin })).statusCode, 204)
  t.equal((await db.selectFrom('device_group_members').select('device_id').where('group_id', '=', groupId).execute()).length, 0, 'members go with it')
})

t.test('blueprints follow groups: static membership and smart filters, at once and after inventory', async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  const lab = (await api('POST', '/api/v1/profiles', { raw: { payload: wifiProfile('lab.wifi', 'Lab'), contentType: 'application/x-apple-aspen-config' } }))
    .json
  const [first, second, third] = [
    new FaithfulDevice(await mdm.enrolledDevice()),
    new FaithfulDevice(await mdm.enrolledDevice()),
    new FaithfulDevice(await mdm.enrolledDevice()),
  ]
  const all = [first, second, third]
  await db.updateTable('devices').set({ os_version: '17.5', kind: 'function' }).execute()
  await db.updateTable('devices').set({ os_version: '16.7', kind: 'function' }).where('id', '=', third.udid).execute()

  const statik = (await api('POST', '/api/v1/device-groups', { body: { name: 'Lab' } })).json
  const old = (await api('POST', '/api/v1/device-groups', { body: { name: 'Not yet on 17', filter: { os_version_below: '17' } } })).json
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'Lab', profile_ids: [lab.id], group_ids: [statik.id, old.id] } })
  t.equal(blueprint.statusCode, 201, blueprint.body)
  for (const device of all) await device.sync()
  t.same(first.ran, ['ProfileList'], 'in neither group')
  t.same(third.ran, ['ProfileList', 'InstallProfile lab.wifi'], 'the smart group reaches the device below 17')

  // Adding a device to the static group asks the devices for their lists at once.
  for (const device of all) device.reset()
  await api('POST', `/api/v1/device-groups/${statik.id}/members`, { body: { add: [first.udid] } })
  for (const device of all) await device.sync()
  t.same(first.ran, ['ProfileList', 'InstallProfile lab.wifi'], 'added: installed')
  t.same(second.ran, ['ProfileList'])

  // Groups narrow AND kinds: a work device in the group is left alone.
  for (const device of all) device.reset()
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, {
    body: { name: 'Lab', profile_ids: [lab.id], group_ids: [statik.id, old.id], kinds: ['work'] },
  })
  for (const device of all) await device.sync()
  t.same(first.ran, ['ProfileList', 'RemoveProfile lab.wifi'])
  t.same(third.ran, ['ProfileList', 'RemoveProfile lab.wifi'])
  await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'Lab', profile_ids: [lab.id], group_ids: [statik.id, old.id] } })
  for (const device of all) await device.sync()
  for (const device of all) device.reset()

  // The device below 17 updates: its DeviceInformation answer takes it out of the smart group,
  // and its next list removes the profile.
  const queued = await mdm.enqueue([third.udid], 'DeviceInformation', { Queries: ['OSVersion'] })
  t.equal(queued.statusCode, 200, JSON.stringify(queued.json))
  const command = commandIn(await third.device.idle())!
  t.equal(command.requestType, 'DeviceInformation')
  await third.device.answer(command.uuid, 'Acknowledged', { QueryResponses: { OSVersion: '17.6' } })
  t.same(await listed(api, `group_id=${old.id}`), [], 'no longer below 17')
  t.equal((await api('POST', `/api/v1/devices/${third.udid}/configuration/sync`)).statusCode, 202)
  await third.sync()
  t.same(third.ran, ['ProfileList', 'RemoveProfile lab.wifi'], 'the smart group no longer reaches it')

  // Removing from the static group takes it away too.
  await api('POST', `/api/v1/device-groups/${statik.id}/members`, { body: { remove: [first.udid] } })
  await first.sync()
  t.same(first.ran, ['ProfileList', 'RemoveProfile lab.wifi'])
})

t.test('search: name, serial, UDID, IMEI, user email and phone numbers, by prefix', async (t) => {
  const { mdm, api } = await world(t)
  const db = mdm.database.db
  const phone = await mdm.enrolledDevice()
  const other = await mdm.enrolledDevice()
  await db.updateTable('devices').set({ device_name: 'Reception iPhone', imei: '35 123456 789012 3' }).where('id', '=', phone.udid).execute()
  await db.updateTable('devices').set({ device_name: 'Receptionist 100% iPad', imei: '01 234567 890123 4' }).where('id', '=', other.udid).execute()
  const patched = await api('PATCH', `/api/v1/devices/${phone.udid}`, { body: { user_email: 'Kari.Nordmann@example.org' } })
  t.equal(patched.statusCode, 200, patched.body)
  t.equal(patched.json.user_email, 'Kari.Nordmann@example.org')
  t.equal((await api('PATCH', `/api/v1/devices/${phone.udid}`, { body: { user_email: 'not an email' } })).statusCode, 400)
  t.equal((await api('PATCH', `/api/v1/devices/${phone.udid}`, { body: {} })).statusCode, 400, 'an empty change is refused')

  // Its phone numbers come from DeviceInformation.
  await mdm.enqueue([phone.udid], 'DeviceInformation', { Queries: ['PhoneNumber', 'ServiceSubscriptions'] })
  const command = commandIn(await phone.idle())!
  await phone.answer(command.uuid, 'Acknowledged', {
    QueryResponses: { ServiceSubscriptions: [{ PhoneNumber: '+47 912 34 567', Slot: 'CTSubscriptionSlotOne' }, { PhoneNumber: '' }] },
  })
  t.same(
    (await db.selectFrom('device_phone_numbers').select('digits').where('device_id', '=', phone.udid).execute()).map((r) => r.digits),
    ['4791234567'],
  )

  const search = async (q: string) => listed(api, `q=${encodeURIComponent(q)}`)
  t.same(await search('recep'), [phone.udid, other.udid].sort(), 'name prefix, any case')
  t.same(await search('Reception i'), [phone.udid], 'a longer prefix narrows')
  t.same(await search('receptionist 100%'), [other.udid], 'wildcards are plain text')
  t.same(await search('Receptionist 1_0'), [], '_ is plain text too')
  t.same(await search(phone.serialNumber.slice(0, 6).toLowerCase()), [phone.udid], 'serial number prefix, any case')
  t.same(await search(phone.udid.slice(0, 8)), [phone.udid], 'UDID prefix')
  t.same(await search('3512345678'), [phone.udid], 'IMEI without its spaces')
  t.same(await search('kari.nord'), [phone.udid], 'user email prefix')
  t.same(await search('+47 912'), [phone.udid], 'phone number with its country code')
  t.same(await search('91234567'), [phone.udid], 'the local number (the end of the stored one)')
  t.same(await search('nobody'), [])
  t.same(await listed(api, `q=recep&kind=work&serial_number=${other.serialNumber}`), [other.udid], 'search combines with the filters')
  t.equal((await api('GET', '/api/v1/devices?q=r')).statusCode, 400, 'at least two characters')
})
