import t from 'tap'
import { buildEnrollmentProfile, encodeEnrollmentProfile, type EnrollmentProfileOptions } from '../../src/mdm/enrollment-profile.js'
import { decodePlist, isPlistDict, type PlistDict, type PlistValue } from '../../src/mdm/plist.js'
import { validateProfile } from '../../src/mdm/profile-validation.js'

const caDer = Buffer.from('3082010a0282010100', 'hex') // the builder does not parse certificates
const intermediateDer = Buffer.from('308201', 'hex')

const options = (overrides: Partial<EnrollmentProfileOptions> = {}): EnrollmentProfileOptions => ({
  identifier: 'com.example.orchard.enroll',
  organization: 'Example Org',
  variant: 'device',
  trust: [
    { der: caDer, name: 'Example Root CA', selfSigned: true },
    { der: intermediateDer, name: 'Example Intermediate', selfSigned: false },
  ],
  scep: {
    url: 'https://mdm.example.com/scep',
    challenge: 's3cret',
    subject: [
      ['CN', 'Orchard device 1234'],
      ['O', 'Example Org'],
    ],
  },
  mdm: { serverUrl: 'https://mdm.example.com/mdm', checkInUrl: 'https://mdm.example.com/checkin', topic: 'com.apple.mgmt.External.1234' },
  ...overrides,
})

const dict = (value: PlistValue | undefined): PlistDict => {
  if (!isPlistDict(value)) throw new Error('not a dict')
  return value
}
const payloads = (profile: PlistDict) => (profile['PayloadContent'] as PlistValue[]).map(dict)
const payloadOf = (profile: PlistDict, type: string) => payloads(profile).find((payload) => payload['PayloadType'] === type)!
const roundTrip = (value: EnrollmentProfileOptions) => dict(decodePlist(encodeEnrollmentProfile(value)))

t.test('device profile: encodes, decodes and validates', async (t) => {
  const profile = roundTrip(options())
  t.same(validateProfile(profile), [])
  t.match(profile, {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: 'com.example.orchard.enroll',
    PayloadDisplayName: 'Example Org device management',
    PayloadOrganization: 'Example Org',
    PayloadDescription: String,
  })
  t.notOk('PayloadRemovalDisallowed' in profile)
  t.same(
    payloads(profile).map((payload) => [payload['PayloadType'], payload['PayloadIdentifier']]),
    [
      ['com.apple.security.root', 'com.example.orchard.enroll.ca.0'],
      ['com.apple.security.pkcs1', 'com.example.orchard.enroll.ca.1'],
      ['com.apple.security.scep', 'com.example.orchard.enroll.scep'],
      ['com.apple.mdm', 'com.example.orchard.enroll.mdm'],
    ],
  )
  t.same(payloads(profile)[0]!['PayloadContent'], caDer)
  t.equal(payloads(profile)[0]!['PayloadDisplayName'], 'Example Root CA')

  const scep = payloadOf(profile, 'com.apple.security.scep')
  t.same(scep['PayloadContent'], {
    URL: 'https://mdm.example.com/scep',
    Name: 'Orchard',
    Subject: [[['CN', 'Orchard device 1234']], [['O', 'Example Org']]],
    Challenge: 's3cret',
    Keysize: 2048,
    'Key Type': 'RSA',
    'Key Usage': 5,
  })

  const mdm = payloadOf(profile, 'com.apple.mdm')
  t.equal(mdm['IdentityCertificateUUID'], scep['PayloadUUID'], 'the MDM payload names the SCEP identity')
  t.match(mdm, {
    Topic: 'com.apple.mgmt.External.1234',
    ServerURL: 'https://mdm.example.com/mdm',
    CheckInURL: 'https://mdm.example.com/checkin',
    SignMessage: true,
    CheckOutWhenRemoved: true,
    AccessRights: 8191,
  })
  t.same(mdm['ServerCapabilities'], ['com.apple.mdm.per-user-connections', 'com.apple.mdm.bootstraptoken'])
  for (const payload of payloads(profile)) t.equal(payload['PayloadVersion'], 1)
})

t.test('user-enrollment profile: no access rights, no device-only capabilities', async (t) => {
  const profile = roundTrip(options({ variant: 'user-enrollment', mdm: { ...options().mdm, managedAppleId: 'jane@example.com' } }))
  t.same(validateProfile(profile), [])
  t.equal(profile['PayloadDisplayName'], 'Example Org User Enrollment')
  t.notOk('PayloadRemovalDisallowed' in profile)
  const mdm = payloadOf(profile, 'com.apple.mdm')
  t.notOk('AccessRights' in mdm)
  t.notOk('ServerCapabilities' in mdm)
  t.equal(mdm['ManagedAppleID'], 'jane@example.com')
  t.equal(mdm['IdentityCertificateUUID'], payloadOf(profile, 'com.apple.security.scep')['PayloadUUID'])

  const given = roundTrip(options({ variant: 'user-enrollment', mdm: { ...options().mdm, serverCapabilities: ['com.apple.mdm.token'] } }))
  t.same(payloadOf(given, 'com.apple.mdm')['ServerCapabilities'], ['com.apple.mdm.token'])
  t.notOk('ManagedAppleID' in payloadOf(given, 'com.apple.mdm'))
})

t.test('options: display name, key size, access rights, uuid source', async (t) => {
  let counter = 0
  const profile = buildEnrollmentProfile(
    options({
      displayName: 'Enroll me',
      description: 'Custom',
      scep: { ...options().scep, keySize: 4096, name: 'ca-2' },
      mdm: { ...options().mdm, accessRights: 1 | 2 | 16, serverCapabilities: [] },
      uuid: () => `00000000-0000-0000-0000-${String(++counter).padStart(12, '0')}`,
    }),
  )
  t.same(validateProfile(profile), [])
  t.equal(profile['PayloadDisplayName'], 'Enroll me')
  t.equal(profile['PayloadDescription'], 'Custom')
  t.match(dict(payloadOf(profile, 'com.apple.security.scep')['PayloadContent']), { Keysize: 4096, Name: 'ca-2' })
  t.equal(payloadOf(profile, 'com.apple.mdm')['AccessRights'], 19)
  t.same(payloadOf(profile, 'com.apple.mdm')['ServerCapabilities'], [])
  const uuids = [profile['PayloadUUID'], ...payloads(profile).map((payload) => payload['PayloadUUID'])]
  t.equal(new Set(uuids).size, 5, 'every payload has its own UUID')
  t.ok(uuids.every((uuid) => typeof uuid === 'string' && uuid.startsWith('00000000-')))
})

t.test('identifier is stable, UUIDs are fresh per build', async (t) => {
  const first = buildEnrollmentProfile(options())
  const second = buildEnrollmentProfile(options())
  t.equal(first['PayloadIdentifier'], second['PayloadIdentifier'])
  t.same(
    payloads(first).map((payload) => payload['PayloadIdentifier']),
    payloads(second).map((payload) => payload['PayloadIdentifier']),
  )
  const uuidsOf = (profile: PlistDict) => [profile['PayloadUUID'], ...payloads(profile).map((payload) => payload['PayloadUUID'])] as string[]
  const all = [...uuidsOf(first), ...uuidsOf(second)]
  t.equal(new Set(all).size, all.length, 'no UUID repeats across builds')
  for (const uuid of all) t.match(uuid, /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/)
})

t.test('refuses inputs no device would take', async (t) => {
  t.throws(() => buildEnrollmentProfile(options({ identifier: '' })), /identifier/)
  t.throws(() => buildEnrollmentProfile(options({ mdm: { ...options().mdm, topic: 'com.example.push' } })), /com\.apple\.mgmt\./)
  t.throws(() => buildEnrollmentProfile(options({ mdm: { ...options().mdm, serverUrl: 'http://mdm.example.com/mdm' } })), /https/)
  t.throws(() => buildEnrollmentProfile(options({ mdm: { ...options().mdm, accessRights: 0 } })), /accessRights/)
  t.throws(() => buildEnrollmentProfile(options({ mdm: { ...options().mdm, managedAppleId: 'jane@example.com' } })), /user-enrollment/)
  t.throws(() => buildEnrollmentProfile(options({ scep: { ...options().scep, keySize: 3072 as 2048 } })), /keySize/)
})

t.test('validateProfile catches mistakes', async (t) => {
  /** A decoded device profile with `mutate` applied to it. */
  const broken = (mutate: (profile: PlistDict, payload: (type: string) => PlistDict) => void) => {
    const profile = roundTrip(options())
    mutate(profile, (type) => payloadOf(profile, type))
    return validateProfile(profile)
  }
  const expectProblem = (problems: string[], pattern: RegExp, name: string) => {
    t.ok(
      problems.some((problem) => pattern.test(problem)),
      `${name}: ${JSON.stringify(problems)}`,
    )
  }

  expectProblem(
    broken((_, payload) => (payload('com.apple.mdm')['SignMessage'] = 'yes')),
    /^PayloadContent\[3\]\.SignMessage: must be true or false/,
    'wrong type',
  )
  expectProblem(
    broken((profile) => (profile['PayloadVersion'] = '1')),
    /^PayloadVersion: must be an integer/,
    'wrong top-level type',
  )
  expectProblem(
    broken((_, payload) => delete payload('com.apple.mdm')['Topic']),
    /^PayloadContent\[3\]\.Topic: is required/,
    'missing required key',
  )
  expectProblem(
    broken((profile) => delete profile['PayloadUUID']),
    /^PayloadUUID: is required/,
    'missing top-level key',
  )
  expectProblem(
    broken((_, payload) => delete payload('com.apple.security.root')['PayloadContent']),
    /^PayloadContent\[0\]\.PayloadContent: is required/,
    'missing certificate',
  )
  expectProblem(
    broken((_, payload) => (payload('com.apple.mdm')['ServerUrl'] = 'https://x')),
    /^PayloadContent\[3\]\.ServerUrl: is not a key of com\.apple\.mdm/,
    'unknown key',
  )
  expectProblem(
    broken((profile) => (profile['Payloadidentifier'] = 'x')),
    /^Payloadidentifier: is not a top-level profile key/,
    'unknown top-level key',
  )
  expectProblem(
    broken((_, payload) => (dict(payload('com.apple.security.scep')['PayloadContent'])['Keysize'] = 3072)),
    /^PayloadContent\[2\]\.PayloadContent\.Keysize: 3072 is not one of 1024, 2048, 4096/,
    'bad allowed value',
  )
  expectProblem(
    broken((profile) => (profile['PayloadType'] = 'Profile')),
    /^PayloadType: "Profile" is not one of "Configuration"/,
    'bad top-level PayloadType',
  )
  expectProblem(
    broken((_, payload) => (payload('com.apple.mdm')['ServerCapabilities'] = ['com.apple.mdm.per-user-connection'])),
    /^PayloadContent\[3\]\.ServerCapabilities\[0\]: "com\.apple\.mdm\.per-user-connection" is not one of/,
    'bad array element',
  )
  expectProblem(
    broken((_, payload) => (payload('com.apple.mdm')['ServerURL'] = 'http://mdm.example.com/mdm')),
    /^PayloadContent\[3\]\.ServerURL: "http:\/\/mdm\.example\.com\/mdm" does not match \^https:\/\/\.\*\$/,
    'bad ServerURL format',
  )
  expectProblem(
    broken((_, payload) => (payload('com.apple.mdm')['IdentityCertificateUUID'] = 'scep')),
    /IdentityCertificateUUID: "scep" does not match/,
    'bad UUID format',
  )
  expectProblem(
    broken((_, payload) => (dict(payload('com.apple.security.scep')['PayloadContent'])['Subject'] = [[['CN']]])),
    /^PayloadContent\[2\]\.PayloadContent\.Subject\[0\]\[0\]: must have at least 2 elements, has 1/,
    'Subject pair of one',
  )
  expectProblem(
    broken((_, payload) => (dict(payload('com.apple.security.scep')['PayloadContent'])['Subject'] = [['CN', 'x']])),
    /^PayloadContent\[2\]\.PayloadContent\.Subject\[0\]\[0\]: must be an array, not the string "CN"/,
    'Subject not nested',
  )
  expectProblem(
    broken((_, payload) => (dict(payload('com.apple.security.scep')['PayloadContent'])['SubjectAltName'] = { dnsName: 'x' })),
    /SubjectAltName\.dnsName: is not a key of SubjectAltName/,
    'unknown nested key',
  )
  expectProblem(
    broken((_, payload) => (payload('com.apple.mdm')['PayloadType'] = 'com.apple.mdm.v2')),
    /^PayloadContent\[3\]\.PayloadType: "com\.apple\.mdm\.v2" is not a payload type known here/,
    'unknown PayloadType',
  )
  expectProblem(
    broken((profile) => (profile['PayloadContent'] = [1])),
    /^PayloadContent\[0\]: must be a dictionary, not the integer 1/,
    'payload not a dict',
  )
  expectProblem(
    broken((profile) => (profile['ConsentText'] = { default: 1 })),
    /^ConsentText\.default: must be a string/,
    'free-form dictionary values',
  )
  t.same(
    broken((profile) => (profile['ConsentText'] = { default: 'Agree?', en: 'Agree?' })),
    [],
    'ConsentText takes language keys',
  )
  t.same(validateProfile('profile'), ['the profile must be a dictionary, not the string "profile"'])
})
