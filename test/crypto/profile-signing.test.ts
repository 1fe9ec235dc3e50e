import { spawnSync } from 'node:child_process'
import { createHash, webcrypto, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import t from 'tap'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem, type KeyAlgorithm } from '../../src/crypto/certificates.js'
import { childrenOf, decodeElement } from '../../src/crypto/der.js'
import { loadProfileSigner, signProfile, type ProfileSigner } from '../../src/crypto/profile-signing.js'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })
const openssl = '/usr/bin/openssl'

const caKeys = await generateKeyPair('ec-p256')
const ca = await createCertificate({
  subject: { commonName: 'Profile Test CA', organization: 'Orchard' },
  publicKey: caKeys.publicKey,
  selfSignKey: caKeys.privateKey,
  validDays: 30,
  usage: 'ca',
})
const caDer = Buffer.from(ca.toSchema().toBER(false))

async function makeSigner(algorithm: KeyAlgorithm): Promise<{ certificatePem: string; privateKeyPem: string }> {
  const keys = await generateKeyPair(algorithm)
  const certificate = await createCertificate({
    subject: { commonName: `Orchard profile signer (${algorithm})` },
    publicKey: keys.publicKey,
    issuer: { certificate: ca, privateKey: caKeys.privateKey },
    validDays: 30,
    usage: 'client',
  })
  return { certificatePem: certificateToPem(certificate) + certificateToPem(ca), privateKeyPem: await privateKeyToPem(keys.privateKey) }
}

const pems = { 'rsa-2048': await makeSigner('rsa-2048'), 'ec-p256': await makeSigner('ec-p256') }
const signers: Record<KeyAlgorithm, ProfileSigner> = {
  'rsa-2048': loadProfileSigner(pems['rsa-2048'].certificatePem, pems['rsa-2048'].privateKeyPem),
  'ec-p256': loadProfileSigner(pems['ec-p256'].certificatePem, pems['ec-p256'].privateKeyPem),
}

const profile = Buffer.from(
  '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    '<plist version="1.0">\n<dict>\n\t<key>PayloadType</key>\n\t<string>Configuration</string>\n\t<key>Name</key>\n\t<string>caf\u00e9 \u2603</string>\n</dict>\n</plist>\n',
)

const dir = mkdtempSync(join(tmpdir(), 'orchard-profile-signing-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** `openssl cms -verify` without chain checks: the signature and the attached content. */
function opensslVerify(signed: Buffer, name: string): { ok: boolean; content: Buffer; stderr: string } {
  const input = join(dir, `${name}.der`)
  const output = join(dir, `${name}.out`)
  writeFileSync(input, signed)
  rmSync(output, { force: true })
  const run = spawnSync(openssl, ['cms', '-verify', '-inform', 'DER', '-noverify', '-in', input, '-out', output], { encoding: 'utf8' })
  let content = Buffer.alloc(0)
  try {
    content = readFileSync(output)
  } catch {
    // no output on failure
  }
  return { ok: run.status === 0, content, stderr: run.stderr }
}

async function pkijsVerify(signed: Buffer): Promise<boolean> {
  const contentInfo = pkijs.ContentInfo.fromBER(signed)
  const signedData = new pkijs.SignedData({ schema: contentInfo.content })
  return signedData.verify({ signer: 0, checkChain: false }, engine)
}

for (const algorithm of ['rsa-2048', 'ec-p256'] as const) {
  t.test(`${algorithm}: verifies with openssl and pkijs, content attached byte-exact`, async (t) => {
    const signer = signers[algorithm]
    const signed = signProfile(profile, signer)

    const verified = opensslVerify(signed, algorithm)
    t.ok(verified.ok, `openssl cms -verify succeeds: ${verified.stderr}`)
    t.ok(verified.content.equals(profile), 'the attached content round-trips byte-exact')
    t.equal(await pkijsVerify(signed), true, 'pkijs SignedData.verify')

    const contentInfo = pkijs.ContentInfo.fromBER(signed)
    t.equal(contentInfo.contentType, '1.2.840.113549.1.7.2')
    const signedData = new pkijs.SignedData({ schema: contentInfo.content })
    t.equal(signedData.version, 1)
    t.same(
      signedData.digestAlgorithms.map((algorithm) => algorithm.algorithmId),
      ['2.16.840.1.101.3.4.2.1'],
    )
    t.equal(signedData.encapContentInfo.eContentType, '1.2.840.113549.1.7.1')
    t.equal(signedData.encapContentInfo.eContent?.idBlock.isConstructed, false, 'eContent is a primitive (DER) OCTET STRING')
    const embedded = (signedData.certificates ?? []).map((certificate) => Buffer.from((certificate as pkijs.Certificate).toSchema().toBER(false)))
    t.equal(embedded.length, 2, 'signer and chain embedded')
    t.ok(
      embedded.some((der) => der.equals(signer.certificateDer)),
      'the signer certificate, byte-exact',
    )
    t.ok(
      embedded.some((der) => der.equals(caDer)),
      'the CA certificate, byte-exact',
    )

    const signerInfo = signedData.signerInfos[0]!
    t.equal(signedData.signerInfos.length, 1)
    t.equal(signerInfo.version, 1)
    t.ok(signerInfo.sid instanceof pkijs.IssuerAndSerialNumber, 'sid is issuerAndSerialNumber')
    const x509 = new X509Certificate(signer.certificateDer)
    t.equal(
      Buffer.from((signerInfo.sid as pkijs.IssuerAndSerialNumber).serialNumber.valueBlock.valueHexView)
        .toString('hex')
        .toUpperCase(),
      x509.serialNumber,
    )
    t.equal(signerInfo.digestAlgorithm.algorithmId, '2.16.840.1.101.3.4.2.1')
    if (algorithm === 'rsa-2048') {
      t.equal(signerInfo.signatureAlgorithm.algorithmId, '1.2.840.113549.1.1.1', 'rsaEncryption')
      t.ok(signerInfo.signatureAlgorithm.algorithmParams instanceof asn1js.Null, 'with NULL parameters')
    } else {
      t.equal(signerInfo.signatureAlgorithm.algorithmId, '1.2.840.10045.4.3.2', 'ecdsa-with-SHA256')
      t.equal(signerInfo.signatureAlgorithm.algorithmParams, undefined, 'without parameters')
    }
    const attributes = signerInfo.signedAttrs!.attributes
    t.same(
      attributes.map((attribute) => attribute.type),
      ['1.2.840.113549.1.9.3', '1.2.840.113549.1.9.5', '1.2.840.113549.1.9.4'],
    )
    const digest = attributes.find((attribute) => attribute.type === '1.2.840.113549.1.9.4')!.values[0] as asn1js.OctetString
    t.same(Buffer.from(digest.valueBlock.valueHexView), createHash('sha256').update(profile).digest())
    const signingTime = (attributes.find((attribute) => attribute.type === '1.2.840.113549.1.9.5')!.values[0] as asn1js.UTCTime).toDate()
    t.ok(Math.abs(signingTime.getTime() - Date.now()) < 60_000, 'signingTime is now')

    // DER: definite lengths throughout, and OpenSSL's own DER re-encoding gives the same bytes.
    const indefinite = (element: ReturnType<typeof decodeElement>): boolean =>
      element.indefinite || (element.constructed && childrenOf(element).some(indefinite))
    t.notOk(indefinite(decodeElement(signed)), 'no indefinite lengths')
    const reencoded = spawnSync(openssl, ['cms', '-cmsout', '-inform', 'DER', '-outform', 'DER', '-in', join(dir, `${algorithm}.der`)])
    t.equal(reencoded.status, 0)
    t.ok(reencoded.stdout.equals(signed), 'openssl re-encodes it to the same bytes')
  })

  t.test(`${algorithm}: a tampered signature or content fails`, async (t) => {
    const signed = signProfile(profile, signers[algorithm])
    // The signature OCTET STRING is the last element of the single SignerInfo, at the end of the
    // encoding: flip a byte in its middle.
    const badSignature = Buffer.from(signed)
    const signatureLength = algorithm === 'rsa-2048' ? 256 : 64
    badSignature[badSignature.length - Math.floor(signatureLength / 2)]! ^= 0x01
    t.notOk(opensslVerify(badSignature, `${algorithm}-bad-signature`).ok, 'openssl refuses a tampered signature')
    t.equal(await pkijsVerify(badSignature).catch(() => false), false, 'pkijs refuses a tampered signature')

    const offset = signed.indexOf(Buffer.from('Configuration'))
    t.ok(offset > 0)
    const badContent = Buffer.from(signed)
    badContent[offset] = 'X'.charCodeAt(0)
    t.notOk(opensslVerify(badContent, `${algorithm}-bad-content`).ok, 'openssl refuses tampered content')
    t.equal(await pkijsVerify(badContent).catch(() => false), false, 'pkijs refuses tampered content')
  })
}

t.test('large content stays one primitive OCTET STRING', async (t) => {
  const big = Buffer.alloc(200_000, 'a')
  const signed = signProfile(big, signers['ec-p256'])
  const verified = opensslVerify(signed, 'big')
  t.ok(verified.ok, verified.stderr)
  t.ok(verified.content.equals(big))
  t.equal(new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(signed).content }).encapContentInfo.eContent?.idBlock.isConstructed, false)
})

t.test('signingTime can be given; dates from 2050 use GeneralizedTime', async (t) => {
  const signed = signProfile(profile, signers['rsa-2048'], new Date('2051-02-03T04:05:06.789Z'))
  t.ok(opensslVerify(signed, 'future').ok)
  const signedData = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(signed).content })
  const value = signedData.signerInfos[0]!.signedAttrs!.attributes.find((attribute) => attribute.type === '1.2.840.113549.1.9.5')!.values[0]
  t.ok(value instanceof asn1js.GeneralizedTime)
  t.equal((value as asn1js.GeneralizedTime).toDate().toISOString(), '2051-02-03T04:05:06.000Z')
  t.throws(() => signProfile(Buffer.alloc(0), signers['rsa-2048']), /empty/)
})

t.test('loadProfileSigner', async (t) => {
  const signer = signers['rsa-2048']
  t.equal(signer.privateKey.asymmetricKeyType, 'rsa')
  t.same(signer.chainDer, [caDer], 'certificates after the first are the chain')
  t.same(signers['ec-p256'].privateKey.asymmetricKeyType, 'ec')

  t.throws(
    () => loadProfileSigner(pems['rsa-2048'].certificatePem, pems['ec-p256'].privateKeyPem),
    /does not match the signing certificate/,
    'an EC key for an RSA certificate',
  )
  const other = await makeSigner('ec-p256')
  t.throws(
    () => loadProfileSigner(pems['ec-p256'].certificatePem, other.privateKeyPem),
    /does not match the signing certificate/,
    'another key of the same type',
  )
  const caFirst = certificateToPem(ca) + pems['ec-p256'].certificatePem.split(/(?=-----BEGIN CERTIFICATE-----)/)[0]
  t.throws(() => loadProfileSigner(caFirst, pems['ec-p256'].privateKeyPem), /belongs to certificate #2 of the PEM: put the signing certificate first/)
  t.throws(() => loadProfileSigner(pems['ec-p256'].certificatePem, 'not a key'), /profile signing key: not an unencrypted PEM private key/)
  t.throws(() => loadProfileSigner('no certificate', pems['ec-p256'].privateKeyPem), /no PEM certificate found/)
})
