// The re-enrollment judgment on its own: every ground for accepting a new identity, and
// every refusal, against a device as it is bound.
import t from 'tap'
import { enrollmentPathOf, judgeAuthenticate, type EnrollmentPath } from '../../src/device/reenrollment-policy.js'
import type { DeviceBinding } from '../../src/device/enrollment-store.js'

const now = new Date('2026-12-06T10:00:00Z')
const bound: DeviceBinding = {
  identitySha256: 'a'.repeat(64),
  tenantId: 'physics',
  serialNumber: 'SERIAL1',
  lifecycleState: 'active',
  active: true,
  everEnrolled: true,
  checkedOut: false,
  reenrollmentAllowedUntil: null,
}
const physicsLink: EnrollmentPath = { kind: 'link', linkId: 'l1', tenantId: 'physics' }
const chemistryLink: EnrollmentPath = { kind: 'link', linkId: 'l2', tenantId: 'chemistry' }
/** `reportedSerial` null: the Authenticate has no SerialNumber. */
const claim = (path: EnrollmentPath, reportedSerial: string | null = 'SERIAL1') => ({
  deviceId: 'UDID1',
  identitySha256: 'b'.repeat(64),
  reportedSerial: reportedSerial ?? undefined,
  path,
  now,
})

t.test('accepted grounds', async (t) => {
  const cases: Array<[string, DeviceBinding | undefined, ReturnType<typeof claim>, string]> = [
    ['no such device', undefined, claim(chemistryLink), 'new_device'],
    ['the bound certificate itself', bound, { ...claim({ kind: 'external' }), identitySha256: bound.identitySha256! }, 'same_identity'],
    ['a device bound to nothing', { ...bound, identitySha256: null }, claim({ kind: 'external' }), 'unbound'],
    ['a renewal issued for this device', bound, claim({ kind: 'renewal', deviceId: 'UDID1' }, null), 'renewal'],
    ['wiped', { ...bound, lifecycleState: 'wiped' }, claim(chemistryLink), 'wiped'],
    ['retired', { ...bound, lifecycleState: 'retired' }, claim({ kind: 'external' }), 'retired'],
    ['checked out', { ...bound, active: false, checkedOut: true }, claim(chemistryLink), 'checked_out'],
    ['never finished enrolling', { ...bound, active: false, everEnrolled: false }, claim(chemistryLink), 'not_active'],
    ['allowed by an admin', { ...bound, reenrollmentAllowedUntil: new Date(now.getTime() + 1) }, claim({ kind: 'external' }), 'admin_allowed'],
    [
      "ADE for its serial, from another tenant's token",
      bound,
      claim({ kind: 'ade', depProfileId: 'p1', serialNumber: 'SERIAL1', tenantId: 'chemistry' }),
      'ade_serial',
    ],
    ["its own tenant's link with its serial", bound, claim(physicsLink), 'own_tenant_path'],
    ["central IT's open enrollment for a central device", { ...bound, tenantId: null }, claim({ kind: 'open' }), 'own_tenant_path'],
    ['the static challenge for a central device', { ...bound, tenantId: null }, claim({ kind: 'static_challenge' }), 'own_tenant_path'],
    ['own link, serial unknown to us (User Enrollment)', { ...bound, serialNumber: null }, claim(physicsLink, null), 'own_tenant_path'],
  ]
  for (const [name, current, input, because] of cases) t.same(judgeAuthenticate(current, input), { accept: true, because }, name)
})

t.test('refusals', async (t) => {
  const cases: Array<[string, DeviceBinding, ReturnType<typeof claim>, string, RegExp]> = [
    ["another tenant's link", bound, claim(chemistryLink), 'foreign_tenant_path', /another tenant \(link:l2\)/],
    ['open enrollment for a department device', bound, claim({ kind: 'open' }), 'foreign_tenant_path', /\(open\)/],
    ['an unbound certificate of a trusted CA', bound, claim({ kind: 'external' }), 'no_enrollment_path', /\(external\)/],
    ["another device's renewal", bound, claim({ kind: 'renewal', deviceId: 'UDID2' }), 'no_enrollment_path', /\(renewal:UDID2\)/],
    ['own link without a serial', bound, claim(physicsLink, null), 'serial_mismatch', /reports no SerialNumber, the device has SERIAL1/],
    ['own link with another serial', bound, claim(physicsLink, 'OTHER'), 'serial_mismatch', /reports SerialNumber "OTHER"/],
    ['wiped, but another serial', { ...bound, lifecycleState: 'wiped' }, claim(physicsLink, 'OTHER'), 'serial_mismatch', /OTHER/],
    [
      'ADE for another serial',
      bound,
      claim({ kind: 'ade', depProfileId: 'p1', serialNumber: 'SERIAL2', tenantId: 'chemistry' }, 'SERIAL2'),
      'serial_mismatch',
      /SERIAL2/,
    ],
    ['a permission that has run out', { ...bound, reenrollmentAllowedUntil: now }, claim({ kind: 'external' }), 'no_enrollment_path', /external/],
  ]
  for (const [name, current, input, because, detail] of cases) {
    const verdict = judgeAuthenticate(current, input)
    t.match(verdict, { accept: false, because, detail }, name)
  }
})

t.test('the enrollment path of an issued certificate', async (t) => {
  const origin = {
    authorizedBy: 'challenge' as const,
    deviceId: null,
    enrollmentLinkId: null,
    groupName: null,
    deviceKind: null,
    depProfileId: null,
    adeSerialNumber: null,
    tenantId: null,
  }
  t.same(enrollmentPathOf(undefined), { kind: 'external' })
  t.same(enrollmentPathOf(origin), { kind: 'open' })
  t.same(enrollmentPathOf({ ...origin, authorizedBy: 'static_challenge' }), { kind: 'static_challenge' })
  t.same(enrollmentPathOf({ ...origin, enrollmentLinkId: 'l1', tenantId: 'physics' }), { kind: 'link', linkId: 'l1', tenantId: 'physics' })
  t.same(enrollmentPathOf({ ...origin, depProfileId: 'p1', adeSerialNumber: 'S1', tenantId: 'bio' }), {
    kind: 'ade',
    depProfileId: 'p1',
    serialNumber: 'S1',
    tenantId: 'bio',
  })
  t.same(enrollmentPathOf({ ...origin, deviceId: 'UDID1' }), { kind: 'renewal', deviceId: 'UDID1' }, 'a renewal challenge')
  t.same(
    enrollmentPathOf({ ...origin, authorizedBy: 'renewal', deviceId: 'UDID1' }),
    { kind: 'renewal', deviceId: 'UDID1' },
    'a SCEP renewal signed by the old identity',
  )
})
