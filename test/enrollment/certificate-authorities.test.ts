// The device CAs: generated on first start with the key sealed at rest, imported (RSA, or EC
// with an RSA registration authority), from files, extra trusted CAs, removal.
import { generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { distinguishedName, issueCertificate } from '../../src/crypto/certificate-issuer.js'
import { createSecretBox } from '../../src/crypto/secret-box.js'
import { createCertificateAuthorityService } from '../../src/enrollment/certificate-authority.js'
import { createCertificateAuthorityStore } from '../../src/enrollment/certificate-authority-store.js'
import { apiClient } from '../helpers/api.js'
import { testLogger, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'
import { profileParts, publicUrl, setupEnrollment, type EnrollmentFixture } from '../helpers/enrollment-fixture.js'
import { testApiKey } from '../helpers/mdm-fixture.js'
import { parseCaCertResponse, scepEnroll } from '../helpers/scep-client.js'
import { createDeviceCa, injectTransport, SimulatedDevice } from '../helpers/simulated-device.js'

const subject = { commonName: 'device', organization: 'Orchard tests' }

function caPem(options: { key: 'ec' | 'rsa'; ca?: boolean; name?: string }): { certificatePem: string; privateKeyPem: string; key: KeyObject } {
  const { privateKey, publicKey } =
    options.key === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const issued = issueCertificate({
    subject: distinguishedName({ commonName: options.name ?? 'Imported CA', organization: 'Previous MDM' }),
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    selfSignKey: privateKey,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 5 * 365 * 86_400_000),
    profile: options.ca === false ? 'client' : 'ca',
  })
  return {
    certificatePem: new X509Certificate(issued.der).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    key: privateKey,
  }
}

async function enrollOverScep(world: EnrollmentFixture) {
  const profile = (await world.download('/enroll')).profile!
  const result = await scepEnroll(world.scepHttp, { challenge: profileParts(profile).challenge, subject })
  if (result.certRep.pkiStatus !== 'SUCCESS') throw new Error(`SCEP failed: ${result.certRep.failInfo}`)
  const device = await SimulatedDevice.fromIdentity({ certificateDer: result.certificateDer!, privateKey: result.key.privateKey }, injectTransport(world.app))
  await device.enroll()
  return { device, certificateDer: result.certificateDer! }
}

t.test('the generated CA: created once, key sealed at rest, survives a restart, refuses a wrong master key', async (t) => {
  const secret = randomBytes(32).toString('hex')
  const world = await setupEnrollment(t, { ORCHARD_SECRET_KEYS: secret })
  const rows = await world.database.db.selectFrom('certificate_authorities').selectAll().execute()
  t.equal(rows.length, 1)
  t.match(rows[0], { source: 'generated', active: true })
  t.notOk(rows[0]!.private_key_sealed!.toString('latin1').includes('PRIVATE KEY'), 'the key is not stored in clear')
  const { device } = await enrollOverScep(world)

  // Same database, same key: the same CA, nothing generated again; the device still works.
  const again = await buildTestApp(t, world.database, { ORCHARD_SECRET_KEYS: secret, ORCHARD_PUBLIC_URL: publicUrl })
  t.equal((await world.database.db.selectFrom('certificate_authorities').select('id').execute()).length, 1)
  const caCert = await again.app.inject({ method: 'GET', url: '/scep?operation=GetCACert' })
  t.ok(new X509Certificate(caCert.rawPayload).raw.equals(rows[0]!.certificate_der))

  // Another master key: no issuing (a clear 503), but enrolled devices keep working.
  const wrong = await buildTestApp(t, world.database, {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_PUBLIC_URL: publicUrl,
    ORCHARD_API_KEYS: testApiKey,
  })
  const refused = await wrong.app.inject({ method: 'GET', url: '/scep?operation=GetCACert' })
  t.equal(refused.statusCode, 503)
  t.match(refused.body, /does not open with ORCHARD_SECRET_KEYS/)
  t.match((await apiClient(wrong.app)('GET', '/api/v1/certificate-authorities')).json, {
    issuing_available: false,
    items: [{ source: 'generated', active: true }],
  })
  device.transport = injectTransport(wrong.app)
  t.equal((await device.idle()).status, 200, 'the identity is still trusted: the certificate, not the key, is needed for that')
})

t.test('two instances starting at once on an empty database create one CA', async (t) => {
  const database = await createTestDatabase(t)
  const secretBox = createSecretBox([randomBytes(32)])
  const make = () =>
    createCertificateAuthorityService({
      store: createCertificateAuthorityStore(database.db),
      secretBox,
      configTrusted: [],
      organization: 'Race',
      onTrustChange: () => undefined,
      logger: testLogger(),
    })
  const [a, b] = [make(), make()]
  await Promise.all([a.start(), b.start()])
  const rows = await database.db.selectFrom('certificate_authorities').select(['id', 'active']).execute()
  t.equal(rows.filter((row) => row.active).length, 1, 'one active CA')
  t.equal(a.issuing().id, b.issuing().id, 'both instances issue with it')
})

t.test('importing an EC CA: it issues from now on through an RSA RA; the old CA stays trusted', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const old = await enrollOverScep(world)

  const imported = caPem({ key: 'ec' })
  const created = await api('POST', '/api/v1/certificate-authorities', {
    body: { certificate_pem: imported.certificatePem, private_key_pem: imported.privateKeyPem },
  })
  t.equal(created.statusCode, 201)
  t.match(created.json, { source: 'imported', active: true, subject: /Imported CA/, registration_authority: { subject: /SCEP RA/ } })
  const listed = (await api('GET', '/api/v1/certificate-authorities')).json.items
  t.match(listed, [
    { source: 'generated', active: false },
    { source: 'imported', active: true },
  ])

  const caResponse = await world.scepHttp({ method: 'GET', url: '/scep?operation=GetCACert' })
  t.equal(caResponse.contentType, 'application/x-x509-ca-ra-cert', 'CA and RA as a certs-only chain')
  const chain = parseCaCertResponse(caResponse.body, caResponse.contentType!)
  const ca = new X509Certificate(chain.ca)
  const ra = new X509Certificate(chain.recipient)
  t.equal(ca.fingerprint256, new X509Certificate(imported.certificatePem).fingerprint256)
  t.ok(ra.checkIssued(ca) && ra.verify(ca.publicKey), 'the RA is issued by the imported CA')
  t.equal(ra.publicKey.asymmetricKeyType, 'rsa', 'and has an RSA key that can decrypt requests')

  const fresh = await enrollOverScep(world)
  const issued = new X509Certificate(fresh.certificateDer)
  t.ok(issued.checkIssued(ca) && issued.verify(ca.publicKey), 'identities now come from the imported EC CA')
  t.equal((await old.device.idle()).status, 200, 'devices of the previous CA keep working')
  t.equal((await fresh.device.idle()).status, 200)

  const profile = (await world.download('/enroll')).profile!
  t.ok((profileParts(profile).payloads[0]!['PayloadContent'] as Buffer).equals(ca.raw), 'profiles now carry the imported CA')
})

t.test('import validation; trusted CAs for migrated devices; removal', async (t) => {
  const world = await setupEnrollment(t)
  const api = apiClient(world.app)
  const rsa = caPem({ key: 'rsa' })
  const other = caPem({ key: 'rsa', name: 'Other' })
  const notCa = caPem({ key: 'rsa', ca: false })
  const checks: Array<[string, object, string]> = [
    ['not a CA certificate', { certificate_pem: notCa.certificatePem, private_key_pem: notCa.privateKeyPem }, '/certificate_pem'],
    ['a key of another certificate', { certificate_pem: rsa.certificatePem, private_key_pem: other.privateKeyPem }, '/private_key_pem'],
    ['garbage key', { certificate_pem: rsa.certificatePem, private_key_pem: 'nope' }, '/private_key_pem'],
    ['garbage certificate', { certificate_pem: 'nope' }, '/certificate_pem'],
  ]
  for (const [name, body, pointer] of checks) {
    const response = await api('POST', '/api/v1/certificate-authorities', { body })
    t.equal(response.statusCode, 400, name)
    t.match(response.json, { code: 'validation_failed', errors: [{ pointer }] }, name)
  }
  t.equal((await world.database.db.selectFrom('certificate_authorities').select('id').execute()).length, 1, 'nothing stored')
  const writer = (await api('POST', '/api/v1/api-keys', { body: { name: 'writer', role: 'admin' } })).json.key
  t.equal(
    (await api('POST', '/api/v1/certificate-authorities', { key: writer, body: { certificate_pem: rsa.certificatePem } })).statusCode,
    403,
    'CAs are for owners only',
  )

  // A device enrolled by another MDM's CA: refused until that CA is trusted, refused again after removal.
  const previousMdm = await createDeviceCa('Previous MDM device CA')
  const migrated = await SimulatedDevice.create(previousMdm, injectTransport(world.app))
  t.equal((await migrated.authenticate()).status, 400, 'unknown CA: refused (never 401)')
  const trusted = await api('POST', '/api/v1/certificate-authorities', {
    body: { certificate_pem: new X509Certificate(Buffer.from(previousMdm.certificate.toSchema(true).toBER(false))).toString() },
  })
  t.equal(trusted.statusCode, 201)
  t.match(trusted.json, { source: 'trusted', active: false })
  await migrated.enroll()
  t.equal((await migrated.idle()).status, 200, 'the migrated device works')
  t.equal(
    (
      await api('POST', '/api/v1/certificate-authorities', {
        body: { certificate_pem: new X509Certificate(Buffer.from(previousMdm.certificate.toSchema(true).toBER(false))).toString() },
      })
    ).statusCode,
    409,
    'already known',
  )

  t.equal((await api('DELETE', `/api/v1/certificate-authorities/${trusted.json.id}`)).statusCode, 204)
  t.equal((await migrated.idle()).status, 400, 'removed: its identities are refused from the next request')
  const active = (await api('GET', '/api/v1/certificate-authorities')).json.items.find((ca: any) => ca.active)
  t.match((await api('DELETE', `/api/v1/certificate-authorities/${active.id}`)).json, { code: 'conflict', detail: /import another CA first/ })
  t.equal((await api('DELETE', `/api/v1/certificate-authorities/${'0'.repeat(64)}`)).statusCode, 404)
  t.equal((await api('DELETE', '/api/v1/certificate-authorities/not-hex')).statusCode, 400)
})

t.test('a CA from files issues; nothing is generated; the API cannot replace it', async (t) => {
  const files = caPem({ key: 'rsa', name: 'File CA' })
  const dir = mkdtempSync(join(tmpdir(), 'orchard-ca-'))
  writeFileSync(join(dir, 'ca.pem'), files.certificatePem)
  writeFileSync(join(dir, 'ca.key'), files.privateKeyPem)
  const world = await setupEnrollment(t, { ORCHARD_CA_CERT_FILE: join(dir, 'ca.pem'), ORCHARD_CA_KEY_FILE: join(dir, 'ca.key') })
  t.equal((await world.database.db.selectFrom('certificate_authorities').select('id').execute()).length, 0, 'no CA generated')
  const api = apiClient(world.app)
  t.match((await api('GET', '/api/v1/certificate-authorities')).json.items, [{ source: 'file', active: true, subject: /File CA/ }])
  const { certificateDer } = await enrollOverScep(world)
  t.ok(new X509Certificate(certificateDer).verify(new X509Certificate(files.certificatePem).publicKey), 'issued by the file CA')
  const replaced = await api('POST', '/api/v1/certificate-authorities', { body: caPem({ key: 'rsa' }) })
  t.equal(replaced.statusCode, 400, 'unknown member "key" is refused by the schema')
  const other = caPem({ key: 'rsa' })
  const conflict = await api('POST', '/api/v1/certificate-authorities', {
    body: { certificate_pem: other.certificatePem, private_key_pem: other.privateKeyPem },
  })
  t.match(conflict.json, { code: 'conflict', detail: /ORCHARD_CA_CERT_FILE/ })
})
