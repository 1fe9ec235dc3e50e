// Admin API: server-wide settings.
import type { RetentionSettings } from '../queue/retention.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'

export function settingsHandlers(deps: { retention: RetentionSettings }): OperationHandlers {
  return {
    async getSettings() {
      return { command_retention_days: await deps.retention.retentionDays() }
    },
    async updateSettings(request) {
      const { body } = request
      if (body.command_retention_days !== undefined) await deps.retention.setRetentionDays(accessOf(request), body.command_retention_days)
      request.log.info({ settings: body }, 'settings changed')
      return { command_retention_days: await deps.retention.retentionDays() }
    },
  }
}
