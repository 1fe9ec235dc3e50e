// Enrollment profiles (GET /enroll, /enroll/<token>) and enrollment links through the real app.
import { generateKeyPairSync, X509Certificate } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as pkijs from 'pkijs'
import t from 'tap'
import { distinguishedName, issueCertificate } from '../../src/crypto/certificate-issuer.js'
import { decodePlist, isPlistDict } from '../../src/mdm/plist.js'
import { validateProfile } from '../../src/mdm/profile-validation.js'
import { challengeHash } from '../../src/enrollment/scep-service.js'
import { apiClient } from '../helpers/api.js'
import { profileParts, publicUrl, setupEnrollment } from '../helpers/enrollment-fixture.js'
import { testApiKey } from '../helpers/mdm-fixture.js'
import { testTopic } from '../helpers/simulated-device.js'

function signingIdentityFiles(): { ORCHARD_PROFILE_SIGNING_CERT_FILE: string; ORCHARD_PROFILE_SIGNING_KEY_FILE: string; certificateDer: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const now = Date.now()
  const issued = issueCertificate({
    subject: distinguishedName({ commonName: 'Orchard profile signing', organization: 'Orchard tests' }),
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    selfSignKey: privateKey,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    profile: 'client',
  })
  const dir = mkdtempSync(join(tmpdir(), 'orchard-signing-'))
  writeFileSync(join(dir, 'cert.pem'), new X509Certificate(issued.der).toString())
  writeFileSync(join(dir, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }))
  return { ORCHARD_PROFILE_SIGNING_CERT_FILE: join(dir, 'cert.pem'), ORCHARD_PROFILE_SIGNING_KEY_FILE: join(dir, 'key.pem'), certificateDer: issued.der }
}

t.test('open enrollment: a complete, schema-valid profile with a fresh one-time challenge each time', async (t) => {
  const world = await setupEnrollment(t)
  const first = await world.download('/enroll')
  t.equal(first.statusCode, 200)
  t.match(first.headers, { 'content-type': 'application/x-apple-aspen-config', 'cache-control': 'no-store', 'content-disposition': /enroll\.mobileconfig/ })
  const profile = first.profile!
  t.same(validateProfile(profile), [], 'every payload matches the schema digest')

  const { challenge, scep, mdm, payloads } = profileParts(profile)
  t.equal(payloads[0]!['PayloadType'], 'com.apple.security.root', 'the device CA certificate, self-signed: a root payload')
  const caList = await world.api('GET', '/api/v1/certificate-authorities')
  const active = caList.json.items.find((ca: any) => ca.active)
  t.ok(Buffer.from(payloads[0]!['PayloadContent'] as Buffer).equals(new X509Certificate(active.certificate_pem).raw), 'the trusted payload is the issuing CA')
  t.match(scep, { URL: `${publicUrl}/scep`, Keysize: 2048, 'Key Type': 'RSA' })
  t.match(JSON.stringify(scep['Subject']), /device [0-9a-f-]{36}/, 'the subject carries a per-device unique value')
  t.match(mdm, {
    Topic: testTopic,
    ServerURL: `${publicUrl}/mdm/connect`,
    CheckInURL: `${publicUrl}/mdm/checkin`,
    SignMessage: true,
    AccessRights: 8191,
    CheckOutWhenRemoved: true,
    ServerCapabilities: ['com.apple.mdm.per-user-connections', 'com.apple.mdm.bootstraptoken'],
  })
  t.equal(mdm['IdentityCertificateUUID'], payloads.find((p) => p['PayloadType'] === 'com.apple.security.scep')!['PayloadUUID'])
  t.equal(profile['PayloadIdentifier'], 'orchard.enrollment')

  const stored = await world.database.db.selectFrom('scep_challenges').selectAll().execute()
  t.equal(stored.length, 1)
  t.ok(stored[0]!.challenge_sha256.equals(challengeHash(challenge)), 'only the hash of the challenge is stored')
  t.notOk(stored[0]!.challenge_sha256.toString('latin1').includes(challenge))
  t.match(stored[0], { purpose: 'enrollment', enrollment_link_id: null, used_at: null })
  const hours = (stored[0]!.expires_at.getTime() - Date.now()) / 3_600_000
  t.ok(hours > 71 && hours <= 72, 'valid ORCHARD_ENROLLMENT_CHALLENGE_HOURS (72)')

  const second = await world.download('/enroll')
  const again = profileParts(second.profile!)
  t.not(again.challenge, challenge, 'a new challenge per download')
  t.equal(second.profile!['PayloadIdentifier'], profile['PayloadIdentifier'], 'same identifier: a re-install replaces the profile')
  t.not(second.profile!['PayloadUUID'], profile['PayloadUUID'])
})

t.test('profiles are signed when a signing identity is configured, unless signed=false', async (t) => {
  const signing = signingIdentityFiles()
  const world = await setupEnrollment(t, {
    ORCHARD_PROFILE_SIGNING_CERT_FILE: signing.ORCHARD_PROFILE_SIGNING_CERT_FILE,
    ORCHARD_PROFILE_SIGNING_KEY_FILE: signing.ORCHARD_PROFILE_SIGNING_KEY_FILE,
  })
  const signed = await world.download('/enroll')
  t.equal(signed.statusCode, 200)
  t.equal(signed.profile, undefined, 'not a bare plist')
  const contentInfo = pkijs.ContentInfo.fromBER(signed.body)
  const signedData = new pkijs.SignedData({ schema: contentInfo.content })
  t.ok(await signedData.verify({ signer: 0, checkChain: false }), 'the CMS signature verifies')
  const content = Buffer.from(signedData.encapContentInfo.eContent!.getValue())
  const inner = decodePlist(content)
  t.ok(isPlistDict(inner))
  t.same(validateProfile(inner), [], 'the signed content is the schema-valid profile')
  const signer = Buffer.from(signedData.certificates![0]!.toSchema().toBER(false))
  t.ok(signer.equals(signing.certificateDer), 'signed by the configured certificate')

  const unsigned = await world.download('/enroll?signed=false')
  t.ok(unsigned.profile, 'signed=false: the plain plist for clients that cannot read signed profiles')
  t.equal((await world.download('/enroll?signed=maybe')).statusCode, 400)
  t.equal((await world.download('/enroll?color=red')).statusCode, 400, 'unknown parameters are refused')
})

t.test('without a signing identity, signed=true is a clear 409', async (t) => {
  const world = await setupEnrollment(t)
  const refused = await world.download('/enroll?signed=true')
  t.equal(refused.statusCode, 409)
  t.match(refused.json, { code: 'conflict', detail: /ORCHARD_PROFILE_SIGNING_CERT_FILE/ })
})

t.test('profiles need a push certificate, an https public URL and a device CA', async (t) => {
  const noPush = await setupEnrollment(t, {}, { pushCertificate: false })
  const refused = await noPush.download('/enroll')
  t.equal(refused.statusCode, 409)
  t.match(refused.json, { detail: /no push certificate/ })
  t.equal(
    await noPush.database.db
      .selectFrom('scep_challenges')
      .select('purpose')
      .execute()
      .then((r) => r.length),
    0,
    'no challenge minted for a profile that was not handed out',
  )

  const http = await setupEnrollment(t, { ORCHARD_PUBLIC_URL: 'http://mdm.example.test' })
  const plain = await http.download('/enroll')
  t.equal(plain.statusCode, 409)
  t.match(plain.json, { detail: /https/ })

  // No ORCHARD_SECRET_KEYS: no CA can be generated; enrollment says why, the rest works.
  const { setupMdm } = await import('../helpers/mdm-fixture.js')
  const bare = await setupMdm(t, { ORCHARD_PUBLIC_URL: publicUrl })
  const noCa = await bare.app.inject({ method: 'GET', url: '/enroll' })
  t.equal(noCa.statusCode, 503)
  t.match(noCa.json(), { code: 'not_ready', detail: /ORCHARD_SECRET_KEYS/ })
  const scep = await bare.app.inject({ method: 'GET', url: '/scep?operation=GetCACert' })
  t.equal(scep.statusCode, 503)
  t.match(scep.body, /ORCHARD_SECRET_KEYS/)
  const device = await bare.enrolledDevice()
  t.ok(device, 'devices of a configured CA still enroll')
})

t.test('open enrollment can be turned off; links still work', async (t) => {
  const world = await setupEnrollment(t, { ORCHARD_OPEN_ENROLLMENT: 'false' })
  const closed = await world.download('/enroll')
  t.equal(closed.statusCode, 404)
  t.match(closed.json, { detail: /ORCHARD_OPEN_ENROLLMENT/ })
  const link = await world.api('POST', '/api/v1/enrollment-links', { name: 'Library' })
  t.equal(link.statusCode, 201)
  const path = new URL(link.json.url).pathname
  t.equal((await world.download(path)).statusCode, 200)
})

t.test('enrollment links: create, list, read, revoke; each download is a one-time challenge for the link', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const created = await api('POST', '/api/v1/enrollment-links', {
    key: testApiKey,
    body: { name: 'Biology', group: 'biology', max_uses: 2, expires_at: new Date(Date.now() + 86_400_000).toISOString() },
  })
  t.equal(created.statusCode, 201)
  t.match(created.json, {
    name: 'Biology',
    group: 'biology',
    enrollment_type: 'device',
    device_kind: 'work',
    max_uses: 2,
    uses: 0,
    usable: true,
    revoked_at: null,
  })
  t.match(created.json.url, new RegExp(`^${publicUrl}/enroll/[A-Za-z0-9_-]{32}$`))
  const id = created.json.id

  const profile = (await world.download(new URL(created.json.url).pathname)).profile!
  t.same(validateProfile(profile), [])
  const challenge = profileParts(profile).challenge
  const row = await world.database.db
    .selectFrom('scep_challenges')
    .selectAll()
    .where('challenge_sha256', '=', challengeHash(challenge))
    .executeTakeFirstOrThrow()
  t.equal(row.enrollment_link_id, id, 'the challenge belongs to the link')
  t.equal((await api('GET', `/api/v1/enrollment-links/${id}`, { key: testApiKey })).json.uses, 0, 'a download is not a use: an issued certificate is')

  const listed = await api('GET', '/api/v1/enrollment-links', { key: testApiKey })
  t.same(
    listed.json.items.map((l: any) => l.id),
    [id],
  )

  t.equal((await api('DELETE', `/api/v1/enrollment-links/${id}`, { key: testApiKey })).statusCode, 204)
  t.equal((await api('DELETE', `/api/v1/enrollment-links/${id}`, { key: testApiKey })).statusCode, 204, 'revoking twice is fine')
  const gone = await world.download(new URL(created.json.url).pathname)
  t.equal(gone.statusCode, 410)
  t.match(gone.json, { code: 'gone', detail: /revoked/ })
  t.same((await api('GET', '/api/v1/enrollment-links', { key: testApiKey })).json.items, [], 'revoked links are hidden by default')
  t.match((await api('GET', '/api/v1/enrollment-links?include_revoked=true', { key: testApiKey })).json.items, [{ id, usable: false, revoked_at: /Z$/ }])

  t.equal((await world.download('/enroll/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).statusCode, 404, 'unknown token')
  t.equal((await api('GET', '/api/v1/enrollment-links/00000000-0000-4000-8000-000000000000', { key: testApiKey })).statusCode, 404)
  t.equal((await api('DELETE', '/api/v1/enrollment-links/00000000-0000-4000-8000-000000000000', { key: testApiKey })).statusCode, 404)
})

t.test('enrollment links: validation, roles, expiry', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const bad = await api('POST', '/api/v1/enrollment-links', { key: testApiKey, body: { name: '', max_uses: 0, enrollment_type: 'other' } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json.errors.map((e: any) => e.pointer).sort(), ['/enrollment_type', '/max_uses', '/name'])
  const ueWork = await api('POST', '/api/v1/enrollment-links', {
    key: testApiKey,
    body: { name: 'BYOD', enrollment_type: 'user_enrollment', device_kind: 'work' },
  })
  t.match(ueWork.json, { code: 'validation_failed', errors: [{ pointer: '/device_kind' }] })
  const deviceWithId = await api('POST', '/api/v1/enrollment-links', { key: testApiKey, body: { name: 'x', managed_apple_id: 'a@b.example' } })
  t.match(deviceWithId.json, { errors: [{ pointer: '/managed_apple_id' }] })
  const past = await api('POST', '/api/v1/enrollment-links', { key: testApiKey, body: { name: 'x', expires_at: '2001-01-01T00:00:00Z' } })
  t.match(past.json, { errors: [{ pointer: '/expires_at' }] })
  const unknownTopic = await api('POST', '/api/v1/enrollment-links', { key: testApiKey, body: { name: 'x', push_topic: 'com.apple.mgmt.External.nope' } })
  t.equal(unknownTopic.statusCode, 409)
  t.equal(
    await world.database.db
      .selectFrom('enrollment_links')
      .select('id')
      .execute()
      .then((r) => r.length),
    0,
    'nothing stored by refused requests',
  )

  const readKey = (await api('POST', '/api/v1/api-keys', { key: testApiKey, body: { name: 'reader', role: 'auditor' } })).json.key
  t.equal((await api('POST', '/api/v1/enrollment-links', { key: readKey, body: { name: 'x' } })).statusCode, 403, 'creating a link needs an admin')
  t.equal((await api('GET', '/api/v1/enrollment-links', { key: readKey })).statusCode, 200)
  t.equal((await api('GET', '/api/v1/enrollment-links', { key: null })).statusCode, 401)

  // An expired link: made valid, then its expiry passed (set in the database: no sleeping).
  const link = (
    await api('POST', '/api/v1/enrollment-links', { key: testApiKey, body: { name: 'Old', expires_at: new Date(Date.now() + 60_000).toISOString() } })
  ).json
  await world.database.db
    .updateTable('enrollment_links')
    .set({ expires_at: new Date(Date.now() - 1000) })
    .where('id', '=', link.id)
    .execute()
  const expired = await world.download(new URL(link.url).pathname)
  t.equal(expired.statusCode, 410)
  t.match(expired.json, { detail: /expired/ })
})

t.test('User Enrollment links give the BYOD profile: no device-only settings, a Managed Apple ID', async (t) => {
  const world = await setupEnrollment(t)
  const link = (await world.api('POST', '/api/v1/enrollment-links', { name: 'Staff BYOD', enrollment_type: 'user_enrollment' })).json
  t.match(link, { enrollment_type: 'user_enrollment', device_kind: 'personal' })
  const path = new URL(link.url).pathname
  const missing = await world.download(path)
  t.equal(missing.statusCode, 400)
  t.match(missing.json, { errors: [{ parameter: 'managed_apple_id' }] })
  const downloaded = await world.download(`${path}?managed_apple_id=${encodeURIComponent('ana@council.example')}`)
  t.equal(downloaded.statusCode, 200)
  t.match(downloaded.headers, { 'content-disposition': /user-enrollment\.mobileconfig/ })
  const profile = downloaded.profile!
  t.same(validateProfile(profile), [])
  const { mdm } = profileParts(profile)
  t.equal(mdm['ManagedAppleID'], 'ana@council.example')
  t.notOk('AccessRights' in mdm, 'AccessRights is ignored under User Enrollment and left out')
  t.notOk('ServerCapabilities' in mdm)
  t.notOk('PayloadRemovalDisallowed' in profile)

  const named = (
    await world.api('POST', '/api/v1/enrollment-links', { name: 'Named', enrollment_type: 'user_enrollment', managed_apple_id: 'bo@council.example' })
  ).json
  const namedProfile = (await world.download(new URL(named.url).pathname)).profile!
  t.equal(profileParts(namedProfile).mdm['ManagedAppleID'], 'bo@council.example')
  t.equal((await world.download('/enroll?managed_apple_id=x@y.example')).statusCode, 400, 'a device profile takes no Managed Apple ID')
})

t.test('the profile identifier and organization come from the configuration', async (t) => {
  const world = await setupEnrollment(t, { ORCHARD_ENROLLMENT_PROFILE_IDENTIFIER: 'nl.example.mdm', ORCHARD_ORGANIZATION: 'Gemeente Voorbeeld' })
  const profile = (await world.download('/enroll')).profile!
  t.equal(profile['PayloadIdentifier'], 'nl.example.mdm')
  t.equal(profile['PayloadOrganization'], 'Gemeente Voorbeeld')
  t.same(validateProfile(profile), [])
  const ca = (await world.api('GET', '/api/v1/certificate-authorities')).json.items[0]
  t.match(ca, { source: 'generated', active: true, subject: /Gemeente Voorbeeld Device CA/ })
})
