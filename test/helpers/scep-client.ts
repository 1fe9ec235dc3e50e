// A standard SCEP client (RFC 8894) for tests: it plays an Apple device, or any field SCEP
// client, talking to Orchard's SCEP server. It is an independent implementation written from
// RFC 8894 (SCEP), RFC 5652 (CMS), RFC 2986 (PKCS#10) and RFC 5280 — not from the server's
// code — so the two can check each other.
//
// ASN.1 is built by hand with asn1js (so every byte is under control: DER by default, or the
// indefinite-length BER of streaming encoders on request) and parsed with asn1js; pkijs parses
// certificates. All cryptography is node:crypto:
// - RSA PKCS#1 v1.5 signatures (`sign`/`verify`) and key transport (`publicEncrypt`).
// - Node 20 refuses `privateDecrypt` with RSA_PKCS1_PADDING (CVE-2023-46809), so decrypting a
//   response's content-encryption key uses RSA_NO_PADDING and strips the type-2 padding here.
// - OpenSSL 3's default provider has no single DES: DES-CBC is run exactly as des-ede3-cbc with
//   the 8-byte key repeated three times (K‖K‖K).
//
// Message shapes (RFC 8894 §3):
//   pkiMessage      = ContentInfo(SignedData{ eContentType id-data, eContent = pkcsPKIEnvelope,
//                     signed attributes: contentType, signingTime, messageDigest, messageType,
//                     transactionID, senderNonce [, recipientNonce, pkiStatus, failInfo] })
//   pkcsPKIEnvelope = DER of ContentInfo(EnvelopedData{ one KeyTransRecipientInfo,
//                     encryptedContentInfo{ id-data, <cipher + IV>, encrypted messageData } })
//   messageData     = PKCS#10 (PKCSReq/RenewalReq), IssuerAndSubject (CertPoll), or in a
//                     successful CertRep a degenerate certs-only SignedData.
import {
  X509Certificate,
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

// ---------------------------------------------------------------------------------------------
// Public types

export type ScepEncryption = 'des' | 'des3' | 'aes128' | 'aes256'
export type ScepDigest = 'sha1' | 'sha256'
/** Digests accepted when parsing (a server may sign with a stronger one than we asked). */
export type ScepParsedDigest = ScepDigest | 'sha224' | 'sha384' | 'sha512'
export type ScepMessageType = 'CertRep' | 'RenewalReq' | 'PKCSReq' | 'CertPoll' | 'GetCert' | 'GetCRL'
export type ScepPkiStatus = 'SUCCESS' | 'FAILURE' | 'PENDING'
export type ScepFailInfo = 'badAlg' | 'badMessageCheck' | 'badRequest' | 'badTime' | 'badCertId'

export interface ScepKeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
}

export interface ScepSubject {
  commonName: string
  organization?: string
}

// ---------------------------------------------------------------------------------------------
// Object identifiers

export const ScepOid = {
  // CMS content types (RFC 5652)
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  // PKCS#9 attributes
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  challengePassword: '1.2.840.113549.1.9.7',
  // SCEP attributes (RFC 8894 §3.2.1), id-attributes = 2.16.840.1.113733.1.9
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionID: '2.16.840.1.113733.1.9.7',
  failInfoText: '1.3.6.1.5.5.7.24.1', // id-scep-failInfoText (RFC 8894 §3.2.1.4)
  // Algorithms
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha1WithRSAEncryption: '1.2.840.113549.1.1.5',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  sha384WithRSAEncryption: '1.2.840.113549.1.1.12',
  sha512WithRSAEncryption: '1.2.840.113549.1.1.13',
  sha224WithRSAEncryption: '1.2.840.113549.1.1.14',
  ecdsaWithSha1: '1.2.840.10045.4.1',
  ecdsaWithSha224: '1.2.840.10045.4.3.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha1: '1.3.14.3.2.26',
  sha224: '2.16.840.1.101.3.4.2.4',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  desCbc: '1.3.14.3.2.7',
  desEde3Cbc: '1.2.840.113549.3.7',
  aes128Cbc: '2.16.840.1.101.3.4.1.2',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  // X.509
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
} as const

const messageTypeCodes: Record<ScepMessageType, string> = {
  CertRep: '3',
  RenewalReq: '17',
  PKCSReq: '19',
  CertPoll: '20', // GetCertInitial in older drafts
  GetCert: '21',
  GetCRL: '22',
}
const pkiStatusCodes: Record<ScepPkiStatus, string> = { SUCCESS: '0', FAILURE: '2', PENDING: '3' }
const failInfoCodes: Record<ScepFailInfo, string> = { badAlg: '0', badMessageCheck: '1', badRequest: '2', badTime: '3', badCertId: '4' }
const invert = <K extends string>(record: Record<K, string>): Map<string, K> => new Map(Object.entries(record).map(([k, v]) => [v as string, k as K]))
const messageTypeByCode = invert(messageTypeCodes)
const pkiStatusByCode = invert(pkiStatusCodes)
const failInfoByCode = invert(failInfoCodes)

interface CipherSpec {
  oid: string
  /** The node:crypto cipher that runs it. */
  cipher: string
  keyLength: number
  ivLength: number
}
const ciphers: Record<ScepEncryption, CipherSpec> = {
  // Single DES: des-ede3-cbc with K‖K‖K (see header).
  des: { oid: ScepOid.desCbc, cipher: 'des-ede3-cbc', keyLength: 8, ivLength: 8 },
  des3: { oid: ScepOid.desEde3Cbc, cipher: 'des-ede3-cbc', keyLength: 24, ivLength: 8 },
  aes128: { oid: ScepOid.aes128Cbc, cipher: 'aes-128-cbc', keyLength: 16, ivLength: 16 },
  aes256: { oid: ScepOid.aes256Cbc, cipher: 'aes-256-cbc', keyLength: 32, ivLength: 16 },
}

const digestOids: Record<ScepParsedDigest, string> = {
  sha1: ScepOid.sha1,
  sha224: ScepOid.sha224,
  sha256: ScepOid.sha256,
  sha384: ScepOid.sha384,
  sha512: ScepOid.sha512,
}
const digestByOid = invert(digestOids)
const shaWithRsaOids: Record<ScepParsedDigest, string> = {
  sha1: ScepOid.sha1WithRSAEncryption,
  sha224: ScepOid.sha224WithRSAEncryption,
  sha256: ScepOid.sha256WithRSAEncryption,
  sha384: ScepOid.sha384WithRSAEncryption,
  sha512: ScepOid.sha512WithRSAEncryption,
}
/** Signature algorithm OIDs that name their own hash (which must agree with the digestAlgorithm). */
const hashOfSignatureOid = new Map<string, ScepParsedDigest>([
  ...Object.entries(shaWithRsaOids).map(([digest, oid]) => [oid, digest as ScepParsedDigest] as const),
  [ScepOid.ecdsaWithSha1, 'sha1'],
  [ScepOid.ecdsaWithSha224, 'sha224'],
  [ScepOid.ecdsaWithSha256, 'sha256'],
  [ScepOid.ecdsaWithSha384, 'sha384'],
  [ScepOid.ecdsaWithSha512, 'sha512'],
])

// ---------------------------------------------------------------------------------------------
// ASN.1 building helpers (asn1js; DER unless a caller asks for indefinite lengths)

type Block = asn1js.BaseBlock
const toDer = (block: Block): Buffer => Buffer.from(block.toBER(false))
const seq = (...value: Block[]): asn1js.Sequence => new asn1js.Sequence({ value })
const oid = (value: string): asn1js.ObjectIdentifier => new asn1js.ObjectIdentifier({ value })
const int = (value: number): asn1js.Integer => new asn1js.Integer({ value })
const octets = (bytes: Uint8Array): asn1js.OctetString => new asn1js.OctetString({ valueHex: bytes })
const printable = (value: string): asn1js.PrintableString => new asn1js.PrintableString({ value })
/** A context-specific constructed tag: [n] EXPLICIT x, or [n] IMPLICIT SET/SEQUENCE OF x. */
const tagged = (tagNumber: number, ...value: Block[]): asn1js.Constructed => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value })

function algorithmIdentifier(algorithm: string, parameters?: Block | 'null'): asn1js.Sequence {
  if (parameters === undefined) return seq(oid(algorithm))
  return seq(oid(algorithm), parameters === 'null' ? new asn1js.Null() : parameters)
}

/** DER orders a SET OF by the encodings of its elements (X.690 §11.6). */
function sortForDer(elements: Block[]): Block[] {
  return elements
    .map((element) => ({ element, der: toDer(element) }))
    .sort((a, b) => Buffer.compare(a.der, b.der))
    .map(({ element }) => element)
}

/** Re-embeds DER produced elsewhere (a certificate, a Name) as an asn1js block, byte for byte. */
function embed(der: Uint8Array, what: string): Block {
  const block = parseBer(der, what)
  if (!toDer(block).equals(Buffer.from(der))) throw new Error(`${what} is not DER`)
  return block
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/

function buildName(subject: ScepSubject): asn1js.Sequence {
  // One attribute per RDN, most significant first: O, then CN.
  const rdns: [string, string][] = []
  if (subject.organization !== undefined) rdns.push([ScepOid.organizationName, subject.organization])
  rdns.push([ScepOid.commonName, subject.commonName])
  return seq(...rdns.map(([type, value]) => new asn1js.Set({ value: [seq(oid(type), new asn1js.Utf8String({ value }))] })))
}

function spkiBlock(publicKey: KeyObject): Block {
  return embed(publicKey.export({ type: 'spki', format: 'der' }), 'SubjectPublicKeyInfo')
}

function requireRsa(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`${what} must be an RSA key (got ${key.asymmetricKeyType ?? key.type})`)
}

function randomSerial(): asn1js.Integer {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x40 // positive, and no leading zero octet to trim
  return new asn1js.Integer({ valueHex: bytes })
}

/** Signs `tbs` with sha256WithRSAEncryption and wraps it as Certificate / CertificationRequest. */
function signedStructure(tbs: asn1js.Sequence, privateKey: KeyObject): Buffer {
  const signature = sign('sha256', toDer(tbs), privateKey)
  return toDer(seq(tbs, algorithmIdentifier(ScepOid.sha256WithRSAEncryption, 'null'), new asn1js.BitString({ valueHex: signature, unusedBits: 0 })))
}

// ---------------------------------------------------------------------------------------------
// ASN.1 parsing helpers

function parseBer(data: Uint8Array, what: string): Block {
  const parsed = asn1js.fromBER(data, { parseEmbedded: false })
  if (parsed.offset === -1) throw new Error(`${what}: not valid BER (${parsed.result.error})`)
  if (parsed.offset !== data.byteLength) throw new Error(`${what}: ${data.byteLength - parsed.offset} bytes after the structure`)
  return parsed.result
}

const UNIVERSAL = 1
const CONTEXT = 3
const isTag = (block: Block | undefined, tagClass: number, tagNumber: number): block is Block =>
  block !== undefined && block.idBlock.tagClass === tagClass && block.idBlock.tagNumber === tagNumber
const isUniversal = (block: Block | undefined, tagNumber: number): block is Block => isTag(block, UNIVERSAL, tagNumber)
const TAG = { boolean: 1, integer: 2, bitString: 3, octetString: 4, null: 5, oid: 6, utf8String: 12, sequence: 16, set: 17, printableString: 19 } as const

function children(block: Block, what: string): Block[] {
  if (!block.idBlock.isConstructed) throw new Error(`${what}: expected a constructed value`)
  return (block.valueBlock as unknown as { value: Block[] }).value
}
function expectSequence(block: Block | undefined, what: string): Block[] {
  if (!isUniversal(block, TAG.sequence)) throw new Error(`${what}: expected a SEQUENCE`)
  return children(block, what)
}
function expectSet(block: Block | undefined, what: string): Block[] {
  if (!isUniversal(block, TAG.set)) throw new Error(`${what}: expected a SET`)
  return children(block, what)
}
function oidString(block: Block | undefined, what: string): string {
  if (!isUniversal(block, TAG.oid)) throw new Error(`${what}: expected an OBJECT IDENTIFIER`)
  return (block as asn1js.ObjectIdentifier).valueBlock.toString()
}
function integerValue(block: Block | undefined, what: string): number {
  if (!isUniversal(block, TAG.integer)) throw new Error(`${what}: expected an INTEGER`)
  return (block as asn1js.Integer).valueBlock.valueDec
}
/** The bytes of a primitive value, or the concatenated segments of a constructed (BER) string. */
function contentBytes(block: Block): Buffer {
  if (block.idBlock.isConstructed) return Buffer.concat(children(block, 'constructed string').map(contentBytes))
  return Buffer.from((block.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView)
}
function octetStringBytes(block: Block | undefined, what: string): Buffer {
  if (!isUniversal(block, TAG.octetString)) throw new Error(`${what}: expected an OCTET STRING`)
  return contentBytes(block)
}
/** The exact encoding a parsed block came from. */
const rawBytes = (block: Block): Buffer => Buffer.from(block.valueBeforeDecodeView)

function parseAlgorithm(block: Block | undefined, what: string): { oid: string; parameters: Block | undefined } {
  const [algorithm, parameters] = expectSequence(block, what)
  return { oid: oidString(algorithm, `${what}.algorithm`), parameters }
}

/** ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } */
function parseContentInfo(data: Uint8Array, expectedType: string, what: string): Block {
  const [type, content] = expectSequence(parseBer(data, what), what)
  const contentType = oidString(type, `${what}.contentType`)
  if (contentType !== expectedType) throw new Error(`${what}: content type ${contentType}, expected ${expectedType}`)
  if (!isTag(content, CONTEXT, 0)) throw new Error(`${what}: no [0] content`)
  const inner = children(content, what)[0]
  if (!inner) throw new Error(`${what}: empty content`)
  return inner
}

function contentInfo(type: string, content: Block): asn1js.Sequence {
  return seq(oid(type), tagged(0, content))
}

// ---------------------------------------------------------------------------------------------
// Keys, CSR, self-signed certificate

export function generateRsaKey(bits = 2048): ScepKeyPair {
  return generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 })
}

export interface BuildCsrOptions {
  key: ScepKeyPair
  subject: ScepSubject
  challenge?: string
  /** How the challengePassword is encoded (default PrintableString when the text allows it). */
  challengeEncoding?: 'printable' | 'utf8'
}

/** A DER PKCS#10 CertificationRequest (RFC 2986), signed sha256WithRSAEncryption. */
export function buildCsr(options: BuildCsrOptions): Buffer {
  requireRsa(options.key.privateKey, 'the CSR key')
  const attributes: Block[] = []
  if (options.challenge !== undefined) {
    const encoding = options.challengeEncoding ?? (PRINTABLE.test(options.challenge) ? 'printable' : 'utf8')
    if (encoding === 'printable' && !PRINTABLE.test(options.challenge)) throw new Error('challenge has characters a PrintableString cannot hold')
    const value = encoding === 'printable' ? printable(options.challenge) : new asn1js.Utf8String({ value: options.challenge })
    attributes.push(seq(oid(ScepOid.challengePassword), new asn1js.Set({ value: [value] })))
  }
  // CertificationRequestInfo ::= SEQUENCE { version 0, subject, subjectPKInfo, attributes [0] IMPLICIT SET OF }
  const info = seq(int(0), buildName(options.subject), spkiBlock(options.key.publicKey), tagged(0, ...sortForDer(attributes)))
  return signedStructure(info, options.key.privateKey)
}

export interface SelfSignedOptions {
  /** Validity in seconds from now (default one day); it starts five minutes ago. */
  validSeconds?: number
}

/**
 * The transient self-signed certificate a client signs its first PKCSReq with (RFC 8894 §2.3):
 * subject = issuer = the CSR subject, same key, keyUsage digitalSignature + keyEncipherment
 * (the CertRep is encrypted to it), a subjectKeyIdentifier, short validity.
 */
export function selfSignedCertificate(key: ScepKeyPair, subject: ScepSubject, options: SelfSignedOptions = {}): Buffer {
  requireRsa(key.privateKey, 'the certificate key')
  const now = Math.floor(Date.now() / 1000) * 1000
  const notBefore = new Date(now - 5 * 60_000)
  const notAfter = new Date(now + (options.validSeconds ?? 86_400) * 1000)
  const name = buildName(subject)
  const spki = spkiBlock(key.publicKey)
  const spkiFields = children(spki, 'SubjectPublicKeyInfo')
  const keyIdentifier = createHash('sha1').update(contentBytes(spkiFields[1]!)).digest()
  const extension = (id: string, critical: boolean, value: Block) =>
    critical ? seq(oid(id), new asn1js.Boolean({ value: true }), octets(toDer(value))) : seq(oid(id), octets(toDer(value)))
  const tbs = seq(
    tagged(0, int(2)), // v3
    randomSerial(),
    algorithmIdentifier(ScepOid.sha256WithRSAEncryption, 'null'),
    name,
    seq(new asn1js.UTCTime({ valueDate: notBefore }), new asn1js.UTCTime({ valueDate: notAfter })),
    buildName(subject),
    spki,
    tagged(
      3,
      seq(
        // KeyUsage BIT STRING: digitalSignature (bit 0) and keyEncipherment (bit 2) = 101xxxxx, 5 unused bits.
        extension(ScepOid.keyUsage, true, new asn1js.BitString({ valueHex: new Uint8Array([0xa0]), unusedBits: 5 })),
        extension(ScepOid.subjectKeyIdentifier, false, octets(keyIdentifier)),
      ),
    ),
  )
  return signedStructure(tbs, key.privateKey)
}

// ---------------------------------------------------------------------------------------------
// Certificates

interface CertificateInfo {
  der: Buffer
  certificate: pkijs.Certificate
  issuerDer: Buffer
  subjectDer: Buffer
  serial: Buffer
  spkiDer: Buffer
  publicKey: KeyObject
  isCa: boolean
  selfIssued: boolean
  /** KeyUsage bits, or undefined when the extension is absent. */
  keyUsage?: { digitalSignature: boolean; keyEncipherment: boolean; keyCertSign: boolean }
  subjectKeyIdentifier?: Buffer
}

function certificateInfo(der: Buffer): CertificateInfo {
  const block = parseBer(der, 'certificate')
  const certificate = new pkijs.Certificate({ schema: block })
  const tbs = expectSequence(expectSequence(block, 'certificate')[0], 'tbsCertificate')
  // TBSCertificate: [0] version?, serialNumber, signature, issuer, validity, subject, spki, ...
  const fields = isTag(tbs[0], CONTEXT, 0) ? tbs.slice(1) : tbs
  const [serialBlock, , issuerBlock, , subjectBlock, spkiBlockParsed] = fields
  if (!serialBlock || !issuerBlock || !subjectBlock || !spkiBlockParsed) throw new Error('certificate: truncated tbsCertificate')
  const info: CertificateInfo = {
    der,
    certificate,
    issuerDer: rawBytes(issuerBlock),
    subjectDer: rawBytes(subjectBlock),
    serial: contentBytes(serialBlock),
    spkiDer: rawBytes(spkiBlockParsed),
    publicKey: new X509Certificate(der).publicKey,
    isCa: false,
    selfIssued: false,
  }
  info.selfIssued = info.issuerDer.equals(info.subjectDer)
  for (const extension of certificate.extensions ?? []) {
    const value = extension.extnValue.valueBlock.valueHexView
    if (extension.extnID === ScepOid.basicConstraints) {
      const [cA] = expectSequence(parseBer(value, 'basicConstraints'), 'basicConstraints')
      info.isCa = isUniversal(cA, TAG.boolean) && (cA as asn1js.Boolean).valueBlock.value
    } else if (extension.extnID === ScepOid.keyUsage) {
      const bits = parseBer(value, 'keyUsage')
      if (!isUniversal(bits, TAG.bitString)) throw new Error('keyUsage: expected a BIT STRING')
      const first = contentBytes(bits)[0] ?? 0
      info.keyUsage = { digitalSignature: (first & 0x80) !== 0, keyEncipherment: (first & 0x20) !== 0, keyCertSign: (first & 0x04) !== 0 }
    } else if (extension.extnID === ScepOid.subjectKeyIdentifier) {
      info.subjectKeyIdentifier = octetStringBytes(parseBer(value, 'subjectKeyIdentifier'), 'subjectKeyIdentifier')
    }
  }
  return info
}

/** IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber INTEGER } of a certificate. */
function issuerAndSerialNumber(certificate: CertificateInfo): asn1js.Sequence {
  return seq(embed(certificate.issuerDer, 'issuer'), new asn1js.Integer({ valueHex: certificate.serial }))
}

/** Does a SignerIdentifier / RecipientIdentifier name this certificate? */
function identifies(identifier: Block, certificate: CertificateInfo): boolean {
  if (isTag(identifier, CONTEXT, 0)) {
    const keyId = contentBytes(identifier)
    const computed = createHash('sha1')
      .update(contentBytes(children(parseBer(certificate.spkiDer, 'spki'), 'spki')[1]!))
      .digest()
    return keyId.equals(certificate.subjectKeyIdentifier ?? computed)
  }
  const [issuer, serial] = expectSequence(identifier, 'IssuerAndSerialNumber')
  if (!issuer || !isUniversal(serial, TAG.integer)) throw new Error('IssuerAndSerialNumber: malformed')
  return rawBytes(issuer).equals(certificate.issuerDer) && contentBytes(serial).equals(certificate.serial)
}

/** The DER certificates of a SignedData's [0] IMPLICIT CertificateSet (other formats skipped). */
function certificatesOf(signedDataFields: Block[]): Buffer[] {
  const set = signedDataFields.find((field) => isTag(field, CONTEXT, 0))
  if (!set) return []
  return children(set, 'certificates')
    .filter((choice) => isUniversal(choice, TAG.sequence))
    .map(rawBytes)
}

/** Certificates of a degenerate "certs-only" SignedData ContentInfo (RFC 8894 §3.4). */
export function parseCertsOnly(der: Uint8Array): Buffer[] {
  const fields = expectSequence(parseContentInfo(der, ScepOid.signedData, 'certs-only SignedData'), 'SignedData')
  return certificatesOf(fields)
}

/** A degenerate certs-only SignedData ContentInfo (DER), as GetCACert and a CertRep carry. */
export function buildCertsOnly(certificates: Buffer[]): Buffer {
  const signedData = seq(
    int(1),
    new asn1js.Set({ value: [] }),
    seq(oid(ScepOid.data)),
    tagged(0, ...sortForDer(certificates.map((der, i) => embed(der, `certificate ${i}`)))),
    new asn1js.Set({ value: [] }),
  )
  return toDer(contentInfo(ScepOid.signedData, signedData))
}

// ---------------------------------------------------------------------------------------------
// Symmetric encryption and RSA key transport

/** DES keys carry odd parity in each byte's low bit (FIPS 46-3); ciphers ignore it, but be proper. */
function withDesParity(key: Buffer): Buffer {
  for (let i = 0; i < key.length; i++) {
    const high = key[i]! & 0xfe
    let ones = 0
    for (let b = high; b; b >>= 1) ones += b & 1
    key[i] = high | (ones % 2 === 0 ? 1 : 0)
  }
  return key
}

function cipherKey(spec: CipherSpec, key: Buffer): Buffer {
  return spec.keyLength === 8 ? Buffer.concat([key, key, key]) : key
}

export type ScepEncoding = 'der' | 'ber'

/**
 * pkcsPKIEnvelope: DER (or streaming BER) of ContentInfo(EnvelopedData) with one
 * KeyTransRecipientInfo (issuerAndSerialNumber, rsaEncryption + NULL) and `content` encrypted
 * as id-data with a fresh key and IV (the IV is the OCTET STRING parameter of the algorithm).
 */
export function envelope(content: Buffer, recipientCertificateDer: Buffer, encryption: ScepEncryption = 'aes128', encoding: ScepEncoding = 'der'): Buffer {
  const recipient = certificateInfo(recipientCertificateDer)
  requireRsa(recipient.publicKey, 'the recipient certificate key')
  const spec = ciphers[encryption]
  const key = encryption === 'des' || encryption === 'des3' ? withDesParity(randomBytes(spec.keyLength)) : randomBytes(spec.keyLength)
  const iv = randomBytes(spec.ivLength)
  const cipher = createCipheriv(spec.cipher, cipherKey(spec, key), iv) // PKCS#7 padding, as CMS wants (RFC 5652 §6.3)
  const encrypted = Buffer.concat([cipher.update(content), cipher.final()])
  const encryptedKey = publicEncrypt({ key: recipient.publicKey, padding: constants.RSA_PKCS1_PADDING }, key)

  const keyTransRecipientInfo = seq(
    int(0), // version 0: rid is issuerAndSerialNumber
    issuerAndSerialNumber(recipient),
    algorithmIdentifier(ScepOid.rsaEncryption, 'null'),
    octets(encryptedKey),
  )
  // encryptedContent [0] IMPLICIT OCTET STRING: primitive in DER, 1 KiB segments in BER.
  const encryptedContent =
    encoding === 'der'
      ? new asn1js.Primitive({ idBlock: { tagClass: CONTEXT, tagNumber: 0 }, valueHex: encrypted })
      : indefinite(new asn1js.Constructed({ idBlock: { tagClass: CONTEXT, tagNumber: 0 }, value: segments(encrypted) }))
  const encryptedContentInfo = seq(oid(ScepOid.data), algorithmIdentifier(spec.oid, octets(iv)), encryptedContent)
  // version 0: no originatorInfo, only version-0 KeyTransRecipientInfos, no unprotectedAttrs.
  const envelopedData = seq(int(0), new asn1js.Set({ value: [keyTransRecipientInfo] }), encryptedContentInfo)
  const outer = contentInfo(ScepOid.envelopedData, envelopedData)
  if (encoding === 'ber') for (const block of [outer, outer.valueBlock.value[1]!, envelopedData, encryptedContentInfo]) indefinite(block)
  return toDer(outer)
}

function indefinite<T extends Block>(block: T): T {
  block.lenBlock.isIndefiniteForm = true
  ;(block.valueBlock as unknown as { isIndefiniteForm: boolean }).isIndefiniteForm = true
  return block
}
function segments(bytes: Buffer, size = 1024): asn1js.OctetString[] {
  const out: asn1js.OctetString[] = []
  for (let offset = 0; offset < bytes.length; offset += size) out.push(octets(bytes.subarray(offset, offset + size)))
  return out
}

/** RSAES-PKCS1-v1_5 decryption by hand (RSA_NO_PADDING, then strip 00 02 PS 00 M; RFC 8017 §7.2.2). */
function rsaPkcs1Decrypt(privateKey: KeyObject, encrypted: Buffer): Buffer {
  const modulusBits = privateKey.asymmetricKeyDetails?.modulusLength
  if (!modulusBits) throw new Error('recipientKey is not an RSA private key')
  const k = Math.ceil(modulusBits / 8)
  if (encrypted.length > k) throw new Error('encryptedKey is longer than the modulus')
  const padded = encrypted.length < k ? Buffer.concat([Buffer.alloc(k - encrypted.length), encrypted]) : encrypted
  const block = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, padded)
  const em = block.length < k ? Buffer.concat([Buffer.alloc(k - block.length), block]) : block
  const separator = em.indexOf(0, 2)
  if (em[0] !== 0 || em[1] !== 2 || separator < 10) throw new Error('encryptedKey does not decrypt with recipientKey (bad PKCS#1 v1.5 padding)')
  return em.subarray(separator + 1)
}

export interface OpenedEnvelope {
  content: Buffer
  encryption: ScepEncryption
}

/** Decrypts a pkcsPKIEnvelope (ContentInfo(EnvelopedData)) with our RSA key. */
export function openEnvelope(der: Uint8Array, recipientKey: KeyObject, recipientCertificateDer?: Buffer): OpenedEnvelope {
  const fields = expectSequence(parseContentInfo(der, ScepOid.envelopedData, 'pkcsPKIEnvelope'), 'EnvelopedData')
  integerValue(fields[0], 'EnvelopedData.version')
  const rest = isTag(fields[1], CONTEXT, 0) ? fields.slice(2) : fields.slice(1) // skip originatorInfo
  const [recipientInfos, encryptedContentInfo] = rest
  const [contentTypeBlock, algorithmBlock, encryptedContentBlock] = expectSequence(encryptedContentInfo, 'EncryptedContentInfo')
  const contentType = oidString(contentTypeBlock, 'EncryptedContentInfo.contentType')
  if (contentType !== ScepOid.data) throw new Error(`EncryptedContentInfo.contentType is ${contentType}, expected id-data`)
  const algorithm = parseAlgorithm(algorithmBlock, 'contentEncryptionAlgorithm')
  const encryption = (Object.keys(ciphers) as ScepEncryption[]).find((name) => ciphers[name].oid === algorithm.oid)
  if (!encryption) throw new Error(`unsupported content-encryption algorithm ${algorithm.oid}`)
  const spec = ciphers[encryption]
  const iv = octetStringBytes(algorithm.parameters, 'content-encryption IV')
  if (iv.length !== spec.ivLength) throw new Error(`IV of ${iv.length} bytes for ${encryption}`)
  if (!isTag(encryptedContentBlock, CONTEXT, 0)) throw new Error('EncryptedContentInfo has no encryptedContent')
  const encrypted = contentBytes(encryptedContentBlock)

  const recipient = recipientCertificateDer ? certificateInfo(recipientCertificateDer) : undefined
  const errors: string[] = []
  for (const recipientInfo of expectSet(recipientInfos, 'recipientInfos')) {
    if (!isUniversal(recipientInfo, TAG.sequence)) continue // not a KeyTransRecipientInfo
    const [, rid, keyAlgorithm, encryptedKey] = children(recipientInfo, 'KeyTransRecipientInfo')
    if (!rid) continue
    if (recipient && !identifies(rid, recipient)) {
      errors.push('a RecipientInfo names another certificate than ours')
      continue
    }
    const keyEncryption = parseAlgorithm(keyAlgorithm, 'keyEncryptionAlgorithm').oid
    if (keyEncryption !== ScepOid.rsaEncryption) {
      errors.push(`key encryption ${keyEncryption} is not rsaEncryption`)
      continue
    }
    try {
      const key = rsaPkcs1Decrypt(recipientKey, octetStringBytes(encryptedKey, 'encryptedKey'))
      if (key.length !== spec.keyLength) throw new Error(`content-encryption key of ${key.length} bytes for ${encryption}`)
      const decipher = createDecipheriv(spec.cipher, cipherKey(spec, key), iv)
      return { content: Buffer.concat([decipher.update(encrypted), decipher.final()]), encryption }
    } catch (error) {
      errors.push((error as Error).message)
    }
  }
  throw new Error(`no RecipientInfo of the pkcsPKIEnvelope decrypts with our key${errors.length ? `: ${errors.join('; ')}` : ''}`)
}

// ---------------------------------------------------------------------------------------------
// Signing pkiMessages (SignedData)

export interface ScepAttributes {
  messageType: ScepMessageType
  transactionId: string
  senderNonce?: Buffer
  recipientNonce?: Buffer
  pkiStatus?: ScepPkiStatus
  failInfo?: ScepFailInfo
  failInfoText?: string
}

export interface SignPkiMessageOptions {
  /** The eContent (a pkcsPKIEnvelope); absent for a failed or pending CertRep. */
  content?: Buffer
  signerCertificateDer: Buffer
  signerKey: KeyObject
  attributes: ScepAttributes
  digest?: ScepDigest // default sha256
  /** SignerInfo.signatureAlgorithm: rsaEncryption (what clients send; default) or shaNNNWithRSAEncryption. */
  signatureAlgorithm?: 'rsaEncryption' | 'sha-with-rsa'
  /** Digest AlgorithmIdentifier parameters: absent (RFC 5754/3370 say generate absent; default) or NULL. */
  digestParameters?: 'absent' | 'null'
  /** Certificates in SignedData.certificates (default: just the signer's). */
  certificates?: Buffer[]
  /** signingTime attribute (default now; null leaves it out). */
  signingTime?: Date | null
  /** 'ber': indefinite lengths on the outer layers and a segmented eContent, like streaming encoders. */
  encoding?: ScepEncoding
  // For negative tests:
  extraSignedAttributes?: { oid: string; values: Block[] }[]
  omitSignedAttributes?: string[]
  /** Flip a bit of the signature. */
  corruptSignature?: boolean
  /** Sign over these bytes instead of eContent for the messageDigest attribute. */
  messageDigestOver?: Buffer
}

function attribute(type: string, ...values: Block[]): asn1js.Sequence {
  return seq(oid(type), new asn1js.Set({ value: values }))
}

/** A pkiMessage: DER (or BER) ContentInfo(SignedData) over `content` with the SCEP signed attributes. */
export function signPkiMessage(options: SignPkiMessageOptions): Buffer {
  const signer = certificateInfo(options.signerCertificateDer)
  const digest = options.digest ?? 'sha256'
  const encoding = options.encoding ?? 'der'
  const digestAlgorithm = () => algorithmIdentifier(digestOids[digest], options.digestParameters === 'null' ? 'null' : undefined)
  const a = options.attributes
  const omit = new Set(options.omitSignedAttributes ?? [])

  const attributes: asn1js.Sequence[] = []
  const add = (type: string, ...values: Block[]) => {
    if (!omit.has(type)) attributes.push(attribute(type, ...values))
  }
  add(ScepOid.contentType, oid(ScepOid.data))
  const signingTime = options.signingTime === undefined ? new Date() : options.signingTime
  if (signingTime) add(ScepOid.signingTime, new asn1js.UTCTime({ valueDate: signingTime }))
  add(
    ScepOid.messageDigest,
    octets(
      createHash(digest)
        .update(options.messageDigestOver ?? options.content ?? Buffer.alloc(0))
        .digest(),
    ),
  )
  add(ScepOid.messageType, printable(messageTypeCodes[a.messageType]))
  add(ScepOid.transactionID, printable(a.transactionId))
  if (a.senderNonce) add(ScepOid.senderNonce, octets(a.senderNonce))
  if (a.recipientNonce) add(ScepOid.recipientNonce, octets(a.recipientNonce))
  if (a.pkiStatus) add(ScepOid.pkiStatus, printable(pkiStatusCodes[a.pkiStatus]))
  if (a.failInfo) add(ScepOid.failInfo, printable(failInfoCodes[a.failInfo]))
  if (a.failInfoText !== undefined) add(ScepOid.failInfoText, new asn1js.Utf8String({ value: a.failInfoText }))
  for (const extra of options.extraSignedAttributes ?? []) attributes.push(attribute(extra.oid, ...extra.values))

  // The signature covers the DER of the attributes as a SET OF (tag 0x31, RFC 5652 §5.4); the
  // SignerInfo carries the same content under [0] IMPLICIT.
  const sorted = sortForDer(attributes)
  const signedAttributesDer = toDer(new asn1js.Set({ value: sorted }))
  const signature = sign(digest, signedAttributesDer, options.signerKey)
  if (options.corruptSignature) signature.writeUInt8(signature.readUInt8(signature.length - 1) ^ 0x01, signature.length - 1)
  const signedAttrs = tagged(0, ...sorted)
  if (!toDer(signedAttrs).subarray(1).equals(signedAttributesDer.subarray(1))) throw new Error('internal: signedAttrs encodings differ')

  const signatureAlgorithm =
    (options.signatureAlgorithm ?? 'rsaEncryption') === 'rsaEncryption'
      ? algorithmIdentifier(ScepOid.rsaEncryption, 'null')
      : algorithmIdentifier(shaWithRsaOids[digest], 'null')
  const signerInfo = seq(int(1), issuerAndSerialNumber(signer), digestAlgorithm(), signedAttrs, signatureAlgorithm, octets(signature))

  const eContent =
    options.content === undefined
      ? undefined
      : encoding === 'der'
        ? tagged(0, octets(options.content))
        : indefinite(tagged(0, indefinite(new asn1js.OctetString({ idBlock: { isConstructed: true }, isConstructed: true, value: segments(options.content) }))))
  const encapContentInfo = eContent ? seq(oid(ScepOid.data), eContent) : seq(oid(ScepOid.data))
  const certificates = options.certificates ?? [options.signerCertificateDer]
  const signedData = seq(
    int(1), // version 1: issuerAndSerialNumber signer, id-data content, only X.509 certificates
    new asn1js.Set({ value: [digestAlgorithm()] }),
    encapContentInfo,
    ...(certificates.length ? [tagged(0, ...sortForDer(certificates.map((der, i) => embed(der, `certificate ${i}`))))] : []),
    new asn1js.Set({ value: [signerInfo] }),
  )
  const outer = contentInfo(ScepOid.signedData, signedData)
  if (encoding === 'ber') for (const block of [outer, outer.valueBlock.value[1]!, signedData, encapContentInfo]) indefinite(block)
  return toDer(outer)
}

// ---------------------------------------------------------------------------------------------
// Requests: PKCSReq / RenewalReq / CertPoll

export interface PkiOperationOptions {
  csrDer: Buffer
  /** The CA or RA certificate to encrypt to. */
  recipientCertificateDer: Buffer
  /** The self-signed certificate (first enrollment) or the existing identity (renewal). */
  signerCertificateDer: Buffer
  signerKey: KeyObject
  encryption?: ScepEncryption // default aes128
  digest?: ScepDigest // default sha256
  messageType?: 'PKCSReq' | 'RenewalReq' // default PKCSReq
  /** Default: uppercase hex SHA-1 of the CSR's SubjectPublicKeyInfo DER. */
  transactionId?: string
  senderNonce?: Buffer // default 16 random bytes
  signatureAlgorithm?: 'rsaEncryption' | 'sha-with-rsa' // default rsaEncryption
  /** Outer/inner encoding (default der). */
  encoding?: ScepEncoding
  digestParameters?: 'absent' | 'null'
  /** Extra certificates for SignedData.certificates (after the signer's). */
  extraCertificates?: Buffer[]
  // Negative-test knobs, passed to signPkiMessage.
  corruptSignature?: boolean
  omitSignedAttributes?: string[]
  extraSignedAttributes?: { oid: string; values: Block[] }[]
}

export interface BuiltPkiOperation {
  der: Buffer
  transactionId: string
  senderNonce: Buffer
}

/** The SubjectPublicKeyInfo DER and subject Name DER of a PKCS#10 request. */
export function csrFields(csrDer: Uint8Array): { spkiDer: Buffer; subjectDer: Buffer } {
  const [info] = expectSequence(parseBer(csrDer, 'CSR'), 'CertificationRequest')
  const [, subject, spki] = expectSequence(info, 'CertificationRequestInfo')
  if (!subject || !spki) throw new Error('CSR: truncated CertificationRequestInfo')
  return { spkiDer: rawBytes(spki), subjectDer: rawBytes(subject) }
}

/** The conventional transactionID: hex of the SHA-1 of the request's SubjectPublicKeyInfo. */
export function defaultTransactionId(csrDer: Uint8Array): string {
  return createHash('sha1').update(csrFields(csrDer).spkiDer).digest('hex').toUpperCase()
}

type SigningOptions = Omit<PkiOperationOptions, 'csrDer' | 'messageType' | 'transactionId'>

function buildRequest(messageType: ScepMessageType, messageData: Buffer, transactionId: string, options: SigningOptions): BuiltPkiOperation {
  const senderNonce = options.senderNonce ?? randomBytes(16)
  const encoding = options.encoding ?? 'der'
  const der = signPkiMessage({
    content: envelope(messageData, options.recipientCertificateDer, options.encryption ?? 'aes128', encoding),
    signerCertificateDer: options.signerCertificateDer,
    signerKey: options.signerKey,
    attributes: { messageType, transactionId, senderNonce },
    digest: options.digest ?? 'sha256',
    signatureAlgorithm: options.signatureAlgorithm ?? 'rsaEncryption',
    certificates: [options.signerCertificateDer, ...(options.extraCertificates ?? [])],
    encoding,
    ...(options.digestParameters ? { digestParameters: options.digestParameters } : {}),
    ...(options.corruptSignature ? { corruptSignature: true } : {}),
    ...(options.omitSignedAttributes ? { omitSignedAttributes: options.omitSignedAttributes } : {}),
    ...(options.extraSignedAttributes ? { extraSignedAttributes: options.extraSignedAttributes } : {}),
  })
  return { der, transactionId, senderNonce }
}

/** A PKCSReq or RenewalReq pkiMessage (RFC 8894 §3.3.1). */
export function buildPkiOperation(options: PkiOperationOptions): BuiltPkiOperation {
  return buildRequest(options.messageType ?? 'PKCSReq', options.csrDer, options.transactionId ?? defaultTransactionId(options.csrDer), options)
}

export interface CertPollOptions extends SigningOptions {
  /** The pending request: its subject goes into IssuerAndSubject. */
  csrDer: Buffer
  /** The CA certificate: its subject is the issuer in IssuerAndSubject. */
  caCertificateDer: Buffer
  /** The transactionID of the pending request (required: polling continues that transaction). */
  transactionId: string
}

/** A CertPoll (GetCertInitial, messageType 20) pkiMessage: messageData is IssuerAndSubject (RFC 8894 §3.3.3). */
export function buildCertPoll(options: CertPollOptions): BuiltPkiOperation {
  const ca = certificateInfo(options.caCertificateDer)
  const issuerAndSubject = toDer(seq(embed(ca.subjectDer, 'CA subject'), embed(csrFields(options.csrDer).subjectDer, 'CSR subject')))
  return buildRequest('CertPoll', issuerAndSubject, options.transactionId, options)
}

// ---------------------------------------------------------------------------------------------
// Parsing pkiMessages (both directions: a test server can parse requests with it too)

export interface ParsedPkiMessage {
  messageType: ScepMessageType
  transactionId: string
  senderNonce?: Buffer
  recipientNonce?: Buffer
  pkiStatus?: ScepPkiStatus
  failInfo?: ScepFailInfo
  failInfoText?: string
  signingTime?: Date
  /** The certificate that signed the message (from SignedData.certificates). */
  signerCertificateDer: Buffer
  certificates: Buffer[]
  digest: ScepParsedDigest
  signatureAlgorithm: string
  /** eContent: the pkcsPKIEnvelope (undefined when absent). */
  content?: Buffer
  /** All signed attributes, by OID, as parsed blocks. */
  signedAttributes: Map<string, Block[]>
}

export interface ParsePkiMessageOptions {
  /** If given, the signer must be one of these (DER equality). */
  trustedSignerCertificates?: Buffer[]
}

function singleValue(attributes: Map<string, Block[]>, type: string, name: string): Block | undefined {
  const values = attributes.get(type)
  if (values === undefined) return undefined
  if (values.length !== 1) throw new Error(`${name} attribute must have exactly one value (has ${values.length})`)
  return values[0]
}
function printableAttribute(attributes: Map<string, Block[]>, type: string, name: string): string | undefined {
  const value = singleValue(attributes, type, name)
  if (value === undefined) return undefined
  if (!isUniversal(value, TAG.printableString)) throw new Error(`${name} must be a PrintableString`)
  return (value as asn1js.PrintableString).valueBlock.value
}
function octetAttribute(attributes: Map<string, Block[]>, type: string, name: string): Buffer | undefined {
  const value = singleValue(attributes, type, name)
  return value === undefined ? undefined : octetStringBytes(value, name)
}

/**
 * Parses a pkiMessage and verifies its signature: the signer certificate is found in
 * SignedData.certificates by its SignerIdentifier, messageDigest must equal the digest of the
 * eContent (of the empty string when eContent is absent), contentType must be id-data, and the
 * signature over the DER SET OF signed attributes must verify with the signer's public key.
 * Throws on any failure.
 */
export function parsePkiMessage(der: Uint8Array, options: ParsePkiMessageOptions = {}): ParsedPkiMessage {
  const fields = expectSequence(parseContentInfo(der, ScepOid.signedData, 'pkiMessage'), 'SignedData')
  integerValue(fields[0], 'SignedData.version')
  const [eContentTypeBlock, eContentBlock] = expectSequence(fields[2], 'encapContentInfo')
  const eContentType = oidString(eContentTypeBlock, 'eContentType')
  if (eContentType !== ScepOid.data) throw new Error(`eContentType is ${eContentType}, expected id-data`)
  let content: Buffer | undefined
  if (eContentBlock !== undefined) {
    if (!isTag(eContentBlock, CONTEXT, 0)) throw new Error('encapContentInfo: eContent is not [0]')
    content = octetStringBytes(children(eContentBlock, 'eContent')[0], 'eContent')
  }
  const certificates = certificatesOf(fields)
  const signerInfos = expectSet(fields[fields.length - 1], 'signerInfos')
  if (signerInfos.length !== 1) throw new Error(`pkiMessage has ${signerInfos.length} SignerInfos, expected 1`)
  const signerFields = expectSequence(signerInfos[0], 'SignerInfo')
  const [, sid, digestAlgorithmBlock, signedAttrsBlock, signatureAlgorithmBlock, signatureBlock] = signerFields
  if (!sid) throw new Error('SignerInfo: no sid')
  const digestOid = parseAlgorithm(digestAlgorithmBlock, 'SignerInfo.digestAlgorithm').oid
  const digest = digestByOid.get(digestOid)
  if (!digest) throw new Error(`unsupported digest algorithm ${digestOid}`)
  if (!isTag(signedAttrsBlock, CONTEXT, 0)) throw new Error('SignerInfo has no signed attributes')
  const signatureAlgorithm = parseAlgorithm(signatureAlgorithmBlock, 'SignerInfo.signatureAlgorithm').oid
  const signature = octetStringBytes(signatureBlock, 'SignerInfo.signature')

  // Signer certificate
  const signerDer = certificates.find((candidate) => identifies(sid, certificateInfo(candidate)))
  if (!signerDer) throw new Error('the signer certificate is not in SignedData.certificates')
  const signer = certificateInfo(signerDer)
  if (options.trustedSignerCertificates && !options.trustedSignerCertificates.some((trusted) => trusted.equals(signerDer))) {
    throw new Error('the pkiMessage is signed by a certificate that is not trusted')
  }

  // Signed attributes
  const signedAttributes = new Map<string, Block[]>()
  for (const attributeBlock of children(signedAttrsBlock, 'signedAttrs')) {
    const [type, values] = expectSequence(attributeBlock, 'Attribute')
    const id = oidString(type, 'Attribute.type')
    if (signedAttributes.has(id)) throw new Error(`signed attribute ${id} appears twice`)
    signedAttributes.set(id, expectSet(values, `Attribute ${id} values`))
  }
  const contentTypeValue = singleValue(signedAttributes, ScepOid.contentType, 'contentType')
  if (!contentTypeValue) throw new Error('no contentType signed attribute')
  if (oidString(contentTypeValue, 'contentType') !== eContentType) throw new Error('the contentType attribute does not match eContentType')
  const messageDigest = octetAttribute(signedAttributes, ScepOid.messageDigest, 'messageDigest')
  if (!messageDigest) throw new Error('no messageDigest signed attribute')
  if (
    !messageDigest.equals(
      createHash(digest)
        .update(content ?? Buffer.alloc(0))
        .digest(),
    )
  ) {
    throw new Error(`messageDigest does not match the ${content ? 'eContent' : 'absent (empty) eContent'}`)
  }

  // Signature: over the signed attributes re-tagged as SET (0x31), RFC 5652 §5.4.
  const signedBytes = rawBytes(signedAttrsBlock)
  signedBytes[0] = 0x31
  const namedHash = hashOfSignatureOid.get(signatureAlgorithm)
  if (namedHash && namedHash !== digest) throw new Error(`signatureAlgorithm ${signatureAlgorithm} disagrees with digestAlgorithm ${digest}`)
  if (!namedHash && signatureAlgorithm !== ScepOid.rsaEncryption) throw new Error(`unsupported signature algorithm ${signatureAlgorithm}`)
  if (signatureAlgorithm === ScepOid.rsaEncryption) requireRsa(signer.publicKey, 'an rsaEncryption signer')
  if (!verify(digest, signedBytes, signer.publicKey, signature)) throw new Error('the pkiMessage signature does not verify')

  // SCEP attributes
  const messageTypeCode = printableAttribute(signedAttributes, ScepOid.messageType, 'messageType')
  if (messageTypeCode === undefined) throw new Error('no messageType attribute')
  const messageType = messageTypeByCode.get(messageTypeCode)
  if (!messageType) throw new Error(`unknown messageType "${messageTypeCode}"`)
  const transactionId = printableAttribute(signedAttributes, ScepOid.transactionID, 'transactionID')
  if (transactionId === undefined) throw new Error('no transactionID attribute')
  const parsed: ParsedPkiMessage = {
    messageType,
    transactionId,
    signerCertificateDer: signerDer,
    certificates,
    digest,
    signatureAlgorithm,
    signedAttributes,
  }
  if (content !== undefined) parsed.content = content
  const senderNonce = octetAttribute(signedAttributes, ScepOid.senderNonce, 'senderNonce')
  if (senderNonce) parsed.senderNonce = senderNonce
  const recipientNonce = octetAttribute(signedAttributes, ScepOid.recipientNonce, 'recipientNonce')
  if (recipientNonce) parsed.recipientNonce = recipientNonce
  const statusCode = printableAttribute(signedAttributes, ScepOid.pkiStatus, 'pkiStatus')
  if (statusCode !== undefined) {
    const status = pkiStatusByCode.get(statusCode)
    if (!status) throw new Error(`unknown pkiStatus "${statusCode}"`)
    parsed.pkiStatus = status
  }
  const failCode = printableAttribute(signedAttributes, ScepOid.failInfo, 'failInfo')
  if (failCode !== undefined) {
    const failInfo = failInfoByCode.get(failCode)
    if (!failInfo) throw new Error(`unknown failInfo "${failCode}"`)
    parsed.failInfo = failInfo
  }
  const failText = singleValue(signedAttributes, ScepOid.failInfoText, 'failInfoText')
  if (failText) {
    if (!isUniversal(failText, TAG.utf8String)) throw new Error('failInfoText must be a UTF8String')
    parsed.failInfoText = (failText as asn1js.Utf8String).valueBlock.value
  }
  const time = singleValue(signedAttributes, ScepOid.signingTime, 'signingTime')
  if (time instanceof asn1js.UTCTime || time instanceof asn1js.GeneralizedTime) parsed.signingTime = time.toDate()
  return parsed
}

// ---------------------------------------------------------------------------------------------
// CertRep

export interface CertRep {
  pkiStatus: ScepPkiStatus
  failInfo?: ScepFailInfo
  failInfoText?: string
  transactionId: string
  recipientNonce?: Buffer
  senderNonce?: Buffer
  /** The certificate that signed the CertRep (from SignedData.certificates). */
  signerCertificateDer: Buffer
  digest: ScepParsedDigest
  /** SignerInfo.signatureAlgorithm OID. */
  signatureAlgorithm: string
  /** What the server encrypted the response with (SUCCESS only). */
  contentEncryption?: ScepEncryption
  /** The decrypted certs-only content (SUCCESS only), the issued certificate first if identifiable. */
  certificates: Buffer[]
}

export interface ParseCertRepOptions {
  /** Our key: the one of the certificate that signed the request. */
  recipientKey: KeyObject
  /** If given, the CertRep signer must be one of these. */
  trustedSignerCertificates?: Buffer[]
  /** If given, the envelope's RecipientInfo must name this certificate (the request's signer). */
  recipientCertificateDer?: Buffer
  /** The requested public key: the issued certificate is the one with it (moved first). */
  requestPublicKey?: KeyObject
  /** If given, transactionID must echo it. */
  expectedTransactionId?: string
  /** If given (our senderNonce), recipientNonce must equal it. */
  expectedRecipientNonce?: Buffer
}

/**
 * Parses a CertRep: verifies its signature (throws on a bad one), checks messageType is CertRep
 * and pkiStatus is present, optionally checks the signer / transactionID / recipientNonce, and on
 * SUCCESS decrypts the pkcsPKIEnvelope with `recipientKey` and returns its certificates.
 */
export function parseCertRep(der: Buffer, options: ParseCertRepOptions): CertRep {
  const message = parsePkiMessage(der, options.trustedSignerCertificates ? { trustedSignerCertificates: options.trustedSignerCertificates } : {})
  if (message.messageType !== 'CertRep') throw new Error(`expected a CertRep, got ${message.messageType}`)
  if (!message.pkiStatus) throw new Error('CertRep has no pkiStatus')
  if (options.expectedTransactionId !== undefined && message.transactionId !== options.expectedTransactionId) {
    throw new Error(`CertRep transactionID "${message.transactionId}" does not echo "${options.expectedTransactionId}"`)
  }
  if (options.expectedRecipientNonce && !(message.recipientNonce ?? Buffer.alloc(0)).equals(options.expectedRecipientNonce)) {
    throw new Error('CertRep recipientNonce is not our senderNonce')
  }
  const certRep: CertRep = {
    pkiStatus: message.pkiStatus,
    transactionId: message.transactionId,
    signerCertificateDer: message.signerCertificateDer,
    digest: message.digest,
    signatureAlgorithm: message.signatureAlgorithm,
    certificates: [],
  }
  if (message.failInfo) certRep.failInfo = message.failInfo
  if (message.failInfoText !== undefined) certRep.failInfoText = message.failInfoText
  if (message.recipientNonce) certRep.recipientNonce = message.recipientNonce
  if (message.senderNonce) certRep.senderNonce = message.senderNonce
  if (message.pkiStatus === 'SUCCESS') {
    if (!message.content) throw new Error('a successful CertRep has no pkcsPKIEnvelope')
    const opened = openEnvelope(message.content, options.recipientKey, options.recipientCertificateDer)
    certRep.contentEncryption = opened.encryption
    const certificates = parseCertsOnly(opened.content)
    const wanted = options.requestPublicKey?.export({ type: 'spki', format: 'der' })
    const issued = wanted
      ? certificates.findIndex((c) => certificateInfo(c).spkiDer.equals(wanted))
      : certificates.findIndex((c) => {
          const info = certificateInfo(c)
          return !info.isCa && !info.selfIssued
        })
    if (issued > 0) certificates.unshift(...certificates.splice(issued, 1))
    certRep.certificates = certificates
  }
  return certRep
}

/** A CertRep as a server builds one (for tests that play the server, or fake one). */
export interface BuildCertRepOptions {
  pkiStatus: ScepPkiStatus
  failInfo?: ScepFailInfo
  transactionId: string
  /** The request's senderNonce, echoed as recipientNonce. */
  recipientNonce: Buffer
  senderNonce?: Buffer
  /** SUCCESS: the pkcsPKIEnvelope (ContentInfo(EnvelopedData) DER) holding the certs-only reply. */
  envelope?: Buffer
  signerCertificateDer: Buffer
  signerKey: KeyObject
  digest?: ScepDigest
  certificates?: Buffer[]
  corruptSignature?: boolean
}

export function buildCertRep(options: BuildCertRepOptions): Buffer {
  const attributes: ScepAttributes = {
    messageType: 'CertRep',
    transactionId: options.transactionId,
    pkiStatus: options.pkiStatus,
    recipientNonce: options.recipientNonce,
    senderNonce: options.senderNonce ?? randomBytes(16),
  }
  if (options.failInfo) attributes.failInfo = options.failInfo
  return signPkiMessage({
    ...(options.envelope ? { content: options.envelope } : {}),
    signerCertificateDer: options.signerCertificateDer,
    signerKey: options.signerKey,
    attributes,
    digest: options.digest ?? 'sha256',
    ...(options.certificates ? { certificates: options.certificates } : {}),
    ...(options.corruptSignature ? { corruptSignature: true } : {}),
  })
}

// ---------------------------------------------------------------------------------------------
// GetCACert / GetCACaps

/**
 * A GetCACert answer (RFC 8894 §4.2.1): `application/x-x509-ca-cert` is one DER certificate
 * (the CA, also the recipient); `application/x-x509-ca-ra-cert` is a certs-only SignedData whose
 * CA is the self-signed / cA certificate and whose recipient is the RA certificate (a non-CA one
 * with keyEncipherment, or no KeyUsage at all).
 */
export function parseCaCertResponse(body: Buffer, contentType: string): { ca: Buffer; recipient: Buffer; all: Buffer[] } {
  const type = contentType.split(';')[0]!.trim().toLowerCase()
  if (type === 'application/x-x509-ca-cert') {
    certificateInfo(body) // must be one DER certificate
    return { ca: body, recipient: body, all: [body] }
  }
  if (type !== 'application/x-x509-ca-ra-cert') throw new Error(`GetCACert: unexpected content type "${contentType}"`)
  const all = parseCertsOnly(body)
  if (all.length === 0) throw new Error('GetCACert: the certs-only SignedData holds no certificate')
  const infos = all.map(certificateInfo)
  const cas = infos.filter((info) => info.isCa || info.selfIssued)
  const ras = infos.filter((info) => !info.isCa && !info.selfIssued)
  const encipherer = ras.find((info) => info.keyUsage?.keyEncipherment) ?? ras.find((info) => info.keyUsage === undefined)
  // The CA: the one that issued the RA when there is an RA, else the first CA certificate.
  const ca = (encipherer && cas.find((info) => info.subjectDer.equals(encipherer.issuerDer))) ?? cas[0] ?? infos[0]!
  const recipient = encipherer ?? (ras.length === 0 ? ca : undefined)
  if (!recipient) throw new Error('GetCACert: no RA certificate allows keyEncipherment')
  return { ca: ca.der, recipient: recipient.der, all }
}

/** GetCACaps: one capability per line (RFC 8894 §3.5.2). */
export function parseCaCaps(body: Buffer): string[] {
  return body
    .toString('utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
}

// ---------------------------------------------------------------------------------------------
// HTTP transport and the full enrollment

export type ScepHttp = (request: {
  method: 'GET' | 'POST'
  url: string
  body?: Buffer
  headers?: Record<string, string>
}) => Promise<{ status: number; body: Buffer; contentType: string | undefined }>

/** A ScepHttp over fastify's inject (structurally typed, so this file needs no fastify import). */
export function injectScepHttp(app: {
  inject(options: { method: 'GET' | 'POST'; url: string; payload?: Buffer; headers?: Record<string, string> }): PromiseLike<{
    statusCode: number
    rawPayload: Buffer
    headers: Record<string, string | string[] | number | undefined>
  }>
}): ScepHttp {
  return async (request) => {
    const response = await app.inject({
      method: request.method,
      url: request.url,
      ...(request.body ? { payload: request.body } : {}),
      ...(request.headers ? { headers: request.headers } : {}),
    })
    const contentType = response.headers['content-type']
    return { status: response.statusCode, body: response.rawPayload, contentType: typeof contentType === 'string' ? contentType : undefined }
  }
}

/** A ScepHttp over real HTTP(S) with fetch, relative to `baseUrl`. */
export function fetchScepHttp(baseUrl: string): ScepHttp {
  return async (request) => {
    const response = await fetch(new URL(request.url, baseUrl), {
      method: request.method,
      ...(request.body ? { body: request.body } : {}),
      ...(request.headers ? { headers: request.headers } : {}),
    })
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()), contentType: response.headers.get('content-type') ?? undefined }
  }
}

/** An HTTP answer that is not a SCEP answer (status not 200, or the wrong content type). */
export class ScepHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: Buffer,
    readonly contentType: string | undefined,
  ) {
    super(message)
    this.name = 'ScepHttpError'
  }
}

const mediaType = (contentType: string | undefined) => contentType?.split(';')[0]?.trim().toLowerCase()

export interface ScepEnrollOptions {
  path?: string // default '/scep'
  challenge?: string
  challengeEncoding?: 'printable' | 'utf8'
  subject: ScepSubject
  /** Defaults follow GetCACaps: aes128 with AES (or SCEPStandard), else des3 with DES3, else des. */
  encryption?: ScepEncryption
  /** Defaults follow GetCACaps: sha256 with SHA-256 (or SCEPStandard), else sha1. */
  digest?: ScepDigest
  /** Defaults follow GetCACaps: post with POSTPKIOperation (or SCEPStandard), else get. */
  transport?: 'post' | 'get'
  /** The key to certify (default a new RSA 2048 key). */
  key?: ScepKeyPair
  /** Renew: sign with this identity instead of a self-signed certificate. */
  renewWith?: { certificateDer: Buffer; key: KeyObject }
  /** Default RenewalReq when renewing, else PKCSReq. */
  messageType?: 'PKCSReq' | 'RenewalReq'
  signatureAlgorithm?: 'rsaEncryption' | 'sha-with-rsa'
  encoding?: ScepEncoding
  /** On PENDING, poll with CertPoll up to `attempts` times, `intervalMs` apart (default: no polling). */
  poll?: { attempts: number; intervalMs?: number }
}

export interface ScepEnrollResult {
  key: ScepKeyPair
  certRep: CertRep
  /** The issued certificate (SUCCESS only). */
  certificateDer?: Buffer
  /** Everything GetCACert returned. */
  caCertificates: Buffer[]
  /** The HTTP status of the (last) PKIOperation. */
  status: number
  capabilities: string[]
  transactionId: string
  /** The certificate that signed the request (self-signed, or the renewed identity). */
  signerCertificateDer: Buffer
  csrDer: Buffer
  /** The CA and recipient certificates picked from GetCACert. */
  caCertificateDer: Buffer
  recipientCertificateDer: Buffer
}

/**
 * A whole enrollment as a device runs it: GetCACaps, GetCACert, then PKIOperation (PKCSReq, or
 * RenewalReq with `renewWith`), verifying the CertRep against the GetCACert certificates.
 * Throws ScepHttpError when an answer is not 200 with the right content type.
 */
export async function scepEnroll(http: ScepHttp, options: ScepEnrollOptions): Promise<ScepEnrollResult> {
  const path = options.path ?? '/scep'
  const url = (operation: string) => `${path}?operation=${operation}`

  const capsResponse = await http({ method: 'GET', url: url('GetCACaps') })
  if (capsResponse.status !== 200)
    throw new ScepHttpError(`GetCACaps answered HTTP ${capsResponse.status}`, capsResponse.status, capsResponse.body, capsResponse.contentType)
  const capabilities = parseCaCaps(capsResponse.body)
  const has = (capability: string) => capabilities.some((c) => c.toLowerCase() === capability.toLowerCase())
  const standard = has('SCEPStandard')

  const caResponse = await http({ method: 'GET', url: url('GetCACert') })
  if (caResponse.status !== 200)
    throw new ScepHttpError(`GetCACert answered HTTP ${caResponse.status}`, caResponse.status, caResponse.body, caResponse.contentType)
  const ca = parseCaCertResponse(caResponse.body, caResponse.contentType ?? '')

  const encryption = options.encryption ?? (standard || has('AES') ? 'aes128' : has('DES3') ? 'des3' : 'des')
  const digest = options.digest ?? (standard || has('SHA-256') ? 'sha256' : 'sha1')
  const transport = options.transport ?? (standard || has('POSTPKIOperation') ? 'post' : 'get')

  const key = options.key ?? generateRsaKey()
  const csrDer = buildCsr({
    key,
    subject: options.subject,
    ...(options.challenge !== undefined ? { challenge: options.challenge } : {}),
    ...(options.challengeEncoding ? { challengeEncoding: options.challengeEncoding } : {}),
  })
  const signerCertificateDer = options.renewWith?.certificateDer ?? selfSignedCertificate(key, options.subject)
  const signerKey = options.renewWith?.key ?? key.privateKey
  const signing: SigningOptions = {
    recipientCertificateDer: ca.recipient,
    signerCertificateDer,
    signerKey,
    encryption,
    digest,
    ...(options.signatureAlgorithm ? { signatureAlgorithm: options.signatureAlgorithm } : {}),
    ...(options.encoding ? { encoding: options.encoding } : {}),
  }

  const send = async (request: BuiltPkiOperation) => {
    const response =
      transport === 'post'
        ? await http({ method: 'POST', url: url('PKIOperation'), body: request.der, headers: { 'content-type': 'application/x-pki-message' } })
        : await http({ method: 'GET', url: `${url('PKIOperation')}&message=${encodeURIComponent(request.der.toString('base64'))}` })
    if (response.status !== 200) throw new ScepHttpError(`PKIOperation answered HTTP ${response.status}`, response.status, response.body, response.contentType)
    if (mediaType(response.contentType) !== 'application/x-pki-message') {
      throw new ScepHttpError(`PKIOperation answered content type ${response.contentType}`, response.status, response.body, response.contentType)
    }
    const certRep = parseCertRep(response.body, {
      recipientKey: signerKey,
      trustedSignerCertificates: ca.all,
      recipientCertificateDer: signerCertificateDer,
      requestPublicKey: key.publicKey,
      expectedTransactionId: request.transactionId,
      expectedRecipientNonce: request.senderNonce,
    })
    return { certRep, status: response.status }
  }

  const messageType = options.messageType ?? (options.renewWith ? 'RenewalReq' : 'PKCSReq')
  const request = buildPkiOperation({ csrDer, messageType, ...signing })
  let { certRep, status } = await send(request)
  for (let attempt = 0; certRep.pkiStatus === 'PENDING' && attempt < (options.poll?.attempts ?? 0); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, options.poll?.intervalMs ?? 100))
    ;({ certRep, status } = await send(buildCertPoll({ csrDer, caCertificateDer: ca.ca, transactionId: request.transactionId, ...signing })))
  }

  const result: ScepEnrollResult = {
    key,
    certRep,
    caCertificates: ca.all,
    status,
    capabilities,
    transactionId: request.transactionId,
    signerCertificateDer,
    csrDer,
    caCertificateDer: ca.ca,
    recipientCertificateDer: ca.recipient,
  }
  if (certRep.pkiStatus === 'SUCCESS') {
    const wanted = key.publicKey.export({ type: 'spki', format: 'der' })
    const issued = certRep.certificates.find((c) => certificateInfo(c).spkiDer.equals(wanted))
    if (!issued) throw new Error('the successful CertRep holds no certificate for the requested key')
    result.certificateDer = issued
  }
  return result
}
