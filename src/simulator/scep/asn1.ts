// The SCEP client's vocabulary: its public types, the object identifiers and codes of RFC 8894,
// the ciphers and digests it speaks, and small asn1js helpers to build (DER unless asked for
// indefinite lengths) and parse (BER) ASN.1. The rest of the client is built on these; see
// scep-client.ts for what the client is and how it was written.
import * as asn1js from 'asn1js'
import { sign, randomBytes, type KeyObject } from 'node:crypto'

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

export const messageTypeCodes: Record<ScepMessageType, string> = {
  CertRep: '3',
  RenewalReq: '17',
  PKCSReq: '19',
  CertPoll: '20', // GetCertInitial in older drafts
  GetCert: '21',
  GetCRL: '22',
}
export const pkiStatusCodes: Record<ScepPkiStatus, string> = { SUCCESS: '0', FAILURE: '2', PENDING: '3' }
export const failInfoCodes: Record<ScepFailInfo, string> = { badAlg: '0', badMessageCheck: '1', badRequest: '2', badTime: '3', badCertId: '4' }
export const invert = <K extends string>(record: Record<K, string>): Map<string, K> => new Map(Object.entries(record).map(([k, v]) => [v as string, k as K]))
export const messageTypeByCode = invert(messageTypeCodes)
export const pkiStatusByCode = invert(pkiStatusCodes)
export const failInfoByCode = invert(failInfoCodes)

export interface CipherSpec {
  oid: string
  /** The node:crypto cipher that runs it. */
  cipher: string
  keyLength: number
  ivLength: number
}
export const ciphers: Record<ScepEncryption, CipherSpec> = {
  // Single DES: des-ede3-cbc with K‖K‖K (see header).
  des: { oid: ScepOid.desCbc, cipher: 'des-ede3-cbc', keyLength: 8, ivLength: 8 },
  des3: { oid: ScepOid.desEde3Cbc, cipher: 'des-ede3-cbc', keyLength: 24, ivLength: 8 },
  aes128: { oid: ScepOid.aes128Cbc, cipher: 'aes-128-cbc', keyLength: 16, ivLength: 16 },
  aes256: { oid: ScepOid.aes256Cbc, cipher: 'aes-256-cbc', keyLength: 32, ivLength: 16 },
}

export const digestOids: Record<ScepParsedDigest, string> = {
  sha1: ScepOid.sha1,
  sha224: ScepOid.sha224,
  sha256: ScepOid.sha256,
  sha384: ScepOid.sha384,
  sha512: ScepOid.sha512,
}
export const digestByOid = invert(digestOids)
export const shaWithRsaOids: Record<ScepParsedDigest, string> = {
  sha1: ScepOid.sha1WithRSAEncryption,
  sha224: ScepOid.sha224WithRSAEncryption,
  sha256: ScepOid.sha256WithRSAEncryption,
  sha384: ScepOid.sha384WithRSAEncryption,
  sha512: ScepOid.sha512WithRSAEncryption,
}
/** Signature algorithm OIDs that name their own hash (which must agree with the digestAlgorithm). */
export const hashOfSignatureOid = new Map<string, ScepParsedDigest>([
  ...Object.entries(shaWithRsaOids).map(([digest, oid]) => [oid, digest as ScepParsedDigest] as const),
  [ScepOid.ecdsaWithSha1, 'sha1'],
  [ScepOid.ecdsaWithSha224, 'sha224'],
  [ScepOid.ecdsaWithSha256, 'sha256'],
  [ScepOid.ecdsaWithSha384, 'sha384'],
  [ScepOid.ecdsaWithSha512, 'sha512'],
])

// ---------------------------------------------------------------------------------------------
// ASN.1 building helpers (asn1js; DER unless a caller asks for indefinite lengths)

export type Block = asn1js.BaseBlock
export const toDer = (block: Block): Buffer => Buffer.from(block.toBER(false))
export const seq = (...value: Block[]): asn1js.Sequence => new asn1js.Sequence({ value })
export const oid = (value: string): asn1js.ObjectIdentifier => new asn1js.ObjectIdentifier({ value })
export const int = (value: number): asn1js.Integer => new asn1js.Integer({ value })
export const octets = (bytes: Uint8Array): asn1js.OctetString => new asn1js.OctetString({ valueHex: bytes })
export const printable = (value: string): asn1js.PrintableString => new asn1js.PrintableString({ value })
/** A context-specific constructed tag: [n] EXPLICIT x, or [n] IMPLICIT SET/SEQUENCE OF x. */
export const tagged = (tagNumber: number, ...value: Block[]): asn1js.Constructed => new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value })

export function algorithmIdentifier(algorithm: string, parameters?: Block | 'null'): asn1js.Sequence {
  if (parameters === undefined) return seq(oid(algorithm))
  return seq(oid(algorithm), parameters === 'null' ? new asn1js.Null() : parameters)
}

/** DER orders a SET OF by the encodings of its elements (X.690 §11.6). */
export function sortForDer(elements: Block[]): Block[] {
  return elements
    .map((element) => ({ element, der: toDer(element) }))
    .sort((a, b) => Buffer.compare(a.der, b.der))
    .map(({ element }) => element)
}

/** Re-embeds DER produced elsewhere (a certificate, a Name) as an asn1js block, byte for byte. */
export function embed(der: Uint8Array, what: string): Block {
  const block = parseBer(der, what)
  if (!toDer(block).equals(Buffer.from(der))) throw new Error(`${what} is not DER`)
  return block
}

export const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/

export function buildName(subject: ScepSubject): asn1js.Sequence {
  // One attribute per RDN, most significant first: O, then CN.
  const rdns: [string, string][] = []
  if (subject.organization !== undefined) rdns.push([ScepOid.organizationName, subject.organization])
  rdns.push([ScepOid.commonName, subject.commonName])
  return seq(...rdns.map(([type, value]) => new asn1js.Set({ value: [seq(oid(type), new asn1js.Utf8String({ value }))] })))
}

export function spkiBlock(publicKey: KeyObject): Block {
  return embed(publicKey.export({ type: 'spki', format: 'der' }), 'SubjectPublicKeyInfo')
}

export function requireRsa(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`${what} must be an RSA key (got ${key.asymmetricKeyType ?? key.type})`)
}

export function randomSerial(): asn1js.Integer {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x40 // positive, and no leading zero octet to trim
  return new asn1js.Integer({ valueHex: bytes })
}

/** Signs `tbs` with sha256WithRSAEncryption and wraps it as Certificate / CertificationRequest. */
export function signedStructure(tbs: asn1js.Sequence, privateKey: KeyObject): Buffer {
  const signature = sign('sha256', toDer(tbs), privateKey)
  return toDer(seq(tbs, algorithmIdentifier(ScepOid.sha256WithRSAEncryption, 'null'), new asn1js.BitString({ valueHex: signature, unusedBits: 0 })))
}

// ---------------------------------------------------------------------------------------------
// ASN.1 parsing helpers

export function parseBer(data: Uint8Array, what: string): Block {
  const parsed = asn1js.fromBER(data, { parseEmbedded: false })
  if (parsed.offset === -1) throw new Error(`${what}: not valid BER (${parsed.result.error})`)
  if (parsed.offset !== data.byteLength) throw new Error(`${what}: ${data.byteLength - parsed.offset} bytes after the structure`)
  return parsed.result
}

export const UNIVERSAL = 1
export const CONTEXT = 3
export const isTag = (block: Block | undefined, tagClass: number, tagNumber: number): block is Block =>
  block !== undefined && block.idBlock.tagClass === tagClass && block.idBlock.tagNumber === tagNumber
export const isUniversal = (block: Block | undefined, tagNumber: number): block is Block => isTag(block, UNIVERSAL, tagNumber)
export const TAG = {
  boolean: 1,
  integer: 2,
  bitString: 3,
  octetString: 4,
  null: 5,
  oid: 6,
  utf8String: 12,
  sequence: 16,
  set: 17,
  printableString: 19,
} as const

export function children(block: Block, what: string): Block[] {
  if (!block.idBlock.isConstructed) throw new Error(`${what}: expected a constructed value`)
  return (block.valueBlock as unknown as { value: Block[] }).value
}
export function expectSequence(block: Block | undefined, what: string): Block[] {
  if (!isUniversal(block, TAG.sequence)) throw new Error(`${what}: expected a SEQUENCE`)
  return children(block, what)
}
export function expectSet(block: Block | undefined, what: string): Block[] {
  if (!isUniversal(block, TAG.set)) throw new Error(`${what}: expected a SET`)
  return children(block, what)
}
export function oidString(block: Block | undefined, what: string): string {
  if (!isUniversal(block, TAG.oid)) throw new Error(`${what}: expected an OBJECT IDENTIFIER`)
  return (block as asn1js.ObjectIdentifier).valueBlock.toString()
}
export function integerValue(block: Block | undefined, what: string): number {
  if (!isUniversal(block, TAG.integer)) throw new Error(`${what}: expected an INTEGER`)
  return (block as asn1js.Integer).valueBlock.valueDec
}
/** The bytes of a primitive value, or the concatenated segments of a constructed (BER) string. */
export function contentBytes(block: Block): Buffer {
  if (block.idBlock.isConstructed) return Buffer.concat(children(block, 'constructed string').map(contentBytes))
  return Buffer.from((block.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView)
}
export function octetStringBytes(block: Block | undefined, what: string): Buffer {
  if (!isUniversal(block, TAG.octetString)) throw new Error(`${what}: expected an OCTET STRING`)
  return contentBytes(block)
}
/** The exact encoding a parsed block came from. */
export const rawBytes = (block: Block): Buffer => Buffer.from(block.valueBeforeDecodeView)

export function parseAlgorithm(block: Block | undefined, what: string): { oid: string; parameters: Block | undefined } {
  const [algorithm, parameters] = expectSequence(block, what)
  return { oid: oidString(algorithm, `${what}.algorithm`), parameters }
}

/** ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } */
export function parseContentInfo(data: Uint8Array, expectedType: string, what: string): Block {
  const [type, content] = expectSequence(parseBer(data, what), what)
  const contentType = oidString(type, `${what}.contentType`)
  if (contentType !== expectedType) throw new Error(`${what}: content type ${contentType}, expected ${expectedType}`)
  if (!isTag(content, CONTEXT, 0)) throw new Error(`${what}: no [0] content`)
  const inner = children(content, what)[0]
  if (!inner) throw new Error(`${what}: empty content`)
  return inner
}

export function contentInfo(type: string, content: Block): asn1js.Sequence {
  return seq(oid(type), tagged(0, content))
}
