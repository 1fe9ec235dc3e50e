// SCEP messages (RFC 8894) on the server side: read a PKIOperation (CMS SignedData around
// an EnvelopedData around a PKCS#10 request), and build the CertRep answer and the
// GetCACert chain. Parsing uses the bounds-checked DER reader, cryptography node:crypto.
//
// Traps, each met by clients in the field:
// - Old clients encrypt with single DES. OpenSSL 3's default provider has no des-cbc;
//   des-ede3-cbc with the key repeated three times (K|K|K) is exactly DES-CBC.
// - Node 20 refuses privateDecrypt with PKCS#1 v1.5 padding (CVE-2023-46809, the Marvin
//   attack). The content-encryption key is recovered with RSA_NO_PADDING and unpadded
//   here; a bad padding yields a random key (implicit rejection), so every failure looks
//   the same to the client: the content then fails to decrypt.
// - Clients sign with rsaEncryption as the "signature algorithm" and name the hash only
//   in digestAlgorithm; both SHA-1 and SHA-256 are in use.
// - The encrypted content and eContent may arrive as constructed (chunked) OCTET STRINGs.
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from 'node:crypto'
import { ChildCursor, childrenOf, decodeElement, decodeOid, DerError, readCertificateFields, readIssuerAndSerialNumber, Tag, type DerElement } from './der.js'
import * as der from './der-writer.js'
import { signatureAlgorithms, type DigestAlgorithm } from './mdm-signature.js'

export const ScepOid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  challengePassword: '1.2.840.113549.1.9.7',
  rsaEncryption: '1.2.840.113549.1.1.1',
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionId: '2.16.840.1.113733.1.9.7',
} as const

/** RFC 8894 §3.2.1.2 messageType values. */
export const ScepMessageType = { CertRep: 3, RenewalReq: 17, PKCSReq: 19, CertPoll: 20, GetCert: 21, GetCRL: 22 } as const

/** RFC 8894 §3.2.1.4 failInfo values. */
export const failInfoCodes = { badAlg: 0, badMessageCheck: 1, badRequest: 2, badTime: 3, badCertId: 4 } as const
export type FailInfo = keyof typeof failInfoCodes

/** The request is readable but refused: answered with a CertRep FAILURE carrying failInfo. */
export class ScepFailure extends Error {
  override readonly name = 'ScepFailure'
  constructor(
    readonly failInfo: FailInfo,
    message: string,
  ) {
    super(message)
  }
}

/** Not even a CertRep can be built (no transactionID, no nonce, no signer): HTTP 400. */
export class ScepMalformed extends Error {
  override readonly name = 'ScepMalformed'
}

const digestOids: Record<string, DigestAlgorithm> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}
const digestOidOf = Object.fromEntries(Object.entries(digestOids).map(([oid, name]) => [name, oid])) as Record<DigestAlgorithm, string>

export type ContentEncryption = 'des' | 'des3' | 'aes128' | 'aes192' | 'aes256'

const contentEncryptions: Record<ContentEncryption, { oid: string; keyLength: number; ivLength: number; cipher: string }> = {
  des: { oid: '1.3.14.3.2.7', keyLength: 8, ivLength: 8, cipher: 'des-ede3-cbc' },
  des3: { oid: '1.2.840.113549.3.7', keyLength: 24, ivLength: 8, cipher: 'des-ede3-cbc' },
  aes128: { oid: '2.16.840.1.101.3.4.1.2', keyLength: 16, ivLength: 16, cipher: 'aes-128-cbc' },
  aes192: { oid: '2.16.840.1.101.3.4.1.22', keyLength: 24, ivLength: 16, cipher: 'aes-192-cbc' },
  aes256: { oid: '2.16.840.1.101.3.4.1.42', keyLength: 32, ivLength: 16, cipher: 'aes-256-cbc' },
}
const encryptionByOid = new Map(Object.entries(contentEncryptions).map(([name, spec]) => [spec.oid, name as ContentEncryption]))

/** DES keys run through 3DES as K|K|K (EDE with equal keys is single DES). */
function cipherKey(encryption: ContentEncryption, key: Buffer): Buffer {
  return encryption === 'des' ? Buffer.concat([key, key, key]) : key
}

// ---------------------------------------------------------------- reading a PKIOperation

export interface PkiMessage {
  messageType: number
  /** The transactionID attribute value, decoded; `transactionIdValue` is its encoding, echoed as sent. */
  transactionId: string
  transactionIdValue: Buffer
  senderNonce: Buffer
  digestAlgorithm: DigestAlgorithm
  signerCertificateDer: Buffer
  /** The pkcsPKIEnvelope: a DER ContentInfo holding EnvelopedData. */
  envelope: Buffer
  /** Set when the CMS signature does not verify; the message is still answerable (badMessageCheck). */
  signatureProblem?: string
}

/** The content octets of an OCTET STRING, primitive or constructed (BER chunks). */
function octets(element: DerElement, what: string, depth = 0): Buffer {
  if (element.tag === Tag.octetString || element.tag === Tag.contextPrimitive(0)) return element.value
  if ((element.tag === 0x24 || element.tag === Tag.context(0)) && depth < 8) {
    return Buffer.concat(childrenOf(element).map((chunk) => octets(chunk, what, depth + 1)))
  }
  throw new DerError(`${what} is not an OCTET STRING (tag 0x${element.tag.toString(16)})`)
}

/** A DirectoryString-like value (PrintableString, UTF8String, IA5String, T61String, BMPString). */
function stringValue(element: DerElement, what: string): string {
  switch (element.tag) {
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // T61String (latin1 in practice)
      return element.value.toString('latin1')
    case 0x0c: // UTF8String
      return element.value.toString('utf8')
    case 0x1e: {
      // BMPString: UTF-16BE
      const bytes = Buffer.from(element.value)
      return bytes.swap16().toString('utf16le')
    }
    default:
      throw new DerError(`${what} is not a string (tag 0x${element.tag.toString(16)})`)
  }
}

interface SignedAttributes {
  raw: Buffer
  values: Map<string, DerElement>
}

function readAttributes(element: DerElement): SignedAttributes {
  const values = new Map<string, DerElement>()
  for (const attribute of childrenOf(element)) {
    const parts = new ChildCursor(attribute, 'Attribute')
    const type = decodeOid(parts.take(Tag.oid, 'attrType'))
    const set = childrenOf(parts.take(Tag.set, 'attrValues'))
    parts.end()
    if (values.has(type)) throw new DerError(`attribute ${type} appears twice`)
    if (set.length !== 1) throw new DerError(`attribute ${type} must have exactly one value`)
    values.set(type, set[0]!)
  }
  return { raw: element.raw, values }
}

function findCertificate(certificates: DerElement[], sid: DerElement): Buffer | undefined {
  if (sid.tag !== Tag.sequence) return undefined
  const parts = new ChildCursor(sid, 'issuerAndSerialNumber')
  const issuer = parts.take(Tag.sequence, 'issuer').raw
  const serial = parts.take(Tag.integer, 'serialNumber').value
  for (const certificate of certificates) {
    if (certificate.tag !== Tag.sequence) continue
    const candidate = readIssuerAndSerialNumber(certificate.raw)
    if (candidate.issuer.equals(issuer) && candidate.serialNumber.equals(serial)) return certificate.raw
  }
  return undefined
}

/**
 * Reads the outer SignedData and checks its signature. Throws ScepMalformed when the
 * message cannot be answered at all; a bad signature is reported in `signatureProblem`.
 */
export function readPkiMessage(message: Buffer): PkiMessage {
  try {
    const contentInfo = new ChildCursor(decodeElement(message), 'ContentInfo')
    const contentType = decodeOid(contentInfo.take(Tag.oid, 'contentType'))
    if (contentType !== ScepOid.signedData) throw new ScepMalformed(`ContentInfo holds ${contentType}, not signedData`)
    const explicit = new ChildCursor(contentInfo.take(Tag.context(0), 'content'), 'content [0]')
    const signedData = new ChildCursor(explicit.take(Tag.sequence, 'SignedData'), 'SignedData')
    signedData.take(Tag.integer, 'version')
    signedData.take(Tag.set, 'digestAlgorithms')
    const encapsulated = new ChildCursor(signedData.take(Tag.sequence, 'encapContentInfo'), 'encapContentInfo')
    const eContentType = decodeOid(encapsulated.take(Tag.oid, 'eContentType'))
    if (eContentType !== ScepOid.data) throw new ScepMalformed(`encapsulated content type is ${eContentType}, not id-data`)
    const eContentWrapper = encapsulated.optional(Tag.context(0))
    if (!eContentWrapper) throw new ScepMalformed('SignedData carries no content (pkcsPKIEnvelope)')
    const eContentChildren = childrenOf(eContentWrapper)
    if (eContentChildren.length !== 1) throw new ScepMalformed('eContent must hold one OCTET STRING')
    const envelope = octets(eContentChildren[0]!, 'eContent')
    const certificateSet = signedData.optional(Tag.context(0))
    signedData.optional(Tag.context(1))
    const signerInfos = childrenOf(signedData.take(Tag.set, 'signerInfos'))
    if (signerInfos.length !== 1) throw new ScepMalformed(`SignedData has ${signerInfos.length} signers, expected one`)

    const signer = new ChildCursor(signerInfos[0]!, 'SignerInfo')
    signer.take(Tag.integer, 'version')
    const sid = signer.optional(Tag.sequence, Tag.contextPrimitive(0))
    if (!sid) throw new ScepMalformed('SignerInfo has no signer identifier')
    const digestOid = decodeOid(new ChildCursor(signer.take(Tag.sequence, 'digestAlgorithm'), 'digestAlgorithm').take(Tag.oid, 'algorithm'))
    const signedAttrsElement = signer.optional(Tag.context(0))
    if (!signedAttrsElement) throw new ScepMalformed('SignerInfo has no signed attributes (messageType, transactionID, senderNonce)')
    if (signedAttrsElement.indefinite) throw new ScepMalformed('signed attributes use indefinite length, but must be DER')
    const signatureOid = decodeOid(new ChildCursor(signer.take(Tag.sequence, 'signatureAlgorithm'), 'signatureAlgorithm').take(Tag.oid, 'algorithm'))
    const signature = signer.take(Tag.octetString, 'signature').value

    const attributes = readAttributes(signedAttrsElement)
    const attribute = (oid: string, name: string) => {
      const value = attributes.values.get(oid)
      if (!value) throw new ScepMalformed(`signed attributes lack ${name}`)
      return value
    }
    const transactionIdValue = attribute(ScepOid.transactionId, 'transactionID')
    const transactionId = stringValue(transactionIdValue, 'transactionID')
    if (transactionId.length === 0 || transactionId.length > 256) throw new ScepMalformed('transactionID must have 1 to 256 characters')
    const messageTypeText = stringValue(attribute(ScepOid.messageType, 'messageType'), 'messageType')
    if (!/^\d{1,3}$/.test(messageTypeText)) throw new ScepMalformed(`messageType ${JSON.stringify(messageTypeText)} is not a number`)
    const senderNonce = octets(attribute(ScepOid.senderNonce, 'senderNonce'), 'senderNonce')
    if (senderNonce.length < 8 || senderNonce.length > 64) throw new ScepMalformed(`senderNonce has ${senderNonce.length} bytes (expected 16)`)

    const digestAlgorithm = digestOids[digestOid]
    if (!certificateSet) throw new ScepMalformed('SignedData carries no certificate: the signer certificate must be included')
    const signerCertificateDer = findCertificate(childrenOf(certificateSet), sid)
    if (!signerCertificateDer) throw new ScepMalformed("no included certificate matches the signer's issuerAndSerialNumber")

    const result: PkiMessage = {
      messageType: Number(messageTypeText),
      transactionId,
      transactionIdValue: transactionIdValue.raw,
      senderNonce,
      digestAlgorithm: digestAlgorithm ?? 'sha256',
      signerCertificateDer: Buffer.from(signerCertificateDer),
      envelope: Buffer.from(envelope),
    }
    const problem = digestAlgorithm
      ? checkSignature(signerCertificateDer, digestAlgorithm, signatureOid, attributes, signature, envelope)
      : `digest algorithm ${digestOid} is not supported`
    if (problem) result.signatureProblem = problem
    return result
  } catch (error) {
    if (error instanceof ScepMalformed) throw error
    if (error instanceof DerError) throw new ScepMalformed(`not a SCEP PKIOperation: ${error.message}`)
    throw error
  }
}

/** RFC 5652 §5.4/§5.6: messageDigest equals the content hash; the signature is over the attributes as a SET. */
function checkSignature(
  certificateDer: Buffer,
  digest: DigestAlgorithm,
  signatureOid: string,
  attributes: SignedAttributes,
  signature: Buffer,
  content: Buffer,
): string | undefined {
  const messageDigest = attributes.values.get(ScepOid.messageDigest)
  if (!messageDigest || messageDigest.tag !== Tag.octetString) return 'signed attributes lack messageDigest'
  const expected = createHash(digest).update(content).digest()
  if (messageDigest.value.length !== expected.length || !timingSafeEqual(messageDigest.value, expected))
    return `messageDigest does not match the ${digest} digest of the content`
  const algorithm = signatureAlgorithms[signatureOid]
  if (!algorithm) return `signature algorithm ${signatureOid} is not supported`
  if (algorithm.hash && algorithm.hash !== digest) return `signature algorithm ${algorithm.name} disagrees with digest algorithm ${digest}`
  let key: KeyObject
  try {
    key = createPublicKey({ key: readCertificateFields(certificateDer).subjectPublicKeyInfo, format: 'der', type: 'spki' })
  } catch (error) {
    return `signer certificate does not parse: ${(error as Error).message}`
  }
  if (key.asymmetricKeyType !== algorithm.key) return `signature algorithm ${algorithm.name} does not fit the signer's ${key.asymmetricKeyType} key`
  const signed = Buffer.from(attributes.raw)
  signed[0] = Tag.set
  try {
    const ok = verify(digest, signed, algorithm.key === 'ec' ? { key, dsaEncoding: 'der' } : key, signature)
    return ok ? undefined : `${algorithm.name}/${digest} signature does not verify with the signer certificate`
  } catch {
    return `${algorithm.name}/${digest} signature does not verify with the signer certificate`
  }
}

// ---------------------------------------------------------------- the encrypted envelope

export interface EnvelopeRecipient {
  certificateDer: Buffer
  privateKey: KeyObject
}

/** PKCS#1 v1.5 type 2 unpadding with implicit rejection: any failure returns random bytes. */
function unpadKeyTransport(encoded: Buffer, keyLength: number): Buffer {
  const fallback = randomBytes(keyLength)
  if (encoded.length < keyLength + 11 || encoded[0] !== 0x00 || encoded[1] !== 0x02) return fallback
  const separator = encoded.indexOf(0x00, 2)
  if (separator < 10 || encoded.length - separator - 1 !== keyLength) return fallback
  return encoded.subarray(separator + 1)
}

/**
 * Decrypts a pkcsPKIEnvelope addressed to one of `recipients` (CA or RA). Throws
 * ScepFailure: badAlg for an algorithm we do not have, badMessageCheck otherwise.
 */
export function openEnvelope(envelope: Buffer, recipients: readonly EnvelopeRecipient[]): { content: Buffer; encryption: ContentEncryption } {
  try {
    const contentInfo = new ChildCursor(decodeElement(envelope), 'pkcsPKIEnvelope')
    const type = decodeOid(contentInfo.take(Tag.oid, 'contentType'))
    if (type !== ScepOid.envelopedData) throw new ScepFailure('badMessageCheck', `pkcsPKIEnvelope holds ${type}, not envelopedData`)
    const explicit = new ChildCursor(contentInfo.take(Tag.context(0), 'content'), 'content [0]')
    const enveloped = new ChildCursor(explicit.take(Tag.sequence, 'EnvelopedData'), 'EnvelopedData')
    enveloped.take(Tag.integer, 'version')
    enveloped.optional(Tag.context(0)) // originatorInfo
    const recipientInfos = childrenOf(enveloped.take(Tag.set, 'recipientInfos'))
    const encrypted = new ChildCursor(enveloped.take(Tag.sequence, 'encryptedContentInfo'), 'encryptedContentInfo')
    encrypted.take(Tag.oid, 'contentType')
    const algorithm = new ChildCursor(encrypted.take(Tag.sequence, 'contentEncryptionAlgorithm'), 'contentEncryptionAlgorithm')
    const algorithmOid = decodeOid(algorithm.take(Tag.oid, 'algorithm'))
    const encryption = encryptionByOid.get(algorithmOid)
    if (!encryption) throw new ScepFailure('badAlg', `content encryption ${algorithmOid} is not supported (DES, 3DES and AES-CBC are)`)
    const spec = contentEncryptions[encryption]
    const iv = algorithm.take(Tag.octetString, 'iv').value
    if (iv.length !== spec.ivLength) throw new ScepFailure('badMessageCheck', `${encryption} IV has ${iv.length} bytes, expected ${spec.ivLength}`)
    const encryptedContentElement = encrypted.optional(Tag.contextPrimitive(0), Tag.context(0))
    if (!encryptedContentElement) throw new ScepFailure('badMessageCheck', 'the envelope has no encrypted content')
    const encryptedContent = octets(encryptedContentElement, 'encryptedContent')

    for (const info of recipientInfos) {
      // KeyTransRecipientInfo only (a SEQUENCE); key agreement and others are not SCEP's.
      if (info.tag !== Tag.sequence) continue
      const parts = new ChildCursor(info, 'KeyTransRecipientInfo')
      parts.take(Tag.integer, 'version')
      const rid = parts.optional(Tag.sequence, Tag.contextPrimitive(0))
      const keyAlgorithm = decodeOid(new ChildCursor(parts.take(Tag.sequence, 'keyEncryptionAlgorithm'), 'keyEncryptionAlgorithm').take(Tag.oid, 'algorithm'))
      const encryptedKey = parts.take(Tag.octetString, 'encryptedKey').value
      const recipient = rid && recipients.find((candidate) => matchesRecipient(candidate.certificateDer, rid))
      if (!recipient) continue
      if (keyAlgorithm !== ScepOid.rsaEncryption) throw new ScepFailure('badAlg', `key encryption ${keyAlgorithm} is not supported (rsaEncryption is)`)
      const modulusBytes = Math.ceil((recipient.privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8)
      if (encryptedKey.length !== modulusBytes) throw new ScepFailure('badMessageCheck', 'the encrypted key does not have the length of our RSA modulus')
      const padded = privateDecrypt({ key: recipient.privateKey, padding: constants.RSA_NO_PADDING }, encryptedKey)
      const key = unpadKeyTransport(padded, spec.keyLength)
      let content: Buffer
      try {
        const decipher = createDecipheriv(spec.cipher, cipherKey(encryption, key), iv)
        content = Buffer.concat([decipher.update(encryptedContent), decipher.final()])
      } catch {
        throw new ScepFailure('badMessageCheck', 'the envelope does not decrypt with our key')
      }
      return { content, encryption }
    }
    throw new ScepFailure('badMessageCheck', 'the envelope is not encrypted to our CA or RA certificate (fetch GetCACert again)')
  } catch (error) {
    if (error instanceof ScepFailure) throw error
    if (error instanceof DerError) throw new ScepFailure('badMessageCheck', `pkcsPKIEnvelope does not parse: ${error.message}`)
    throw error
  }
}

function matchesRecipient(certificateDer: Buffer, rid: DerElement): boolean {
  if (rid.tag === Tag.sequence) {
    const parts = new ChildCursor(rid, 'issuerAndSerialNumber')
    const issuer = parts.take(Tag.sequence, 'issuer').raw
    const serial = parts.take(Tag.integer, 'serialNumber').value
    const ours = readIssuerAndSerialNumber(certificateDer)
    return ours.issuer.equals(issuer) && ours.serialNumber.equals(serial)
  }
  const fields = readCertificateFields(certificateDer)
  const identifier = fields.subjectKeyIdentifier ?? createHash('sha1').update(fields.subjectPublicKey).digest()
  return identifier.equals(rid.value)
}

// ---------------------------------------------------------------- the PKCS#10 request

export interface CertificationRequest {
  /** Name DER of the requested subject, copied into the certificate as is. */
  subject: Buffer
  /** One-line form of the subject for logs and records. */
  subjectText: string
  publicKeySpki: Buffer
  publicKey: KeyObject
  challengePassword?: string
}

/** Reads and checks a PKCS#10 request (RFC 2986): proof of possession and an acceptable key. */
export function readCertificationRequest(csr: Buffer, describeName: (nameDer: Buffer) => string): CertificationRequest {
  try {
    const request = new ChildCursor(decodeElement(csr), 'CertificationRequest')
    const infoElement = request.take(Tag.sequence, 'certificationRequestInfo')
    const signatureOid = decodeOid(new ChildCursor(request.take(Tag.sequence, 'signatureAlgorithm'), 'signatureAlgorithm').take(Tag.oid, 'algorithm'))
    const signatureBits = request.take(Tag.bitString, 'signature').value
    request.end()

    const info = new ChildCursor(infoElement, 'certificationRequestInfo')
    info.take(Tag.integer, 'version')
    const subject = info.take(Tag.sequence, 'subject').raw
    const spki = info.take(Tag.sequence, 'subjectPKInfo').raw
    const attributes = info.optional(Tag.context(0))

    let publicKey: KeyObject
    try {
      publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' })
    } catch (error) {
      throw new ScepFailure('badRequest', `the request's public key does not parse: ${(error as Error).message}`)
    }
    const keyType = publicKey.asymmetricKeyType
    if (keyType === 'rsa') {
      const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
      if (bits < 2048) throw new ScepFailure('badAlg', `RSA key of ${bits} bits is too small (2048 at least: set Keysize 2048 in the SCEP payload)`)
    } else if (keyType === 'ec') {
      const curve = publicKey.asymmetricKeyDetails?.namedCurve
      if (curve !== 'prime256v1' && curve !== 'secp384r1') throw new ScepFailure('badAlg', `EC curve ${curve} is not supported (P-256 and P-384 are)`)
    } else {
      throw new ScepFailure('badAlg', `${keyType} keys are not supported`)
    }

    const algorithm = signatureAlgorithms[signatureOid]
    if (!algorithm?.hash) throw new ScepFailure('badAlg', `request signature algorithm ${signatureOid} is not supported`)
    if (algorithm.key !== keyType) throw new ScepFailure('badRequest', `request signed with ${algorithm.name} but its key is ${keyType}`)
    const signature = signatureBits.subarray(1)
    let ok = false
    try {
      ok = verify(algorithm.hash, infoElement.raw, keyType === 'ec' ? { key: publicKey, dsaEncoding: 'der' } : publicKey, signature)
    } catch {
      ok = false
    }
    if (!ok) throw new ScepFailure('badMessageCheck', 'the certificate request signature does not verify with its own key (no proof of possession)')

    let challengePassword: string | undefined
    if (attributes) {
      for (const attribute of childrenOf(attributes)) {
        const parts = new ChildCursor(attribute, 'Attribute')
        const type = decodeOid(parts.take(Tag.oid, 'type'))
        const values = childrenOf(parts.take(Tag.set, 'values'))
        if (type === ScepOid.challengePassword) {
          if (values.length !== 1) throw new ScepFailure('badRequest', 'challengePassword must have exactly one value')
          challengePassword = stringValue(values[0]!, 'challengePassword')
        }
      }
    }
    let subjectText: string
    try {
      subjectText = describeName(subject)
    } catch {
      subjectText = '(unreadable subject)'
    }
    return {
      subject: Buffer.from(subject),
      subjectText,
      publicKeySpki: Buffer.from(spki),
      publicKey,
      ...(challengePassword !== undefined ? { challengePassword } : {}),
    }
  } catch (error) {
    if (error instanceof ScepFailure) throw error
    if (error instanceof DerError) throw new ScepFailure('badRequest', `the certificate request does not parse: ${error.message}`)
    throw error
  }
}

// ---------------------------------------------------------------- building answers

/** A degenerate "certs-only" SignedData (RFC 8894 §3.4): GetCACert chains and issued certificates. */
export function certsOnly(certificates: readonly Buffer[]): Buffer {
  return der.sequence(
    der.oid(ScepOid.signedData),
    der.contextConstructed(
      0,
      der.sequence(der.smallInteger(1), der.setOf(), der.sequence(der.oid(ScepOid.data)), der.contextConstructed(0, ...certificates), der.setOf()),
    ),
  )
}

function issuerAndSerialNumber(certificateDer: Buffer): Buffer {
  const { issuer, serialNumber } = readIssuerAndSerialNumber(certificateDer)
  return der.sequence(issuer, der.element(Tag.integer, serialNumber))
}

/** The requester's key, which the answer is encrypted to: RSA key transport only. Throws ScepFailure badAlg. */
export function requesterKey(certificateDer: Buffer): KeyObject {
  const key = createPublicKey({ key: readCertificateFields(certificateDer).subjectPublicKeyInfo, format: 'der', type: 'spki' })
  if (key.asymmetricKeyType !== 'rsa')
    throw new ScepFailure('badAlg', `the requester's key is ${key.asymmetricKeyType}: SCEP answers can only be encrypted to an RSA key`)
  return key
}

/** EnvelopedData (RFC 5652 §6) with one RSA key-transport recipient. */
export function envelope(content: Buffer, recipientCertificateDer: Buffer, encryption: ContentEncryption): Buffer {
  const recipientKey = requesterKey(recipientCertificateDer)
  const spec = contentEncryptions[encryption]
  const key = randomBytes(spec.keyLength)
  const iv = randomBytes(spec.ivLength)
  const cipher = createCipheriv(spec.cipher, cipherKey(encryption, key), iv)
  const encrypted = Buffer.concat([cipher.update(content), cipher.final()])
  // PKCS#1 v1.5 encryption is still allowed (only private decryption was restricted).
  const encryptedKey = publicEncrypt({ key: recipientKey, padding: constants.RSA_PKCS1_PADDING }, key)
  const recipientInfo = der.sequence(
    der.smallInteger(0),
    issuerAndSerialNumber(recipientCertificateDer),
    der.algorithm(ScepOid.rsaEncryption, der.nullValue()),
    der.octetString(encryptedKey),
  )
  const encryptedContentInfo = der.sequence(der.oid(ScepOid.data), der.algorithm(spec.oid, der.octetString(iv)), der.contextPrimitive(0, encrypted))
  return der.sequence(
    der.oid(ScepOid.envelopedData),
    der.contextConstructed(0, der.sequence(der.smallInteger(0), der.setOf(recipientInfo), encryptedContentInfo)),
  )
}

export interface CertRepSigner {
  certificateDer: Buffer
  privateKey: KeyObject
}

export type CertRepResult = { status: 'SUCCESS'; certificates: Buffer[] } | { status: 'FAILURE'; failInfo: FailInfo }

export interface CertRepOptions {
  request: Pick<PkiMessage, 'transactionIdValue' | 'senderNonce' | 'digestAlgorithm' | 'signerCertificateDer'>
  /** How the answer's envelope is encrypted; the request's own algorithm by default. */
  encryption: ContentEncryption
  signer: CertRepSigner
  result: CertRepResult
  now?: Date
}

const attribute = (oid: string, value: Buffer) => der.sequence(der.oid(oid), der.setOf(value))

/** A CertRep (RFC 8894 §3.3.2): SignedData by the CA or RA, SUCCESS with the certificate enveloped to the requester, or FAILURE. */
export function buildCertRep(options: CertRepOptions): Buffer {
  const { request, signer, result } = options
  const digest = request.digestAlgorithm
  const content = result.status === 'SUCCESS' ? envelope(certsOnly(result.certificates), request.signerCertificateDer, options.encryption) : undefined
  const attributes = [
    attribute(ScepOid.contentType, der.oid(ScepOid.data)),
    attribute(ScepOid.signingTime, der.time(options.now ?? new Date())),
    attribute(
      ScepOid.messageDigest,
      der.octetString(
        createHash(digest)
          .update(content ?? Buffer.alloc(0))
          .digest(),
      ),
    ),
    attribute(ScepOid.messageType, der.printableString(String(ScepMessageType.CertRep))),
    attribute(ScepOid.pkiStatus, der.printableString(result.status === 'SUCCESS' ? '0' : '2')),
    ...(result.status === 'FAILURE' ? [attribute(ScepOid.failInfo, der.printableString(String(failInfoCodes[result.failInfo])))] : []),
    attribute(ScepOid.transactionId, request.transactionIdValue),
    attribute(ScepOid.recipientNonce, der.octetString(request.senderNonce)),
    attribute(ScepOid.senderNonce, der.octetString(randomBytes(16))),
  ]
  const signedAttributes = der.setOf(...attributes)
  const keyType = signer.privateKey.asymmetricKeyType
  const signature = sign(digest, signedAttributes, keyType === 'ec' ? { key: signer.privateKey, dsaEncoding: 'der' } : signer.privateKey)
  const ecdsaOids: Partial<Record<DigestAlgorithm, string>> = {
    sha1: '1.2.840.10045.4.1',
    sha256: '1.2.840.10045.4.3.2',
    sha384: '1.2.840.10045.4.3.3',
    sha512: '1.2.840.10045.4.3.4',
  }
  const signatureAlgorithm = keyType === 'ec' ? der.algorithm(ecdsaOids[digest]!) : der.algorithm(ScepOid.rsaEncryption, der.nullValue())
  // [0] IMPLICIT in the SignerInfo: the SET's tag replaced, content unchanged.
  const implicitAttributes = Buffer.from(signedAttributes)
  implicitAttributes[0] = Tag.context(0)
  const signerInfo = der.sequence(
    der.smallInteger(1),
    issuerAndSerialNumber(signer.certificateDer),
    der.algorithm(digestOidOf[digest]),
    implicitAttributes,
    signatureAlgorithm,
    der.octetString(signature),
  )
  const encapsulated = der.sequence(der.oid(ScepOid.data), ...(content ? [der.contextConstructed(0, der.octetString(content))] : []))
  const signedData = der.sequence(
    der.smallInteger(1),
    der.setOf(der.algorithm(digestOidOf[digest])),
    encapsulated,
    der.contextConstructed(0, signer.certificateDer),
    der.setOf(signerInfo),
  )
  return der.sequence(der.oid(ScepOid.signedData), der.contextConstructed(0, signedData))
}
