// Account-driven enrollment as main.ts composes it: on when ORCHARD_ACCOUNT_ENROLLMENT_CLIENT_ID
// is set (with ORCHARD_OIDC_ISSUER); the store, the OIDC client, the service, its routes' options.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DatabaseHandle } from '../db/database.js'
import { createAccountEnrollment, type AccountEnrollment } from './account-enrollment.js'
import { createAccountEnrollmentStore, type AccountEnrollmentStore } from './account-enrollment-store.js'
import { createAccountLogin } from './account-login.js'
import type { EnrollmentService } from './enrollment-service.js'

export { accountEnrollmentHandlers } from './account-api.js'
export { createAccountEnrollmentAdmin } from './account-admin.js'

export interface AccountEnrollmentFeature {
  /** Null: not configured (no sign-in, no enrollment endpoints); the admin API still works. */
  service: AccountEnrollment | null
  store: AccountEnrollmentStore
}

export function createAccountEnrollmentFeature(deps: {
  config: Config
  db: DatabaseHandle['db']
  enrollment: Pick<EnrollmentService, 'accountProfile'>
  offboard: (deviceId: string, reason: string) => Promise<void>
  logger: Logger
}): AccountEnrollmentFeature {
  const { config } = deps
  const store = createAccountEnrollmentStore(deps.db)
  if (config.accountEnrollmentClientId === null || config.oidc === null) return { service: null, store }
  const publicUrl = config.publicUrl.replace(/\/$/, '')
  const login = createAccountLogin({
    issuer: config.oidc.issuer,
    clientId: config.accountEnrollmentClientId,
    clientSecret: config.accountEnrollmentClientSecret,
    redirectUri: `${publicUrl}/enroll/account/callback`,
    jwksUrl: config.oidc.jwksUrl,
  })
  const service = createAccountEnrollment({
    store,
    login,
    profiles: deps.enrollment,
    publicUrl,
    groupsClaim: config.oidc.groupsClaim,
    requiredGroup: config.accountEnrollmentRequiredGroup,
    reauthDays: config.accountEnrollmentReauthDays,
    offboard: deps.offboard,
    logger: deps.logger,
  })
  return { service, store }
}
