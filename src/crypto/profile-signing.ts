// Signed configuration profiles: a CMS SignedData (RFC 5652) with the profile attached, as
// devices receive it (`application/x-apple-aspen-config`, and InstallProfile's Payload). The
// device shows the signer's name and "Verified" when it trusts the chain; the chain is
// embedded so that it can build one. pkijs/asn1js build the structure; node:crypto signs.
import { constants, createHash, createPrivateKey, sign, X509Certificate, type KeyObject } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { certificatesFromPem } from './pem.js'

export interface ProfileSigner {
  /** DER of the signing certificate. */
  certificateDer: Buffer
  /** DER of intermediates (and optionally the root), embedded beside the signer. */
  chainDer: Buffer[]
  /** RSA or EC (P-256) key of the signing certificate. */
  privateKey: KeyObject
}

const Oid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  sha256: '2.16.840.1.101.3.4.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
}

/**
 * A signer from PEM text: the first certificate signs, the others are its chain. The key may
 * be PKCS#8, PKCS#1 or SEC 1 (unencrypted). Throws Error when the key is not the certificate's.
 */
export function loadProfileSigner(certificatePem: string, privateKeyPem: string): ProfileSigner {
  const [certificateDer, ...chainDer] = certificatesFromPem(certificatePem, 'profile signing certificate')
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(privateKeyPem)
  } catch (error) {
    throw new Error(`profile signing key: not an unencrypted PEM private key: ${(error as Error).message}`, { cause: error })
  }
  keyKind(privateKey)
  const certificate = new X509Certificate(certificateDer!)
  if (!certificate.checkPrivateKey(privateKey)) {
    const owner = chainDer.findIndex((der) => new X509Certificate(der).checkPrivateKey(privateKey))
    const hint = owner >= 0 ? `; it belongs to certificate #${owner + 2} of the PEM: put the signing certificate first` : ''
    throw new Error(`profile signing key does not match the signing certificate (${certificate.subject.replace(/\n/g, ', ')})${hint}`)
  }
  return { certificateDer: certificateDer!, chainDer, privateKey }
}

function keyKind(key: KeyObject): 'rsa' | 'ec' {
  const type = key.asymmetricKeyType
  if (type === 'rsa' || type === 'ec') return type
  throw new Error(`profile signing key: ${type ?? 'unknown'} keys are not supported, only RSA and EC`)
}

/**
 * DER ContentInfo holding SignedData with `content` attached (id-data), SHA-256, signed
 * attributes contentType + signingTime + messageDigest, the signer identified by issuer and
 * serial number, and the signer's certificate and chain embedded.
 */
export function signProfile(content: Buffer, signer: ProfileSigner, signingTime: Date = new Date()): Buffer {
  if (content.length === 0) throw new Error('signProfile: the profile is empty')
  const kind = keyKind(signer.privateKey)
  const certificate = pkijs.Certificate.fromBER(signer.certificateDer)

  // RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF, whose members
  // DER sorts by encoding (OpenSSL re-encodes them sorted when it verifies).
  const attributes = [
    new pkijs.Attribute({ type: Oid.contentType, values: [new asn1js.ObjectIdentifier({ value: Oid.data })] }),
    new pkijs.Attribute({ type: Oid.signingTime, values: [time(signingTime)] }),
    new pkijs.Attribute({ type: Oid.messageDigest, values: [new asn1js.OctetString({ valueHex: bytes(createHash('sha256').update(content).digest()) })] }),
  ]
    .map((attribute) => ({ attribute, der: Buffer.from(attribute.toSchema().toBER(false)) }))
    .sort((a, b) => Buffer.compare(a.der, b.der))
  const toSign = Buffer.from(new asn1js.Set({ value: attributes.map(({ attribute }) => attribute.toSchema()) }).toBER(false))
  const signature =
    kind === 'rsa'
      ? sign('sha256', toSign, { key: signer.privateKey, padding: constants.RSA_PKCS1_PADDING })
      : sign('sha256', toSign, { key: signer.privateKey, dsaEncoding: 'der' })

  const signerInfo = new pkijs.SignerInfo({
    version: 1, // issuerAndSerialNumber (§5.3)
    sid: new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber }),
    digestAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: Oid.sha256 }),
    signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: attributes.map(({ attribute }) => attribute) }),
    // RFC 3370 §3.2: rsaEncryption with NULL parameters; RFC 5758 §3.2: ECDSA without.
    signatureAlgorithm:
      kind === 'rsa'
        ? new pkijs.AlgorithmIdentifier({ algorithmId: Oid.rsaEncryption, algorithmParams: new asn1js.Null() })
        : new pkijs.AlgorithmIdentifier({ algorithmId: Oid.ecdsaWithSha256 }),
    signature: new asn1js.OctetString({ valueHex: bytes(signature) }),
  })

  // Set after construction: the constructor would split eContent into a constructed (BER) OCTET STRING.
  const encapContentInfo = new pkijs.EncapsulatedContentInfo({ eContentType: Oid.data })
  encapContentInfo.eContent = new asn1js.OctetString({ valueHex: bytes(content) })

  const certificates = [...new Map([signer.certificateDer, ...signer.chainDer].map((der) => [der.toString('hex'), der])).values()]
    .sort(Buffer.compare) // CertificateSet is a SET OF: DER order
    .map((der) => pkijs.Certificate.fromBER(der))
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [new pkijs.AlgorithmIdentifier({ algorithmId: Oid.sha256 })],
    encapContentInfo,
    certificates,
    signerInfos: [signerInfo],
  })
  const contentInfo = new pkijs.ContentInfo({ contentType: Oid.signedData, content: signedData.toSchema() })
  return Buffer.from(contentInfo.toSchema().toBER(false))
}

/** RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime outside. */
function time(date: Date): asn1js.UTCTime | asn1js.GeneralizedTime {
  const valueDate = new Date(Math.floor(date.getTime() / 1000) * 1000) // no fractional seconds
  const year = valueDate.getUTCFullYear()
  return year >= 1950 && year <= 2049 ? new asn1js.UTCTime({ valueDate }) : new asn1js.GeneralizedTime({ valueDate })
}

/** A copy as an ArrayBuffer, which asn1js takes (a Buffer may be a view into a shared pool). */
const bytes = (buffer: Buffer): ArrayBuffer => new Uint8Array(buffer).buffer
