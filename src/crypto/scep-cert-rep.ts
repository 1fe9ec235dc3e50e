// SCEP answers (RFC 8894 §3.3, §4.2): the degenerate certs-only SignedData of GetCACert, and
// the CertRep to a PKIOperation, signed by the CA or RA.
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto'
import { Tag } from './der.js'
import * as der from './der-writer.js'
import type { DigestAlgorithm } from './mdm-signature.js'
import { digestOidOf, failInfoCodes, ScepMessageType, ScepOid, type FailInfo } from './scep-definitions.js'
import { envelope, issuerAndSerialNumber, type ContentEncryption } from './scep-envelope.js'
import type { PkiMessage } from './scep-request.js'

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
