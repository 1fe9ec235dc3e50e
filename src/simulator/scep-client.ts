// A standard SCEP client (RFC 8894): it plays an Apple device, or any field SCEP client, talking
// to Orchard's SCEP server (the device simulator and the tests use this one copy). It is an
// independent implementation written from RFC 8894 (SCEP), RFC 5652 (CMS), RFC 2986 (PKCS#10)
// and RFC 5280 — not from the server's code — so the two can check each other.
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
//
// The client lives in scep/: asn1.ts (types, OIDs, ASN.1 helpers), certificates.ts (keys, CSR,
// self-signed certificate, certs-only), envelope.ts (pkcsPKIEnvelope), pki-message.ts (signing
// and the requests), parse.ts (reading pkiMessages and CertReps) and enroll.ts (over HTTP).
export {
  ScepOid,
  type ScepDigest,
  type ScepEncryption,
  type ScepFailInfo,
  type ScepKeyPair,
  type ScepMessageType,
  type ScepParsedDigest,
  type ScepPkiStatus,
  type ScepSubject,
} from './scep/asn1.js'
export {
  buildCertsOnly,
  buildCsr,
  generateRsaKey,
  parseCertsOnly,
  selfSignedCertificate,
  type BuildCsrOptions,
  type SelfSignedOptions,
} from './scep/certificates.js'
export { envelope, openEnvelope, type OpenedEnvelope, type ScepEncoding } from './scep/envelope.js'
export {
  buildCertPoll,
  buildPkiOperation,
  csrFields,
  defaultTransactionId,
  signPkiMessage,
  type BuiltPkiOperation,
  type CertPollOptions,
  type PkiOperationOptions,
  type ScepAttributes,
  type SignPkiMessageOptions,
} from './scep/pki-message.js'
export { parseCertRep, parsePkiMessage, type CertRep, type ParseCertRepOptions, type ParsedPkiMessage, type ParsePkiMessageOptions } from './scep/parse.js'
export { parseCaCaps, parseCaCertResponse, scepEnroll, ScepHttpError, type ScepEnrollOptions, type ScepEnrollResult, type ScepHttp } from './scep/enroll.js'
