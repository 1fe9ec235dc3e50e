// Reading a SCEP PKIOperation (RFC 8894 §3.2): the CMS SignedData around the pkcsPKIEnvelope,
// its signed attributes and signature, then the PKCS#10 request the envelope holds. Parsing
// uses the bounds-checked DER reader, cryptography node:crypto.
//
// Trap: clients sign with rsaEncryption as the "signature algorithm" and name the hash only in
// digestAlgorithm; both SHA-1 and SHA-256 are in use.
import { createHash, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { ChildCursor, childrenOf, decodeElement, decodeOid, DerError, readCertificateFields, readIssuerAndSerialNumber, Tag, type DerElement } from './der.js'
import { signatureAlgorithms, type DigestAlgorithm } from './mdm-signature.js'
import { digestOids, octets, ScepFailure, ScepMalformed, ScepOid } from './scep-definitions.js'

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
