// Re-enrollment claims (issue 17, item 1): an Authenticate with a new identity certificate
// for a device enrolled with another one. The exact takeover (another tenant's link, then
// the victim's UDID) is refused with 403 and changes nothing; every legitimate way back in
// is accepted; and a device's tenant changes only through POST /devices/move.
import { generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import { pino } from 'pino'
import type { Test } from 'tap'
import { encodePlist } from '../../src/mdm/plist.js'
import { apiClient } from '../helpers/api.js'
import { profileParts, setupEnrollment, type EnrollmentFixture } from '../helpers/enrollment-fixture.js'
import { seededRandom } from '../helpers/random.js'
import { scepEnroll, type ScepKeyPair } from '../helpers/scep-client.js'
import { commandIn, injectTransport, SimulatedDevice } from '../helpers/simulated-device.js'

const subject = { commonName: 'iPad', organization: 'University' }

interface World extends EnrollmentFixture {
  links: Record<string, string>
  logs: Array<{ level: number; msg: string; [key: string]: unknown }>
}

async function setupWorld(t: Test, tenants: string[]): Promise<World> {
  const logs: World['logs'] = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logs.push(JSON.parse(line)) })
  const world = await setupEnrollment(t, { ORCHARD_WEBHOOK_WORKER: 'false' }, { logger })
  const links: Record<string, string> = {}
  for (const tenant of [...tenants, 'central']) {
    if (tenant !== 'central') {
      const created = await world.api('POST', '/api/v1/tenants', { id: tenant, name: `Department ${tenant}` })
      if (created.statusCode !== 201) throw new Error(`tenant: ${JSON.stringify(created.json)}`)
    }
    const link = await world.api('POST', '/api/v1/enrollment-links', {
      name: `${tenant} iPads`,
      tenant_id: tenant === 'central' ? null : tenant,
      group: tenant,
    })
    if (link.statusCode !== 201) throw new Error(`link: ${JSON.stringify(link.json)}`)
    links[tenant] = new URL(link.json.url).pathname
  }
  links['open'] = '/enroll'
  return { ...world, links, logs }
}

/** An identity certificate from Orchard's SCEP server, through the profile at `profilePath`. */
async function identityThrough(world: EnrollmentFixture, profilePath: string, key?: ScepKeyPair) {
  const download = await world.download(profilePath)
  if (!download.profile) throw new Error(`no profile at ${profilePath}: ${download.statusCode}`)
  const scep = await scepEnroll(world.scepHttp, { challenge: profileParts(download.profile).challenge, subject, ...(key ? { key } : {}) })
  if (scep.certRep.pkiStatus !== 'SUCCESS') throw new Error(`SCEP failed: ${scep.certRep.failInfo}`)
  return { certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey, key: scep.key }
}

/** A device (UDID, serial) holding an identity obtained through `profilePath`. */
async function deviceThrough(world: EnrollmentFixture, profilePath: string, who: { udid?: string; serialNumber?: string }, key?: ScepKeyPair) {
  const identity = await identityThrough(world, profilePath, key)
  return SimulatedDevice.fromIdentity(identity, injectTransport(world.app), who)
}

async function deviceRow(world: EnrollmentFixture, udid: string) {
  return world.database.db
    .selectFrom('devices')
    .select(['tenant_id', 'serial_number', 'identity_sha256', 'enrollment_link_id', 'kind', 'reenrollment_allowed_until'])
    .where('id', '=', udid)
    .executeTakeFirst()
}

/** Every table a refused claim must leave as it was (the audit log and the webhook outbox aside). */
async function snapshot(world: EnrollmentFixture) {
  // (issued_certificates aside too: getting an identity through a link is no claim yet.)
  const tables = ['devices', 'enrollments', 'commands', 'command_targets', 'bootstrap_tokens', 'device_tenancy', 'lifecycle_actions', 'installed_applications']
  const out: Record<string, string[]> = {}
  for (const table of tables) {
    const rows = await world.database.db
      .selectFrom(table as 'devices')
      .selectAll()
      .execute()
    out[table] = rows.map((row) => JSON.stringify(row)).sort()
  }
  return out
}

async function timeline(world: EnrollmentFixture, udid: string) {
  const api = apiClient(world.app)
  return (await api('GET', `/api/v1/audit-events?device_id=${encodeURIComponent(udid)}&limit=100`)).json.items as Array<{
    action: string
    outcome: string
    tenant_id: string | null
    details: Record<string, unknown> | null
  }>
}

t.test("the takeover through another tenant's link is refused with 403 and changes nothing", async (t) => {
  const world = await setupWorld(t, ['physics', 'chemistry'])
  const api = apiClient(world.app)
  const receiver = await api('POST', '/api/v1/webhooks', { body: { url: 'http://127.0.0.1:9/hooks', event_types: ['device.identity_conflict'] } })
  t.equal(receiver.statusCode, 201)

  const victim = await deviceThrough(world, world.links['physics']!, {})
  await victim.enroll()
  const queued = await world.enqueue([victim.udid], 'DeviceInformation', { Queries: ['DeviceName'] }, { push: 'false' })
  t.equal(queued.statusCode, 200)
  const before = await snapshot(world)
  const victimRow = await deviceRow(world, victim.udid)

  // Anyone: chemistry's link (no credentials), an identity over SCEP, the victim's UDID and serial.
  const attacker = await deviceThrough(world, world.links['chemistry']!, { udid: victim.udid, serialNumber: victim.serialNumber })
  const refused = await attacker.authenticate()
  t.equal(refused.status, 403, 'refused with 403, never 401: a real device is not unenrolled by a probe')
  t.match(
    refused.body.toString(),
    /^reenrollment_refused: device .* is enrolled with another identity certificate: the new certificate came through an enrollment path of another tenant \(link:/,
  )
  t.equal((await attacker.tokenUpdate()).status, 400, 'its TokenUpdate is refused too')
  t.equal((await attacker.idle()).status, 400, 'and it gets no commands')
  t.same(await snapshot(world), before, 'every table is unchanged')
  t.same(await deviceRow(world, victim.udid), victimRow, 'tenant, serial and binding stay')

  t.match(
    world.logs.find((line) => /re-enrollment refused/.test(line.msg)),
    { level: 40, reason: 'foreign_tenant_path', device_id: victim.udid, bound_sha256: victimRow!.identity_sha256 },
    'a warn log line says what happened',
  )

  const delivered = commandIn(await victim.idle())
  t.equal(delivered?.uuid, queued.uuid, 'the real device still gets its queued command')

  const conflict = (await timeline(world, victim.udid)).find((e) => e.action === 'identity_conflict')
  t.match(
    conflict,
    {
      outcome: 'failure',
      tenant_id: 'physics',
      details: {
        reason: 'foreign_tenant_path',
        identity_sha256: /^[0-9a-f]{64}$/,
        bound_identity_sha256: victimRow!.identity_sha256,
        enrollment_path: /^link:/,
        reported_serial_number: victim.serialNumber,
      },
    },
    'the device timeline has the conflict, with both certificate hashes and the path',
  )
  t.not(conflict?.details?.['identity_sha256'], victimRow!.identity_sha256)
  const deliveries = (await api('GET', `/api/v1/webhooks/${receiver.json.id}/deliveries`)).json.items
  t.match(deliveries, [{ event_type: 'device.identity_conflict', status: 'pending' }], 'a webhook event is on its way')
})

t.test("refused claims: same tenant without or with another serial, open enrollment, another device's renewal", async (t) => {
  const world = await setupWorld(t, ['physics'])
  const victim = await deviceThrough(world, world.links['physics']!, {})
  await victim.enroll()
  const central = await deviceThrough(world, world.links['central']!, {})
  await central.enroll()
  const before = await snapshot(world)

  const cases: Array<[string, () => Promise<SimulatedDevice>, RegExp]> = [
    [
      "own tenant's link, no SerialNumber",
      () => deviceThrough(world, world.links['physics']!, { udid: victim.udid }),
      /reports no SerialNumber, the device has/,
    ],
    [
      "own tenant's link, another serial",
      () => deviceThrough(world, world.links['physics']!, { udid: victim.udid, serialNumber: 'OTHERSERIAL1' }),
      /reports SerialNumber "OTHERSERIAL1"/,
    ],
    [
      "open enrollment (central IT's) for a physics device",
      () => deviceThrough(world, world.links['open']!, { udid: victim.udid, serialNumber: victim.serialNumber }),
      /another tenant \(open\)/,
    ],
    [
      'a physics link for a central IT device',
      () => deviceThrough(world, world.links['physics']!, { udid: central.udid, serialNumber: central.serialNumber }),
      /another tenant \(link:/,
    ],
  ]
  for (const [name, make, reason] of cases) {
    const claimant = await make()
    if (name.includes('no SerialNumber')) {
      const body = encodePlist({ MessageType: 'Authenticate', UDID: victim.udid, Topic: claimant.topic })
      const response = await claimant.send('/mdm/checkin', body, 'application/x-apple-aspen-mdm-checkin')
      t.equal(response.status, 403, name)
      t.match(response.body.toString(), reason, `${name}: says why`)
      continue
    }
    const response = await claimant.authenticate()
    t.equal(response.status, 403, name)
    t.match(response.body.toString(), reason, `${name}: says why`)
  }
  // A certificate issued to renew one device's identity does not enroll another.
  const renewal = await world.api('POST', `/api/v1/devices/${central.udid}/renew-identity`)
  t.equal(renewal.statusCode, 201)
  const install = commandIn(await central.idle())!
  t.equal(install.requestType, 'InstallProfile')
  const before2 = await snapshot(world)
  const { decodePlist } = await import('../../src/mdm/plist.js')
  const renewalProfile = decodePlist(install.command['Payload'] as Buffer) as Parameters<typeof profileParts>[0]
  const scep = await scepEnroll(world.scepHttp, { challenge: profileParts(renewalProfile).challenge, subject })
  const renewed = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(world.app), {
    udid: victim.udid,
    serialNumber: victim.serialNumber,
  })
  const response = await renewed.authenticate()
  t.equal(response.status, 403, "another device's renewal certificate")
  t.match(response.body.toString(), /no enrollment path of the device's tenant \(renewal:/)
  t.same(await snapshot(world), before2, 'nothing changed')
  t.same(
    (await deviceRow(world, victim.udid))!.identity_sha256,
    JSON.parse(before['devices']!.find((row) => row.includes(victim.udid))!).identity_sha256,
    'the victim is still bound to its own certificate',
  )
  const conflicts = (await timeline(world, victim.udid)).filter((e) => e.action === 'identity_conflict').map((e) => e.details?.['reason'])
  t.same(conflicts.sort(), ['foreign_tenant_path', 'no_enrollment_path', 'serial_mismatch', 'serial_mismatch'], "each refusal is in the victim's timeline")
})

t.test('legitimate re-enrollments are accepted; the device keeps its tenant', async (t) => {
  const world = await setupWorld(t, ['physics', 'chemistry'])
  const api = apiClient(world.app)

  // Its own tenant's link, with its serial number (the profile was removed without a CheckOut).
  const own = await deviceThrough(world, world.links['physics']!, {})
  await own.enroll()
  const ownAgain = await deviceThrough(world, world.links['physics']!, { udid: own.udid, serialNumber: own.serialNumber })
  await ownAgain.enroll()
  t.equal((await own.idle()).status, 400, 'the old identity is replaced')
  t.equal((await ownAgain.idle()).status, 200)
  t.match((await timeline(world, own.udid))[1], { action: 'reenrolled', details: { reason: 'own_tenant_path' } })

  // Checked out, then enrolled through another tenant's link: accepted, but it stays in physics.
  const leaver = await deviceThrough(world, world.links['physics']!, {})
  await leaver.enroll()
  t.equal((await leaver.checkin({ MessageType: 'CheckOut', Topic: leaver.topic })).status, 200)
  const back = await deviceThrough(world, world.links['chemistry']!, { udid: leaver.udid, serialNumber: leaver.serialNumber })
  await back.enroll()
  t.match(
    await deviceRow(world, leaver.udid),
    { tenant_id: 'physics', enrollment_link_id: (await deviceRow(world, own.udid))!.enrollment_link_id },
    'tenant and link stay: only POST /devices/move moves a device',
  )
  t.same(
    (await timeline(world, leaver.udid)).slice(0, 3).map((e) => `${e.action}:${(e.details?.['reason'] as string | undefined) ?? ''}`),
    ['enrolled:', 'foreign_enrollment_path:', 'reenrolled:checked_out'],
  )

  // Wiped: erase (a work device), acknowledged, then enrolled again.
  const wiped = await deviceThrough(world, world.links['physics']!, {})
  await wiped.enroll()
  const erase = await api('POST', `/api/v1/devices/${wiped.udid}/wipe`, { body: {} })
  t.equal(erase.statusCode, 201, JSON.stringify(erase.json))
  const eraseCommand = commandIn(await wiped.idle())!
  t.equal(eraseCommand.requestType, 'EraseDevice')
  await wiped.answer(eraseCommand.uuid, 'Acknowledged')
  const fresh = await deviceThrough(world, world.links['open']!, { udid: wiped.udid, serialNumber: wiped.serialNumber })
  await fresh.enroll()
  t.match(await deviceRow(world, wiped.udid), { tenant_id: 'physics' })
  t.match(
    (await timeline(world, wiped.udid)).find((e) => e.action === 'reenrolled'),
    { details: { reason: 'wiped' } },
  )

  // Allowed by an admin of its tenant, for an identity from another tenant's link.
  const physicsAdmin = (await api('POST', '/api/v1/api-keys', { body: { name: 'physics admin', role: 'admin', tenant_id: 'physics' } })).json.key as string
  const chemistryAdmin = (await api('POST', '/api/v1/api-keys', { body: { name: 'chemistry admin', role: 'admin', tenant_id: 'chemistry' } })).json
    .key as string
  const allowedOne = await deviceThrough(world, world.links['physics']!, {})
  await allowedOne.enroll()
  t.equal(
    (await api('POST', `/api/v1/devices/${allowedOne.udid}/allow-reenrollment`, { key: chemistryAdmin, body: { reason: 'x' } })).statusCode,
    404,
    'another tenant cannot allow it',
  )
  t.equal(
    (await api('POST', `/api/v1/devices/${allowedOne.udid}/allow-reenrollment`, { key: physicsAdmin, body: { reason: 'x', extra: 1 } })).statusCode,
    400,
    'unknown fields are refused',
  )
  const allowed = await api('POST', `/api/v1/devices/${allowedOne.udid}/allow-reenrollment`, {
    key: physicsAdmin,
    body: { minutes: 5, reason: 'replacement phone' },
  })
  t.equal(allowed.statusCode, 200)
  const replacement = await deviceThrough(world, world.links['chemistry']!, { udid: allowedOne.udid, serialNumber: allowedOne.serialNumber })
  await replacement.enroll()
  t.match(
    await deviceRow(world, allowedOne.udid),
    { tenant_id: 'physics', reenrollment_allowed_until: null },
    'accepted once, in its tenant; the permission is used up',
  )
  const again = await deviceThrough(world, world.links['chemistry']!, { udid: allowedOne.udid, serialNumber: allowedOne.serialNumber })
  t.equal((await again.authenticate()).status, 403, 'a second identity is refused again')
  const audit = (await timeline(world, allowedOne.udid)).find((e) => e.action === 'allowDeviceReenrollment')
  t.match(
    audit,
    { tenant_id: 'physics', details: { reason: 'replacement phone', reenrollment_allowed_until: allowed.json.reenrollment_allowed_until } },
    'the permission is audited with its reason',
  )
})

t.test("property: over random enrollments, re-enrollments, check-outs, permissions and moves, a device's tenant changes only through move", async (t) => {
  const world = await setupWorld(t, ['physics', 'chemistry'])
  const api = apiClient(world.app)
  const random = seededRandom(Number(process.env['ORCHARD_PROPERTY_SEED'] ?? 20261206))
  const steps = Number(process.env['ORCHARD_PROPERTY_STEPS'] ?? 40)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  const paths = ['physics', 'chemistry', 'central', 'open'] as const
  const tenantOfPath = (path: (typeof paths)[number]) => (path === 'physics' || path === 'chemistry' ? path : null)
  // Four pieces of hardware; RSA keys made once (each SCEP enrollment still gets its own certificate).
  const hardware = Array.from({ length: 4 }, (_, i) => ({
    udid: `0000800${i}-PROPERTY-TEST-DEVICE`,
    serialNumber: `PROP${i}SERIAL`,
    key: generateKeyPairSync('rsa', { modulusLength: 2048 }),
    device: undefined as SimulatedDevice | undefined,
  }))
  const expected = new Map<string, string | null>()
  const counts: Record<string, number> = {}
  const count = (what: string) => void (counts[what] = (counts[what] ?? 0) + 1)

  for (let step = 0; step < steps; step++) {
    const h = pick(hardware)
    const action = pick(['enroll', 'enroll', 'enroll', 'checkout', 'allow', 'move'] as const)
    if (action === 'enroll') {
      const path = pick(paths)
      // A stranger without the serial number now and then, as an attacker would be.
      const serialNumber = random() < 0.2 ? 'STRANGER' : h.serialNumber
      const device = await deviceThrough(world, world.links[path]!, { udid: h.udid, serialNumber }, h.key)
      const authenticated = await device.authenticate()
      if (authenticated.status === 200) {
        t.equal((await device.tokenUpdate()).status, 200, `step ${step}: an accepted Authenticate enrolls`)
        if (!expected.has(h.udid)) expected.set(h.udid, tenantOfPath(path))
        if (serialNumber === h.serialNumber) h.device = device
        count('enroll accepted')
      } else {
        t.equal(authenticated.status, 403, `step ${step}: a refused claim gets 403`)
        count('enroll refused')
      }
    } else if (action === 'checkout' && h.device) {
      t.equal((await h.device.checkin({ MessageType: 'CheckOut', Topic: h.device.topic })).status, 200)
      count('checkout')
    } else if (action === 'allow' && expected.has(h.udid)) {
      t.equal((await api('POST', `/api/v1/devices/${h.udid}/allow-reenrollment`, { body: { reason: 'property test' } })).statusCode, 200)
      count('allow')
    } else if (action === 'move' && expected.has(h.udid)) {
      const to = pick(['physics', 'chemistry', null] as const)
      const moved = await api('POST', '/api/v1/devices/move', { body: { device_ids: [h.udid], tenant_id: to } })
      t.equal(moved.statusCode, 200, `step ${step}: move`)
      expected.set(h.udid, to)
      count('move')
    }
    for (const { udid } of hardware) {
      if (!expected.has(udid)) continue
      const row = await deviceRow(world, udid)
      if (row?.tenant_id !== expected.get(udid)) t.fail(`step ${step} (${action} ${h.udid}): ${udid} is in ${row?.tenant_id}, expected ${expected.get(udid)}`)
    }
  }
  t.comment(`steps: ${JSON.stringify(counts)}`)
  t.ok(
    (counts['enroll accepted'] ?? 0) > 0 && (counts['enroll refused'] ?? 0) > 0 && (counts['move'] ?? 0) > 0,
    'the walk tried accepted and refused enrollments and moves',
  )
})
