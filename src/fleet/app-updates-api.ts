// Admin API: updating an app on the devices that report an older version.
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import type { AppUpdates } from './app-updates.js'

export function appUpdateHandlers(deps: { appUpdates: AppUpdates }): OperationHandlers {
  return {
    async updateApp(request) {
      const body = request.body
      const dryRun = body.dry_run === true
      const result = await deps.appUpdates.update(accessOf(request), {
        adamId: request.params.adam_id,
        ...(body.tenant_id !== undefined ? { tenantId: body.tenant_id } : {}),
        ...(body.blueprint_id !== undefined ? { blueprintId: body.blueprint_id } : {}),
        ...(body.bundle_id !== undefined ? { bundleId: body.bundle_id } : {}),
        ...(body.version !== undefined ? { version: body.version } : {}),
        dryRun,
      })
      return {
        adam_id: result.adamId,
        bundle_id: result.bundleId,
        target_version: result.targetVersion,
        version_source: result.versionSource,
        command_uuid: result.commandUuid,
        updating: result.updating,
        up_to_date_count: result.upToDate,
        version_unknown_count: result.versionUnknown,
        without_licence: result.withoutLicence,
        not_queued_count: result.notQueued,
        dry_run: dryRun,
      }
    },
  }
}
