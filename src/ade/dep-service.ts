// Automated Device Enrollment against Apple Business/School Manager, one part per concern:
// server tokens (tokens.ts), the device sync loop per token (sync.ts), PreStage profiles
// defined at Apple (profiles.ts), and their assignment to devices (devices.ts). The parts
// call Apple through abm-access.ts, which turns everything Apple answers that an admin must
// act on into the token's stored status, readable through the API.
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import { createAbmAccess } from './abm-access.js'
import { createDepActivationLock, type DepActivationLock } from './activation-lock.js'
import { batchSize } from './dep-common.js'
import type { DepStore } from './dep-store.js'
import { createDepDevices, type DepDevices } from './devices.js'
import { createDepProfiles, type DepProfiles } from './profiles.js'
import { createDepSync, type DepSync } from './sync.js'
import { createDepTokens, type DepTokens } from './tokens.js'

export type { AssignReport } from './abm-access.js'
export type { AbmActivationLockOutcome } from './activation-lock.js'
export type { DepProfileInput } from './profiles.js'
export type { SyncReport } from './sync.js'
export type { DepTokenView } from './tokens.js'

export interface DepService extends DepTokens, DepSync, DepProfiles, DepDevices, DepActivationLock {}

export interface DepServiceDeps {
  store: DepStore
  secretBox: SecretBox | null
  abmUrl: string
  publicUrl: string
  organization: string
  /** Devices per fetch/sync page (Apple: at most 1000). */
  pageSize?: number
  /** Identifies this process for the sync lease. */
  instanceId?: string
  logger: Logger
  now?: () => Date
}

export function createDepService(deps: DepServiceDeps): DepService {
  const { store } = deps
  const log = deps.logger.child({ service: 'dep' })
  const now = deps.now ?? (() => new Date())
  const abm = createAbmAccess({ store, secretBox: deps.secretBox, abmUrl: deps.abmUrl, log, now })
  const pageSize = Math.min(deps.pageSize ?? batchSize, batchSize)
  const instanceId = deps.instanceId ?? randomUUID()
  return {
    ...createDepTokens({ store, abm, organization: deps.organization, log, now }),
    ...createDepSync({ store, abm, pageSize, instanceId, log, now }),
    ...createDepProfiles({ store, abm, publicUrl: deps.publicUrl, log, now }),
    ...createDepDevices({ store, abm, log, now }),
    ...createDepActivationLock({ store, abm, log }),
  }
}
