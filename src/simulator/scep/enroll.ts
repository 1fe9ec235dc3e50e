// A whole SCEP enrollment over HTTP as a device runs it (RFC 8894 §4): GetCACaps, GetCACert,
// then PKIOperation, verifying the answer against the certificates GetCACert gave.
import type { KeyObject } from 'node:crypto'
import type { ScepDigest, ScepEncryption, ScepKeyPair, ScepSubject } from './asn1.js'
import { buildCsr, certificateInfo, generateRsaKey, parseCertsOnly, selfSignedCertificate } from './certificates.js'
import type { ScepEncoding } from './envelope.js'
import { parseCertRep, type CertRep } from './parse.js'
import { buildCertPoll, buildPkiOperation, type BuiltPkiOperation, type SigningOptions } from './pki-message.js'

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
