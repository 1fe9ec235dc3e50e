// Admin API: offboarding a device, the leavers action (a person's devices, two steps), and
// the Wi-Fi profiles of Return to Service.
import { scopeForRoles, type TenantTree } from '../access/access-control.js'
import { invalidField, OrchardError } from '../errors.js'
import type { OffboardingTarget, ReturnToServiceSetting as SettingJson } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { iso } from '../http/views.js'
import { defaultTenantOf } from '../model/access.js'
import { lifecycleActionJson } from './device-json.js'
import type { Offboarding } from './offboarding.js'
import type { BulkTarget, OffboardingBulk } from './offboarding-bulk.js'
import type { OffboardingJobs } from './offboarding-job.js'
import { jobLocation } from '../jobs/job-json.js'
import type { OffboardOptions } from './offboarding-plan.js'
import type { ReturnToService, ReturnToServiceSetting } from './return-to-service.js'

export interface OffboardingHandlerDeps {
  lifecycle: Pick<Offboarding, 'offboard'>
  offboarding: { leavers: OffboardingBulk; returnToService: Pick<ReturnToService, 'listSettings' | 'setSetting'> | undefined }
  tenants: TenantTree
  /** Above ORCHARD_JOB_THRESHOLD devices, the leavers action answers 202 with an offboarding job. */
  jobs?: OffboardingJobs
}

interface OptionsBody {
  return_to_service?: boolean
  gone_for_days?: number
  reason?: string
  pin?: string
  preserve_data_plan?: boolean
  disallow_proximity_setup?: boolean
}

function optionsOf(body: OptionsBody): OffboardOptions {
  return {
    ...(body.return_to_service !== undefined ? { returnToService: body.return_to_service } : {}),
    ...(body.gone_for_days !== undefined ? { goneForDays: body.gone_for_days } : {}),
    ...(body.reason !== undefined ? { reason: body.reason } : {}),
    erase: {
      ...(body.pin !== undefined ? { pin: body.pin } : {}),
      ...(body.preserve_data_plan !== undefined ? { preserveDataPlan: body.preserve_data_plan } : {}),
      ...(body.disallow_proximity_setup !== undefined ? { disallowProximitySetup: body.disallow_proximity_setup } : {}),
    },
  }
}

function targetJson(target: BulkTarget): OffboardingTarget {
  return {
    device_id: target.deviceId,
    serial_number: target.serialNumber,
    tenant_id: target.tenantId,
    kind: target.kind,
    matched_by: target.matchedBy,
    plan: target.plan,
    detail: target.detail,
    reason: target.reason,
  }
}

function settingJson(tenantId: string | null, setting: ReturnToServiceSetting | null): SettingJson {
  return {
    tenant_id: tenantId,
    wifi_profile_id: setting?.wifiProfileId ?? null,
    wifi_profile_name: setting?.wifiProfileName ?? null,
    updated_at: iso(setting?.updatedAt ?? null),
  }
}

export function offboardingHandlers(deps: OffboardingHandlerDeps): OperationHandlers {
  function returnToService() {
    const service = deps.offboarding.returnToService
    if (!service) throw new OrchardError('not_ready', 'Return to Service is not available on this server')
    return service
  }

  return {
    async offboardDevice(request, reply) {
      const action = await deps.lifecycle.offboard(accessOf(request), request.params.device_id, optionsOf(request.body))
      return reply.code(201).send(lifecycleActionJson(action))
    },

    async offboardLeaver(request, reply) {
      const { body } = request
      if ((body.person === undefined) === (body.device_ids === undefined)) {
        throw invalidField(body.person === undefined ? '/person' : '/device_ids', 'exactly one of person and device_ids is needed')
      }
      const principal = request.principal
      if (!principal) throw new OrchardError('unauthorized', 'not authenticated')
      const caller = {
        principalId: principal.id,
        ownerScope: await scopeForRoles(principal, ['owner'], deps.tenants),
        ...(body.confirmation_token !== undefined ? { confirmationToken: body.confirmation_token } : {}),
      }
      const input = {
        ...(body.person !== undefined ? { person: body.person } : {}),
        ...(body.device_ids !== undefined ? { deviceIds: body.device_ids } : {}),
        options: optionsOf(body),
      }
      const scope = accessOf(request)
      const person = body.person ?? null
      if (body.dry_run) {
        const dryRun = await deps.offboarding.leavers.dryRun(scope, input, caller)
        return reply.code(200).send({
          dry_run: true as const,
          person,
          count: dryRun.count,
          targets: dryRun.targets.map(targetJson),
          owner_required: dryRun.ownerRequired,
          confirmation_token: dryRun.confirmationToken,
          expires_at: dryRun.expiresAt.toISOString(),
        })
      }
      // The plans, the owner role and the confirmation are checked before any job exists.
      const prepared = await deps.offboarding.leavers.prepare(scope, input, caller)
      const job = deps.jobs ? await deps.jobs.startIfLarge(scope, prepared) : null
      if (job) return reply.header('location', jobLocation(job.id)).code(202).send(job)
      const outcomes = await deps.offboarding.leavers.runPrepared(scope, prepared)
      return reply.code(201).send({
        person,
        devices: outcomes.map((outcome) => ({ ...targetJson(outcome), outcome: outcome.outcome, lifecycle_action_id: outcome.lifecycleActionId })),
      })
    },

    async listReturnToServiceSettings(request) {
      const settings = await returnToService().listSettings(accessOf(request))
      return { items: settings.map((setting) => settingJson(setting.tenantId, setting)) }
    },

    async setReturnToServiceSetting(request) {
      const { tenant_id: tenantId, wifi_profile_id: wifiProfileId } = request.body
      const scope = accessOf(request)
      const setting = await returnToService().setSetting(scope, tenantId, wifiProfileId)
      return settingJson(tenantId !== undefined ? tenantId : defaultTenantOf(scope), setting)
    },
  }
}
