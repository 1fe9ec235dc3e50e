// The SCEP server (RFC 8894): GetCACaps, GetCACert and PKIOperation. A request is answered
// at once, SUCCESS with the certificate or FAILURE with a failInfo; never PENDING, which
// Apple devices cannot poll. Who may get a certificate:
// - a PKCSReq whose challengePassword is the static challenge (ORCHARD_SCEP_CHALLENGE) or a
//   one-time challenge minted for an enrollment profile (a leaked profile enrolls one device);
// - a request signed by a still-valid identity certificate of ours (renewal), no challenge.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import { formatSimpleName } from '../crypto/der.js'
import {
  buildCertRep,
  certsOnly,
  openEnvelope,
  readCertificationRequest,
  readPkiMessage,
  requesterKey,
  ScepFailure,
  ScepMalformed,
  ScepMessageType,
  type CertificationRequest,
  type ContentEncryption,
  type FailInfo,
  type PkiMessage,
} from '../crypto/scep.js'
import { OrchardError } from '../errors.js'
import type { EnrollmentLinkStore, IssuanceRow } from './enrollment-link-store.js'
import type { CertificateAuthorityService } from './certificate-authority.js'

export interface ScepService {
  capabilities(): string
  caCertificates(): { body: Buffer; contentType: string }
  /** The CertRep for a PKIOperation message; OrchardError bad_request when it cannot be answered at all. */
  pkiOperation(message: Buffer): Promise<Buffer>
}

export interface ScepServiceDeps {
  authority: CertificateAuthorityService
  store: Pick<EnrollmentLinkStore, 'issueWithChallenge' | 'recordIssuance' | 'previousIssuance' | 'renewalSubject'>
  /** Chain and validity check of a renewal's signing certificate (the protocol core's verifier). */
  verifyIdentity: (certificateDer: Buffer) => { sha256: string }
  staticChallenge: string | null
  identityValidityDays: number
  /** Counts answers by outcome. */
  countOutcome?: (outcome: string) => void
  logger: Logger
  now?: () => Date
}

/** Hash of a challenge as stored: one-time challenges are kept only as SHA-256. */
export function challengeHash(challenge: string): Buffer {
  return createHash('sha256').update(challenge, 'utf8').digest()
}

const sha256Hex = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

function describeName(nameDer: Buffer): string {
  return formatSimpleName(nameDer) ?? `(name ${nameDer.toString('hex').slice(0, 64)})`
}

export function createScepService(deps: ScepServiceDeps): ScepService {
  const log = deps.logger.child({ service: 'scep' })
  const now = deps.now ?? (() => new Date())
  const staticHash = deps.staticChallenge === null ? null : challengeHash(deps.staticChallenge)

  function answer(
    message: PkiMessage,
    encryption: ContentEncryption,
    result: { status: 'SUCCESS'; certificates: Buffer[] } | { status: 'FAILURE'; failInfo: FailInfo },
  ): Buffer {
    return buildCertRep({ request: message, encryption, signer: deps.authority.scepSigner(), result, now: now() })
  }

  function refuse(message: PkiMessage, failInfo: FailInfo, reason: string, context: Record<string, unknown> = {}): Buffer {
    log.warn({ transaction_id: message.transactionId, fail_info: failInfo, reason, ...context }, `SCEP request refused: ${reason}`)
    deps.countOutcome?.(failInfo)
    return answer(message, 'aes128', { status: 'FAILURE', failInfo })
  }

  function issuanceRow(
    csr: CertificationRequest,
    message: PkiMessage,
    fields: Pick<IssuanceRow, 'authorized_by' | 'challenge_sha256' | 'renewal_of_sha256' | 'enrollment_link_id' | 'device_id'> &
      Partial<Pick<IssuanceRow, 'dep_profile_id' | 'ade_serial_number'>>,
  ): IssuanceRow {
    const certificate = deps.authority.issueIdentity({ subject: csr.subject, publicKeySpki: csr.publicKeySpki }, deps.identityValidityDays)
    return {
      serial_number: certificate.serialNumber,
      ca_sha256: certificate.caSha256,
      sha256: certificate.sha256,
      subject: csr.subjectText,
      public_key_sha256: sha256Hex(csr.publicKeySpki),
      not_before: certificate.notBefore,
      not_after: certificate.notAfter,
      transaction_id: message.transactionId,
      certificate_der: certificate.der,
      dep_profile_id: null,
      ade_serial_number: null,
      ...fields,
    }
  }

  function issued(message: PkiMessage, encryption: ContentEncryption, issuance: IssuanceRow, how: string): Buffer {
    log.info(
      {
        transaction_id: message.transactionId,
        serial_number: issuance.serial_number,
        subject: issuance.subject,
        sha256: issuance.sha256,
        not_after: issuance.not_after,
        authorized_by: issuance.authorized_by,
        enrollment_link_id: issuance.enrollment_link_id,
        device_id: issuance.device_id,
      },
      `issued an identity certificate (${how})`,
    )
    deps.countOutcome?.(how.startsWith('retried') ? 'retry' : issuance.authorized_by)
    return answer(message, encryption, { status: 'SUCCESS', certificates: [issuance.certificate_der] })
  }

  /** A request signed by an identity of ours: chain-valid, unexpired, and issued by us or bound to a device. */
  async function renewal(message: PkiMessage, csr: CertificationRequest, encryption: ContentEncryption): Promise<Buffer | { notOurs: string }> {
    let signerSha256: string
    try {
      signerSha256 = deps.verifyIdentity(message.signerCertificateDer).sha256
    } catch (error) {
      return { notOurs: (error as Error).message }
    }
    const subject = await deps.store.renewalSubject(signerSha256)
    if (!subject) return { notOurs: `certificate ${signerSha256} is trusted but was neither issued by Orchard nor bound to a device` }
    const issuance = issuanceRow(csr, message, {
      authorized_by: 'renewal',
      challenge_sha256: null,
      renewal_of_sha256: signerSha256,
      enrollment_link_id: null,
      device_id: subject.deviceId,
    })
    await deps.store.recordIssuance(issuance)
    return issued(message, encryption, issuance, `renewal signed by ${signerSha256}`)
  }

  async function withChallenge(message: PkiMessage, csr: CertificationRequest, encryption: ContentEncryption): Promise<Buffer> {
    const challenge = csr.challengePassword
    if (challenge === undefined || challenge === '') return refuse(message, 'badRequest', 'the certificate request has no challengePassword')
    const hash = challengeHash(challenge)
    if (staticHash && timingSafeEqual(hash, staticHash)) {
      const issuance = issuanceRow(csr, message, {
        authorized_by: 'static_challenge',
        challenge_sha256: null,
        renewal_of_sha256: null,
        enrollment_link_id: null,
        device_id: null,
      })
      await deps.store.recordIssuance(issuance)
      return issued(message, encryption, issuance, 'static challenge')
    }
    const outcome = await deps.store.issueWithChallenge(hash, now(), (challengeRow) =>
      issuanceRow(csr, message, {
        authorized_by: 'challenge',
        challenge_sha256: hash,
        renewal_of_sha256: null,
        enrollment_link_id: challengeRow.enrollmentLinkId,
        device_id: challengeRow.deviceId,
        dep_profile_id: challengeRow.depProfileId,
        ade_serial_number: challengeRow.adeSerialNumber,
      }),
    )
    if (outcome.ok) return issued(message, encryption, outcome.issuance, 'one-time challenge')
    if (outcome.reason === 'used') {
      // The same client retrying a transaction whose answer it lost gets the same certificate.
      const previous = await deps.store.previousIssuance(hash, message.transactionId, sha256Hex(csr.publicKeySpki))
      if (previous) return issued(message, encryption, previous, 'retried transaction, same certificate')
      return refuse(message, 'badRequest', `the one-time challenge was already used (at ${outcome.usedAt?.toISOString()}): download a new enrollment profile`, {
        challenge_sha256: hash.toString('hex').slice(0, 16),
      })
    }
    const reasons: Record<typeof outcome.reason, string> = {
      unknown: 'the challenge password is wrong',
      expired: 'the one-time challenge expired: download a new enrollment profile',
      link_revoked: 'the enrollment link of this challenge was revoked',
      link_expired: 'the enrollment link of this challenge expired',
      link_exhausted: 'the enrollment link of this challenge has no uses left',
    }
    return refuse(message, 'badRequest', reasons[outcome.reason], { challenge_sha256: hash.toString('hex').slice(0, 16) })
  }

  return {
    capabilities() {
      // Advertised: AES and SHA-256 (what clients should pick); DES, 3DES and SHA-1 are still read.
      return ['AES', 'DES3', 'POSTPKIOperation', 'Renewal', 'SHA-1', 'SHA-256', 'SCEPStandard'].join('\n') + '\n'
    },

    caCertificates() {
      const certificates = deps.authority.scepCertificates()
      if (certificates.length === 1) return { body: certificates[0]!, contentType: 'application/x-x509-ca-cert' }
      return { body: certsOnly(certificates), contentType: 'application/x-x509-ca-ra-cert' }
    },

    async pkiOperation(body) {
      deps.authority.issuing() // 503 before anything else when there is no CA
      let message: PkiMessage
      try {
        message = readPkiMessage(body)
      } catch (error) {
        if (error instanceof ScepMalformed) throw new OrchardError('bad_request', `malformed SCEP PKIOperation: ${error.message}`, { cause: error })
        throw error
      }
      try {
        if (message.signatureProblem) return refuse(message, 'badMessageCheck', `the request's signature is invalid: ${message.signatureProblem}`)
        if (message.messageType !== ScepMessageType.PKCSReq && message.messageType !== ScepMessageType.RenewalReq) {
          return refuse(
            message,
            'badRequest',
            `messageType ${message.messageType} is not served: requests are answered at once, so there is nothing to poll or fetch`,
          )
        }
        // Before anything is issued: the answer must be encryptable to the requester.
        requesterKey(message.signerCertificateDer)
        const opened = openEnvelope(message.envelope, deps.authority.scepRecipients())
        const csr = readCertificationRequest(opened.content, describeName)
        const renewed = await renewal(message, csr, opened.encryption)
        if (Buffer.isBuffer(renewed)) return renewed
        if (message.messageType === ScepMessageType.RenewalReq) {
          return refuse(message, 'badCertId', `a RenewalReq must be signed by a valid identity certificate of ours: ${renewed.notOurs}`)
        }
        return await withChallenge(message, csr, opened.encryption)
      } catch (error) {
        if (error instanceof ScepFailure) return refuse(message, error.failInfo, error.message)
        throw error
      }
    },
  }
}
