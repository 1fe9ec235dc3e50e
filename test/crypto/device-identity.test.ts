import { createHash, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as pkijs from 'pkijs'
import t from 'tap'
import { certificateToPem, createCertificate, generateKeyPair, type KeyPair } from '../../src/crypto/certificates.js'
import { createDeviceCertificateVerifier, parseForwardedClientCertificate } from '../../src/crypto/device-identity.js'
import { IdentityError, verifyMdmSignature, type IdentityErrorCode } from '../../src/crypto/mdm-signature.js'
import { signDetached } from '../helpers/cms-signer.js'

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url))
const sha256 = (der: Buffer) => createHash('sha256').update(der).digest('hex')
const derOf = (certificate: pkijs.Certificate) => Buffer.from(certificate.toSchema().toBER(false))

interface Ca {
  keys: KeyPair
  certificate: pkijs.Certificate
  der: Buffer
}

async function makeCa(commonName: string): Promise<Ca> {
  const keys = await generateKeyPair('ec-p256')
  const certificate = await createCertificate({
    subject: { commonName, organization: 'Orchard tests' },
    publicKey: keys.publicKey,
    selfSignKey: keys.privateKey,
    validDays: 3650,
    usage: 'ca',
  })
  return { keys, certificate, der: derOf(certificate) }
}

const notBefore = new Date('2030-01-01T00:00:00Z')
const notAfter = new Date('2031-01-01T00:00:00Z')
const during = new Date('2030-06-01T00:00:00Z')

async function issue(ca: Ca, commonName: string, validity: { notBefore?: Date; notAfter?: Date } = { notBefore, notAfter }) {
  const keys = await generateKeyPair('rsa-2048')
  const certificate = await createCertificate({
    subject: { commonName },
    publicKey: keys.publicKey,
    issuer: { certificate: ca.certificate, privateKey: ca.keys.privateKey },
    validDays: 365,
    usage: 'client',
    ...validity,
  })
  return { keys, der: derOf(certificate) }
}

function codeOf(fn: () => unknown): IdentityErrorCode | 'passed' {
  try {
    fn()
    return 'passed'
  } catch (error) {
    if (error instanceof IdentityError) return error.code
    throw error
  }
}

function messageOf(fn: () => unknown): string {
  try {
    fn()
    return ''
  } catch (error) {
    return (error as Error).message
  }
}

const trustedCa = await makeCa('Device CA')
const otherCa = await makeCa('Other CA')
const device = await issue(trustedCa, 'device 1')

t.test('a certificate issued by a trusted CA passes', async (t) => {
  let time = during
  const verifier = createDeviceCertificateVerifier({ trustedCas: [trustedCa.der], now: () => time })
  const result = verifier.verify(device.der)
  t.equal(result.sha256, sha256(device.der))
  t.equal(result.notAfter.toISOString(), notAfter.toISOString())
  t.equal(result.subject, 'CN=device 1')
  time = notBefore
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'passed',
    'valid at notBefore',
  )
  time = notAfter
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'passed',
    'valid at notAfter (inclusive)',
  )
  t.equal(new X509Certificate(device.der).checkIssued(new X509Certificate(trustedCa.der)), true, 'node agrees on the issuer')
})

t.test('certificates we did not issue are untrusted', async (t) => {
  const verifier = createDeviceCertificateVerifier({ trustedCas: [trustedCa.der], now: () => during })
  const foreign = await issue(otherCa, 'foreign device')
  t.equal(
    codeOf(() => verifier.verify(foreign.der)),
    'certificate_untrusted',
    'issued by another CA',
  )
  t.match(
    messageOf(() => verifier.verify(foreign.der)),
    /issuer "O=Orchard tests, CN=Other CA", which is not a trusted CA/,
  )

  const keys = await generateKeyPair('ec-p256')
  const selfSigned = derOf(
    await createCertificate({
      subject: { commonName: 'device 1' },
      publicKey: keys.publicKey,
      selfSignKey: keys.privateKey,
      validDays: 1,
      usage: 'client',
      notBefore,
      notAfter,
    }),
  )
  t.equal(
    codeOf(() => verifier.verify(selfSigned)),
    'certificate_untrusted',
    'self-signed',
  )
  t.match(
    messageOf(() => verifier.verify(selfSigned)),
    /\(self-signed\)/,
  )

  // Same subject as the trusted CA, another key: the name matches, the signature does not.
  const impostor = await makeCa('Device CA')
  t.ok(impostor.certificate.subject.isEqual(trustedCa.certificate.subject), 'impostor CA has the trusted subject')
  const impostorIssued = await issue(impostor, 'device 1')
  t.equal(
    codeOf(() => verifier.verify(impostorIssued.der)),
    'certificate_untrusted',
    'issued by a CA with the trusted name but another key',
  )
  t.match(
    messageOf(() => verifier.verify(impostorIssued.der)),
    /signature does not verify with that CA's key/,
  )

  t.equal(
    codeOf(() => verifier.verify(trustedCa.der)),
    'certificate_untrusted',
    'the CA certificate itself is no device identity',
  )
})

t.test('validity dates, with now injected', async (t) => {
  let time = during
  const verifier = createDeviceCertificateVerifier({ trustedCas: [trustedCa.der], now: () => time })
  const expired = await issue(trustedCa, 'expired', { notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-01-01T00:00:00Z') })
  t.equal(
    codeOf(() => verifier.verify(expired.der)),
    'certificate_expired',
  )
  t.match(
    messageOf(() => verifier.verify(expired.der)),
    /expired at 2021-01-01T00:00:00.000Z \(now 2030-06-01T00:00:00.000Z\)/,
  )
  const future = await issue(trustedCa, 'future', { notBefore: new Date('2040-01-01T00:00:00Z'), notAfter: new Date('2060-01-01T00:00:00Z') })
  t.equal(
    codeOf(() => verifier.verify(future.der)),
    'certificate_not_yet_valid',
  )
  t.match(
    messageOf(() => verifier.verify(future.der)),
    /not valid before 2040-01-01T00:00:00.000Z/,
  )
  time = new Date('2059-12-31T23:59:59Z')
  t.equal(verifier.verify(future.der).notAfter.toISOString(), '2060-01-01T00:00:00.000Z', 'GeneralizedTime after 2049 reads right')

  time = new Date(notBefore.getTime() - 1)
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'certificate_not_yet_valid',
    '1 ms before notBefore',
  )
  time = new Date(notAfter.getTime() + 1)
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'certificate_expired',
    '1 ms after notAfter',
  )
})

t.test('the cache skips chain validation but never the dates', async (t) => {
  let time = during
  const verifier = createDeviceCertificateVerifier({ trustedCas: [trustedCa.der], now: () => time, cacheSize: 2 })
  const checks = {
    get count() {
      return verifier.chainValidations()
    },
  }
  verifier.verify(device.der)
  verifier.verify(device.der)
  verifier.verify(device.der)
  t.equal(checks.count, 1, 'one chain validation for three requests')
  time = new Date(notAfter.getTime() + 1000)
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'certificate_expired',
    'a cache hit still expires',
  )
  t.equal(checks.count, 1, 'and was a cache hit')
  time = new Date(notBefore.getTime() - 1000)
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'certificate_not_yet_valid',
  )
  time = during

  const second = await issue(trustedCa, 'device 2')
  const third = await issue(trustedCa, 'device 3')
  verifier.verify(second.der)
  verifier.verify(third.der) // evicts device 1, the least recently used
  t.equal(checks.count, 3)
  verifier.verify(third.der)
  verifier.verify(second.der)
  t.equal(checks.count, 3, 'recent entries stay')
  verifier.verify(device.der)
  t.equal(checks.count, 4, 'the evicted one is validated again')

  const foreign = await issue(otherCa, 'foreign')
  codeOf(() => verifier.verify(foreign.der))
  codeOf(() => verifier.verify(foreign.der))
  t.equal(checks.count, 4, 'an unknown issuer costs no signature check')

  const uncached = createDeviceCertificateVerifier({ trustedCas: [trustedCa.der], now: () => time, cacheSize: 0 })
  uncached.verify(device.der)
  uncached.verify(device.der)
  t.equal(uncached.chainValidations(), 2, 'cacheSize 0 validates every time')
})

t.test('addTrustedCa', async (t) => {
  const verifier = createDeviceCertificateVerifier({ trustedCas: [], now: () => during })
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'certificate_untrusted',
    'no CA, no trust',
  )
  verifier.addTrustedCa(otherCa.der)
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'certificate_untrusted',
  )
  verifier.addTrustedCa(trustedCa.der)
  t.equal(
    codeOf(() => verifier.verify(device.der)),
    'passed',
  )
  t.throws(() => verifier.addTrustedCa(Buffer.from('not a certificate')), { code: 'certificate_malformed' })
})

t.test('malformed certificates', async (t) => {
  const verifier = createDeviceCertificateVerifier({ trustedCas: [trustedCa.der], now: () => during })
  for (const [name, der] of [
    ['empty', Buffer.alloc(0)],
    ['garbage', Buffer.from('garbage')],
    ['truncated', device.der.subarray(0, device.der.length - 1)],
    ['trailing byte', Buffer.concat([device.der, Buffer.from([0])])],
  ] as const) {
    t.equal(
      codeOf(() => verifier.verify(der)),
      'certificate_malformed',
      name,
    )
  }
})

t.test('openssl-made fixtures: CA, RSA and EC device certificates valid 100 years', async (t) => {
  let time = new Date('2030-01-01T00:00:00Z')
  const verifier = createDeviceCertificateVerifier({ trustedCas: [fixture('ca.der')], now: () => time })
  for (const name of ['device-rsa.der', 'device-ec.der']) {
    const der = fixture(name)
    const result = verifier.verify(der)
    t.equal(result.sha256, sha256(der), `${name} passes`)
    t.equal(result.notAfter.toISOString(), new Date(new X509Certificate(der).validTo).toISOString(), `${name}: notAfter as node reads it`)
  }
  t.equal(verifier.verify(fixture('device-ec.der')).subject, 'CN=Fixture EC device')
  time = new Date('2200-01-01T00:00:00Z')
  t.equal(
    codeOf(() => verifier.verify(fixture('device-rsa.der'))),
    'certificate_expired',
  )
  t.equal(
    codeOf(() => createDeviceCertificateVerifier({ trustedCas: [trustedCa.der] }).verify(fixture('device-ec.der'))),
    'certificate_untrusted',
  )
})

t.test('from Mdm-Signature to a trusted identity', async (t) => {
  const body = Buffer.from('<plist><dict><key>MessageType</key><string>TokenUpdate</string></dict></plist>')
  const header = await signDetached(body, { certificateDer: device.der, privateKey: device.keys.privateKey }, { encoding: 'apple-ber' })
  const verifier = createDeviceCertificateVerifier({ trustedCas: [trustedCa.der], now: () => during })
  const signature = verifyMdmSignature(header, body)
  t.equal(verifier.verify(signature.certificateDer).sha256, signature.certificateSha256)
})

/** nginx $ssl_client_escaped_cert: ngx_escape_uri with NGX_ESCAPE_URI_COMPONENT-like escaping. */
const nginxEscape = (pem: string) => pem.replace(/[^A-Za-z0-9\-._~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)

t.test('forwarded client certificates', async (t) => {
  const der = device.der
  const pem = certificateToPem(pkijs.Certificate.fromBER(der))
  const same = (value: string, name: string) => t.ok(parseForwardedClientCertificate(value).equals(der), name)

  same(`:${der.toString('base64')}:`, 'RFC 9440 Client-Cert')
  same(` :${der.toString('base64')}: `, 'RFC 9440 with surrounding whitespace')
  same(`:${der.toString('base64').replace(/=+$/, '')}:`, 'RFC 9440 without "=" padding (RFC 8941 §4.2.7)')
  same(nginxEscape(pem), 'nginx $ssl_client_escaped_cert')
  t.match(nginxEscape(pem), /^-----BEGIN%20CERTIFICATE-----%0A/)
  same(encodeURIComponent(pem), 'encodeURIComponent form')
  same(pem.replace(/ /g, '%20').replace(/\n/g, '%0A'), 'only spaces and line breaks escaped')
  same(pem, 'plain PEM')
  same(pem.replace(/\n/g, ' '), 'PEM with line breaks turned into spaces')
  t.ok(new X509Certificate(parseForwardedClientCertificate(nginxEscape(pem))).checkIssued(new X509Certificate(trustedCa.der)))

  const garbage: Array<[string, string]> = [
    ['empty', ''],
    ['blank', '  '],
    ['lone colon', ':'],
    ['empty byte sequence', '::'],
    ['unterminated byte sequence', `:${der.toString('base64')}`],
    ['not base64', ':not base64!:'],
    ['base64 of text', `:${Buffer.from('hello').toString('base64')}:`],
    ['URL-safe base64', `:${der.toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}:`],
    ['truncated DER', `:${der.subarray(0, der.length - 5).toString('base64')}:`],
    ['bare base64 without colons', der.toString('base64')],
    ['bad URL escape', '-----BEGIN%20CERTIFICATE-----%ZZ'],
    ['PEM of a key', pem.replace(/CERTIFICATE/g, 'PRIVATE KEY')],
    ['two certificates', pem + pem],
    ['PEM with garbage inside', pem.replace('-----END', '!!!\n-----END')],
    ['PEM with no end', pem.replace(/-----END CERTIFICATE-----\n$/, '')],
    ['a header name', 'Client-Cert'],
    ['too long', `:${'A'.repeat(70_000)}:`],
  ]
  for (const [name, value] of garbage) {
    t.equal(
      codeOf(() => parseForwardedClientCertificate(value)),
      'certificate_malformed',
      name,
    )
  }
  t.match(
    messageOf(() => parseForwardedClientCertificate('Client-Cert')),
    /^forwarded client certificate: neither an RFC 9440 byte sequence/,
  )
})

t.test('names print as node:crypto prints them, without parsing an X509Certificate', async (t) => {
  const { formatSimpleName, readCertificateFields } = await import('../../src/crypto/der.js')
  const { createCertificate, generateKeyPair } = await import('../../src/crypto/certificates.js')
  const keys = await generateKeyPair('ec-p256')
  for (const subject of [
    { commonName: 'device 1' },
    { commonName: 'iPad (Room 4.12)', organization: 'Council of Example-Town' },
    { commonName: "O'Brien's Mac" },
  ]) {
    const der = Buffer.from(
      (await createCertificate({ subject, publicKey: keys.publicKey, selfSignKey: keys.privateKey, validDays: 1, usage: 'client' }))
        .toSchema(true)
        .toBER(false),
    )
    t.equal(formatSimpleName(readCertificateFields(der).subject), new X509Certificate(der).subject.split('\n').join(', '), subject.commonName)
  }
  const odd = Buffer.from(
    (await createCertificate({ subject: { commonName: 'a, b + "c"' }, publicKey: keys.publicKey, selfSignKey: keys.privateKey, validDays: 1, usage: 'client' }))
      .toSchema(true)
      .toBER(false),
  )
  t.equal(formatSimpleName(readCertificateFields(odd).subject), null, 'characters OpenSSL escapes: left to it')
})
