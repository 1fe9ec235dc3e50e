// CMS SignedData (RFC 5652 §5) with exactly one signer whose certificate is included:
// read and verified for Mdm-Signature (detached: the content is the HTTP body, every device
// request, so this is the hot path; mdm-signature.ts) and for ADE MachineInfo (attached;
// machine-info.ts). A DER walk (der.ts) slices out what the signature check needs, then
// node:crypto hashes and verifies. No pkijs/asn1js here (about 3 ms per call there).
// scep.ts reads its pkiMessage itself: other attributes, other failure answers.
//
// Errors are SignedDataError with a neutral `kind`; each caller maps kinds to its own error.
// This proves only that the content was signed by the key of the included signer
// certificate: whether to trust that certificate is the caller's question.
import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import {
  ChildCursor,
  DerError,
  Tag,
  berOctetString,
  childrenOf,
  decodeElement,
  decodeOid,
  expectTag,
  octetString,
  readCertificateFields,
  readIssuerAndSerialNumber,
  type DerElement,
} from './der.js'

export type DigestAlgorithm = 'sha1' | 'sha256' | 'sha384' | 'sha512'

/**
 * Key type of each signature algorithm, and the hash it names (none: the digestAlgorithm's).
 * Certificate signatures (device-identity.ts, scep.ts) use the same table.
 */
export const signatureAlgorithms: Readonly<Record<string, { name: string; key: 'rsa' | 'ec'; hash?: DigestAlgorithm }>> = {
  '1.2.840.113549.1.1.1': { name: 'rsaEncryption', key: 'rsa' },
  '1.2.840.113549.1.1.5': { name: 'sha1WithRSAEncryption', key: 'rsa', hash: 'sha1' },
  '1.2.840.113549.1.1.11': { name: 'sha256WithRSAEncryption', key: 'rsa', hash: 'sha256' },
  '1.2.840.113549.1.1.12': { name: 'sha384WithRSAEncryption', key: 'rsa', hash: 'sha384' },
  '1.2.840.113549.1.1.13': { name: 'sha512WithRSAEncryption', key: 'rsa', hash: 'sha512' },
  '1.2.840.10045.2.1': { name: 'id-ecPublicKey', key: 'ec' },
  '1.2.840.10045.4.1': { name: 'ecdsa-with-SHA1', key: 'ec', hash: 'sha1' },
  '1.2.840.10045.4.3.2': { name: 'ecdsa-with-SHA256', key: 'ec', hash: 'sha256' },
  '1.2.840.10045.4.3.3': { name: 'ecdsa-with-SHA384', key: 'ec', hash: 'sha384' },
  '1.2.840.10045.4.3.4': { name: 'ecdsa-with-SHA512', key: 'ec', hash: 'sha512' },
}

const digestAlgorithms: Readonly<Record<string, DigestAlgorithm>> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}

const Oid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentTypeAttribute: '1.2.840.113549.1.9.3',
  messageDigestAttribute: '1.2.840.113549.1.9.4',
}

export type SignedDataErrorKind =
  /** Not a SignedData as RFC 5652 defines it; `cause` is the DerError when the bytes do not even decode. */
  | 'malformed'
  /** A shape not handled: another content type, eContent present/absent against `content`, several signers, no certificates. */
  | 'unsupported'
  /** A digest or signature algorithm or signer key type not supported, or algorithms that contradict each other. */
  | 'unsupported_algorithm'
  /** Reads, but does not verify: messageDigest, contentType attribute, signature, signature algorithm against the key. */
  | 'invalid'
  /** An included certificate (the signer's, or one looked at while finding it) does not parse. */
  | 'certificate_malformed'

/** The SignedData was refused. The message names the problem, without a prefix; callers add their own. */
export class SignedDataError extends Error {
  override readonly name = 'SignedDataError'
  readonly kind: SignedDataErrorKind

  constructor(kind: SignedDataErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.kind = kind
  }
}

export interface ReadSignedDataOptions {
  /** 'attached': eContent must be present and is returned; 'detached' (§5.2): eContent must be absent. */
  content: 'attached' | 'detached'
  /**
   * Refuse any signed attribute type that appears twice. Default: only contentType and
   * messageDigest must appear at most once (RFC 5652 §11.1, §11.2), others may repeat.
   */
  distinctAttributeTypes?: boolean
}

/** What the signature check needs, sliced out of the input (no copies, except chunked content). */
export interface SignedDataParts {
  /** The attached content (eContent's octets, BER chunks joined); undefined when detached. */
  content: Buffer | undefined
  /** DER of every included X.509 certificate, in order (other CertificateChoices skipped), the signer's among them. */
  certificates: Buffer[]
  /** DER of the signer's certificate, found by its SignerIdentifier. */
  signerCertificateDer: Buffer
  digestAlgorithm: DigestAlgorithm
  /** The key type the signature algorithm needs. */
  keyType: 'rsa' | 'ec'
  signatureAlgorithmName: string
  /** signedAttrs as sent ([0] IMPLICIT, DER) and their messageDigest; undefined: the signature is over the content. */
  signedAttributes: { der: Buffer; messageDigest: Buffer } | undefined
  signature: Buffer
}

const malformed = (message: string) => new SignedDataError('malformed', message)
const unsupported = (message: string) => new SignedDataError('unsupported', message)
const unsupportedAlgorithm = (message: string) => new SignedDataError('unsupported_algorithm', message)
const invalid = (message: string) => new SignedDataError('invalid', message)

const algorithmOid = (element: DerElement, what: string) => decodeOid(new ChildCursor(element, what).take(Tag.oid, 'algorithm'))

/**
 * RFC 5652 §3 ContentInfo around §5.1 SignedData, reduced to the single signer's parts.
 * Throws SignedDataError for any input (DerError arrives as its `cause`).
 */
export function readSignedData(der: Buffer, options: ReadSignedDataOptions & { content: 'attached' }): SignedDataParts & { content: Buffer }
export function readSignedData(der: Buffer, options: ReadSignedDataOptions): SignedDataParts
export function readSignedData(der: Buffer, options: ReadSignedDataOptions): SignedDataParts {
  try {
    return parseSignedData(der, options)
  } catch (error) {
    if (error instanceof DerError) throw new SignedDataError('malformed', error.message, { cause: error })
    throw error
  }
}

function parseSignedData(der: Buffer, options: ReadSignedDataOptions): SignedDataParts {
  const contentInfo = new ChildCursor(expectTag(decodeElement(der), Tag.sequence, 'ContentInfo'), 'ContentInfo')
  const contentType = decodeOid(contentInfo.take(Tag.oid, 'contentType'))
  if (contentType !== Oid.signedData) throw unsupported(`ContentInfo holds ${contentType}, not signedData`)
  const explicit = new ChildCursor(contentInfo.take(Tag.context(0), 'content'), 'content [0]')
  const signedDataElement = explicit.take(Tag.sequence, 'SignedData')
  explicit.end()
  contentInfo.end()

  const signedData = new ChildCursor(signedDataElement, 'SignedData')
  signedData.take(Tag.integer, 'version')
  signedData.take(Tag.set, 'digestAlgorithms')
  const content = readEncapsulatedContent(signedData.take(Tag.sequence, 'encapContentInfo'), options.content)
  const certificateSet = signedData.optional(Tag.context(0)) // certificates [0] IMPLICIT CertificateSet
  signedData.optional(Tag.context(1)) // crls [1] IMPLICIT
  const signerInfos = childrenOf(signedData.take(Tag.set, 'signerInfos'))
  signedData.end()
  if (signerInfos.length === 0) throw malformed('SignedData has no signerInfos')
  if (signerInfos.length > 1) throw unsupported(`SignedData has ${signerInfos.length} signers, expected exactly one`)

  // §5.3 SignerInfo
  const signer = new ChildCursor(expectTag(signerInfos[0]!, Tag.sequence, 'SignerInfo'), 'SignerInfo')
  signer.take(Tag.integer, 'version')
  const sid = signer.optional(Tag.sequence, Tag.contextPrimitive(0))
  if (!sid) throw malformed('SignerInfo: sid is neither issuerAndSerialNumber nor subjectKeyIdentifier')
  const digestOid = algorithmOid(signer.take(Tag.sequence, 'digestAlgorithm'), 'digestAlgorithm')
  const signedAttrs = signer.optional(Tag.context(0))
  const signatureOid = algorithmOid(signer.take(Tag.sequence, 'signatureAlgorithm'), 'signatureAlgorithm')
  const signature = octetString(signer.take(Tag.octetString, 'signature'), 'signature')
  signer.optional(Tag.context(1)) // unsignedAttrs
  signer.end()

  const digestAlgorithm = digestAlgorithms[digestOid]
  if (!digestAlgorithm) throw unsupportedAlgorithm(`digest algorithm ${digestOid} is not supported`)
  const signatureAlgorithm = signatureAlgorithms[signatureOid]
  if (!signatureAlgorithm) throw unsupportedAlgorithm(`signature algorithm ${signatureOid} is not supported`)
  // OpenSSL and Go hash with digestAlgorithm, pkijs with the signature algorithm's hash: refuse the ambiguity.
  if (signatureAlgorithm.hash && signatureAlgorithm.hash !== digestAlgorithm) {
    throw unsupportedAlgorithm(`signature algorithm ${signatureAlgorithm.name} disagrees with digest algorithm ${digestAlgorithm}`)
  }
  if (signature.length === 0) throw malformed('SignerInfo: signature is empty')

  let signedAttributes: SignedDataParts['signedAttributes']
  if (signedAttrs) {
    // The signature is over the DER of the SET OF attributes (§5.4): re-tagging [0] as a
    // SET only reproduces it from the bytes as sent when they carry a definite length.
    if (signedAttrs.indefinite) throw malformed('signedAttrs use indefinite length, but must be DER')
    signedAttributes = { der: signedAttrs.raw, messageDigest: readSignedAttributes(signedAttrs, options.distinctAttributeTypes ?? false) }
  }

  if (!certificateSet) throw unsupported('no certificates embedded: the signer certificate must be included')
  const certificates: Buffer[] = []
  for (const certificate of childrenOf(certificateSet)) {
    // CertificateChoices (§10.2.2): only plain X.509 certificates (SEQUENCE) can sign.
    if (certificate.tag === Tag.sequence) certificates.push(certificate.raw)
  }

  return {
    content,
    certificates,
    signerCertificateDer: findSignerCertificate(certificates, sid),
    digestAlgorithm,
    keyType: signatureAlgorithm.key,
    signatureAlgorithmName: signatureAlgorithm.name,
    signedAttributes,
    signature,
  }
}

/** §5.2 EncapsulatedContentInfo: id-data, with eContent as `mode` requires. */
function readEncapsulatedContent(element: DerElement, mode: ReadSignedDataOptions['content']): Buffer | undefined {
  const encapsulated = new ChildCursor(element, 'encapContentInfo')
  const eContentType = decodeOid(encapsulated.take(Tag.oid, 'eContentType'))
  if (eContentType !== Oid.data) throw unsupported(`encapsulated content type is ${eContentType}, not id-data`)
  const wrapper = encapsulated.optional(Tag.context(0))
  if (mode === 'detached') {
    if (wrapper) throw unsupported('the signature is not detached (eContent is present)')
    encapsulated.end()
    return undefined
  }
  if (!wrapper) throw unsupported('SignedData carries no content (detached signature), but the content must be attached')
  encapsulated.end()
  const eContent = new ChildCursor(wrapper, 'eContent [0]')
  const octets = eContent.optional(Tag.octetString, Tag.octetString | 0x20)
  if (!octets) throw malformed('eContent [0] does not hold an OCTET STRING')
  eContent.end()
  return berOctetString(octets, 'eContent')
}

const attributeNames: Readonly<Record<string, string>> = { [Oid.contentTypeAttribute]: 'contentType', [Oid.messageDigestAttribute]: 'messageDigest' }

/**
 * The messageDigest value (§5.3: MUST be present, once, one value). contentType, when present
 * (once, one value), must be id-data: the only eContentType read. Like OpenSSL and Go, its
 * absence is accepted.
 */
function readSignedAttributes(signedAttrs: DerElement, distinctTypes: boolean): Buffer {
  let messageDigest: Buffer | undefined
  let contentTypeSeen = false
  const seen = distinctTypes ? new Set<string>() : undefined
  for (const attribute of childrenOf(signedAttrs)) {
    const parts = new ChildCursor(expectTag(attribute, Tag.sequence, 'Attribute'), 'Attribute')
    const type = decodeOid(parts.take(Tag.oid, 'attrType'))
    const values = childrenOf(parts.take(Tag.set, 'attrValues'))
    parts.end()
    if (seen) {
      if (seen.has(type)) throw malformed(`more than one ${attributeNames[type] ?? type} attribute`)
      seen.add(type)
    }
    if (type === Oid.messageDigestAttribute) {
      if (messageDigest) throw malformed('more than one messageDigest attribute')
      if (values.length !== 1) throw malformed('messageDigest attribute must have exactly one value')
      messageDigest = octetString(values[0]!, 'messageDigest')
    } else if (type === Oid.contentTypeAttribute) {
      if (contentTypeSeen) throw malformed('more than one contentType attribute')
      contentTypeSeen = true
      if (values.length !== 1) throw malformed('contentType attribute must have exactly one value')
      const value = decodeOid(values[0]!)
      if (value !== Oid.data) throw invalid(`contentType attribute is ${value}, not id-data`)
    }
  }
  if (!messageDigest) throw malformed('signedAttrs lack the messageDigest attribute')
  return messageDigest
}

/** §5.3 SignerIdentifier: issuerAndSerialNumber (§10.2.4) or subjectKeyIdentifier [0]. */
function findSignerCertificate(certificates: readonly Buffer[], sid: DerElement): Buffer {
  let issuer: Buffer | undefined
  let serialNumber: Buffer | undefined
  if (sid.tag === Tag.sequence) {
    const parts = new ChildCursor(sid, 'issuerAndSerialNumber')
    issuer = parts.take(Tag.sequence, 'issuer').raw
    serialNumber = parts.take(Tag.integer, 'serialNumber').value
    parts.end()
  }
  const keyIdentifier = sid.tag === Tag.contextPrimitive(0) ? sid.value : undefined
  for (const [index, der] of certificates.entries()) {
    try {
      if (issuer && serialNumber) {
        const candidate = readIssuerAndSerialNumber(der)
        if (candidate.issuer.equals(issuer) && candidate.serialNumber.equals(serialNumber)) return der
      } else if (keyIdentifier) {
        const fields = readCertificateFields(der)
        // RFC 5280 §4.2.1.2 method (1) when the certificate carries no SKI extension.
        const candidate = fields.subjectKeyIdentifier ?? createHash('sha1').update(fields.subjectPublicKey).digest()
        if (candidate.equals(keyIdentifier)) return der
      }
    } catch (error) {
      if (!(error instanceof DerError)) throw error
      throw new SignedDataError('certificate_malformed', `included certificate ${index + 1}: ${error.message}`, { cause: error })
    }
  }
  const by = issuer ? 'issuerAndSerialNumber' : 'subjectKeyIdentifier'
  throw malformed(`no embedded certificate matches the signer's ${by} (none of the ${certificates.length} included certificates)`)
}

/** The key of a certificate, from its SubjectPublicKeyInfo alone (~10x cheaper than an X509Certificate). */
export function signerPublicKey(certificateDer: Buffer): KeyObject {
  try {
    return createPublicKey({ key: readCertificateFields(certificateDer).subjectPublicKeyInfo, format: 'der', type: 'spki' })
  } catch (error) {
    throw new SignedDataError('certificate_malformed', `signer certificate does not parse: ${(error as Error).message}`, { cause: error })
  }
}

/**
 * Checks the signer's signature over `content` (the attached content, or the detached one)
 * with `publicKey`, by default the signer certificate's. With signed attributes, their
 * messageDigest must be the digest of `content` and the signature is over them (§5.4).
 * Throws SignedDataError.
 */
export function verifySignerSignature(parts: SignedDataParts, content: Buffer, publicKey: KeyObject = signerPublicKey(parts.signerCertificateDer)): void {
  const keyType = publicKey.asymmetricKeyType
  if (keyType !== 'rsa' && keyType !== 'ec') throw unsupportedAlgorithm(`signer certificate has a ${keyType} key (RSA and EC are supported)`)
  if (keyType !== parts.keyType) throw invalid(`signature algorithm ${parts.signatureAlgorithmName} does not fit the signer certificate's ${keyType} key`)

  let signed = content
  if (parts.signedAttributes) {
    const expected = parts.signedAttributes.messageDigest
    const digest = createHash(parts.digestAlgorithm).update(content).digest()
    if (digest.length !== expected.length || !timingSafeEqual(digest, expected)) {
      throw invalid(`messageDigest attribute does not match the ${parts.digestAlgorithm} digest of the content`)
    }
    // §5.4: what is signed is the DER of "SET OF Attribute" (0x31), not the [0] IMPLICIT (0xA0) as sent.
    signed = Buffer.from(parts.signedAttributes.der)
    signed[0] = Tag.set
  }

  let valid: boolean
  try {
    // ECDSA-Sig-Value is a DER SEQUENCE of r and s (RFC 5753 §7.2), not WebCrypto's r||s.
    valid = verify(parts.digestAlgorithm, signed, keyType === 'ec' ? { key: publicKey, dsaEncoding: 'der' } : publicKey, parts.signature)
  } catch {
    valid = false
  }
  if (!valid) throw invalid(`${parts.signatureAlgorithmName}/${parts.digestAlgorithm} signature does not verify with the signer certificate's key`)
}
