// Automated Device Enrollment as main.ts composes it: server tokens, sync, PreStages and
// devices (the DEP service), and the MachineInfo enrollment endpoint.
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { certificatesFromPem } from '../crypto/pem.js'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DatabaseHandle } from '../db/database.js'
import type { EnrollmentService } from '../enrollment/enrollment-service.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import { createAdeEnrollmentService } from './ade-enrollment.js'
import { createDepService } from './dep-service.js'
import { createDepStore } from './dep-store.js'

export { depHandlers } from './api.js'
export { abmSyncJobKind } from './sync-job.js'

export function createAdeFeature(deps: {
  config: Config
  db: DatabaseHandle['db']
  secretBox: SecretBox | null
  enrollment: EnrollmentService
  dispatcher: CommandDispatcher
  logger: Logger
}) {
  const { config, logger } = deps
  const store = createDepStore(deps.db)
  const dep = createDepService({
    store,
    secretBox: deps.secretBox,
    abmUrl: config.abmUrl,
    publicUrl: config.publicUrl,
    organization: config.organization,
    logger,
  })
  const machineInfoCas = config.adeMachineInfoCaFiles.flatMap((file) => certificatesFromPem(readFileSync(file, 'utf8'), file))
  const ade = createAdeEnrollmentService({
    store,
    enrollment: deps.enrollment,
    dispatcher: deps.dispatcher,
    verifyMachineInfoChain: config.adeVerifyMachineInfo,
    machineInfoCas,
    logger,
  })
  return { dep, ade }
}
