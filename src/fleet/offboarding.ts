// Offboarding one device (a leaver's, or one that is gone): the right end for its kind in one
// call (offboarding-plan.ts), recorded as an 'offboard' lifecycle action whose details show
// its method and steps, completed from the device's answers (offboarding-results.ts).
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import { returnToServiceOf, selectiveWipeItems } from './lifecycle-actions.js'
import { eraseCommand, selectiveWipeCommands } from './lifecycle-policy.js'
import type { LifecycleRecords } from './lifecycle-records.js'
import { notApplicable, wipeActions, type LifecycleRunner } from './lifecycle-runner.js'
import type { LifecycleActionView, LifecycleDevice, LifecycleStore } from './lifecycle-store.js'
import { offboardSteps, planOffboarding, returnToServiceWhy, type OffboardOptions, type OffboardPlan } from './offboarding-plan.js'
import type { ReturnToService } from './return-to-service.js'

export interface Offboarding {
  /** What offboarding would do to the device, without doing it; throws not_found, and not_applicable for a Return to Service it cannot have. */
  plan(scope: AccessScope, deviceId: string, options: OffboardOptions): Promise<{ device: LifecycleDevice; plan: OffboardPlan }>
  offboard(scope: AccessScope, deviceId: string, options: OffboardOptions): Promise<LifecycleActionView>
}

export interface OffboardingDeps {
  store: Pick<LifecycleStore, 'device' | 'inventory' | 'pendingOfDevice'>
  runner: Pick<LifecycleRunner, 'run'>
  records: Pick<LifecycleRecords, 'retire'>
  returnToService?: Pick<ReturnToService, 'decide' | 'planFor'>
  mdmProfileIdentifier: string
  log: Logger
  now: () => Date
}

export function createOffboarding(deps: OffboardingDeps): Offboarding {
  const { store, runner, log, now } = deps

  async function plan(scope: AccessScope, deviceId: string, options: OffboardOptions) {
    const device = await store.device(scope, deviceId)
    if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
    if (device.kind === 'personal' && options.returnToService === true) {
      throw notApplicable(`device ${deviceId} cannot return to service: it is a personal device: it is never erased`, 'not_for_personal_device')
    }
    const [pending] = await store.pendingOfDevice(device.id, wipeActions)
    let planned = planOffboarding(device, options, { now: now(), pendingWipe: pending?.action ?? null })
    if (planned.method === 'erase') {
      if (!deps.returnToService && options.returnToService === true)
        throw notApplicable(`device ${deviceId} cannot return to service: it is not set up on this server`, 'no_wifi_profile')
      const decision = await deps.returnToService?.decide(device, options.returnToService)
      if (decision?.use) planned = { method: 'return_to_service', why: returnToServiceWhy(device.kind) }
      // A function device that does not return to service by default: say why.
      else if (decision && device.kind === 'function' && decision.why !== 'refused_by_request')
        planned = { ...planned, why: `${planned.why} (no Return to Service: ${decision.why})` }
    }
    return { device, plan: planned }
  }

  return {
    plan,

    async offboard(scope, deviceId, options) {
      const { device, plan: planned } = await plan(scope, deviceId, options)
      if (planned.method === null) throw new OrchardError('conflict', `device ${deviceId} cannot be offboarded: ${planned.why}`)
      const reason = options.reason !== undefined ? { reason: options.reason } : {}
      if (planned.method === 'retire') {
        const gone = planned.gone === true && options.goneForDays !== undefined ? { goneForDays: options.goneForDays } : {}
        const action = await deps.records.retire(scope, deviceId, { disown: false, ...reason, ...gone, details: { offboarding: true, why: planned.why } })
        log.info({ device_id: deviceId, lifecycle_action_id: action.id, why: planned.why }, 'offboarding: retired at once')
        return action
      }
      const common = { state: 'wipe_pending' as const, restoreState: device.state, priority: 100 }
      if (planned.method === 'selective_wipe') {
        const items = await selectiveWipeItems(store, device.id, deps.mdmProfileIdentifier)
        return runner.run(scope, device, 'offboard', selectiveWipeCommands(items), {
          ...common,
          details: {
            method: 'selective_wipe',
            ...reason,
            removing: { applications: items.applications, profiles: items.profiles, mdm_profile: items.mdmProfile },
            steps: offboardSteps('selective_wipe', 0),
          },
        })
      }
      const returnToService = await returnToServiceOf(deps, device, options.returnToService)
      const method = returnToService ? 'return_to_service' : 'erase'
      return runner.run(scope, device, 'offboard', [eraseCommand(options.erase, returnToService?.keys)], {
        ...common,
        details: {
          method,
          ...reason,
          ...(returnToService ? { return_to_service: returnToService.details } : {}),
          steps: offboardSteps(method, 0),
        },
      })
    },
  }
}
