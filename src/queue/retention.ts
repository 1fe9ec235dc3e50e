// Retention of finished command results: a server setting, and the daily pruning that
// applies it (finished targets older than the window, then commands left without targets).
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { CommandAdminStore } from './command-admin-store.js'
import type { ServerSettingsStore } from '../ops/server-settings-store.js'

export const defaultRetentionDays = 90
const settingKey = 'command_retention_days'

export interface RetentionSettings {
  retentionDays(): Promise<number>
  /** `scope` carries the admin caller the change is audited for (in the same transaction). */
  setRetentionDays(scope: AccessScope, days: number): Promise<void>
}

export interface RetentionService extends RetentionSettings {
  /** Deletes what is older than the window; returns what was removed. */
  prune(now?: Date): Promise<{ targets: number; commands: number }>
}

/**
 * Commands Orchard queues by itself whose answers are stored elsewhere (the inventory queries
 * at enrollment and in the daily refresh: their content is the device's inventory). Their raw
 * answers are kept `days` (0: as long as any command), not the command retention: kept 90
 * days, a daily refresh's answers (~20 KB stored per device and day, the app list most of it)
 * would be most of the database.
 */
export interface OwnResultsRetention {
  requestTypes: readonly string[]
  priority: number
  days: number
}

export function createRetentionService(deps: {
  settings: ServerSettingsStore
  commandAdmin: CommandAdminStore
  ownResults?: OwnResultsRetention
  logger: Logger
}): RetentionService {
  const log = deps.logger.child({ service: 'retention' })
  const service: RetentionService = {
    async retentionDays() {
      const value = await deps.settings.getSetting(settingKey)
      return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? value : defaultRetentionDays
    },
    async setRetentionDays(scope, days) {
      if (!Number.isInteger(days) || days < 1 || days > 3650)
        throw new OrchardError('validation_failed', 'command_retention_days must be a whole number from 1 to 3650')
      await deps.settings.putSetting(scope, settingKey, days)
    },
    async prune(now = new Date()) {
      const days = await service.retentionDays()
      const removed = await deps.commandAdmin.pruneFinished(new Date(now.getTime() - days * 86_400_000))
      if (removed.targets > 0 || removed.commands > 0)
        log.info({ retention_days: days, targets: removed.targets, commands: removed.commands }, 'old command results pruned')
      const own = deps.ownResults
      if (own && own.days > 0 && own.days < days) {
        const inventory = await deps.commandAdmin.pruneFinishedOf(own, new Date(now.getTime() - own.days * 86_400_000))
        if (inventory.targets > 0 || inventory.commands > 0)
          log.info({ retention_days: own.days, targets: inventory.targets, commands: inventory.commands }, 'old inventory query results pruned')
        return { targets: removed.targets + inventory.targets, commands: removed.commands + inventory.commands }
      }
      return removed
    },
  }
  return service
}
