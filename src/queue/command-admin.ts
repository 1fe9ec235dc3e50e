// The command queue as operators see it, for the admin API: commands with their status
// counts, per-target status and results, a channel's queue and history, and cancellation.
// A thin layer over the command admin store that answers not_found for what the caller
// cannot see, so handlers never reach the store.
import { OrchardError } from '../errors.js'
import type { Page } from '../db/pagination.js'
import type { AccessScope } from '../model/access.js'
import type { CommandTargetStatus } from '../model/commands.js'
import type { CancelOutcome, CommandAdminStore, CommandRow, CommandTargetRow, CommandWithCounts } from './command-admin-store.js'

type PageRequest = { limit: number; cursor?: string }

export interface CommandAdmin {
  listCommands(scope: AccessScope, filter: { requestType?: string; createdBefore?: Date; createdAfter?: Date }, page: PageRequest): Promise<Page<CommandRow>>
  /** A command with its status counts; not_found when the caller cannot see it. */
  getCommand(scope: AccessScope, uuid: string): Promise<CommandWithCounts>
  listCommandTargets(scope: AccessScope, uuid: string, filter: { status?: CommandTargetStatus }, page: PageRequest): Promise<Page<CommandTargetRow>>
  /** Cancels the command for the named channels, or all its targets. */
  cancelCommand(scope: AccessScope, uuid: string, enrollmentIds: readonly string[] | undefined, reason: string): Promise<CancelOutcome>
  listEnrollmentCommands(scope: AccessScope, enrollmentId: string, state: 'open' | 'finished' | 'all', page: PageRequest): Promise<Page<CommandTargetRow>>
  /** Cancels everything queued for a channel that the device has not fetched. */
  clearQueue(scope: AccessScope, enrollmentId: string, reason: string): Promise<{ cancelled: number; inFlight: number }>
  recordUnstoredCommand: CommandAdminStore['recordUnstoredCommand']
  recordDryRun: CommandAdminStore['recordDryRun']
}

export interface CommandAdminDeps {
  store: Omit<CommandAdminStore, 'pruneFinished'>
  /** not_found unless the caller can see the channel (fleet/device-directory.ts). */
  requireEnrollment(scope: AccessScope, enrollmentId: string): Promise<void>
}

export function createCommandAdmin(deps: CommandAdminDeps): CommandAdmin {
  const { store } = deps
  const noCommand = (uuid: string) => new OrchardError('not_found', `no command ${uuid}`)
  return {
    listCommands: (scope, filter, page) => store.listCommands(scope, filter, page),
    async getCommand(scope, uuid) {
      const command = await store.getCommand(scope, uuid)
      if (!command) throw noCommand(uuid)
      return command
    },
    async listCommandTargets(scope, uuid, filter, page) {
      const targets = await store.listCommandTargets(scope, uuid, filter, page)
      if (targets.items.length === 0 && !page.cursor && !(await store.commandExists(scope, uuid))) throw noCommand(uuid)
      return targets
    },
    async cancelCommand(scope, uuid, enrollmentIds, reason) {
      if (!(await store.commandExists(scope, uuid))) throw noCommand(uuid)
      return store.cancelCommand(scope, uuid, enrollmentIds, reason)
    },
    async listEnrollmentCommands(scope, enrollmentId, state, page) {
      await deps.requireEnrollment(scope, enrollmentId)
      return store.listEnrollmentCommands(scope, enrollmentId, state, page)
    },
    async clearQueue(scope, enrollmentId, reason) {
      await deps.requireEnrollment(scope, enrollmentId)
      return store.clearQueue(scope, enrollmentId, reason)
    },
    recordUnstoredCommand: (scope, command) => store.recordUnstoredCommand(scope, command),
    recordDryRun: (scope, dryRun) => store.recordDryRun(scope, dryRun),
  }
}
