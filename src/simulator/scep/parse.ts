// Reading SCEP pkiMessages (both directions: a test server can parse requests with it too),
// with their signatures verified, and the CertRep a client gets back.
import { createHash, verify, type KeyObject } from 'node:crypto'
import * as asn1js from 'asn1js'
import {
  CONTEXT,
  ScepOid,
  TAG,
  children,
  digestByOid,
  expectSequence,
  expectSet,
  failInfoByCode,
  hashOfSignatureOid,
  integerValue,
  isTag,
  isUniversal,
  messageTypeByCode,
  octetStringBytes,
  oidString,
  parseAlgorithm,
  parseContentInfo,
  pkiStatusByCode,
  rawBytes,
  requireRsa,
  type Block,
  type ScepEncryption,
  type ScepFailInfo,
  type ScepMessageType,
  type ScepParsedDigest,
  type ScepPkiStatus,
} from './asn1.js'
import { certificateInfo, certificatesOf, identifies, parseCertsOnly } from './certificates.js'
import { openEnvelope } from './envelope.js'

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
