// The device-facing pipeline as main.ts composes it: identity (Mdm-Signature, TLS client
// certificate, forwarded certificate) -> check-ins and reports -> their stores, with what
// other features must learn leaving as device events.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { DeviceCertificateVerifier } from '../crypto/device-identity.js'
import type { DatabaseHandle } from '../db/database.js'
import type { Metrics } from '../ops/metrics.js'
import type { CommandQueueStore } from '../queue/command-queue-store.js'
import { createCheckinService, type IdentityOrigins } from './checkin-service.js'
import { createDdmStatusStore } from './ddm-store.js'
import { createEmptyDeclarativeManagement, type DeclarativeManagementHandler } from './declarative-management.js'
import type { DeviceSecrets } from './device-secrets.js'
import { createEnrollmentStore } from './enrollment-store.js'
import type { DeviceEvents } from './events.js'
import { createIdentityResolver } from './identity-resolver.js'
import { createInventoryStore } from './inventory-store.js'
import { createReportService } from './report-service.js'
import type { MdmRoutesOptions } from './routes.js'

export { createDeviceSecrets } from './device-secrets.js'
export { createDeviceSecretStore } from './device-secret-store.js'
export { createDeviceEvents } from './events.js'

/** The options of the device routes (`/mdm/checkin`, `/mdm/connect`, `/mdm`). */
export function createDeviceSurface(deps: {
  config: Config
  db: DatabaseHandle['db']
  verifier: DeviceCertificateVerifier
  queue: Pick<CommandQueueStore, 'processReport'>
  secrets: DeviceSecrets
  identityOrigins: IdentityOrigins
  /** DDM check-ins of device channels (declarative management); the empty set otherwise. */
  declarativeManagement?: (fallback: DeclarativeManagementHandler) => DeclarativeManagementHandler
  events: DeviceEvents
  metrics: Metrics
  logger: Logger
}): MdmRoutesOptions {
  const { config, db, events, metrics, logger } = deps
  const checkin = createCheckinService({
    enrollments: createEnrollmentStore(db),
    secrets: deps.secrets,
    declarativeManagement: (deps.declarativeManagement ?? ((empty) => empty))(createEmptyDeclarativeManagement(createDdmStatusStore(db))),
    tokenServices: {},
    userAuthentication: config.userAuthenticate,
    events,
    identityOrigins: deps.identityOrigins,
    logger,
  })
  const reports = createReportService({
    queue: deps.queue,
    inventory: createInventoryStore(db),
    events,
    metrics,
    notNowAlertAfter: config.notNowAlertAfter,
    logger,
  })
  return {
    resolveIdentity: createIdentityResolver(deps.verifier),
    checkin,
    reports,
    metrics,
    bodyLimit: config.mdmBodyLimit,
    clientCertificateHeader: config.clientCertHeader,
  }
}
