// End to end: enrollment link -> profile -> SCEP -> Authenticate/TokenUpdate -> command ->
// identity renewal (InstallProfile with a fresh profile) -> new certificate bound, old refused.
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto'
import t from 'tap'
import { decodePlist, isPlistDict, type PlistDict } from '../../src/mdm/plist.js'
import { validateProfile } from '../../src/mdm/profile-validation.js'
import { createIdentityRenewalService } from '../../src/enrollment/identity-renewal.js'
import { createIdentityStore } from '../../src/enrollment/identity-store.js'
import { apiClient } from '../helpers/api.js'
import { testLogger } from '../helpers/app.js'
import { profileParts, setupEnrollment, type EnrollmentFixture } from '../helpers/enrollment-fixture.js'
import { scepEnroll, type ScepKeyPair } from '../helpers/scep-client.js'
import { commandIn, injectTransport, SimulatedDevice } from '../helpers/simulated-device.js'

const subject = { commonName: 'iPad of the biology department', organization: 'University' }

async function enrollThroughLink(world: EnrollmentFixture, linkUrl: string) {
  const profile = (await world.download(new URL(linkUrl).pathname)).profile!
  const scep = await scepEnroll(world.scepHttp, { challenge: profileParts(profile).challenge, subject })
  if (scep.certRep.pkiStatus !== 'SUCCESS') throw new Error(`SCEP failed: ${scep.certRep.failInfo}`)
  const device = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(world.app))
  await device.enroll()
  return { device, certificateDer: scep.certificateDer!, key: scep.key }
}

/** What a device does with an InstallProfile of its enrollment profile: SCEP with the new challenge, then Authenticate and TokenUpdate. */
async function installRenewal(world: EnrollmentFixture, device: SimulatedDevice, command: PlistDict): Promise<{ certificateDer: Buffer; key: ScepKeyPair }> {
  const payload = command['Payload'] as Buffer
  const profile = decodePlist(payload)
  if (!isPlistDict(profile)) throw new Error('the InstallProfile payload is not a profile')
  const scep = await scepEnroll(world.scepHttp, { challenge: profileParts(profile).challenge, subject })
  if (scep.certRep.pkiStatus !== 'SUCCESS') throw new Error(`renewal SCEP failed: ${scep.certRep.failInfo}`)
  await device.useIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey })
  await device.enroll()
  return { certificateDer: scep.certificateDer!, key: scep.key }
}

t.test('link -> profile -> SCEP -> enrolled in the link group -> command -> renewal -> new certificate bound, old refused', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const link = (await api('POST', '/api/v1/enrollment-links', { body: { name: 'Biology iPads', group: 'biology', device_kind: 'function' } })).json
  const { device, certificateDer: firstCertificate } = await enrollThroughLink(world, link.url)

  const row = await world.database.db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(row, { enrollment_link_id: link.id, enrollment_group: 'biology', kind: 'function' }, 'the device landed in the link group, with its kind')
  t.equal(row.identity_sha256, new X509Certificate(firstCertificate).fingerprint256.replace(/:/g, '').toLowerCase())
  t.match((await api('GET', `/api/v1/enrollment-links/${link.id}`)).json, { uses: 1 })

  // A command before the renewal stays queued through it.
  const before = await world.enqueue([device.udid], 'DeviceInformation', {}, { push: 'false' })
  const renewal = await api('POST', `/api/v1/devices/${device.udid}/renew-identity`)
  t.equal(renewal.statusCode, 201)
  t.match(renewal.json, { request_type: 'InstallProfile', targets: [{ enrollment_id: device.udid, result: 'queued' }] })

  const first = commandIn(await device.idle())!
  t.equal(first.uuid, before.uuid, 'FIFO: the earlier command first')
  t.equal((await device.answer(first.uuid, 'Acknowledged', { QueryResponses: { DeviceName: 'iPad' } })).status, 200)
  const install = commandIn(await device.idle())!
  t.equal(install.requestType, 'InstallProfile')
  const renewalProfile = decodePlist(install.command['Payload'] as Buffer) as PlistDict
  t.same(validateProfile(renewalProfile), [], 'the renewal profile is schema-valid')
  const enrollmentProfile = (await world.download('/enroll')).profile!
  t.equal(renewalProfile['PayloadIdentifier'], enrollmentProfile['PayloadIdentifier'], 'same PayloadIdentifier: the installed profile is replaced')
  const renewalMdm = profileParts(renewalProfile).mdm
  const enrollmentMdm = profileParts(enrollmentProfile).mdm
  for (const key of ['Topic', 'ServerURL', 'CheckInURL', 'AccessRights']) t.same(renewalMdm[key], enrollmentMdm[key], `same ${key}`)
  const challengeRow = await world.database.db.selectFrom('scep_challenges').selectAll().where('purpose', '=', 'renewal').executeTakeFirstOrThrow()
  t.equal(challengeRow.device_id, device.udid, 'a one-time challenge bound to this device')

  // Another command queued while the renewal runs: the re-Authenticate of a renewal keeps it.
  const during = await world.enqueue([device.udid], 'ProfileList', {}, { push: 'false' })
  const oldIdentity = { certificateDer: device.certificateDer, privateKey: device.privateKey }
  const renewed = await installRenewal(world, device, install.command)
  t.equal((await device.answer(install.uuid, 'Acknowledged')).status, 200, 'the InstallProfile result comes with the new identity')
  t.match(await world.targetStatus(device.udid, install.uuid), { status: 'Acknowledged' })
  t.match(await world.targetStatus(device.udid, during.uuid), { status: 'Pending' }, 'the renewal did not cancel the queue')
  t.equal(commandIn(await device.idle())?.uuid, during.uuid)

  const after = await world.database.db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.equal(
    after.identity_sha256,
    new X509Certificate(renewed.certificateDer).fingerprint256.replace(/:/g, '').toLowerCase(),
    'the binding moved to the new certificate',
  )
  t.match(after, { identity_renewal_queued_at: null, identity_renewal_command_uuid: null, enrollment_group: 'biology', kind: 'function' })
  t.match((await api('GET', `/api/v1/enrollment-links/${link.id}`)).json, { uses: 1 }, 'a renewal is not a new use of the link')
  const issuance = await world.database.db.selectFrom('issued_certificates').selectAll().where('device_id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(issuance, { authorized_by: 'challenge', device_id: device.udid })
  const timeline = await api('GET', `/api/v1/audit-events?device_id=${device.udid}&category=device`)
  t.same(
    timeline.json.items.map((event: { action: string }) => event.action),
    ['identity_renewed', 'enrolled'],
    "the renewal is in the device's timeline",
  )
  t.match(timeline.json.items[0].details, { identity_sha256: after.identity_sha256 })

  // The old certificate is refused now (never with 401).
  const old = await SimulatedDevice.fromIdentity(
    { certificateDer: oldIdentity.certificateDer, privateKey: await exportKey(oldIdentity.privateKey) },
    injectTransport(world.app),
    { udid: device.udid },
  )
  const refused = await old.idle()
  t.equal(refused.status, 400)
  t.match(refused.body.toString(), /identity_rejected/)
})

t.test('the renewal sweep: identities inside the lead time get one InstallProfile, listed as expiring', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const link = (await api('POST', '/api/v1/enrollment-links', { body: { name: 'Fleet' } })).json
  const a = await enrollThroughLink(world, link.url)
  const b = await enrollThroughLink(world, link.url)
  // A device whose identity is not ours (a test CA, trusted by configuration): listed, not renewable.
  const foreign = await world.enrolledDevice()

  t.same((await api('GET', '/api/v1/identities/expiring')).json.items, [], 'nothing expires within 60 days yet')
  const listed = (await api('GET', '/api/v1/identities/expiring?within_days=400&limit=2')).json
  t.equal(listed.items.length, 2)
  t.ok(listed.next_cursor, 'paged')
  const rest = (await api('GET', `/api/v1/identities/expiring?within_days=400&limit=2&cursor=${listed.next_cursor}`)).json
  const all = [...listed.items, ...rest.items]
  t.same(all.map((i: any) => i.device_id).sort(), [a.device.udid, b.device.udid, foreign.udid].sort())
  t.match(
    all.find((i: any) => i.device_id === foreign.udid),
    { renewable: false },
  )
  t.match(
    all.find((i: any) => i.device_id === a.device.udid),
    { renewable: true, renewal_queued_at: null },
  )
  t.match((await api('POST', `/api/v1/devices/${foreign.udid}/renew-identity`)).json, { code: 'conflict', detail: /not issued by Orchard/ })

  // 320 days later: both Orchard identities are within 60 days of expiry.
  let clock = new Date(Date.now() + 320 * 86_400_000)
  const newSweep = () =>
    createIdentityRenewalService({
      store: createIdentityStore(world.database.db),
      enrollment: world.orchard.enrollment,
      dispatcher: world.orchard.dispatcher,
      leadDays: 60,
      logger: testLogger(),
      now: () => clock,
    })
  const sweep = newSweep()
  // Two instances sweeping at the same moment: one renewal per device between them.
  const [one, other] = await Promise.all([sweep.renewDue(), newSweep().renewDue()])
  t.equal(one.queued + other.queued, 2, 'two renewals, not four')
  t.equal(one.failed + other.failed, 0)
  t.equal(
    await world.database.db
      .selectFrom('commands')
      .select('uuid')
      .where('request_type', '=', 'InstallProfile')
      .execute()
      .then((rows) => rows.length),
    2,
  )
  t.same(await sweep.renewDue(), { queued: 0, failed: 0 }, 'queued once, not on every sweep')
  for (const { device } of [a, b]) {
    const install = commandIn(await device.idle())!
    t.equal(install.requestType, 'InstallProfile', 'the renewal reached the device')
  }
  const expiring = (await api('GET', '/api/v1/identities/expiring?within_days=400')).json.items
  t.match(
    expiring.find((i: any) => i.device_id === a.device.udid),
    { renewal_queued_at: /Z$/, renewal_command_uuid: /./, renewal_command_status: 'Pending' },
  )

  // A renewal that never completed is queued again after a week.
  clock = new Date(clock.getTime() + 8 * 86_400_000)
  t.same(await sweep.renewDue(), { queued: 2, failed: 0 })
  // Identities that already expired cannot be reached: not queued.
  clock = new Date(Date.now() + 400 * 86_400_000)
  t.same(await sweep.renewDue(), { queued: 0, failed: 0 })
})

async function exportKey(key: SimulatedDevice['privateKey']) {
  return createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)), format: 'der', type: 'pkcs8' })
}

t.test('a User Enrollment link records the device as personal; its renewal keeps the BYOD profile', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const link = (
    await api('POST', '/api/v1/enrollment-links', {
      body: { name: 'Staff BYOD', enrollment_type: 'user_enrollment', group: 'staff', managed_apple_id: 'ana@council.example' },
    })
  ).json
  const profile = (await world.download(new URL(link.url).pathname)).profile!
  const scep = await scepEnroll(world.scepHttp, { challenge: profileParts(profile).challenge, subject })
  const device = await SimulatedDevice.fromIdentity({ certificateDer: scep.certificateDer!, privateKey: scep.key.privateKey }, injectTransport(world.app), {
    userEnrollment: true,
  })
  await device.enroll()
  const row = await world.database.db.selectFrom('devices').selectAll().where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.match(row, { user_enrollment: true, kind: 'personal', enrollment_group: 'staff', enrollment_link_id: link.id })

  const renewal = await api('POST', `/api/v1/devices/${device.udid}/renew-identity`)
  t.equal(renewal.statusCode, 201)
  const install = commandIn(await device.idle())!
  const renewalProfile = decodePlist(install.command['Payload'] as Buffer) as PlistDict
  t.same(validateProfile(renewalProfile), [])
  const mdm = profileParts(renewalProfile).mdm
  t.notOk('AccessRights' in mdm, 'still the User Enrollment variant')
  t.equal(mdm['ManagedAppleID'], 'ana@council.example', "the link's Managed Apple ID")
})
