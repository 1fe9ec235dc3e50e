import { createHash, createPublicKey, webcrypto, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import t from 'tap'
import { createCertificate, generateKeyPair, type KeyAlgorithm, type KeyPair } from '../../src/crypto/certificates.js'
import { DerError, childrenOf, decodeElement, decodeOid, decodeTime, readCertificateFields, Tag, type DerElement } from '../../src/crypto/der.js'
import { createDeviceCertificateVerifier } from '../../src/crypto/device-identity.js'
import { IdentityError, verifyMdmSignature, type IdentityErrorCode, type VerifiedSignature } from '../../src/crypto/mdm-signature.js'
import { signDetached, type SignDetachedOptions, type Signer } from '../helpers/cms-signer.js'
import { seededRandom as random } from '../helpers/random.js'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })
const sha256 = (der: Buffer) => createHash('sha256').update(der).digest('hex')
const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url))

const body = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>MessageType</key><string>TokenUpdate</string>' +
    '<key>UDID</key><string>00008120-000000000000001E</string></dict></plist>\n',
)
const otherBody = Buffer.from(body.toString().replace('TokenUpdate', 'CheckOut'))

const caKeys = await generateKeyPair('ec-p256')
const ca = await createCertificate({
  subject: { commonName: 'Test Device CA' },
  publicKey: caKeys.publicKey,
  selfSignKey: caKeys.privateKey,
  validDays: 30,
  usage: 'ca',
})
const caDer = Buffer.from(ca.toSchema().toBER(false))

async function makeDevice(algorithm: KeyAlgorithm, commonName: string): Promise<Signer> {
  const keys = await generateKeyPair(algorithm)
  const certificate = await createCertificate({
    subject: { commonName },
    publicKey: keys.publicKey,
    issuer: { certificate: ca, privateKey: caKeys.privateKey },
    validDays: 30,
    usage: 'client',
  })
  return { privateKey: keys.privateKey, certificateDer: Buffer.from(certificate.toSchema().toBER(false)) }
}

const devices: Record<KeyAlgorithm, Signer> = { 'rsa-2048': await makeDevice('rsa-2048', 'rsa device'), 'ec-p256': await makeDevice('ec-p256', 'ec device') }
const strangers: Record<KeyAlgorithm, KeyPair> = { 'rsa-2048': await generateKeyPair('rsa-2048'), 'ec-p256': await generateKeyPair('ec-p256') }

type Outcome = { ok: true; result: VerifiedSignature } | { ok: false; code: IdentityErrorCode; message: string }

/** Runs our verifier; anything but IdentityError escapes (and fails the test). */
function ours(header: string, data: Buffer): Outcome {
  try {
    return { ok: true, result: verifyMdmSignature(header, data) }
  } catch (error) {
    if (!(error instanceof IdentityError)) throw error
    return { ok: false, code: error.code, message: error.message }
  }
}

/** pkijs, the independent implementation: ContentInfo -> SignedData -> verify (no chain). */
async function pkijsVerifies(header: string, data: Buffer): Promise<boolean> {
  try {
    const contentInfo = pkijs.ContentInfo.fromBER(Buffer.from(header, 'base64'))
    const signedData = new pkijs.SignedData({ schema: contentInfo.content })
    return await signedData.verify({ signer: 0, data: new Uint8Array(data).buffer, checkChain: false }, engine)
  } catch {
    return false
  }
}

type Assertions = Pick<typeof t, 'equal' | 'match'>

/** Asserts that we and pkijs reach the same verdict, and our refusal carries `code`. */
async function expectRefused(t: Assertions, header: string, data: Buffer, code: IdentityErrorCode, message?: RegExp): Promise<void> {
  const outcome = ours(header, data)
  t.equal(outcome.ok ? 'verified' : outcome.code, code, message ? `refused: ${code} ${message}` : `refused: ${code}`)
  if (!outcome.ok && message) t.match(outcome.message, message)
  t.equal(await pkijsVerifies(header, data), false, 'pkijs refuses too')
}

for (const algorithm of ['rsa-2048', 'ec-p256'] as KeyAlgorithm[]) {
  for (const digest of ['SHA-1', 'SHA-256'] as const) {
    for (const signedAttributes of [true, false]) {
      const label = `${algorithm}, ${digest}, ${signedAttributes ? 'with' : 'without'} signed attributes`
      t.test(label, async (t) => {
        const device = devices[algorithm]
        const options: SignDetachedOptions = { digest, signedAttributes }
        const header = await signDetached(body, device, options)

        const outcome = ours(header, body)
        if (!outcome.ok) throw new Error(`valid signature refused: ${outcome.message}`)
        t.ok(outcome.result.certificateDer.equals(device.certificateDer), 'returns the embedded signer certificate')
        t.equal(outcome.result.certificateSha256, sha256(device.certificateDer), 'and its SHA-256')
        t.match(outcome.result.certificateSha256, /^[0-9a-f]{64}$/)
        t.equal(outcome.result.digestAlgorithm, digest === 'SHA-1' ? 'sha1' : 'sha256')
        t.equal(await pkijsVerifies(header, body), true, 'pkijs verifies what our test signer made')

        for (const position of [0, Math.floor(body.length / 2), body.length - 1]) {
          const changed = Buffer.from(body)
          changed[position]! ^= 0x01
          await expectRefused(t, header, changed, 'signature_invalid', signedAttributes ? /messageDigest/ : /does not verify/)
        }
        await expectRefused(t, header, body.subarray(0, body.length - 1), 'signature_invalid')

        const forged = await signDetached(body, { certificateDer: device.certificateDer, privateKey: strangers[algorithm].privateKey }, options)
        await expectRefused(t, forged, body, 'signature_invalid', /does not verify/)

        const replayed = await signDetached(otherBody, device, options)
        t.equal(await pkijsVerifies(replayed, otherBody), true, 'the replayed signature is valid for its own body')
        await expectRefused(t, replayed, body, 'signature_invalid')

        const apple = await signDetached(body, device, { ...options, encoding: 'apple-ber' })
        t.match(apple, /^MIAGCSqGSIb3DQEHAqCAMIAC/, 'indefinite-length BER, as devices send it')
        const appleOutcome = ours(apple, body)
        t.ok(appleOutcome.ok && appleOutcome.result.certificateSha256 === sha256(device.certificateDer), 'Apple-shaped BER verifies')
        t.equal(await pkijsVerifies(apple, body), true, 'pkijs agrees on the BER form')
        await expectRefused(t, apple, otherBody, 'signature_invalid')

        const bySki = await signDetached(body, device, { ...options, signerIdentifier: 'subjectKeyIdentifier' })
        t.ok(ours(bySki, body).ok, 'signer identified by subjectKeyIdentifier verifies')
        t.equal(await pkijsVerifies(bySki, body), true)
      })
    }
  }
}

t.test('fixtures made once by the openssl command line', async (t) => {
  const fixtureBody = fixture('body.plist')
  const certificates = { rsa: fixture('device-rsa.der'), ec: fixture('device-ec.der') }
  const names = ['rsa', 'ec'].flatMap((key) => ['sha1', 'sha256'].flatMap((md) => [`${key}-${md}-attrs`, `${key}-${md}-noattr`]))
  for (const name of [...names, 'rsa-sha256-attrs-keyid']) {
    const header = fixture(`${name}.der`).toString('base64')
    const outcome = ours(header, fixtureBody)
    if (!outcome.ok) throw new Error(`${name} refused: ${outcome.message}`)
    const certificate = name.startsWith('rsa') ? certificates.rsa : certificates.ec
    t.equal(outcome.result.certificateSha256, sha256(certificate), `${name}: signed by the ${name.split('-')[0]} device certificate`)
    t.equal(outcome.result.digestAlgorithm, name.split('-')[1], `${name}: digest algorithm`)
    t.equal(await pkijsVerifies(header, fixtureBody), true, `${name}: pkijs agrees`)
    const changed = Buffer.from(fixtureBody)
    changed[100]! ^= 0x20
    await expectRefused(t, header, changed, 'signature_invalid')
  }
  const signer = new X509Certificate(certificates.ec)
  t.equal(signer.checkIssued(new X509Certificate(fixture('ca.der'))), true, 'fixture device certificates come from the fixture CA')
})

t.test('headers that are not a signature fail cleanly', async (t) => {
  const header = await signDetached(body, devices['ec-p256'])
  const der = Buffer.from(header, 'base64')
  const cases: Array<[string, string]> = [
    ['empty', ''],
    ['blank', '   '],
    ['garbage', 'not a signature!'],
    ['base64 of text', Buffer.from('hello world').toString('base64')],
    ['base64 of one zero byte', 'AA=='],
    ['line breaks inside', header.replace(/(.{64})/g, '$1\n')],
    ['URL-safe alphabet', header.replace(/\+/g, '-').replace(/\//g, '_')],
    [
      'missing padding',
      Buffer.from(der.subarray(0, der.length - 1))
        .toString('base64')
        .replace(/=+$/, ''),
    ],
    ['non-canonical padding bits', 'QR=='],
    ['truncated', der.subarray(0, der.length - 10).toString('base64')],
    ['only the first byte', der.subarray(0, 1).toString('base64')],
    ['trailing bytes', Buffer.concat([der, Buffer.from([0, 0])]).toString('base64')],
    ['a certificate, not a CMS', devices['ec-p256'].certificateDer.toString('base64')],
    ['nested too deep', Buffer.from([...new Array<number>(40).fill(0x30).flatMap((tag) => [tag, 0x80]), ...new Array<number>(80).fill(0)]).toString('base64')],
    ['length beyond the input', Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x00]).toString('base64')],
    ['high tag number', Buffer.from([0x1f, 0x81, 0x00, 0x00]).toString('base64')],
  ]
  for (const [name, value] of cases) {
    const outcome = ours(value, body)
    t.equal(outcome.ok ? 'verified' : outcome.code, 'signature_malformed', name)
  }
  t.match(ours('', body), { message: 'Mdm-Signature: header is empty' })
  t.match(ours(undefined as unknown as string, body), { ok: false, code: 'signature_malformed', message: 'Mdm-Signature: header is empty' }, 'a missing header')
  t.match(ours('not a signature!', body), { message: 'Mdm-Signature: header is not base64' })
})

/** Parses a DER signature with asn1js, lets `edit` change it, re-encodes. For structures our signer never makes. */
function editCms(
  header: string,
  edit: (parts: { contentInfo: asn1js.Sequence; signedData: asn1js.Sequence; signerInfos: asn1js.Set; signerInfo: asn1js.Sequence }) => void,
): string {
  const contentInfo = asn1js.fromBER(new Uint8Array(Buffer.from(header, 'base64'))).result as asn1js.Sequence
  const signedData = (contentInfo.valueBlock.value[1] as asn1js.Constructed).valueBlock.value[0] as asn1js.Sequence
  const signerInfos = signedData.valueBlock.value.at(-1) as asn1js.Set
  const signerInfo = signerInfos.valueBlock.value[0] as asn1js.Sequence
  edit({ contentInfo, signedData, signerInfos, signerInfo })
  return Buffer.from(contentInfo.toBER(false)).toString('base64')
}

const algorithmIdentifier = (oid: string, withNull = true) =>
  new asn1js.Sequence({ value: withNull ? [new asn1js.ObjectIdentifier({ value: oid }), new asn1js.Null()] : [new asn1js.ObjectIdentifier({ value: oid })] })

t.test('structures we refuse, and why', async (t) => {
  const rsa = devices['rsa-2048']
  const ec = devices['ec-p256']
  const withAttributes = await signDetached(body, rsa)
  const withoutAttributes = await signDetached(body, rsa, { signedAttributes: false })
  t.equal(
    editCms(withAttributes, () => {}),
    withAttributes,
    'the editor re-encodes untouched input byte for byte',
  )

  const notSignedData = editCms(withAttributes, ({ contentInfo }) => {
    contentInfo.valueBlock.value[0] = new asn1js.ObjectIdentifier({ value: '1.2.840.113549.1.7.3' })
  })
  // pkijs never looks at ContentInfo.contentType and would verify this one.
  t.match(ours(notSignedData, body), { ok: false, code: 'signature_unsupported', message: /1\.2\.840\.113549\.1\.7\.3, not signedData/ })

  const attached = editCms(withAttributes, ({ signedData }) => {
    const encapsulated = signedData.valueBlock.value[2] as asn1js.Sequence
    encapsulated.valueBlock.value.push(
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [new asn1js.OctetString({ valueHex: new Uint8Array(body) })] }),
    )
  })
  t.match(ours(attached, body), { ok: false, code: 'signature_unsupported', message: /not detached/ }, 'eContent present: not detached')

  const twoSigners = editCms(withAttributes, ({ signerInfos, signerInfo }) => {
    signerInfos.valueBlock.value.push(signerInfo)
  })
  t.match(ours(twoSigners, body), { ok: false, code: 'signature_unsupported', message: /2 signers/ })

  const noSigners = editCms(withAttributes, ({ signerInfos }) => {
    signerInfos.valueBlock.value.length = 0
  })
  await expectRefused(t, noSigners, body, 'signature_malformed', /no signerInfos/)

  const noCertificates = editCms(withAttributes, ({ signedData }) => {
    signedData.valueBlock.value.splice(3, 1)
  })
  await expectRefused(t, noCertificates, body, 'signature_unsupported', /no certificates embedded/)

  const wrongCertificate = editCms(withAttributes, ({ signedData }) => {
    const certificates = signedData.valueBlock.value[3] as asn1js.Constructed
    certificates.valueBlock.value[0] = asn1js.fromBER(new Uint8Array(ec.certificateDer)).result
  })
  await expectRefused(t, wrongCertificate, body, 'signature_malformed', /no embedded certificate matches/)

  const extraCertificates = editCms(withAttributes, ({ signedData }) => {
    const certificates = signedData.valueBlock.value[3] as asn1js.Constructed
    certificates.valueBlock.value.unshift(asn1js.fromBER(new Uint8Array(ec.certificateDer)).result, asn1js.fromBER(new Uint8Array(caDer)).result)
  })
  t.match(
    ours(extraCertificates, body),
    { ok: true, result: { certificateSha256: sha256(rsa.certificateDer) } },
    'the signer is picked among several certificates',
  )
  t.equal(await pkijsVerifies(extraCertificates, body), true)

  const sha224 = editCms(withAttributes, ({ signerInfo }) => {
    signerInfo.valueBlock.value[2] = algorithmIdentifier('2.16.840.1.101.3.4.2.4')
  })
  t.match(ours(sha224, body), { ok: false, code: 'signature_unsupported', message: /digest algorithm 2\.16\.840\.1\.101\.3\.4\.2\.4/ })

  const pss = editCms(withAttributes, ({ signerInfo }) => {
    signerInfo.valueBlock.value[4] = algorithmIdentifier('1.2.840.113549.1.1.10')
  })
  t.match(ours(pss, body), { ok: false, code: 'signature_unsupported', message: /signature algorithm 1\.2\.840\.113549\.1\.1\.10/ })

  // pkijs would hash with the signature algorithm's SHA-1, OpenSSL and Go with the digest algorithm's SHA-256.
  const ambiguous = editCms(withAttributes, ({ signerInfo }) => {
    signerInfo.valueBlock.value[4] = algorithmIdentifier('1.2.840.113549.1.1.5')
  })
  t.match(ours(ambiguous, body), { ok: false, code: 'signature_unsupported', message: /sha1WithRSAEncryption disagrees with digest algorithm sha256/ })

  const rsaEncryption = editCms(withoutAttributes, ({ signerInfo }) => {
    signerInfo.valueBlock.value[3] = algorithmIdentifier('1.2.840.113549.1.1.1')
  })
  t.match(ours(rsaEncryption, body), { ok: true }, 'rsaEncryption takes its hash from the digest algorithm (as OpenSSL writes it)')
  t.equal(await pkijsVerifies(rsaEncryption, body), true)

  const ecOnRsaKey = editCms(withoutAttributes, ({ signerInfo }) => {
    signerInfo.valueBlock.value[3] = algorithmIdentifier('1.2.840.10045.4.3.2', false)
  })
  // pkijs takes the key type from the certificate and the hash from the OID, and would verify this as RSA.
  t.match(ours(ecOnRsaKey, body), { ok: false, code: 'signature_invalid', message: /ecdsa-with-SHA256 does not fit the signer certificate's rsa key/ })

  const ecHeader = await signDetached(body, ec, { signedAttributes: false })
  const ecPublicKeyAlgorithm = editCms(ecHeader, ({ signerInfo }) => {
    signerInfo.valueBlock.value[3] = algorithmIdentifier('1.2.840.10045.2.1', false)
  })
  t.match(ours(ecPublicKeyAlgorithm, body), { ok: true }, 'id-ecPublicKey as signature algorithm takes the digest algorithm')

  const indefiniteAttributes = editCms(withAttributes, ({ signerInfo }) => {
    ;(signerInfo.valueBlock.value[3] as asn1js.Constructed).lenBlock.isIndefiniteForm = true
  })
  t.match(ours(indefiniteAttributes, body), { ok: false, code: 'signature_malformed', message: /signedAttrs use indefinite length/ })

  const emptySignature = editCms(withoutAttributes, ({ signerInfo }) => {
    signerInfo.valueBlock.value[4] = new asn1js.OctetString()
  })
  await expectRefused(t, emptySignature, body, 'signature_malformed', /signature is empty/)
})

t.test('signed attributes are checked', async (t) => {
  const device = devices['ec-p256']
  const attribute = (type: string, ...values: asn1js.AsnType[]) => new pkijs.Attribute({ type, values })
  const contentType = (oid: string) => attribute('1.2.840.113549.1.9.3', new asn1js.ObjectIdentifier({ value: oid }))
  const messageDigest = (digest: ArrayBuffer) => attribute('1.2.840.113549.1.9.4', new asn1js.OctetString({ valueHex: digest }))
  const sign = (attributes: (digest: ArrayBuffer) => pkijs.Attribute[]) => signDetached(body, device, { attributes })

  const missingDigest = await sign(() => [contentType('1.2.840.113549.1.7.1')])
  await expectRefused(t, missingDigest, body, 'signature_malformed', /lack the messageDigest attribute/)

  const twoDigests = await sign((digest) => [contentType('1.2.840.113549.1.7.1'), messageDigest(digest), messageDigest(new ArrayBuffer(32))])
  t.match(ours(twoDigests, body), { ok: false, code: 'signature_malformed', message: /more than one messageDigest/ })

  const twoDigestValues = await sign((digest) => [
    contentType('1.2.840.113549.1.7.1'),
    attribute('1.2.840.113549.1.9.4', new asn1js.OctetString({ valueHex: digest }), new asn1js.OctetString({ valueHex: digest })),
  ])
  t.match(ours(twoDigestValues, body), { ok: false, code: 'signature_malformed', message: /exactly one value/ })

  const shortDigest = await sign((digest) => [contentType('1.2.840.113549.1.7.1'), messageDigest(digest.slice(0, 20))])
  await expectRefused(t, shortDigest, body, 'signature_invalid', /messageDigest attribute does not match/)

  const wrongContentType = await sign((digest) => [contentType('1.2.840.113549.1.7.2'), messageDigest(digest)])
  t.match(ours(wrongContentType, body), { ok: false, code: 'signature_invalid', message: /contentType attribute is 1\.2\.840\.113549\.1\.7\.2, not id-data/ })

  // RFC 5652 §5.3 requires contentType; like OpenSSL and Go we only check it when present. pkijs insists on it.
  const noContentType = await sign((digest) => [messageDigest(digest)])
  t.match(ours(noContentType, body), { ok: true }, 'contentType attribute is optional here')
  t.equal(await pkijsVerifies(noContentType, body), false, 'pkijs is stricter on this one point')

  const extra = await sign((digest) => [contentType('1.2.840.113549.1.7.1'), messageDigest(digest), attribute('1.2.840.113549.1.9.15', new asn1js.Sequence())])
  t.match(ours(extra, body), { ok: true }, 'unknown attributes (smimeCapabilities) are allowed')
})

t.test('seeded mutation fuzzing: only IdentityError, and nothing verifies that should not', async (t) => {
  const next = random(0x0c4a7d)
  const int = (below: number) => Math.floor(next() * below)
  const mutate = (der: Buffer): Buffer => {
    const bytes = Buffer.from(der)
    const at = int(bytes.length)
    switch (int(8)) {
      case 0:
        bytes[at]! ^= 1 << int(8)
        return bytes
      case 1:
        bytes[at] = int(256)
        return bytes
      case 2:
        bytes[at] = [0x00, 0x80, 0x81, 0x84, 0xff, 0x7f][int(6)]!
        return bytes
      case 3:
        return bytes.subarray(0, at)
      case 4:
        return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)])
      case 5:
        return Buffer.concat([bytes.subarray(0, at), Buffer.from([int(256)]), bytes.subarray(at)])
      case 6: {
        const length = 1 + int(16)
        return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at, at + length), bytes.subarray(at)])
      }
      default:
        for (let i = 0; i < 4; i++) bytes[int(bytes.length)] = int(256)
        return bytes
    }
  }

  // Bases: signatures made now (random keys) and the committed openssl fixtures (the same bytes every run).
  const fixtureBody = fixture('body.plist')
  const bases: Array<{ name: string; header: string; data: Buffer; certificateDer: Buffer; trustedCa: Buffer }> = []
  for (const algorithm of ['rsa-2048', 'ec-p256'] as KeyAlgorithm[]) {
    for (const signedAttributes of [true, false]) {
      for (const encoding of ['der', 'apple-ber'] as const) {
        const header = await signDetached(body, devices[algorithm], { signedAttributes, encoding })
        bases.push({
          name: `${algorithm} ${signedAttributes ? 'attrs' : 'noattr'} ${encoding}`,
          header,
          data: body,
          certificateDer: devices[algorithm].certificateDer,
          trustedCa: caDer,
        })
      }
    }
  }
  for (const [name, certificate] of [
    ['rsa-sha256-attrs', 'device-rsa.der'],
    ['ec-sha1-noattr', 'device-ec.der'],
    ['rsa-sha256-attrs-keyid', 'device-rsa.der'],
  ]) {
    bases.push({
      name: `openssl ${name}`,
      header: fixture(`${name}.der`).toString('base64'),
      data: fixtureBody,
      certificateDer: fixture(certificate!),
      trustedCa: fixture('ca.der'),
    })
  }

  const counts: Record<string, number> = {}
  const bump = (key: string) => (counts[key] = (counts[key] ?? 0) + 1)
  const violations: string[] = []
  const iterations = 250
  for (const base of bases) {
    const verifier = createDeviceCertificateVerifier({ trustedCas: [base.trustedCa], now: () => new Date('2030-01-01T00:00:00Z') })
    const signerKey = new X509Certificate(base.certificateDer).publicKey.export({ type: 'spki', format: 'der' })
    const der = Buffer.from(base.header, 'base64')
    for (let i = 0; i < iterations; i++) {
      const mutated = mutate(der)
      const outcome = ours(mutated.toString('base64'), base.data) // anything but IdentityError escapes and fails the test
      if (!outcome.ok) {
        bump(outcome.code)
        continue
      }
      bump('verified')
      // Bytes outside what is signed may change (the certificate's own signature, unsigned fields),
      // but a mutant verifies only under the signer's key, and only the untouched certificate is trusted.
      // (The key is read as the verifier reads it, from the SubjectPublicKeyInfo: a mutant may break
      // bytes OpenSSL's full certificate parser checks, but then the CA check below refuses it.)
      const key = createPublicKey({ key: readCertificateFields(outcome.result.certificateDer).subjectPublicKeyInfo, format: 'der', type: 'spki' }).export({
        type: 'spki',
        format: 'der',
      })
      if (!key.equals(signerKey)) violations.push(`${base.name} #${i}: verified under another key`)
      if (!outcome.result.certificateDer.equals(base.certificateDer)) {
        try {
          verifier.verify(outcome.result.certificateDer)
          violations.push(`${base.name} #${i}: a tampered certificate is trusted`)
        } catch (error) {
          if (!(error instanceof IdentityError)) throw error
        }
      }
    }
    for (let i = 0; i < 40; i++) {
      const changed = mutate(base.data)
      if (changed.equals(base.data)) continue
      const outcome = ours(base.header, changed)
      if (outcome.ok || outcome.code !== 'signature_invalid') violations.push(`${base.name}: changed body #${i} gave ${outcome.ok ? 'verified' : outcome.code}`)
    }
  }
  for (let i = 0; i < 500; i++) {
    const noise = Buffer.alloc(int(64))
    for (let j = 0; j < noise.length; j++) noise[j] = int(256)
    if (ours(noise.toString('base64'), body).ok) violations.push(`random bytes #${i} verified`)
  }
  t.same(violations, [], 'no mutant verified under another key, no tampered certificate was trusted, no changed body verified')
  t.comment(`outcomes over ${bases.length * iterations} mutated signatures: ${JSON.stringify(counts)}`)
  t.ok((counts['signature_malformed'] ?? 0) > 100, 'many mutants are malformed')
  t.ok((counts['signature_invalid'] ?? 0) > 50, 'many mutants parse and fail verification')
  t.ok((counts['verified'] ?? 0) > 0, 'some mutants only touch unsigned bytes and still verify')
})

t.test('the DER reader', async (t) => {
  const oid = (hex: string) => decodeOid(decodeElement(Buffer.from(`06${(hex.length / 2).toString(16).padStart(2, '0')}${hex}`, 'hex')))
  t.equal(oid('2a864886f70d010702'), '1.2.840.113549.1.7.2')
  t.equal(oid('2b0e03021a'), '1.3.14.3.2.26')
  t.equal(oid('0603'), '0.6.3')
  t.equal(oid('8837'), '2.999')
  // 2.25.<128-bit UUID>: arcs beyond 2^53 stay exact.
  const uuid = 0xf81d4fae7dec11d0a76500a0c91e6bf6n
  const arc: number[] = []
  for (let v = uuid; v > 0n; v >>= 7n) arc.unshift(Number(v & 0x7fn) | (arc.length ? 0x80 : 0))
  t.equal(oid(`69${Buffer.from(arc).toString('hex')}`), `2.25.${uuid}`)
  t.throws(() => oid('2a8086'), DerError, 'arc ending mid-way')
  t.throws(() => oid('2a80'), DerError, 'leading 0x80')
  t.throws(() => decodeOid(decodeElement(Buffer.from('0600', 'hex'))), DerError, 'empty')

  const time = (tag: number, text: string) => decodeTime(decodeElement(Buffer.concat([Buffer.from([tag, text.length]), Buffer.from(text)])), 'time')
  t.equal(time(Tag.utcTime, '491231235959Z').toISOString(), '2049-12-31T23:59:59.000Z')
  t.equal(time(Tag.utcTime, '500101000000Z').toISOString(), '1950-01-01T00:00:00.000Z')
  t.equal(time(Tag.generalizedTime, '21260101120000Z').toISOString(), '2126-01-01T12:00:00.000Z')
  for (const [tag, text] of [
    [Tag.utcTime, '4912312359Z'],
    [Tag.utcTime, '491231235959+0100'],
    [Tag.generalizedTime, '20300230000000Z'],
    [Tag.generalizedTime, '20301231240000Z'],
    [Tag.generalizedTime, '20301231235959.5Z'],
    [Tag.octetString, '20301231235959Z'],
  ] as const) {
    t.throws(() => time(tag, text), DerError, `refuses ${text}`)
  }

  const indefinite = decodeElement(Buffer.from('3080' + '0201' + '05' + '3080' + '0500' + '0000' + '0000', 'hex'))
  t.equal(indefinite.indefinite, true)
  t.same(
    childrenOf(indefinite).map((child) => [child.tag, child.indefinite]),
    [
      [Tag.integer, false],
      [Tag.sequence, true],
    ],
  )
  t.throws(() => decodeElement(Buffer.from('0480', 'hex')), DerError, 'indefinite primitive')
  t.throws(() => decodeElement(Buffer.from('3080020105', 'hex')), DerError, 'no end-of-contents')
  t.throws(() => decodeElement(Buffer.from('30030000', 'hex')), DerError, 'length past the end')
  t.throws(() => childrenOf(decodeElement(Buffer.from('30020000', 'hex'))), DerError, 'end-of-contents inside a definite element')
  t.throws(() => decodeElement(Buffer.from('30850000000001', 'hex')), DerError, '5 length octets')

  // Random bytes, walked as deep as they go: DerError or a structure, never anything else.
  const next = random(0x5eed)
  const walk = (element: DerElement, depth: number): void => {
    if (element.constructed && depth < 40) for (const child of childrenOf(element)) walk(child, depth + 1)
  }
  let parsed = 0
  for (let i = 0; i < 20_000; i++) {
    const bytes = Buffer.alloc(1 + Math.floor(next() * 24))
    for (let j = 0; j < bytes.length; j++) bytes[j] = next() < 0.3 ? [0x30, 0x80, 0x00, 0xa0, 0x02, 0x06][Math.floor(next() * 6)]! : Math.floor(next() * 256)
    try {
      walk(decodeElement(bytes), 0)
      parsed++
    } catch (error) {
      if (!(error instanceof DerError)) throw error
    }
  }
  t.ok(parsed > 100, `some random inputs parse (${parsed}), the rest throw DerError`)
})
