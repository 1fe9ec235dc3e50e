import { createHmac, createPrivateKey, sign, verify, webcrypto, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import t, { type Test } from 'tap'
import { pkcs12Kdf } from '../../src/crypto/pkcs12.js'
import {
  parsePushCertificatePem,
  parsePushCertificatePkcs12,
  PushCertificateError,
  type PushCertificate,
  type PushCertificateErrorCode,
} from '../../src/crypto/push-certificate.js'

// Fixtures made once by the openssl command line: see fixtures/push/README.md.
const fixtures = new URL('./fixtures/push/', import.meta.url)
const text = (name: string) => readFileSync(new URL(name, fixtures), 'utf8')
const bytes = (name: string) => readFileSync(new URL(name, fixtures))
const PASSWORD = 'orchard-test'
const TOPIC = 'com.apple.mgmt.External.5f0c2a3e-8b7d-4c1e-9a64-2d3b8e71f0a9'
const TOPIC2 = 'com.apple.mgmt.External.0b9d7c41-6e2f-4a8b-b3c5-91d0e4f7a26c'

/** Runs `action` and checks it fails with a PushCertificateError of `code` whose message matches. */
async function expectError(t: Test, action: () => unknown, code: PushCertificateErrorCode, message: RegExp | string, what = String(message)) {
  try {
    await action()
  } catch (error) {
    t.type(error, PushCertificateError, what)
    t.equal((error as PushCertificateError).code, code, what)
    t.match((error as Error).message, message, what)
    return
  }
  t.fail(`${what}: should have failed with ${code}`)
}

const pem =
  (certificate = 'push.pem', key = 'push-pkcs1.key', passphrase?: string) =>
  () =>
    parsePushCertificatePem(text(certificate), text(key), passphrase)
const p12 =
  (file: string, password = PASSWORD) =>
  () =>
    parsePushCertificatePkcs12(bytes(file), password)

const expected: PushCertificate = {
  topic: TOPIC,
  // Serial and fingerprint as `openssl x509 -serial -fingerprint -sha256` printed them.
  serialNumber: '7812283AE22E615001770CC21D9DCA68E52160BB',
  notBefore: new Date('2026-11-22T03:55:03Z'),
  notAfter: new Date('2126-10-29T03:55:03Z'),
  subject: `UID=${TOPIC}, CN=APSP:5f0c2a3e-8b7d-4c1e-9a64-2d3b8e71f0a9, C=US`,
  certificatePem: text('push.pem'),
  privateKeyPem: text('push-pkcs8.key'),
  sha256: '60ca64a9f0fb32db6b5de36049962ebbf8b3702fff3b79745f2f48d8d4c5994c',
}

t.test('PEM: the push certificate with every key encoding', async (t) => {
  const result = parsePushCertificatePem(text('push.pem'), text('push-pkcs1.key'))
  t.same(result, expected, 'PKCS#1 key')
  t.type(result.notBefore, Date)
  t.equal(result.privateKeyPem.split('\n')[0], '-----BEGIN PRIVATE KEY-----', 'the key comes out as PKCS#8')

  // The key that comes out signs for the certificate that comes out.
  const signature = sign('sha256', Buffer.from('topic check'), createPrivateKey(result.privateKeyPem))
  t.ok(verify('sha256', Buffer.from('topic check'), new X509Certificate(result.certificatePem).publicKey, signature))

  t.same(parsePushCertificatePem(text('push.pem'), text('push-pkcs8.key')), expected, 'PKCS#8')
  t.same(parsePushCertificatePem(text('push.pem'), text('push-pkcs8-encrypted.key'), PASSWORD), expected, 'encrypted PKCS#8, PBES2/AES-256')
  t.same(parsePushCertificatePem(text('push.pem'), text('push-pkcs8-3des.key'), PASSWORD), expected, 'encrypted PKCS#8, PKCS#12 3DES scheme')
  t.same(parsePushCertificatePem(text('push.pem'), text('push-pkcs1-encrypted.key'), PASSWORD), expected, 'PKCS#1 with Proc-Type encryption')
  t.same(parsePushCertificatePem(text('push.pem'), text('push-pkcs8.key'), 'ignored'), expected, 'a passphrase for a plain key is ignored')
})

t.test('PEM: chains, several certificates, CRLF and openssl pkcs12 -nodes output', async (t) => {
  t.same(parsePushCertificatePem(text('push-chain.pem'), text('push-pkcs8.key')), expected, 'CA first, then the leaf')
  t.same(parsePushCertificatePem(text('push.pem') + text('ca.pem'), text('push-pkcs8.key')), expected, 'leaf, then CA')
  t.same(parsePushCertificatePem(text('push.pem') + text('push.pem'), text('push-pkcs8.key')), expected, 'the same certificate twice')

  const two = text('push2.pem') + text('push.pem')
  t.equal(parsePushCertificatePem(two, text('push-pkcs8.key')).topic, TOPIC, 'two push certificates: the one of the key')
  t.equal(parsePushCertificatePem(two, text('push2.key')).topic, TOPIC2, 'and the other one with the other key')

  // What `openssl pkcs12 -in x.p12 -nodes` writes, with Windows line ends, given as both arguments.
  const combined =
    `Bag Attributes\n    friendlyName: Orchard push\nsubject=UID = ${TOPIC}\n${text('push.pem')}Bag Attributes\n    localKeyID: 01\n${text('push-pkcs8.key')}`.replace(
      /\n/g,
      '\r\n',
    )
  t.same(parsePushCertificatePem(combined, combined), expected)
})

t.test('PKCS#12: every flavour gives what the PEM path gives', async (t) => {
  const flavours: Array<[string, string, string]> = [
    ['push-legacy.p12', PASSWORD, 'legacy: RC2-40 certificates, 3DES key, SHA-1 MAC, with the CA'],
    ['push-3des.p12', 'Pässwörd 🍏', '3DES only, SHA-256 MAC, non-ASCII password outside the BMP'],
    ['push-aes.p12', PASSWORD, 'OpenSSL 3 default: PBES2 AES-256/PBKDF2-SHA256, SHA-256 MAC, with the CA'],
    ['push-rc2-128.p12', PASSWORD, 'RC2-128 certificates, 2-key 3DES key'],
    ['push-plain.p12', PASSWORD, 'nothing encrypted: plain keyBag'],
    ['push-nomac.p12', PASSWORD, 'no MAC'],
    ['push-empty-password.p12', '', 'empty password'],
  ]
  const fromPem = parsePushCertificatePem(text('push.pem'), text('push-pkcs1.key'))
  for (const [file, password, what] of flavours) {
    t.same(await parsePushCertificatePkcs12(bytes(file), password), fromPem, what)
  }
  const view = Buffer.concat([Buffer.alloc(7), bytes('push-aes.p12')]).subarray(7)
  t.same(await parsePushCertificatePkcs12(view, PASSWORD), fromPem, 'a Buffer that is a view into a larger one')
})

t.test('PKCS#12 in BER: indefinite lengths and a chunked OCTET STRING', async (t) => {
  // Re-wrap push-legacy.p12 the way BER writers may: the PFX, the authSafe ContentInfo and
  // its [0] with indefinite lengths, the authSafe bytes as a constructed OCTET STRING of
  // two chunks (X.690 §8.7.3). The MAC covers the content octets, so it still verifies.
  const pfx = asn1js.fromBER(new Uint8Array(bytes('push-legacy.p12'))).result as asn1js.Sequence
  const [, contentInfo, macData] = pfx.valueBlock.value as [asn1js.Integer, asn1js.Sequence, asn1js.Sequence]
  const authSafe = Buffer.from(((contentInfo.valueBlock.value[1] as asn1js.Constructed).valueBlock.value[0] as asn1js.OctetString).getValue())
  const tlv = (tag: number, value: Buffer) => {
    const length = value.length < 0x80 ? Buffer.of(value.length) : Buffer.of(0x82, value.length >> 8, value.length & 0xff)
    return Buffer.concat([Buffer.of(tag), length, value])
  }
  const indefinite = (tag: number, ...parts: Buffer[]) => Buffer.concat([Buffer.of(tag, 0x80), ...parts, Buffer.of(0, 0)])
  const half = authSafe.length >> 1
  const ber = indefinite(
    0x30,
    Buffer.from('020103', 'hex'),
    indefinite(
      0x30,
      tlv(0x06, Buffer.from('2a864886f70d010701', 'hex')),
      indefinite(0xa0, indefinite(0x24, tlv(0x04, authSafe.subarray(0, half)), tlv(0x04, authSafe.subarray(half)))),
    ),
    Buffer.from(macData.valueBeforeDecodeView),
  )
  t.same(await parsePushCertificatePkcs12(ber, PASSWORD), expected)
})

t.test('push_certificate_password', async (t) => {
  for (const file of ['push-legacy.p12', 'push-3des.p12', 'push-aes.p12']) {
    await expectError(t, p12(file, 'wrong'), 'push_certificate_password', 'wrong password: the PKCS#12 MAC does not verify', file)
  }
  await expectError(t, p12('push-3des.p12', 'Passwörd 🍏'), 'push_certificate_password', /MAC does not verify/, 'one character off')
  await expectError(t, p12('push-aes.p12', ''), 'push_certificate_password', /MAC does not verify/, 'empty password for a protected file')
  await expectError(t, p12('push-empty-password.p12', ' '), 'push_certificate_password', /MAC does not verify/, 'a blank for the empty password')
  await expectError(
    t,
    p12('push-nomac.p12', 'wrong'),
    'push_certificate_password',
    /^wrong password: the private key does not decrypt$/,
    'no MAC: found while decrypting',
  )

  const tampered = bytes('push-aes.p12')
  tampered[200]! ^= 0x01 // inside the authSafe, which the MAC covers
  await expectError(t, () => parsePushCertificatePkcs12(tampered, PASSWORD), 'push_certificate_password', /or the file was modified/, 'one flipped bit')

  await expectError(t, pem('push.pem', 'push-pkcs8-encrypted.key'), 'push_certificate_password', /encrypted \(ENCRYPTED PRIVATE KEY\): a passphrase is needed/)
  await expectError(t, pem('push.pem', 'push-pkcs8-encrypted.key', ''), 'push_certificate_password', /a passphrase is needed/)
  await expectError(t, pem('push.pem', 'push-pkcs8-encrypted.key', 'wrong'), 'push_certificate_password', /^wrong password: the private key does not decrypt$/)
  await expectError(t, pem('push.pem', 'push-pkcs8-3des.key', 'wrong'), 'push_certificate_password', /the private key does not decrypt/)
  await expectError(t, pem('push.pem', 'push-pkcs1-encrypted.key'), 'push_certificate_password', /RSA PRIVATE KEY with DEK-Info\): a passphrase is needed/)
  await expectError(t, pem('push.pem', 'push-pkcs1-encrypted.key', 'wrong'), 'push_certificate_password', /^wrong passphrase for the private key$/)
})

t.test('push_certificate_key_mismatch', async (t) => {
  await expectError(
    t,
    pem('push.pem', 'other.key'),
    'push_certificate_key_mismatch',
    `the private key does not belong to the push certificate ${expected.subject}`,
  )
  await expectError(
    t,
    pem('push2.pem', 'push-pkcs8.key'),
    'push_certificate_key_mismatch',
    /does not belong to the push certificate UID=com\.apple\.mgmt\.External\.0b9d7c41/,
  )
  await expectError(
    t,
    () => parsePushCertificatePem(text('push.pem') + text('no-uid.pem'), text('no-uid.key')),
    'push_certificate_key_mismatch',
    /\(it belongs to CN=Fixture TLS client, O=Orchard fixtures\)$/,
    'names the certificate the key does belong to',
  )
  await expectError(
    t,
    p12('mismatch.p12'),
    'push_certificate_key_mismatch',
    /does not belong to the push certificate UID=com\.apple\.mgmt\..*\(it belongs to CN=Fixture TLS client/,
  )
})

t.test('push_certificate_topic', async (t) => {
  await expectError(
    t,
    pem('no-uid.pem', 'no-uid.key'),
    'push_certificate_topic',
    /^the certificate has no UID attribute, so no push topic \(CN=Fixture TLS client, O=Orchard fixtures\)/,
  )
  await expectError(t, p12('no-uid.p12'), 'push_certificate_topic', /has no UID attribute/)
  await expectError(
    t,
    pem('wrong-topic.pem', 'wrong-topic.key'),
    'push_certificate_topic',
    /^the certificate's UID is "com\.example\.not-a-push-topic", not an MDM push topic: it must start with com\.apple\.mgmt\./,
  )
  // A CA in the file has no UID either: the message is about the certificate the key belongs to.
  await expectError(
    t,
    () => parsePushCertificatePem(text('ca.pem') + text('wrong-topic.pem'), text('wrong-topic.key')),
    'push_certificate_topic',
    /com\.example\.not-a-push-topic/,
  )
})

t.test('push_certificate_unsupported names the algorithm', async (t) => {
  await expectError(
    t,
    p12('push-rc4.p12'),
    'push_certificate_unsupported',
    'the private key is encrypted with pbeWithSHAAnd128BitRC4 (1.2.840.113549.1.12.1.1), which this server cannot decrypt',
  )
  await expectError(
    t,
    pem('push.pem', 'push-pkcs8-camellia.key', PASSWORD),
    'push_certificate_unsupported',
    'the private key is encrypted with PBES2 cipher 1.2.392.200011.61.1.1.1.4',
  )
})

t.test('push_certificate_invalid: garbage and misuse, with a precise message', async (t) => {
  const invalid = (action: () => unknown, message: RegExp | string, what?: string) => expectError(t, action, 'push_certificate_invalid', message, what)
  const aes = bytes('push-aes.p12')

  await invalid(() => parsePushCertificatePkcs12(Buffer.alloc(0), PASSWORD), 'the PKCS#12 file is empty')
  await invalid(() => parsePushCertificatePkcs12(Buffer.from('hello, world'), PASSWORD), 'not a PKCS#12 file: it starts with byte 0x68, not a DER SEQUENCE')
  await invalid(() => parsePushCertificatePkcs12(Buffer.from(text('push.pem')), PASSWORD), /this is PEM text, not a PKCS#12 file/)
  await invalid(
    () => parsePushCertificatePkcs12(Buffer.from(aes.toString('base64')), PASSWORD),
    /this is base64 text, not a PKCS#12 file: decode it to binary first/,
  )
  await invalid(() => parsePushCertificatePkcs12(aes.subarray(0, 100), PASSWORD), /^the PKCS#12 file is not valid DER\/BER/, 'truncated')
  await invalid(
    () => parsePushCertificatePkcs12(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x03]), PASSWORD),
    /^not a PKCS#12 file: the PFX structure \(RFC 7292 §4\) does not parse/,
  )
  await invalid(() => parsePushCertificatePkcs12(Buffer.alloc(2 * 1024 * 1024, 0x30), PASSWORD), /a push certificate file is a few kilobytes/)
  await invalid(() => parsePushCertificatePkcs12('MIIK' as unknown as Buffer, PASSWORD), 'the PKCS#12 file must be given as bytes')

  await invalid(() => parsePushCertificatePem('', text('push-pkcs8.key')), 'the certificate PEM is empty')
  await invalid(() => parsePushCertificatePem('hello', text('push-pkcs8.key')), /the certificate PEM has no "-----BEGIN \.\.\.-----" block: is it PEM text\?/)
  await invalid(
    () => parsePushCertificatePem(text('push-pkcs8.key'), text('push.pem')),
    /holds a private key, not a certificate: were the certificate and the key swapped\?/,
  )
  await invalid(() => parsePushCertificatePem(text('push.pem'), text('push.pem')), /the private key PEM holds a certificate, not a private key/)
  await invalid(
    () => parsePushCertificatePem(text('push.pem'), text('push-pkcs8.key') + text('other.key')),
    'the private key PEM holds 2 private keys; expected one',
  )
  await invalid(
    () => parsePushCertificatePem('-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n', text('push-pkcs8.key')),
    'the certificate PEM: the CERTIFICATE block is not valid base64',
  )
  await invalid(
    () => parsePushCertificatePem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', text('push-pkcs8.key')),
    /^the certificate is not an X\.509 certificate/,
  )
  await invalid(
    () => parsePushCertificatePem(text('push.pem'), '-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n'),
    /^the private key does not parse as PKCS#8/,
  )
  await invalid(
    () => parsePushCertificatePem(text('push.pem').replace('END CERTIFICATE', 'END PRIVATE KEY'), text('push-pkcs8.key')),
    /a "BEGIN CERTIFICATE" block ends with "END PRIVATE KEY"/,
  )
  await invalid(
    () => parsePushCertificatePem(text('push.pem') + text('push-reissued.pem'), text('push-pkcs8.key')),
    /^2 push certificates match the private key .*: upload one$/,
    'two different push certificates for one key',
  )
})

t.test('RFC 9579 PBMAC1 test vectors (password 1234)', async (t) => {
  // A.1 and A.3 verify and decrypt; their certificate is no push certificate, so the
  // error that comes is about the topic: proof the MAC and the contents were read.
  await expectError(t, p12('rfc9579-a1.p12', '1234'), 'push_certificate_topic', /has no UID attribute.*CN=tt/, 'A.1 (HMAC-SHA256)')
  await expectError(t, p12('rfc9579-a3.p12', '1234'), 'push_certificate_topic', /has no UID attribute.*CN=tt/, 'A.3 (HMAC-SHA512)')
  await expectError(t, p12('rfc9579-a1.p12', '12345'), 'push_certificate_password', /MAC does not verify/, 'A.1, wrong password')
  await expectError(t, p12('rfc9579-a4.p12', '1234'), 'push_certificate_password', /MAC does not verify/, 'A.4: wrong iteration count')
  await expectError(
    t,
    p12('rfc9579-a6.p12', '1234'),
    'push_certificate_invalid',
    'the PKCS#12 PBMAC1 parameters have no keyLength (RFC 9579 §3 requires it)',
    'A.6',
  )
})

t.test('the RFC 7292 Appendix B KDF agrees with pkijs (an independent implementation)', async (t) => {
  const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })
  const cases: Array<[string, 'SHA-1' | 'SHA-256' | 'SHA-512', number, string, Buffer, number]> = [
    ['sha1', 'SHA-1', 20, PASSWORD, Buffer.from('0102030405060708', 'hex'), 2048],
    ['sha256', 'SHA-256', 32, 'Pässwörd 🍏', Buffer.from('a1b2c3d4e5f6a7b8', 'hex'), 1],
    ['sha512', 'SHA-512', 64, 'x'.repeat(70), Buffer.alloc(130, 0xee), 3],
  ]
  const content = Buffer.from('authenticated safe')
  for (const [hash, webName, length, password, salt, iterations] of cases) {
    const bmp = Buffer.alloc(password.length * 2 + 2)
    for (let i = 0; i < password.length; i++) bmp.writeUInt16BE(password.charCodeAt(i), i * 2)
    const ours = createHmac(hash, pkcs12Kdf(hash, 3, bmp, salt, iterations, length))
      .update(content)
      .digest()
    const theirs = await engine.stampDataWithPassword({
      password: new TextEncoder().encode(password).buffer,
      hashAlgorithm: webName,
      salt: new Uint8Array(salt).buffer,
      iterationCount: iterations,
      contentToStamp: new Uint8Array(content).buffer,
    })
    t.equal(ours.toString('hex'), Buffer.from(theirs).toString('hex'), `${hash}, ${iterations} iteration(s)`)
  }
  t.equal(pkcs12Kdf('sha1', 1, Buffer.alloc(2), Buffer.alloc(8), 1, 45).length, 45, 'output longer than one hash block')
  t.throws(() => pkcs12Kdf('md4', 1, Buffer.alloc(2), Buffer.alloc(8), 1, 8), /no PKCS#12 KDF for hash md4/)
})
