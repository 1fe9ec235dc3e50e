// The shared SignedData reader and verifier, directly: its kinds and options. The callers'
// suites (mdm-signature, machine-info) cover the shapes and refusals through their errors.
import { generateKeyPairSync } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import t from 'tap'
import { createCertificate, generateKeyPair } from '../../src/crypto/certificates.js'
import { DerError, berOctetString, decodeElement } from '../../src/crypto/der.js'
import * as der from '../../src/crypto/der-writer.js'
import { SignedDataError, readSignedData, signerPublicKey, verifySignerSignature, type SignedDataErrorKind } from '../../src/crypto/signed-data.js'
import { signDetached } from '../helpers/cms-signer.js'
import { signMachineInfo, toKeyObject } from '../helpers/machine-info-signer.js'

const keys = await generateKeyPair('ec-p256')
const certificate = await createCertificate({
  subject: { commonName: 'signed-data test' },
  publicKey: keys.publicKey,
  selfSignKey: keys.privateKey,
  validDays: 2,
  usage: 'client',
})
const certificateDer = Buffer.from(certificate.toSchema().toBER(false))
const content = Buffer.from('<plist version="1.0"><dict/></plist>\n')
const detached = Buffer.from(await signDetached(content, { certificateDer, privateKey: keys.privateKey }, { encoding: 'apple-ber' }), 'base64')
const attached = signMachineInfo(content, { certificateDer, privateKey: await toKeyObject(keys.privateKey) }, { encoding: 'ber' })

/** The kind and message of the SignedDataError `run` throws; anything else fails the test. */
function refusal(run: () => unknown): { kind: SignedDataErrorKind; message: string; cause: unknown } | 'accepted' {
  try {
    run()
    return 'accepted'
  } catch (error) {
    if (!(error instanceof SignedDataError)) throw error
    return { kind: error.kind, message: error.message, cause: error.cause }
  }
}

t.test('detached: the signer parts, verified against the content given', async (t) => {
  const parts = readSignedData(detached, { content: 'detached' })
  t.equal(parts.content, undefined)
  t.ok(parts.signerCertificateDer.equals(certificateDer))
  t.same(
    parts.certificates.map((der) => der.toString('hex')),
    [certificateDer.toString('hex')],
  )
  t.equal(parts.digestAlgorithm, 'sha256')
  t.equal(parts.keyType, 'ec')
  t.equal(parts.signedAttributes?.der[0], 0xa0, 'signedAttrs as sent, [0] IMPLICIT')
  t.equal(parts.signedAttributes?.messageDigest.length, 32)
  t.equal(
    refusal(() => verifySignerSignature(parts, content)),
    'accepted',
  )
  t.equal(
    refusal(() => verifySignerSignature(parts, content, signerPublicKey(certificateDer))),
    'accepted',
    'with the key given',
  )
  t.match(
    refusal(() => verifySignerSignature(parts, Buffer.from('other'))),
    { kind: 'invalid', message: /messageDigest attribute does not match the sha256 digest of the content/ },
  )
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey
  t.match(
    refusal(() => verifySignerSignature(parts, content, stranger)),
    { kind: 'invalid', message: /does not verify with the signer certificate's key/ },
  )
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey
  t.match(
    refusal(() => verifySignerSignature(parts, content, rsa)),
    { kind: 'invalid', message: /does not fit the signer certificate's rsa key/ },
  )
  const ed25519 = generateKeyPairSync('ed25519').publicKey
  t.match(
    refusal(() => verifySignerSignature(parts, content, ed25519)),
    { kind: 'unsupported_algorithm', message: /ed25519 key/ },
  )
})

t.test('attached: the content, chunks joined', async (t) => {
  const parts = readSignedData(attached, { content: 'attached' })
  t.ok(parts.content.equals(content), 'the chunked BER OCTET STRING joined')
  t.equal(
    refusal(() => verifySignerSignature(parts, parts.content)),
    'accepted',
  )
  t.match(
    refusal(() => verifySignerSignature(parts, Buffer.concat([parts.content, Buffer.from(' ')]))),
    { kind: 'invalid' },
  )
})

t.test('the content mode is enforced both ways', async (t) => {
  t.match(
    refusal(() => readSignedData(attached, { content: 'detached' })),
    { kind: 'unsupported', message: /not detached/ },
  )
  t.match(
    refusal(() => readSignedData(detached, { content: 'attached' })),
    { kind: 'unsupported', message: /carries no content \(detached signature\)/ },
  )
})

t.test('bytes that do not decode: malformed, the DerError as cause', async (t) => {
  for (const bytes of [Buffer.alloc(0), Buffer.from([0x30, 0x03, 0x02]), detached.subarray(0, 100), Buffer.concat([attached, Buffer.from([0])])]) {
    for (const mode of ['attached', 'detached'] as const) {
      const outcome = refusal(() => readSignedData(bytes, { content: mode }))
      t.match(outcome, { kind: 'malformed' })
      t.ok(outcome !== 'accepted' && outcome.cause instanceof DerError, 'cause is the DerError')
    }
  }
  t.match(
    refusal(() => signerPublicKey(Buffer.from('not a certificate'))),
    { kind: 'certificate_malformed', message: /signer certificate does not parse/ },
  )
})

t.test('distinctAttributeTypes: a repeated attribute type is refused only when asked', async (t) => {
  const time = () => new pkijs.Attribute({ type: '1.2.840.113549.1.9.5', values: [new asn1js.UTCTime({ valueDate: new Date() })] })
  const header = await signDetached(
    content,
    { certificateDer, privateKey: keys.privateKey },
    {
      attributes: (digest) => [
        new pkijs.Attribute({ type: '1.2.840.113549.1.9.3', values: [new asn1js.ObjectIdentifier({ value: '1.2.840.113549.1.7.1' })] }),
        new pkijs.Attribute({ type: '1.2.840.113549.1.9.4', values: [new asn1js.OctetString({ valueHex: digest })] }),
        time(),
        time(),
      ],
    },
  )
  const twice = Buffer.from(header, 'base64')
  const parts = readSignedData(twice, { content: 'detached' })
  t.equal(
    refusal(() => verifySignerSignature(parts, content)),
    'accepted',
    'two signingTime attributes are allowed by default',
  )
  t.match(
    refusal(() => readSignedData(twice, { content: 'detached', distinctAttributeTypes: true })),
    { kind: 'malformed', message: 'more than one 1.2.840.113549.1.9.5 attribute' },
  )
})

t.test('berOctetString', async (t) => {
  const chunked = (...chunks: Buffer[]) => der.element(0x24, Buffer.concat(chunks))
  const read = (bytes: Buffer) => berOctetString(decodeElement(bytes), 'test')
  t.same(read(der.octetString(Buffer.from('abc'))), Buffer.from('abc'), 'primitive')
  t.same(
    read(chunked(der.octetString(Buffer.from('ab')), chunked(der.octetString(Buffer.from('c'))), der.octetString(Buffer.alloc(0)))),
    Buffer.from('abc'),
    'chunks, nested',
  )
  let deep = der.octetString(Buffer.from('x'))
  for (let i = 0; i < 4; i++) deep = chunked(deep)
  t.same(read(deep), Buffer.from('x'), 'four levels')
  t.throws(() => read(chunked(deep)), { name: 'DerError', message: /nested too deeply/ }, 'five levels')
  t.throws(() => read(der.sequence()), { name: 'DerError', message: /test has tag 0x30, expected OCTET STRING/ })
  t.throws(() => read(chunked(der.sequence())), { name: 'DerError', message: /expected OCTET STRING/ }, 'a chunk that is not an OCTET STRING')
})
