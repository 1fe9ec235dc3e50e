// The device CA: which CA issues identities (from files, imported, or generated on first
// start and kept in the database with its key sealed), which CAs are trusted for device
// identities, and issuing an identity certificate from a SCEP request.
import { createPrivateKey, type KeyObject } from 'node:crypto'
import type { Logger } from 'pino'
import { generateCertificateAuthority, issueCertificate, type IssuedCertificate } from '../crypto/certificate-issuer.js'
import { readCertificateFields } from '../crypto/der.js'
import type { EnvelopeRecipient } from '../crypto/scep.js'
import { SecretBoxError, type SecretBox } from '../crypto/secret-box.js'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import { caKeyLabel, checkAuthority, newRegistrationAuthority, raKeyLabel, sha256, subjectOf, toPem } from './certificate-authority-certificates.js'
import type { CertificateAuthorityRow, CertificateAuthorityStore, NewCertificateAuthority } from './certificate-authority-store.js'

export interface IssuingAuthority {
  /** Hex SHA-256 of the CA certificate. */
  id: string
  certificateDer: Buffer
  privateKey: KeyObject
  notAfter: Date
  /** The RA certificate when the CA's own key cannot decrypt SCEP requests (EC). */
  registrationAuthority?: { certificateDer: Buffer; privateKey: KeyObject }
}

export type CertificateAuthoritySource = 'generated' | 'imported' | 'trusted' | 'file' | 'config'

export interface CertificateAuthorityView {
  id: string
  subject: string
  notBefore: Date
  notAfter: Date
  source: CertificateAuthoritySource
  /** Issues identities now. */
  active: boolean
  certificatePem: string
  registrationAuthority: { subject: string; notAfter: Date; certificatePem: string } | null
}

export interface IdentityCertificate extends IssuedCertificate {
  notBefore: Date
  notAfter: Date
  caSha256: string
}

export interface CertificateAuthorityService {
  /** Loads the CAs; generates the device CA on first start when none is configured. */
  start(): Promise<void>
  /** Re-reads the database (another instance imported or removed a CA). */
  refresh(): Promise<void>
  /** The CA issuing identities now, or an OrchardError explaining why there is none. */
  issuing(): IssuingAuthority
  available(): boolean
  /** Decrypt SCEP requests with these (RA first). */
  scepRecipients(): EnvelopeRecipient[]
  /** Signs CertRep messages: the RA when there is one, else the CA. */
  scepSigner(): { certificateDer: Buffer; privateKey: KeyObject }
  /** GetCACert: the CA alone, or CA then RA. */
  scepCertificates(): Buffer[]
  trustedCertificates(): Buffer[]
  list(): CertificateAuthorityView[]
  /** The operator's changes: `scope` carries the caller its audit row (written with the change) is for. */
  importAuthority(scope: AccessScope, certificatePem: string, privateKeyPem: string): Promise<CertificateAuthorityView>
  addTrusted(scope: AccessScope, certificatePem: string): Promise<CertificateAuthorityView>
  remove(scope: AccessScope, id: string): Promise<void>
  issueIdentity(request: { subject: Buffer; publicKeySpki: Buffer }, validityDays: number): IdentityCertificate
}

export interface CertificateAuthorityDeps {
  store: CertificateAuthorityStore
  secretBox: SecretBox | null
  /** ORCHARD_CA_CERT_FILE/ORCHARD_CA_KEY_FILE contents: this CA issues, nothing is generated. */
  fileAuthority?: { certificatePem: string; privateKeyPem: string; source: string } | undefined
  /** ORCHARD_DEVICE_CA_FILES: trusted, never issuing. */
  configTrusted: Buffer[]
  organization: string
  /** Called with every trusted CA whenever the list changes. */
  onTrustChange: (certificates: Buffer[]) => void
  logger: Logger
  now?: () => Date
}

export function createCertificateAuthorityService(deps: CertificateAuthorityDeps): CertificateAuthorityService {
  const log = deps.logger.child({ service: 'certificate-authority' })
  const now = deps.now ?? (() => new Date())
  let rows: CertificateAuthorityRow[] = []
  let issuingAuthority: IssuingAuthority | null = null
  let unavailable = 'the device CA is not loaded yet'
  let fileAuthority: IssuingAuthority | null = null

  const openKey = (sealed: Buffer, label: string): KeyObject => {
    if (!deps.secretBox) throw new Error('no ORCHARD_SECRET_KEYS configured: the device CA key cannot be opened')
    return createPrivateKey(deps.secretBox.open(sealed, label).toString('utf8'))
  }

  const sealKey = (key: KeyObject, label: string): Buffer => {
    if (!deps.secretBox) throw new OrchardError('conflict', 'the device CA key needs ORCHARD_SECRET_KEYS to be sealed at rest')
    return deps.secretBox.seal(Buffer.from(key.export({ type: 'pkcs8', format: 'pem' }) as string), label)
  }

  function trustedList(): Buffer[] {
    const list: Buffer[] = []
    const seen = new Set<string>()
    const add = (der: Buffer) => {
      const id = sha256(der)
      if (seen.has(id)) return
      seen.add(id)
      list.push(der)
    }
    if (fileAuthority) add(fileAuthority.certificateDer)
    for (const row of rows) add(row.certificate_der)
    for (const der of deps.configTrusted) add(der)
    return list
  }

  async function load(): Promise<void> {
    rows = await deps.store.list()
    if (fileAuthority) {
      issuingAuthority = fileAuthority
    } else {
      const active = rows.find((row) => row.active)
      if (active && active.id !== issuingAuthority?.id) {
        try {
          const privateKey = openKey(active.private_key_sealed!, caKeyLabel(active.id))
          let registrationAuthority: IssuingAuthority['registrationAuthority']
          if (active.ra_certificate_der && active.ra_private_key_sealed) {
            registrationAuthority = { certificateDer: active.ra_certificate_der, privateKey: openKey(active.ra_private_key_sealed, raKeyLabel(active.id)) }
          }
          issuingAuthority = {
            id: active.id,
            certificateDer: active.certificate_der,
            privateKey,
            notAfter: active.not_after,
            ...(registrationAuthority ? { registrationAuthority } : {}),
          }
        } catch (error) {
          issuingAuthority = null
          unavailable =
            error instanceof SecretBoxError
              ? `the device CA key (${active.id.slice(0, 16)}) does not open with ORCHARD_SECRET_KEYS: every instance needs the key it was sealed with (${error.message})`
              : `the device CA key does not load: ${(error as Error).message}`
          log.error({ ca: active.id }, unavailable)
        }
      } else if (!active) {
        issuingAuthority = null
      }
    }
    deps.onTrustChange(trustedList())
  }

  async function generate(): Promise<void> {
    if (!deps.secretBox) {
      unavailable =
        'no device CA: set ORCHARD_SECRET_KEYS so Orchard can create one and seal its key, or configure ORCHARD_CA_CERT_FILE and ORCHARD_CA_KEY_FILE'
      log.warn(unavailable)
      return
    }
    const generated = generateCertificateAuthority({
      commonName: `${deps.organization} Device CA`,
      organization: deps.organization,
      validDays: 3650,
      now: now(),
    })
    const id = sha256(generated.certificateDer)
    const fields = readCertificateFields(generated.certificateDer)
    const inserted = await deps.store.insertActiveIfNone({
      id,
      certificate_der: generated.certificateDer,
      subject: subjectOf(generated.certificateDer),
      not_before: fields.notBefore,
      not_after: fields.notAfter,
      source: 'generated',
      private_key_sealed: sealKey(generated.privateKey, caKeyLabel(id)),
      ra_certificate_der: null,
      ra_private_key_sealed: null,
    })
    if (inserted) log.info({ ca: id, subject: subjectOf(generated.certificateDer), not_after: fields.notAfter }, 'generated the device CA')
  }

  function view(der: Buffer, source: CertificateAuthoritySource, active: boolean, ra?: Buffer | null): CertificateAuthorityView {
    const fields = readCertificateFields(der)
    return {
      id: sha256(der),
      subject: subjectOf(der),
      notBefore: fields.notBefore,
      notAfter: fields.notAfter,
      source,
      active,
      certificatePem: toPem(der),
      registrationAuthority: ra ? { subject: subjectOf(ra), notAfter: readCertificateFields(ra).notAfter, certificatePem: toPem(ra) } : null,
    }
  }

  function list(): CertificateAuthorityView[] {
    const views: CertificateAuthorityView[] = []
    const seen = new Set<string>()
    if (fileAuthority) {
      views.push(view(fileAuthority.certificateDer, 'file', true, fileAuthority.registrationAuthority?.certificateDer))
      seen.add(fileAuthority.id)
    }
    for (const row of rows) {
      if (seen.has(row.id)) continue
      seen.add(row.id)
      views.push(view(row.certificate_der, row.source, !fileAuthority && row.active, row.ra_certificate_der))
    }
    for (const der of deps.configTrusted) {
      const id = sha256(der)
      if (seen.has(id)) continue
      seen.add(id)
      views.push(view(der, 'config', false))
    }
    return views
  }

  function issuing(): IssuingAuthority {
    if (!issuingAuthority) throw new OrchardError('not_ready', unavailable)
    return issuingAuthority
  }

  return {
    async start() {
      if (deps.fileAuthority) {
        const { der, key } = checkAuthority(deps.fileAuthority.certificatePem, deps.fileAuthority.privateKeyPem, now())
        const ra = key!.asymmetricKeyType === 'rsa' ? undefined : newRegistrationAuthority(der, key!, deps.organization, now())
        fileAuthority = {
          id: sha256(der),
          certificateDer: der,
          privateKey: key!,
          notAfter: readCertificateFields(der).notAfter,
          ...(ra ? { registrationAuthority: ra } : {}),
        }
      }
      await load()
      if (!issuingAuthority && !fileAuthority && !rows.some((row) => row.active)) {
        await generate()
        await load()
      }
    },

    refresh: load,
    issuing,
    available: () => issuingAuthority !== null,

    scepRecipients() {
      const authority = issuing()
      const recipients: EnvelopeRecipient[] = []
      if (authority.registrationAuthority) recipients.push(authority.registrationAuthority)
      if (authority.privateKey.asymmetricKeyType === 'rsa') recipients.push({ certificateDer: authority.certificateDer, privateKey: authority.privateKey })
      return recipients
    },

    scepSigner() {
      const authority = issuing()
      return authority.registrationAuthority ?? { certificateDer: authority.certificateDer, privateKey: authority.privateKey }
    },

    scepCertificates() {
      const authority = issuing()
      return authority.registrationAuthority ? [authority.certificateDer, authority.registrationAuthority.certificateDer] : [authority.certificateDer]
    },

    trustedCertificates: trustedList,
    list,

    async importAuthority(scope, certificatePem, privateKeyPem) {
      if (fileAuthority) throw new OrchardError('conflict', 'the issuing CA comes from ORCHARD_CA_CERT_FILE/ORCHARD_CA_KEY_FILE; change those files instead')
      const { der, key } = checkAuthority(certificatePem, privateKeyPem, now())
      const id = sha256(der)
      const fields = readCertificateFields(der)
      const ra = key!.asymmetricKeyType === 'rsa' ? undefined : newRegistrationAuthority(der, key!, deps.organization, now())
      const row: NewCertificateAuthority = {
        id,
        certificate_der: der,
        subject: subjectOf(der),
        not_before: fields.notBefore,
        not_after: fields.notAfter,
        source: 'imported',
        private_key_sealed: sealKey(key!, caKeyLabel(id)),
        ra_certificate_der: ra?.certificateDer ?? null,
        ra_private_key_sealed: ra ? sealKey(ra.privateKey, raKeyLabel(id)) : null,
      }
      await deps.store.activate(scope, row)
      issuingAuthority = null
      await load()
      log.info({ ca: id, subject: row.subject, registration_authority: ra !== undefined }, 'imported a device CA; it issues identities from now on')
      return list().find((item) => item.id === id)!
    },

    async addTrusted(scope, certificatePem) {
      const { der } = checkAuthority(certificatePem, undefined, now())
      const id = sha256(der)
      const fields = readCertificateFields(der)
      const added = await deps.store.addTrusted(scope, {
        id,
        certificate_der: der,
        subject: subjectOf(der),
        not_before: fields.notBefore,
        not_after: fields.notAfter,
        source: 'trusted',
        private_key_sealed: null,
        ra_certificate_der: null,
        ra_private_key_sealed: null,
      })
      if (!added) throw new OrchardError('conflict', `CA ${id} is already known`)
      await load()
      log.info({ ca: id, subject: subjectOf(der) }, 'added a trusted device CA')
      return list().find((item) => item.id === id)!
    },

    async remove(scope, id) {
      const outcome = await deps.store.remove(scope, id)
      if (outcome === 'not_found') {
        const configured = list().find((item) => item.id === id)
        if (configured)
          throw new OrchardError(
            'conflict',
            `CA ${id} comes from the configuration (${configured.source === 'file' ? 'ORCHARD_CA_CERT_FILE' : 'ORCHARD_DEVICE_CA_FILES'}); remove it there`,
          )
        throw new OrchardError('not_found', `no CA ${id}`)
      }
      if (outcome === 'active') throw new OrchardError('conflict', `CA ${id} issues identities now; import another CA first`)
      await load()
      log.warn({ ca: id }, 'removed a device CA: identities it issued are no longer trusted')
    },

    issueIdentity(request, validityDays) {
      const authority = issuing()
      const fields = readCertificateFields(authority.certificateDer)
      // A little slack for device clocks behind ours; never past the CA's own end.
      const notBefore = new Date(now().getTime() - 5 * 60_000)
      const notAfter = new Date(Math.min(now().getTime() + validityDays * 86_400_000, fields.notAfter.getTime()))
      const issued = issueCertificate({
        subject: request.subject,
        publicKeySpki: request.publicKeySpki,
        issuer: { subject: fields.subject, publicKeySpki: fields.subjectPublicKeyInfo, privateKey: authority.privateKey },
        notBefore,
        notAfter,
        profile: 'client',
      })
      // X.509 times have whole seconds.
      const truncate = (date: Date) => new Date(Math.floor(date.getTime() / 1000) * 1000)
      return { ...issued, notBefore: truncate(notBefore), notAfter: truncate(notAfter), caSha256: authority.id }
    },
  }
}
