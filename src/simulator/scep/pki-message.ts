// SCEP pkiMessages as a client sends them (RFC 8894 §3.2, §3.3): CMS SignedData over a
// pkcsPKIEnvelope with the SCEP signed attributes: PKCSReq, RenewalReq and CertPoll.
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto'
import * as asn1js from 'asn1js'
import {
  ScepOid,
  algorithmIdentifier,
  contentInfo,
  digestOids,
  embed,
  expectSequence,
  failInfoCodes,
  int,
  messageTypeCodes,
  octets,
  oid,
  parseBer,
  pkiStatusCodes,
  printable,
  rawBytes,
  seq,
  shaWithRsaOids,
  sortForDer,
  tagged,
  toDer,
  type Block,
  type ScepDigest,
  type ScepEncryption,
  type ScepFailInfo,
  type ScepMessageType,
  type ScepPkiStatus,
} from './asn1.js'
import { certificateInfo, issuerAndSerialNumber } from './certificates.js'
import { envelope, indefinite, segments, type ScepEncoding } from './envelope.js'

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

export type SigningOptions = Omit<PkiOperationOptions, 'csrDer' | 'messageType' | 'transactionId'>

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
