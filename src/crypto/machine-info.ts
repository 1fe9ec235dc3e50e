// MachineInfo (Automated Device Enrollment): during Setup Assistant the device POSTs a CMS
// SignedData with *attached* content (Content-Type application/pkcs7-signature) to the
// enrollment `url` of its DEP profile; the content is an XML plist (UDID, SERIAL, PRODUCT...,
// src/mdm/machine-info.ts) and the signer is the device's Apple-issued identity
// ("Apple iPhone Device CA", chaining to Apple's root). apple-protocol.md §7.
// https://developer.apple.com/documentation/devicemanagement/machineinfo
//
// Parsing uses the bounds-checked DER reader (der.ts; BER indefinite lengths and chunked
// OCTET STRINGs are accepted, as Apple encodes CMS with them), cryptography node:crypto.
// The signature is always checked; the chain to `trustedCas` only when they are given.
//
// Chain: unlike device-identity.ts (our own CA, one level deep), Apple's device identities
// hang below intermediates, so included certificates are followed up to a trusted CA. Each
// link needs the issuer's name (X509Certificate.checkIssued, which also compares key
// identifiers and keyUsage) and its key (X509Certificate.verify); intermediates must be CAs
// (basicConstraints cA); the signer and intermediates must be valid at `now` unless
// `checkValidity: false`, which real Apple chains need (their intermediates have expired).
// As RFC 5280 §6.1 does for trust anchors (and device-identity.ts), a trusted CA's own
// dates are not checked. pathLenConstraint, name constraints and policies are not evaluated.
//
// Apple's chain: device identity <- "Apple iPhone Device CA" (RSA-1024, SHA-1) <- "Apple
// iPhone Certification Authority" <- "Apple Root CA". iOS includes the intermediates;
// macOS includes only "Apple iPhone Device CA", so trust that CA itself (any trusted CA
// is an anchor) or the chain from macOS ends one certificate short of the root.
import { createHash, createPublicKey, timingSafeEqual, verify, X509Certificate, type KeyObject } from 'node:crypto'
import { ChildCursor, DerError, Tag, childrenOf, decodeElement, decodeOid, expectTag, octetString, readCertificateFields, readIssuerAndSerialNumber, type DerElement } from './der.js'
import { signatureAlgorithms, type DigestAlgorithm } from './mdm-signature.js'

/** Largest body accepted: a MachineInfo with its certificates is a few KiB. */
export const maxMachineInfoBytes = 256 * 1024

/** Longest path followed from the signer to a trusted CA (intermediates, not counting either end). */
const maxIntermediates = 6

export interface VerifiedMachineInfo {
  /** The signed content: the MachineInfo plist bytes (chunks of a BER OCTET STRING joined). */
  content: Buffer
  /** DER of the signer's certificate. */
  signerCertificateDer: Buffer
  /** DER of every X.509 certificate the CMS includes, in order (the signer's among them). */
  certificatesDer: Buffer[]
  /** True only when the signer chained to one of `trustedCas`; false when none were given. */
  chainVerified: boolean
}

export type MachineInfoErrorReason = 'malformed' | 'bad_signature' | 'untrusted'

/**
 * A MachineInfo body was refused: `malformed` (does not parse as an attached CMS
 * SignedData with one signer and its certificate), `bad_signature` (the signature or
 * messageDigest does not verify, or uses an algorithm we do not support), `untrusted`
 * (the signer does not chain to a trusted CA at `now`). The message is for logs.
 */
export class MachineInfoError extends Error {
  override readonly name = 'MachineInfoError'
  readonly reason: MachineInfoErrorReason

  constructor(reason: MachineInfoErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.reason = reason
  }
}

export interface VerifyMachineInfoOptions {
  /** DER certificates of the trust anchors (Apple Root CA); null: the chain is not checked. */
  trustedCas: readonly Buffer[] | null
  /** The time certificates must be valid at (default: now). */
  now?: Date
  /**
   * Check notBefore/notAfter of the signer and intermediates against `now` (default true).
   * Real Apple chains need false: "Apple iPhone Device CA" expired in 2014, its issuer in
   * 2022, and old device identities are expired too; Apple still signs MachineInfo with them.
   */
  checkValidity?: boolean
}

const Oid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
}

// mdm-signature.ts and scep.ts each keep this table private.
const digestAlgorithms: Readonly<Record<string, DigestAlgorithm>> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}

const malformed = (message: string, cause?: unknown) => new MachineInfoError('malformed', message, cause === undefined ? undefined : { cause })
const badSignature = (message: string) => new MachineInfoError('bad_signature', message)
const untrusted = (message: string) => new MachineInfoError('untrusted', message)

interface ParsedSignedData {
  content: Buffer
  eContentType: string
  certificates: Buffer[]
  signerCertificateDer: Buffer
  digestAlgorithm: DigestAlgorithm
  keyType: 'rsa' | 'ec'
  signatureAlgorithmName: string
  /** signedAttrs as sent ([0] IMPLICIT, DER), when present. */
  signedAttributes: Buffer | undefined
  messageDigest: Buffer | undefined
  contentTypeAttribute: string | undefined
  signature: Buffer
}

/** OCTET STRING content, primitive or constructed of chunks (BER, X.690 §8.7.3). */
function octets(element: DerElement, what: string, depth = 0): Buffer {
  if (element.tag === Tag.octetString) return element.value
  if (element.tag === (Tag.octetString | 0x20)) {
    if (depth >= 4) throw new DerError(`${what}: constructed OCTET STRING nested too deeply`)
    return Buffer.concat(childrenOf(element).map((chunk) => octets(chunk, what, depth + 1)))
  }
  throw new DerError(`${what} has tag 0x${element.tag.toString(16).padStart(2, '0')}, expected OCTET STRING`)
}

const algorithmOid = (element: DerElement, what: string) => decodeOid(new ChildCursor(element, what).take(Tag.oid, 'algorithm'))

/** RFC 5652 §3 ContentInfo around §5.1 SignedData, reduced to the single signer's parts. */
function parseSignedData(body: Buffer): ParsedSignedData {
  const contentInfo = new ChildCursor(expectTag(decodeElement(body), Tag.sequence, 'ContentInfo'), 'ContentInfo')
  const contentType = decodeOid(contentInfo.take(Tag.oid, 'contentType'))
  if (contentType !== Oid.signedData) throw malformed(`ContentInfo holds ${contentType}, not signedData`)
  const explicit = new ChildCursor(contentInfo.take(Tag.context(0), 'content'), 'content [0]')
  const signedDataElement = explicit.take(Tag.sequence, 'SignedData')
  explicit.end()
  contentInfo.end()

  const signedData = new ChildCursor(signedDataElement, 'SignedData')
  signedData.take(Tag.integer, 'version')
  signedData.take(Tag.set, 'digestAlgorithms')
  const encapsulated = new ChildCursor(signedData.take(Tag.sequence, 'encapContentInfo'), 'encapContentInfo')
  const eContentType = decodeOid(encapsulated.take(Tag.oid, 'eContentType'))
  if (eContentType !== Oid.data) throw malformed(`encapsulated content type is ${eContentType}, not id-data`)
  const eContentWrapper = encapsulated.optional(Tag.context(0))
  if (!eContentWrapper) throw malformed('SignedData carries no content (detached signature): MachineInfo must be attached')
  encapsulated.end()
  const eContent = new ChildCursor(eContentWrapper, 'eContent [0]')
  const eContentElement = eContent.optional(Tag.octetString, Tag.octetString | 0x20)
  if (!eContentElement) throw malformed('eContent [0] does not hold an OCTET STRING')
  eContent.end()
  const content = octets(eContentElement, 'eContent')
  const certificateSet = signedData.optional(Tag.context(0)) // certificates [0] IMPLICIT CertificateSet
  signedData.optional(Tag.context(1)) // crls [1] IMPLICIT
  const signerInfos = childrenOf(signedData.take(Tag.set, 'signerInfos'))
  signedData.end()
  if (signerInfos.length === 0) throw malformed('SignedData has no signerInfos')
  if (signerInfos.length > 1) throw malformed(`SignedData has ${signerInfos.length} signers, expected exactly one`)

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
  if (signature.length === 0) throw malformed('SignerInfo: signature is empty')

  let messageDigest: Buffer | undefined
  let contentTypeAttribute: string | undefined
  if (signedAttrs) {
    // The signature is over the DER of the SET OF attributes (§5.4): re-tagging [0] as a
    // SET only reproduces it from the bytes as sent when they carry a definite length.
    if (signedAttrs.indefinite) throw malformed('signedAttrs use indefinite length, but must be DER')
    ;({ messageDigest, contentTypeAttribute } = readSignedAttributes(signedAttrs))
  }

  if (!certificateSet) throw malformed('SignedData includes no certificates: the signer certificate must be included')
  const included = childrenOf(certificateSet)
  // CertificateChoices (§10.2.2): only plain X.509 certificates (SEQUENCE) are kept.
  const certificates = included.filter((certificate) => certificate.tag === Tag.sequence).map((certificate) => certificate.raw)
  const signerCertificateDer = findSignerCertificate(certificates, sid)

  const digestAlgorithm = digestAlgorithms[digestOid]
  if (!digestAlgorithm) throw badSignature(`digest algorithm ${digestOid} is not supported`)
  const signatureAlgorithm = signatureAlgorithms[signatureOid]
  if (!signatureAlgorithm) throw badSignature(`signature algorithm ${signatureOid} is not supported`)
  // OpenSSL hashes with digestAlgorithm, pkijs with the signature algorithm's hash: refuse the ambiguity.
  if (signatureAlgorithm.hash && signatureAlgorithm.hash !== digestAlgorithm) {
    throw badSignature(`signature algorithm ${signatureAlgorithm.name} disagrees with digest algorithm ${digestAlgorithm}`)
  }

  return {
    content,
    eContentType,
    certificates,
    signerCertificateDer,
    digestAlgorithm,
    keyType: signatureAlgorithm.key,
    signatureAlgorithmName: signatureAlgorithm.name,
    signedAttributes: signedAttrs?.raw,
    messageDigest,
    contentTypeAttribute,
    signature,
  }
}

/** §5.3: messageDigest MUST be present (once, one value); contentType is read when present. */
function readSignedAttributes(signedAttrs: DerElement): { messageDigest: Buffer; contentTypeAttribute: string | undefined } {
  let messageDigest: Buffer | undefined
  let contentTypeAttribute: string | undefined
  const seen = new Set<string>()
  for (const attribute of childrenOf(signedAttrs)) {
    const parts = new ChildCursor(expectTag(attribute, Tag.sequence, 'Attribute'), 'Attribute')
    const type = decodeOid(parts.take(Tag.oid, 'attrType'))
    const values = childrenOf(parts.take(Tag.set, 'attrValues'))
    parts.end()
    if (seen.has(type)) throw malformed(`signedAttrs: attribute ${type} appears more than once`)
    seen.add(type)
    if (type === Oid.messageDigest) {
      if (values.length !== 1) throw malformed('signedAttrs: messageDigest must have exactly one value')
      messageDigest = octetString(values[0]!, 'messageDigest')
    } else if (type === Oid.contentType) {
      if (values.length !== 1) throw malformed('signedAttrs: contentType must have exactly one value')
      contentTypeAttribute = decodeOid(values[0]!)
    }
  }
  if (!messageDigest) throw malformed('signedAttrs lack the messageDigest attribute')
  return { messageDigest, contentTypeAttribute }
}

/** §5.3 SignerIdentifier: issuerAndSerialNumber (§10.2.4) or subjectKeyIdentifier [0]. */
function findSignerCertificate(certificates: Buffer[], sid: DerElement): Buffer {
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
      throw malformed(`included certificate ${index + 1}: ${error.message}`, error)
    }
  }
  throw malformed(`none of the ${certificates.length} included certificates matches the signer's ${issuer ? 'issuerAndSerialNumber' : 'subjectKeyIdentifier'}`)
}

function checkSignature(parts: ParsedSignedData): void {
  let key: KeyObject
  try {
    key = createPublicKey({ key: readCertificateFields(parts.signerCertificateDer).subjectPublicKeyInfo, format: 'der', type: 'spki' })
  } catch (error) {
    throw malformed(`signer certificate does not parse: ${(error as Error).message}`, error)
  }
  const keyType = key.asymmetricKeyType
  if (keyType !== 'rsa' && keyType !== 'ec') throw badSignature(`signer certificate has a ${keyType} key (RSA and EC are supported)`)
  if (keyType !== parts.keyType) throw badSignature(`signature algorithm ${parts.signatureAlgorithmName} does not fit the signer certificate's ${keyType} key`)

  let signed = parts.content
  if (parts.signedAttributes && parts.messageDigest) {
    if (parts.contentTypeAttribute !== undefined && parts.contentTypeAttribute !== parts.eContentType) {
      throw badSignature(`contentType attribute is ${parts.contentTypeAttribute}, but the content is ${parts.eContentType}`)
    }
    const digest = createHash(parts.digestAlgorithm).update(parts.content).digest()
    if (digest.length !== parts.messageDigest.length || !timingSafeEqual(digest, parts.messageDigest)) {
      throw badSignature(`messageDigest attribute does not match the ${parts.digestAlgorithm} digest of the content`)
    }
    // §5.4: what is signed is the DER of "SET OF Attribute" (0x31), not the [0] IMPLICIT (0xA0) as sent.
    signed = Buffer.from(parts.signedAttributes)
    signed[0] = Tag.set
  }
  let valid: boolean
  try {
    // ECDSA-Sig-Value is a DER SEQUENCE of r and s (RFC 5753 §7.2), not WebCrypto's r||s.
    valid = verify(parts.digestAlgorithm, signed, keyType === 'ec' ? { key, dsaEncoding: 'der' } : key, parts.signature)
  } catch {
    valid = false
  }
  if (!valid) throw badSignature(`${parts.signatureAlgorithmName}/${parts.digestAlgorithm} signature does not verify with the signer certificate's key`)
}

interface ChainCertificate {
  der: Buffer
  x509: X509Certificate
  notBefore: Date
  notAfter: Date
}

/** An included certificate for chain building; undefined when node:crypto or the DER reader cannot read it. */
function chainCertificate(der: Buffer): ChainCertificate | undefined {
  try {
    const fields = readCertificateFields(der)
    return { der, x509: new X509Certificate(der), notBefore: fields.notBefore, notAfter: fields.notAfter }
  } catch {
    return undefined
  }
}

function issuedBy(subject: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return subject.checkIssued(issuer) && subject.verify(issuer.publicKey)
  } catch {
    return false
  }
}

const oneLine = (name: string) => name.split('\n').join(', ')

function validityProblem(certificate: ChainCertificate, now: Date, what: string): string | undefined {
  // RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both inclusive.
  if (now.getTime() < certificate.notBefore.getTime()) return `${what} "${oneLine(certificate.x509.subject)}" is not valid before ${certificate.notBefore.toISOString()} (now ${now.toISOString()})`
  if (now.getTime() > certificate.notAfter.getTime()) return `${what} "${oneLine(certificate.x509.subject)}" expired at ${certificate.notAfter.toISOString()} (now ${now.toISOString()})`
  return undefined
}

/** Parsed trust anchors by buffer: callers pass the same configured buffers on every request. */
const parsedAnchors = new WeakMap<Buffer, X509Certificate>()

function parseTrustedCas(trustedCas: readonly Buffer[]): X509Certificate[] {
  return trustedCas.map((der, index) => {
    let parsed = parsedAnchors.get(der)
    if (parsed) return parsed
    try {
      parsed = new X509Certificate(der)
    } catch (error) {
      // Configuration, not device input: not a MachineInfoError.
      throw new Error(`trusted MachineInfo CA ${index + 1} is not a DER X.509 certificate: ${(error as Error).message}`, { cause: error })
    }
    parsedAnchors.set(der, parsed) // keyed by identity: configured buffers are never written to
    return parsed
  })
}

/** Follows included certificates from the signer to a trusted CA; throws `untrusted` with the closest miss. */
function verifyChain(signerDer: Buffer, included: readonly Buffer[], anchors: readonly X509Certificate[], now: Date | null): void {
  const leaf = chainCertificate(signerDer)
  if (!leaf) throw malformed('signer certificate does not parse as X.509')
  const describe = `signer certificate "${oneLine(leaf.x509.subject)}"`
  if (anchors.some((anchor) => anchor.raw.equals(signerDer))) throw untrusted(`${describe} is a trusted CA certificate, not a device identity`)
  const leafProblem = now && validityProblem(leaf, now, 'signer certificate')
  if (leafProblem) throw untrusted(leafProblem)

  const pool = included
    .filter((der) => !der.equals(signerDer))
    .map(chainCertificate)
    .filter((certificate): certificate is ChainCertificate => certificate !== undefined && certificate.x509.ca)
  let problem: string | undefined

  // Depth-first over issuers; `path` holds the certificates above the leaf so far (no loops).
  const search = (current: ChainCertificate, path: ChainCertificate[]): boolean => {
    if (anchors.some((anchor) => issuedBy(current.x509, anchor))) return true
    if (path.length >= maxIntermediates) return false
    for (const candidate of pool) {
      if (path.includes(candidate) || !issuedBy(current.x509, candidate.x509)) continue
      const expired = now && validityProblem(candidate, now, 'intermediate certificate')
      if (expired) {
        problem ??= expired
        continue
      }
      if (search(candidate, [...path, candidate])) return true
    }
    return false
  }
  if (search(leaf, [])) return
  throw untrusted(problem ?? `${describe} (issuer "${oneLine(leaf.x509.issuer)}") does not chain to a trusted CA through the ${pool.length} included CA certificate(s)`)
}

/**
 * Verifies a MachineInfo request body: an attached CMS SignedData, one signer whose
 * certificate is included, a valid signature and, with `trustedCas`, a chain to one of
 * them. Throws MachineInfoError and nothing else for any body. An unreadable `trustedCas`
 * entry is a configuration mistake: a plain Error, once a body's signature has verified.
 */
export function verifyMachineInfo(body: Buffer, options: VerifyMachineInfoOptions): VerifiedMachineInfo {
  const now = options.now ?? new Date()
  const trustedCas = options.trustedCas
  const input: unknown = body
  if (!Buffer.isBuffer(input)) throw malformed('the body is not a byte buffer')
  if (input.length === 0) throw malformed('the body is empty')
  if (input.length > maxMachineInfoBytes) throw malformed(`the body has ${input.length} bytes, more than ${maxMachineInfoBytes}`)

  let parts: ParsedSignedData
  try {
    parts = parseSignedData(input)
    checkSignature(parts)
  } catch (error) {
    throw asMachineInfoError(error)
  }
  if (trustedCas !== null) {
    const anchors = parseTrustedCas(trustedCas)
    try {
      verifyChain(parts.signerCertificateDer, parts.certificates, anchors, options.checkValidity === false ? null : now)
    } catch (error) {
      throw asMachineInfoError(error)
    }
  }
  // Copies: slices would keep the whole request body alive in whatever stores them.
  return {
    content: Buffer.from(parts.content),
    signerCertificateDer: Buffer.from(parts.signerCertificateDer),
    certificatesDer: parts.certificates.map((der) => Buffer.from(der)),
    chainVerified: trustedCas !== null,
  }
}

function asMachineInfoError(error: unknown): MachineInfoError {
  if (error instanceof MachineInfoError) return error
  if (error instanceof DerError) return malformed(`not a CMS SignedData: ${error.message}`, error)
  return malformed(`unexpected failure reading the CMS: ${String(error)}`, error)
}
