// Push certificates: upload (PEM pair or PKCS#12), renewal with the topic guard, listing
// without keys, expiry warnings. Private keys are sealed with the configured master key.
// A new topic means every device must re-enroll, so a topic change is refused while
// devices are enrolled on the old one, unless forced.
import { fullAccess, tenantForNewRow, type AccessScope } from '../model/access.js'
import type { Logger } from 'pino'
import { parsePushCertificatePem, parsePushCertificatePkcs12, PushCertificateError, type PushCertificate } from '../crypto/push-certificate.js'
import type { SecretBox } from '../crypto/secret-box.js'
import { OrchardError } from '../errors.js'
import type { PushCertificateRow, PushStore } from './push-store.js'

export type PushCertificateUpload =
  { kind: 'pem'; certificatePem: string; privateKeyPem: string; passphrase?: string } | { kind: 'pkcs12'; pkcs12: Buffer; password: string }

export interface PushCertificateView {
  topic: string
  serialNumber: string
  subject: string
  sha256: string
  notBefore: Date
  notAfter: Date
  daysLeft: number
  tenantId: string | null
  updatedAt: Date
}

export interface PushCertificateService {
  list(scope?: AccessScope): Promise<PushCertificateView[]>
  get(topic: string, scope?: AccessScope): Promise<PushCertificateView>
  /** A certificate for a topic not seen before, in `tenantId` (default: the caller's own). */
  add(upload: PushCertificateUpload, scope?: AccessScope, tenantId?: string | null): Promise<PushCertificateView>
  /** Renewal of `topic`'s certificate; a different topic is refused while devices use `topic`, unless forced. */
  replace(topic: string, upload: PushCertificateUpload, force: boolean, scope?: AccessScope): Promise<PushCertificateView>
  /** Opens a stored row's sealed private key. */
  privateKeyPem(row: PushCertificateRow): string
  /** Certificates that expire within `days` (or have expired). */
  expiring(days: number): Promise<PushCertificateView[]>
}

export function createPushCertificateService(deps: {
  store: PushStore
  secretBox: SecretBox | null
  logger: Logger
  now?: () => Date
}): PushCertificateService {
  const now = deps.now ?? (() => new Date())
  const log = deps.logger.child({ service: 'push-certificates' })

  const view = (row: PushCertificateRow): PushCertificateView => ({
    topic: row.topic,
    serialNumber: row.serialNumber,
    subject: row.subject,
    sha256: row.sha256,
    notBefore: row.notBefore,
    notAfter: row.notAfter,
    daysLeft: Math.floor((row.notAfter.getTime() - now().getTime()) / 86_400_000),
    tenantId: row.tenantId,
    updatedAt: row.updatedAt,
  })

  async function parse(upload: PushCertificateUpload): Promise<PushCertificate> {
    try {
      return upload.kind === 'pem'
        ? parsePushCertificatePem(upload.certificatePem, upload.privateKeyPem, upload.passphrase)
        : await parsePushCertificatePkcs12(upload.pkcs12, upload.password)
    } catch (error) {
      if (error instanceof PushCertificateError) throw new OrchardError('validation_failed', `${error.code}: ${error.message}`, { cause: error })
      throw error
    }
  }

  function seal(certificate: PushCertificate, tenantId: string | null) {
    if (!deps.secretBox) {
      throw new OrchardError('conflict', 'no ORCHARD_SECRET_KEYS configured: push certificate keys cannot be stored encrypted')
    }
    if (certificate.notAfter.getTime() <= now().getTime()) {
      throw new OrchardError('validation_failed', `the push certificate expired on ${certificate.notAfter.toISOString()}`)
    }
    return {
      topic: certificate.topic,
      certificatePem: certificate.certificatePem,
      // Bound to the topic: a sealed key cannot be moved to another row.
      privateKeySealed: deps.secretBox.seal(Buffer.from(certificate.privateKeyPem), `push-certificate:${certificate.topic}`),
      serialNumber: certificate.serialNumber,
      subject: certificate.subject,
      sha256: certificate.sha256,
      notBefore: certificate.notBefore,
      notAfter: certificate.notAfter,
      tenantId,
    }
  }

  async function stored(topic: string, scope: AccessScope = fullAccess): Promise<PushCertificateView> {
    const row = await deps.store.getCertificate(topic, scope)
    if (!row) throw new OrchardError('not_found', `no push certificate for topic ${topic}`)
    return view(row)
  }

  return {
    async list(scope = fullAccess) {
      return (await deps.store.listCertificates(scope)).map(view)
    },

    get: stored,

    async add(upload, scope = fullAccess, requestedTenant) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const certificate = await parse(upload)
      if (!(await deps.store.insertCertificate(seal(certificate, tenantId), scope))) {
        throw new OrchardError(
          'conflict',
          `topic ${certificate.topic} already has a push certificate: renew it with PUT /api/v1/push-certificates/${certificate.topic}`,
        )
      }
      log.info({ topic: certificate.topic, serial_number: certificate.serialNumber, not_after: certificate.notAfter }, 'push certificate added')
      return stored(certificate.topic)
    },

    async replace(topic, upload, force, scope = fullAccess) {
      const certificate = await parse(upload)
      const existing = await deps.store.getCertificate(topic, scope)
      if (!existing) throw new OrchardError('not_found', `no push certificate for topic ${topic}`)
      if (certificate.topic !== topic) {
        const orphaned = await deps.store.countEnrolledOnTopic(topic)
        if (orphaned > 0 && !force) {
          throw new OrchardError(
            'conflict',
            `this certificate is for topic ${certificate.topic}, not ${topic}: ${orphaned} enrolled device channel(s) on ${topic} would stop receiving pushes and have to re-enroll. ` +
              'Renew with the same Apple Account in the Apple Push Certificates Portal to keep the topic, or pass force=true.',
            { details: { orphaned_enrollments: orphaned, current_topic: topic, uploaded_topic: certificate.topic } },
          )
        }
        if (await deps.store.getCertificate(certificate.topic)) {
          throw new OrchardError('conflict', `topic ${certificate.topic} already has its own push certificate`)
        }
        log.warn({ topic, new_topic: certificate.topic, orphaned }, 'push certificate replaced by one with another topic (forced)')
      }
      // A renewal stays in the tenant of the certificate it replaces.
      await deps.store.replaceCertificate(topic, seal(certificate, existing.tenantId), scope)
      log.info({ topic: certificate.topic, serial_number: certificate.serialNumber, not_after: certificate.notAfter }, 'push certificate renewed')
      return stored(certificate.topic, scope)
    },

    privateKeyPem(row) {
      if (!deps.secretBox) throw new Error('no ORCHARD_SECRET_KEYS configured: the push certificate key cannot be opened')
      return deps.secretBox.open(row.privateKeySealed, `push-certificate:${row.topic}`).toString('utf8')
    },

    async expiring(days) {
      const limit = now().getTime() + days * 86_400_000
      return (await deps.store.listCertificates()).filter((row) => row.notAfter.getTime() <= limit).map(view)
    },
  }
}
