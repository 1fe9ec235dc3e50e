// The SCEP server through the real app, driven by an independent SCEP client
// (test/helpers/scep-client.ts): every cipher and digest, GET and POST, and each refusal.
import { webcrypto, X509Certificate } from 'node:crypto'
import { sql } from 'kysely'
import t from 'tap'
import { apiClient } from '../helpers/api.js'
import { profileParts, setupEnrollment, type EnrollmentFixture } from '../helpers/enrollment-fixture.js'
import {
  buildCertPoll,
  buildCsr,
  buildPkiOperation,
  generateRsaKey,
  parseCaCertResponse,
  parseCertRep,
  scepEnroll,
  selfSignedCertificate,
  type ScepDigest,
  type ScepEncryption,
  type ScepKeyPair,
} from '../helpers/scep-client.js'
import { commandIn, SimulatedDevice, injectTransport } from '../helpers/simulated-device.js'
import { createTestCa } from '../helpers/test-ca.js'
import { createCertificate } from '../../src/crypto/certificates.js'

const subject = { commonName: 'Orchard device under test', organization: 'Orchard tests' }

async function challengeFrom(world: EnrollmentFixture, path = '/enroll'): Promise<string> {
  const download = await world.download(path)
  if (download.statusCode !== 200) throw new Error(`profile download failed: ${download.statusCode} ${JSON.stringify(download.json)}`)
  return profileParts(download.profile!).challenge
}

/** Everything SCEP may write: a refused request must leave it as it was. */
async function scepState(world: EnrollmentFixture) {
  const db = world.database.db
  const issued = await sql<{ n: number }>`select count(*)::int as n from issued_certificates`.execute(db)
  const used = await sql<{ n: number }>`select count(*)::int as n from scep_challenges where used_at is not null`.execute(db)
  const uses = await sql<{ n: number }>`select coalesce(sum(uses), 0)::int as n from enrollment_links`.execute(db)
  return { issued: issued.rows[0]!.n, used: used.rows[0]!.n, uses: uses.rows[0]!.n }
}

async function caCertificate(world: EnrollmentFixture) {
  const response = await world.scepHttp({ method: 'GET', url: '/scep?operation=GetCACert' })
  return parseCaCertResponse(response.body, response.contentType ?? '')
}

/** Posts a PKIOperation and parses the CertRep with the requester's key. */
async function post(world: EnrollmentFixture, der: Buffer, recipientKey: ScepKeyPair['privateKey']) {
  const response = await world.scepHttp({ method: 'POST', url: '/scep?operation=PKIOperation', body: der })
  if (response.status !== 200) return { status: response.status, text: response.body.toString() }
  const ca = await caCertificate(world)
  return { status: 200, certRep: parseCertRep(response.body, { recipientKey, trustedSignerCertificates: ca.all }) }
}

t.test('GetCACaps advertises AES and SHA-256; GetCACert returns the RSA device CA alone', async (t) => {
  const world = await setupEnrollment(t)
  const caps = await world.scepHttp({ method: 'GET', url: '/scep?operation=GetCACaps' })
  t.equal(caps.status, 200)
  t.match(caps.contentType, /^text\/plain/)
  const lines = caps.body.toString().trim().split('\n')
  for (const capability of ['AES', 'SHA-256', 'POSTPKIOperation', 'Renewal', 'SCEPStandard']) t.ok(lines.includes(capability), capability)

  const caCert = await world.scepHttp({ method: 'GET', url: '/scep?operation=GetCACert&message=Orchard' })
  t.equal(caCert.status, 200)
  t.equal(caCert.contentType, 'application/x-x509-ca-cert')
  const x509 = new X509Certificate(caCert.body)
  t.ok(x509.ca, 'a CA certificate')
  t.equal(x509.publicKey.asymmetricKeyType, 'rsa', 'RSA: it decrypts SCEP requests itself')
  const listed = (await world.api('GET', '/api/v1/certificate-authorities')).json.items
  t.match(listed, [{ source: 'generated', active: true, registration_authority: null }])
  t.equal(new X509Certificate(listed[0].certificate_pem).fingerprint256, x509.fingerprint256)
})

t.test('every cipher and digest, by POST and by GET: a certificate the protocol core accepts', async (t) => {
  const world = await setupEnrollment(t)
  const ca = new X509Certificate((await caCertificate(world)).ca)
  const combinations: Array<[ScepEncryption, ScepDigest, 'post' | 'get']> = [
    ['des', 'sha1', 'get'],
    ['des', 'sha256', 'post'],
    ['des3', 'sha1', 'post'],
    ['des3', 'sha256', 'get'],
    ['aes128', 'sha1', 'post'],
    ['aes128', 'sha256', 'post'],
    ['aes256', 'sha1', 'get'],
    ['aes256', 'sha256', 'post'],
  ]
  for (const [encryption, digest, transport] of combinations) {
    const challenge = await challengeFrom(world)
    const result = await scepEnroll(world.scepHttp, { challenge, subject, encryption, digest, transport })
    t.equal(result.certRep.pkiStatus, 'SUCCESS', `${encryption}/${digest}/${transport}`)
    t.equal(result.certRep.contentEncryption, encryption, 'answered with the algorithm the client used')
    t.equal(result.certRep.digest, digest)
    const certificate = new X509Certificate(result.certificateDer!)
    t.ok(certificate.checkIssued(ca) && certificate.verify(ca.publicKey), 'issued and signed by the device CA')
    t.equal(certificate.subject, 'O=Orchard tests\nCN=Orchard device under test', 'the subject from the request')
    t.notOk(certificate.ca)
    t.same(certificate.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'extended key usage: client authentication')
    const days = (new Date(certificate.validTo).getTime() - Date.now()) / 86_400_000
    t.ok(days > 364 && days <= 365, `valid a year (${days.toFixed(2)} days)`)

    // The identity signs check-ins that the protocol core accepts.
    const device = await SimulatedDevice.fromIdentity({ certificateDer: result.certificateDer!, privateKey: result.key.privateKey }, injectTransport(world.app))
    await device.enroll()
    const queued = await world.enqueue([device.udid], 'DeviceInformation')
    t.equal(queued.statusCode, 200)
    t.equal(commandIn(await device.idle())?.uuid, queued.uuid, 'the enrolled device gets its command')
  }
  const rows = await world.database.db.selectFrom('issued_certificates').selectAll().execute()
  t.equal(rows.length, combinations.length, 'each issuance recorded')
  t.ok(
    rows.every((row) => row.authorized_by === 'challenge' && row.challenge_sha256 !== null),
    'with the challenge that allowed it',
  )
  const openSlots = await world.database.db.selectFrom('scep_challenges').select('used_at').execute()
  t.ok(
    openSlots.every((row) => row.used_at !== null),
    'every challenge used once',
  )
})

t.test('refusals: wrong, reused, expired and missing challenges; retries; bad signatures and messages', async (t) => {
  const world = await setupEnrollment(t)
  const { recipient } = await caCertificate(world)

  const wrong = await scepEnroll(world.scepHttp, { challenge: 'not-a-challenge-we-made', subject })
  t.match(wrong.certRep, { pkiStatus: 'FAILURE', failInfo: 'badRequest' }, 'a wrong challenge: FAILURE badRequest, never PENDING')
  const none = await scepEnroll(world.scepHttp, { subject })
  t.match(none.certRep, { pkiStatus: 'FAILURE', failInfo: 'badRequest' }, 'no challenge at all')
  t.same(await scepState(world), { issued: 0, used: 0, uses: 0 })

  // One challenge, one device. The same client retrying the same transaction gets the same certificate.
  const challenge = await challengeFrom(world)
  const key = generateRsaKey()
  const csrDer = buildCsr({ key, subject, challenge })
  const signer = selfSignedCertificate(key, subject)
  const first = buildPkiOperation({ csrDer, recipientCertificateDer: recipient, signerCertificateDer: signer, signerKey: key.privateKey })
  const issued = await post(world, first.der, key.privateKey)
  t.equal(issued.certRep?.pkiStatus, 'SUCCESS')
  const retry = buildPkiOperation({
    csrDer,
    recipientCertificateDer: recipient,
    signerCertificateDer: signer,
    signerKey: key.privateKey,
    transactionId: first.transactionId,
  })
  const retried = await post(world, retry.der, key.privateKey)
  t.equal(retried.certRep?.pkiStatus, 'SUCCESS', 'a retried transaction succeeds')
  t.ok(retried.certRep!.certificates[0]!.equals(issued.certRep!.certificates[0]!), 'with the same certificate, not a second one')
  t.same(await scepState(world), { issued: 1, used: 1, uses: 0 })

  const before = await scepState(world)
  const thief = generateRsaKey()
  const stolen = await scepEnroll(world.scepHttp, { challenge, subject, key: thief })
  t.match(stolen.certRep, { pkiStatus: 'FAILURE', failInfo: 'badRequest' }, 'a reused challenge (a leaked profile) enrolls nothing')
  t.same(await scepState(world), before)

  const expiring = await challengeFrom(world)
  await world.database.db
    .updateTable('scep_challenges')
    .set({ expires_at: new Date(Date.now() - 1000) })
    .where('used_at', 'is', null)
    .execute()
  const expired = await scepEnroll(world.scepHttp, { challenge: expiring, subject })
  t.match(expired.certRep, { pkiStatus: 'FAILURE', failInfo: 'badRequest' }, 'an expired challenge')
  t.same(await scepState(world), before)

  // A forged signature: badMessageCheck.
  const fresh = await challengeFrom(world)
  const forgedKey = generateRsaKey()
  const forgedCsr = buildCsr({ key: forgedKey, subject, challenge: fresh })
  const forged = buildPkiOperation({
    csrDer: forgedCsr,
    recipientCertificateDer: recipient,
    signerCertificateDer: selfSignedCertificate(forgedKey, subject),
    signerKey: forgedKey.privateKey,
    corruptSignature: true,
  })
  t.match((await post(world, forged.der, forgedKey.privateKey)).certRep, { pkiStatus: 'FAILURE', failInfo: 'badMessageCheck' })
  t.same(await scepState(world), before, 'the challenge of a forged request is not consumed')
  t.equal((await scepEnroll(world.scepHttp, { challenge: fresh, subject })).certRep.pkiStatus, 'SUCCESS', 'and still works for the real device')

  // Polling: we never leave a request pending, so there is nothing to poll.
  const pollKey = generateRsaKey()
  const pollCsr = buildCsr({ key: pollKey, subject })
  const poll = buildCertPoll({
    csrDer: pollCsr,
    caCertificateDer: recipient,
    transactionId: 'ABC',
    recipientCertificateDer: recipient,
    signerCertificateDer: selfSignedCertificate(pollKey, subject),
    signerKey: pollKey.privateKey,
  })
  t.match((await post(world, poll.der, pollKey.privateKey)).certRep, { pkiStatus: 'FAILURE', failInfo: 'badRequest' })

  // A weak key.
  const weak = generateRsaKey(1024)
  const weakChallenge = await challengeFrom(world)
  t.match(
    (await scepEnroll(world.scepHttp, { challenge: weakChallenge, subject, key: weak })).certRep,
    { pkiStatus: 'FAILURE', failInfo: 'badAlg' },
    'RSA-1024 is refused',
  )

  // Unanswerable messages: 400 with the reason, as text.
  for (const [name, body] of [
    ['garbage', Buffer.from('not a PKCS#7 message at all')],
    ['truncated', first.der.subarray(0, 200)],
    ['trailing bytes', Buffer.concat([first.der, Buffer.from([0])])],
  ] as const) {
    const response = await world.scepHttp({ method: 'POST', url: '/scep?operation=PKIOperation', body })
    t.equal(response.status, 400, name)
    t.match(response.body.toString(), /^bad_request: malformed SCEP PKIOperation: /, `${name}: the reason in the body`)
  }
  const empty = await world.scepHttp({ method: 'POST', url: '/scep?operation=PKIOperation', body: Buffer.alloc(0) })
  t.equal(empty.status, 400)
  t.equal((await world.scepHttp({ method: 'GET', url: '/scep?operation=GetNextCACert' })).status, 400)
  t.equal((await world.scepHttp({ method: 'GET', url: '/scep' })).status, 400)
  t.equal((await world.scepHttp({ method: 'POST', url: '/scep?operation=GetCACert', body: first.der })).status, 400)
  t.equal((await world.scepHttp({ method: 'GET', url: '/scep?operation=PKIOperation&message=%%%' })).status, 400)
  t.equal((await world.scepHttp({ method: 'POST', url: '/scep?operation=PKIOperation', body: Buffer.alloc(70 * 1024, 0x30) })).status, 413)
  t.same(await scepState(world), { issued: 2, used: 2, uses: 0 }, 'only the two real enrollments issued anything')
  const metrics = await world.metrics.registry.metrics()
  t.match(metrics, /orchard_scep_pki_operations_total\{outcome="challenge"\} 2\n/, 'issuances counted')
  t.match(metrics, /orchard_scep_pki_operations_total\{outcome="retry"\} 1\n/)
  t.match(metrics, /orchard_scep_pki_operations_total\{outcome="badMessageCheck"\} 1\n/)
  t.match(metrics, /orchard_scep_pki_operations_total\{outcome="badRequest"\} \d+\n/, 'refusals counted by failInfo')
})

t.test('GET PKIOperation survives a client that does not URL-encode "+"', async (t) => {
  const world = await setupEnrollment(t)
  const { recipient } = await caCertificate(world)
  for (let attempt = 0; attempt < 20; attempt++) {
    const challenge = await challengeFrom(world)
    const key = generateRsaKey()
    const request = buildPkiOperation({
      csrDer: buildCsr({ key, subject, challenge }),
      recipientCertificateDer: recipient,
      signerCertificateDer: selfSignedCertificate(key, subject),
      signerKey: key.privateKey,
    })
    const base64 = request.der.toString('base64')
    if (!base64.includes('+')) continue
    const response = await world.scepHttp({ method: 'GET', url: `/scep?operation=PKIOperation&message=${base64.replace(/\//g, '%2F').replace(/=/g, '%3D')}` })
    t.equal(response.status, 200)
    t.equal(parseCertRep(response.body, { recipientKey: key.privateKey }).pkiStatus, 'SUCCESS')
    return
  }
  t.fail('no base64 with a "+" in 20 requests')
})

t.test('a static challenge from the configuration, for profiles made by hand', async (t) => {
  const world = await setupEnrollment(t, { ORCHARD_SCEP_CHALLENGE: 'static-challenge-for-handmade-profiles' })
  for (let i = 0; i < 2; i++) {
    const result = await scepEnroll(world.scepHttp, { challenge: 'static-challenge-for-handmade-profiles', subject })
    t.equal(result.certRep.pkiStatus, 'SUCCESS', 'the static challenge is not one-time')
  }
  const rows = await world.database.db.selectFrom('issued_certificates').select(['authorized_by', 'challenge_sha256']).execute()
  t.same(rows, [
    { authorized_by: 'static_challenge', challenge_sha256: null },
    { authorized_by: 'static_challenge', challenge_sha256: null },
  ])
  t.match((await scepEnroll(world.scepHttp, { challenge: 'static-challenge-for-handmade-profileX', subject })).certRep, { pkiStatus: 'FAILURE' })
})

t.test('renewal: signed by a valid identity of ours, no challenge; unknown CAs refused', async (t) => {
  const world = await setupEnrollment(t)
  const enrolled = await scepEnroll(world.scepHttp, { challenge: await challengeFrom(world), subject })
  const identity = { certificateDer: enrolled.certificateDer!, key: enrolled.key.privateKey }

  const renewed = await scepEnroll(world.scepHttp, { subject, renewWith: identity })
  t.equal(renewed.certRep.pkiStatus, 'SUCCESS', 'RenewalReq signed by our identity')
  t.not(new X509Certificate(renewed.certificateDer!).serialNumber, new X509Certificate(identity.certificateDer).serialNumber)
  const pkcsReq = await scepEnroll(world.scepHttp, { subject, renewWith: identity, messageType: 'PKCSReq' })
  t.equal(pkcsReq.certRep.pkiStatus, 'SUCCESS', 'a PKCSReq signed by our identity counts as a renewal too')
  const rows = await world.database.db.selectFrom('issued_certificates').select(['authorized_by', 'renewal_of_sha256']).orderBy('created_at').execute()
  t.match(rows.slice(1), [{ authorized_by: 'renewal', renewal_of_sha256: /^[0-9a-f]{64}$/ }, { authorized_by: 'renewal' }])

  // An identity from a CA we do not know (another MDM's, never imported).
  const before = await scepState(world)
  const foreignCa = await createTestCa('Some other MDM CA', 'rsa-2048', 30)
  const foreignKey = generateRsaKey()
  const foreign = await createCertificate({
    subject: { commonName: 'foreign device' },
    publicKey: await webcrypto.subtle.importKey(
      'spki',
      foreignKey.publicKey.export({ type: 'spki', format: 'der' }),
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      true,
      ['verify'],
    ),
    issuer: { certificate: foreignCa.certificate, privateKey: foreignCa.privateKey },
    validDays: 30,
    usage: 'client',
  })
  const foreignIdentity = { certificateDer: Buffer.from(foreign.toSchema(true).toBER(false)), key: foreignKey.privateKey }
  const refused = await scepEnroll(world.scepHttp, { subject, renewWith: foreignIdentity })
  t.match(refused.certRep, { pkiStatus: 'FAILURE', failInfo: 'badCertId' }, 'a renewal signed by an unknown CA')
  t.same(await scepState(world), before)
})

t.test('enrollment links count devices at issuance and stop at max_uses; revoked links stop their challenges', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const link = (await api('POST', '/api/v1/enrollment-links', { body: { name: 'Two devices', max_uses: 2, group: 'physics' } })).json
  const path = new URL(link.url).pathname
  const challenges = [await challengeFrom(world, path), await challengeFrom(world, path), await challengeFrom(world, path)]
  t.equal((await scepEnroll(world.scepHttp, { challenge: challenges[0]!, subject })).certRep.pkiStatus, 'SUCCESS')
  t.equal((await scepEnroll(world.scepHttp, { challenge: challenges[1]!, subject })).certRep.pkiStatus, 'SUCCESS')
  const before = await scepState(world)
  t.match(
    (await scepEnroll(world.scepHttp, { challenge: challenges[2]!, subject })).certRep,
    { pkiStatus: 'FAILURE', failInfo: 'badRequest' },
    'a third device: the link is used up',
  )
  t.same(await scepState(world), before, 'and its challenge stays unused')
  t.match((await api('GET', `/api/v1/enrollment-links/${link.id}`)).json, { uses: 2, usable: false })
  t.equal((await world.download(path)).statusCode, 410)

  const other = (await api('POST', '/api/v1/enrollment-links', { body: { name: 'Revoked later' } })).json
  const pending = await challengeFrom(world, new URL(other.url).pathname)
  await api('DELETE', `/api/v1/enrollment-links/${other.id}`)
  t.match(
    (await scepEnroll(world.scepHttp, { challenge: pending, subject })).certRep,
    { pkiStatus: 'FAILURE', failInfo: 'badRequest' },
    'a challenge of a revoked link',
  )
})

t.test('two devices racing with one challenge: exactly one certificate, every round', async (t) => {
  const world = await setupEnrollment(t)
  const { recipient } = await caCertificate(world)
  const keys = Array.from({ length: 12 }, () => generateRsaKey())
  for (let round = 0; round < 6; round++) {
    const challenge = await challengeFrom(world)
    const contenders = [keys[round * 2]!, keys[round * 2 + 1]!].map((key) => ({
      key,
      der: buildPkiOperation({
        csrDer: buildCsr({ key, subject, challenge }),
        recipientCertificateDer: recipient,
        signerCertificateDer: selfSignedCertificate(key, subject),
        signerKey: key.privateKey,
      }).der,
    }))
    const answers = await Promise.all(contenders.map((c) => post(world, c.der, c.key.privateKey)))
    t.same(answers.map((a) => a.certRep?.pkiStatus).sort(), ['FAILURE', 'SUCCESS'], `round ${round}: one winner`)
  }
  t.same(await scepState(world), { issued: 6, used: 6, uses: 0 })

  // Expired challenges are pruned a day after they expire; issuances keep their hash.
  await world.database.db
    .updateTable('scep_challenges')
    .set({ expires_at: new Date(Date.now() - 2 * 86_400_000) })
    .execute()
  await challengeFrom(world)
  t.equal(await world.orchard.enrollment.pruneChallenges(), 6)
  t.equal((await world.database.db.selectFrom('scep_challenges').select('purpose').execute()).length, 1, 'the fresh one stays')
  t.equal((await world.database.db.selectFrom('issued_certificates').select('serial_number').execute()).length, 6)
})
