// Mdm-Signature: base64 of a detached CMS SignedData (RFC 5652) over the raw HTTP body,
// with the device identity certificate embedded (apple-protocol.md §6). Every device
// request carries one, so this is the fast path: a DER walk that slices out what the
// signature check needs, then node:crypto hashes and verifies. No pkijs/asn1js here
// (§11: about 3 ms per request there, against tens of µs here).
//
// This proves only that the body was signed by the key of the embedded certificate.
// Whether that certificate is one of ours is device-identity.ts's question.
import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { ChildCursor, DerError, Tag, childrenOf, decodeElement, decodeOid, expectTag, octetString, readCertificateFields, readIssuerAndSerialNumber, type DerElement } from './der.js'

export type DigestAlgorithm = 'sha1' | 'sha256' | 'sha384' | 'sha512'

export interface VerifiedSignature {
  /** DER of the signer's certificate, as embedded in the signature. */
  certificateDer: Buffer
  /** Lowercase hex SHA-256 of `certificateDer`: the key of certificate binding. */
  certificateSha256: string
  digestAlgorithm: DigestAlgorithm
}

export type IdentityErrorCode =
  | 'signature_malformed'
  | 'signature_invalid'
  | 'signature_unsupported'
  | 'certificate_untrusted'
  | 'certificate_expired'
  | 'certificate_not_yet_valid'
  | 'certificate_malformed'

/**
 * A device's signature or certificate was refused. The message is for our logs; the MDM
 * surface answers 400 (never 401: that would unenroll the device, apple-protocol.md §10).
 */
export class IdentityError extends Error {
  override readonly name = 'IdentityError'
  readonly code: IdentityErrorCode

  constructor(code: IdentityErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** A Map that forgets its least recently used entry beyond `capacity` (0: stores nothing). */
export class LruMap<K, V> {
  readonly #entries = new Map<K, V>()
  readonly capacity: number

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`LRU capacity must be a non-negative integer, got ${capacity}`)
    this.capacity = capacity
  }

  get size(): number {
    return this.#entries.size
  }

  get(key: K): V | undefined {
    const value = this.#entries.get(key)
    if (value !== undefined) {
      this.#entries.delete(key)
      this.#entries.set(key, value)
    }
    return value
  }

  clear(): void {
    this.#entries.clear()
  }

  set(key: K, value: V): void {
    this.#entries.delete(key)
    if (this.capacity === 0) return
    this.#entries.set(key, value)
    if (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value as K)
  }
}

const Oid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentTypeAttribute: '1.2.840.113549.1.9.3',
  messageDigestAttribute: '1.2.840.113549.1.9.4',
}

const digestAlgorithms: Record<string, DigestAlgorithm> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}

/**
 * Key type of each signature algorithm, and the hash it names (none: the digestAlgorithm's).
 * Certificate signatures (device-identity.ts) use the same table.
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

/** What the signature check needs, sliced out of the SignedData. */
interface SignerParts {
  certificateDer: Buffer
  digestAlgorithm: DigestAlgorithm
  keyType: 'rsa' | 'ec'
  signatureAlgorithmName: string
  /** signedAttrs as encoded ([0] IMPLICIT), when present. */
  signedAttributes: Buffer | undefined
  messageDigest: Buffer | undefined
  signature: Buffer
}

const malformed = (message: string, cause?: unknown) => new IdentityError('signature_malformed', `Mdm-Signature: ${message}`, { cause })
const unsupported = (message: string) => new IdentityError('signature_unsupported', `Mdm-Signature: ${message}`)
const invalid = (message: string) => new IdentityError('signature_invalid', `Mdm-Signature: ${message}`)

/**
 * Standard base64 with padding and nothing else. Buffer.from skips junk, accepts the URL
 * alphabet and missing padding; the canonical re-encoding is equal only for strict input
 * (and also refuses non-zero padding bits: "QR==" decodes like "QQ==").
 */
function decodeBase64Strict(text: string): Buffer {
  // A missing header arrives as undefined from untyped callers: refuse it like an empty one.
  const trimmed = typeof text === 'string' ? text.trim() : ''
  if (trimmed.length === 0) throw malformed('header is empty')
  if (trimmed.length % 4 !== 0) throw malformed('header is not base64')
  const bytes = Buffer.from(trimmed, 'base64')
  if (bytes.toString('base64') !== trimmed) throw malformed('header is not base64')
  return bytes
}

/** RFC 5652 §5.1 SignedData inside §3 ContentInfo, reduced to the single signer's parts. */
function parseSignedData(der: Buffer): SignerParts {
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
  const encapsulated = new ChildCursor(signedData.take(Tag.sequence, 'encapContentInfo'), 'encapContentInfo')
  const eContentType = decodeOid(encapsulated.take(Tag.oid, 'eContentType'))
  if (eContentType !== Oid.data) throw unsupported(`encapsulated content type is ${eContentType}, not id-data`)
  // Detached (§5.2): eContent absent, the content is the HTTP body.
  if (encapsulated.optional(Tag.context(0))) throw unsupported('the signature is not detached (eContent is present)')
  encapsulated.end()
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
  const digestOid = decodeOid(new ChildCursor(signer.take(Tag.sequence, 'digestAlgorithm'), 'digestAlgorithm').take(Tag.oid, 'algorithm'))
  const signedAttrs = signer.optional(Tag.context(0))
  const signatureOid = decodeOid(new ChildCursor(signer.take(Tag.sequence, 'signatureAlgorithm'), 'signatureAlgorithm').take(Tag.oid, 'algorithm'))
  const signature = octetString(signer.take(Tag.octetString, 'signature'), 'signature')
  signer.optional(Tag.context(1)) // unsignedAttrs
  signer.end()

  const digestAlgorithm = digestAlgorithms[digestOid]
  if (!digestAlgorithm) throw unsupported(`digest algorithm ${digestOid} is not supported`)
  const signatureAlgorithm = signatureAlgorithms[signatureOid]
  if (!signatureAlgorithm) throw unsupported(`signature algorithm ${signatureOid} is not supported`)
  // OpenSSL and Go hash with digestAlgorithm, pkijs with the signature algorithm's hash: refuse the ambiguity.
  if (signatureAlgorithm.hash && signatureAlgorithm.hash !== digestAlgorithm) {
    throw unsupported(`signature algorithm ${signatureAlgorithm.name} disagrees with digest algorithm ${digestAlgorithm}`)
  }
  if (signature.length === 0) throw malformed('signature is empty')

  let messageDigest: Buffer | undefined
  if (signedAttrs) {
    // The signature is over the DER of the SET OF attributes (§5.4); re-tagging [0] as SET
    // only works on the bytes as sent if they carry a definite length.
    if (signedAttrs.indefinite) throw malformed('signedAttrs use indefinite length, but must be DER')
    messageDigest = readSignedAttributes(signedAttrs)
  }

  if (!certificateSet) throw unsupported('no certificates embedded; the device identity certificate must be included')
  const certificateDer = findSignerCertificate(childrenOf(certificateSet), sid)

  return {
    certificateDer,
    digestAlgorithm,
    keyType: signatureAlgorithm.key,
    signatureAlgorithmName: signatureAlgorithm.name,
    signedAttributes: signedAttrs?.raw,
    messageDigest,
    signature,
  }
}

/** The messageDigest value; checks contentType (§5.3: both MUST be present, at most once, §11.1/§11.2). */
function readSignedAttributes(signedAttrs: DerElement): Buffer {
  let messageDigest: Buffer | undefined
  let contentTypeSeen = false
  for (const attribute of childrenOf(signedAttrs)) {
    const parts = new ChildCursor(expectTag(attribute, Tag.sequence, 'Attribute'), 'Attribute')
    const type = decodeOid(parts.take(Tag.oid, 'attrType'))
    const values = childrenOf(parts.take(Tag.set, 'attrValues'))
    parts.end()
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
function findSignerCertificate(certificates: DerElement[], sid: DerElement): Buffer {
  let issuer: Buffer | undefined
  let serialNumber: Buffer | undefined
  if (sid.tag === Tag.sequence) {
    const parts = new ChildCursor(sid, 'issuerAndSerialNumber')
    issuer = parts.take(Tag.sequence, 'issuer').raw
    serialNumber = parts.take(Tag.integer, 'serialNumber').value
    parts.end()
  }
  const keyIdentifier = sid.tag === Tag.contextPrimitive(0) ? sid.value : undefined

  for (const certificate of certificates) {
    // CertificateChoices (§10.2.2): only plain X.509 certificates (SEQUENCE) can sign.
    if (certificate.tag !== Tag.sequence) continue
    const der = certificate.raw
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
      throw new IdentityError('certificate_malformed', `Mdm-Signature: embedded certificate: ${error.message}`, { cause: error })
    }
  }
  throw malformed("no embedded certificate matches the signer's identifier")
}

/** Public keys of recently seen signer certificates, so the steady state parses no certificate. */
const publicKeys = new LruMap<string, KeyObject>(4096)

function publicKeyOf(certificateDer: Buffer, sha256: string): KeyObject {
  const cached = publicKeys.get(sha256)
  if (cached) return cached
  try {
    // From the SubjectPublicKeyInfo alone: ~10x cheaper than parsing an X509Certificate.
    return createPublicKey({ key: readCertificateFields(certificateDer).subjectPublicKeyInfo, format: 'der', type: 'spki' })
  } catch (error) {
    throw new IdentityError('certificate_malformed', `Mdm-Signature: signer certificate does not parse: ${(error as Error).message}`, { cause: error })
  }
}

/**
 * Verifies an `Mdm-Signature` header against the exact raw body bytes (verify before any
 * plist re-serialisation). Throws IdentityError and nothing else.
 */
export function verifyMdmSignature(headerValue: string, body: Buffer): VerifiedSignature {
  let parts: SignerParts
  try {
    parts = parseSignedData(decodeBase64Strict(headerValue))
  } catch (error) {
    if (error instanceof IdentityError) throw error
    if (error instanceof DerError) throw malformed(error.message, error)
    throw malformed(`unexpected parse failure: ${String(error)}`, error)
  }

  const certificateSha256 = createHash('sha256').update(parts.certificateDer).digest('hex')
  const publicKey = publicKeyOf(parts.certificateDer, certificateSha256)
  const keyType = publicKey.asymmetricKeyType
  if (keyType !== 'rsa' && keyType !== 'ec') throw unsupported(`signer certificate has a ${keyType} key`)
  if (keyType !== parts.keyType) throw invalid(`signature algorithm ${parts.signatureAlgorithmName} does not fit the signer certificate's ${keyType} key`)

  let signedData: Buffer = body
  if (parts.signedAttributes && parts.messageDigest) {
    const digest = createHash(parts.digestAlgorithm).update(body).digest()
    if (digest.length !== parts.messageDigest.length || !timingSafeEqual(digest, parts.messageDigest)) {
      throw invalid(`messageDigest attribute does not match the ${parts.digestAlgorithm} digest of the body`)
    }
    // §5.4: signed is the DER of "SET OF Attribute" (0x31), not the [0] IMPLICIT (0xA0) as sent.
    signedData = Buffer.from(parts.signedAttributes)
    signedData[0] = Tag.set
  }

  let valid: boolean
  try {
    // ECDSA-Sig-Value is a DER SEQUENCE of r and s (RFC 5753 §7.2), not WebCrypto's r||s.
    valid = verify(parts.digestAlgorithm, signedData, keyType === 'ec' ? { key: publicKey, dsaEncoding: 'der' } : publicKey, parts.signature)
  } catch {
    valid = false
  }
  if (!valid) throw invalid(`${parts.signatureAlgorithmName}/${parts.digestAlgorithm} signature does not verify with the embedded certificate's key`)

  publicKeys.set(certificateSha256, publicKey)
  // A copy: the slice would keep the whole decoded header alive in whatever stores it.
  return { certificateDer: Buffer.from(parts.certificateDer), certificateSha256, digestAlgorithm: parts.digestAlgorithm }
}
