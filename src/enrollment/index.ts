// The enrollment feature as main.ts composes it: the device CA (loaded or created, trusted by
// the device identity verifier), the SCEP server, enrollment links and profiles, identity
// renewal, and the admin API handlers.
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DeviceCertificateVerifier } from '../crypto/device-identity.js'
import { loadProfileSigner } from '../crypto/profile-signing.js'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DatabaseHandle } from '../db/database.js'
import type { Metrics } from '../ops/metrics.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import { createCertificateAuthorityStore } from './certificate-authority-store.js'
import { createCertificateAuthorityService } from './certificate-authority.js'
import { createEnrollmentLinkStore } from './enrollment-link-store.js'
import { createEnrollmentService } from './enrollment-service.js'
import { createIdentityRenewalService } from './identity-renewal.js'
import { createIdentityStore } from './identity-store.js'
import { createScepService } from './scep-service.js'

export { enrollmentHandlers } from './api.js'

export interface EnrollmentFeatureDeps {
  config: Config
  db: DatabaseHandle['db']
  secretBox: SecretBox | null
  /** The device identity verifier; the CA's certificates become trusted there. */
  verifier: DeviceCertificateVerifier
  trustedDeviceCas: Buffer[]
  /** Push topics for new profiles, newest certificate first. */
  pushTopics: () => Promise<string[]>
  dispatcher: CommandDispatcher
  metrics: Metrics
  logger: Logger
}

export async function createEnrollmentFeature(deps: EnrollmentFeatureDeps) {
  const { config, db, logger } = deps
  const fileAuthority = config.caFiles && {
    certificatePem: readFileSync(config.caFiles.certFile, 'utf8'),
    privateKeyPem: readFileSync(config.caFiles.keyFile, 'utf8'),
    source: config.caFiles.certFile,
  }
  const authority = createCertificateAuthorityService({
    store: createCertificateAuthorityStore(db),
    secretBox: deps.secretBox,
    fileAuthority: fileAuthority || undefined,
    configTrusted: deps.trustedDeviceCas,
    organization: config.organization,
    onTrustChange: (certificates) => deps.verifier.replaceTrustedCas(certificates),
    logger,
  })
  try {
    await authority.start()
  } catch (error) {
    // A configured CA that does not load is a configuration error; an unmigrated database is not (readiness says so).
    if (config.caFiles) throw new Error(`ORCHARD_CA_CERT_FILE/ORCHARD_CA_KEY_FILE: ${(error as Error).message}`, { cause: error })
    logger.error({ err: error }, 'the device CA could not be loaded')
  }
  const signingFiles = config.profileSigningFiles
  const profileSigner = signingFiles ? loadProfileSigner(readFileSync(signingFiles.certFile, 'utf8'), readFileSync(signingFiles.keyFile, 'utf8')) : null
  const links = createEnrollmentLinkStore(db)
  const identities = createIdentityStore(db)
  const scep = createScepService({
    authority,
    store: links,
    verifyIdentity: (der) => deps.verifier.verify(der),
    staticChallenge: config.scepChallenge,
    identityValidityDays: config.identityValidityDays,
    countOutcome: (outcome) => deps.metrics.scepIssuances.inc({ outcome }),
    logger,
  })
  const enrollment = createEnrollmentService({
    store: links,
    authority,
    pushTopics: deps.pushTopics,
    signer: profileSigner,
    publicUrl: config.publicUrl,
    organization: config.organization,
    profileIdentifier: config.enrollmentProfileIdentifier,
    openEnrollment: config.openEnrollment,
    challengeTtlHours: config.enrollmentChallengeHours,
    // A renewal challenge must outlive a device that is off for a while, but not its identity.
    renewalChallengeDays: Math.max(1, Math.min(30, config.identityRenewalDays)),
    logger,
  })
  const renewal = createIdentityRenewalService({ store: identities, enrollment, dispatcher: deps.dispatcher, leadDays: config.identityRenewalDays, logger })
  /** Where an identity certificate came from, and recording it on its device (the check-in service's IdentityOrigins). */
  const identityOrigins = {
    lookup: (sha256: string) => links.identityOrigin(sha256),
    apply: (...args: Parameters<typeof identities.applyOrigin>) => identities.applyOrigin(...args),
  }
  return { authority, profileSigner, scep, enrollment, renewal, identityOrigins }
}
