// The SCEP client's certificates: its RSA keys, the PKCS#10 request (RFC 2986), the transient
// self-signed certificate of a first request (RFC 8894 §2.3), reading certificates, and the
// degenerate certs-only SignedData GetCACert and a CertRep carry.
import { X509Certificate, createHash, generateKeyPairSync, type KeyObject } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import {
  CONTEXT,
  PRINTABLE,
  ScepOid,
  TAG,
  algorithmIdentifier,
  buildName,
  children,
  contentBytes,
  contentInfo,
  embed,
  expectSequence,
  int,
  isTag,
  isUniversal,
  octetStringBytes,
  octets,
  oid,
  parseBer,
  parseContentInfo,
  printable,
  randomSerial,
  rawBytes,
  requireRsa,
  seq,
  signedStructure,
  sortForDer,
  spkiBlock,
  tagged,
  toDer,
  type Block,
  type ScepKeyPair,
  type ScepSubject,
} from './asn1.js'

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

export interface CertificateInfo {
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

export function certificateInfo(der: Buffer): CertificateInfo {
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
export function issuerAndSerialNumber(certificate: CertificateInfo): asn1js.Sequence {
  return seq(embed(certificate.issuerDer, 'issuer'), new asn1js.Integer({ valueHex: certificate.serial }))
}

/** Does a SignerIdentifier / RecipientIdentifier name this certificate? */
export function identifies(identifier: Block, certificate: CertificateInfo): boolean {
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
export function certificatesOf(signedDataFields: Block[]): Buffer[] {
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
