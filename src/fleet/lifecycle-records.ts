// The lifecycle actions that queue no command (retire, the device's kind: recorded as over
// when they happen), cancelling a pending action, and the device's record (its actions and
// the locations it reported).
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { DeviceKind } from '../model/devices.js'
import { notApplicable } from './lifecycle-actions.js'
import type { LifecycleActionView, LifecycleStore, LocationRow } from './lifecycle-store.js'

export interface RetireOptions {
  disown: boolean
  /** Why, kept in the action's details. */
  reason?: string
  /** Only a device gone this long: no contact for this many days (else conflict). */
  goneForDays?: number
  /** More to keep in the action's details. */
  details?: Record<string, unknown>
}

const dayMs = 86_400_000

export interface LifecycleRecords {
  retire(scope: AccessScope, deviceId: string, options: RetireOptions): Promise<LifecycleActionView>
  /**
   * A User Enrollment stays personal; any other personal device leaves `personal` only for
   * an owner in central IT (`centralOwner`) who gives a reason.
   */
  setKind(scope: AccessScope, deviceId: string, kind: DeviceKind, options?: { reason?: string; centralOwner?: boolean }): Promise<'changed' | 'unchanged'>
  cancel(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView>
  listActions(scope: AccessScope, deviceId: string): Promise<LifecycleActionView[]>
  getAction(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView>
  listLocations(scope: AccessScope, deviceId: string, limit: number): Promise<LocationRow[]>
}

export interface LifecycleRecordsDeps {
  store: Pick<LifecycleStore, 'device' | 'retire' | 'setKind' | 'getAction' | 'cancelCommands' | 'finish' | 'listActions' | 'listLocations'>
  /** Disowning from ABM/ASM when a device is retired. */
  disown?: (scope: AccessScope, tokenId: string, serials: string[]) => Promise<Record<string, string>>
  log: Logger
  now: () => Date
}

export function createLifecycleRecords(deps: LifecycleRecordsDeps): LifecycleRecords {
  const { store, log, now } = deps

  async function view(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView> {
    const action = await store.getAction(scope, deviceId, actionId)
    if (!action) throw new OrchardError('not_found', `no lifecycle action ${actionId} on device ${deviceId}`)
    return action
  }

  return {
    async retire(scope, deviceId, options) {
      const device = await store.device(scope, deviceId)
      if (!device) throw new OrchardError('not_found', `no device ${deviceId}`)
      if (device.state === 'retired') throw new OrchardError('conflict', `device ${deviceId} is retired already`)
      const goneForDays = options.goneForDays
      if (goneForDays !== undefined && device.lastContactAt.getTime() > now().getTime() - goneForDays * dayMs) {
        throw new OrchardError(
          'conflict',
          `device ${deviceId} was last in contact at ${device.lastContactAt.toISOString()}, less than ${goneForDays} days ago: it is not gone; offboard it instead (POST /api/v1/devices/${deviceId}/offboard)`,
        )
      }
      let disowned: Record<string, string> | null = null
      if (options.disown) {
        if (!device.depTokenId || !device.serialNumber || !deps.disown)
          throw notApplicable(`device ${deviceId} is not an ABM/ASM device of ours: nothing to disown`, 'not_ade')
        // Audited once, as this retire (with Apple's answer in its details), not as a token write.
        const quiet: AccessScope = scope.kind === 'all' ? { kind: 'all' } : { kind: 'tenants', ids: scope.ids }
        disowned = await deps.disown(quiet, device.depTokenId, [device.serialNumber])
      }
      const id = randomUUID()
      await store.retire(
        scope,
        {
          id,
          deviceId,
          tenantId: device.tenantId,
          action: 'retire',
          details: {
            disown: options.disown,
            ...(disowned ? { disowned: disowned[device.serialNumber!] ?? null } : {}),
            ...(options.reason !== undefined ? { reason: options.reason } : {}),
            ...(goneForDays !== undefined ? { gone_for_days: goneForDays, last_contact_at: device.lastContactAt.toISOString() } : {}),
            ...options.details,
          },
        },
        now(),
      )
      log.info({ device_id: deviceId, lifecycle_action_id: id, disowned }, 'device retired')
      return view(scope, deviceId, id)
    },

    async setKind(scope, deviceId, kind, options = {}) {
      // A personal device may be erased, located and put in Lost Mode once it is not personal:
      // that step is for central IT's owners, with a reason kept in the audit trail.
      const leavePersonal = options.centralOwner === true && options.reason !== undefined ? { reason: options.reason } : undefined
      const outcome = await store.setKind(scope, deviceId, kind, randomUUID(), now(), leavePersonal ? { leavePersonal } : {})
      if (outcome === 'not_found') throw new OrchardError('not_found', `no device ${deviceId}`)
      if (outcome === 'user_enrollment') {
        const detail = 'a User Enrollment is always personal'
        throw new OrchardError('validation_failed', `kind: ${detail}`, { details: { errors: [{ pointer: '/kind', detail }] } })
      }
      if (outcome === 'leaving_personal') {
        if (options.centralOwner !== true) {
          throw new OrchardError('forbidden', `device ${deviceId} is personal: only an owner in central IT may change its kind (it would become erasable)`)
        }
        const detail = 'a reason is needed to change the kind of a personal device'
        throw new OrchardError('validation_failed', `reason: ${detail}`, { details: { errors: [{ pointer: '/reason', detail }] } })
      }
      if (outcome === 'ok') log.info({ device_id: deviceId, kind, reason: options.reason ?? null }, 'device kind changed')
      return outcome === 'ok' ? 'changed' : 'unchanged'
    },

    async cancel(scope, deviceId, actionId) {
      const action = await view(scope, deviceId, actionId)
      if (action.status !== 'pending') throw new OrchardError('conflict', `lifecycle action ${actionId} is ${action.status}`)
      const outcome = await store.cancelCommands(scope, action, 'lifecycle action cancelled')
      if (outcome.fetched > 0)
        throw new OrchardError('conflict', `the device has fetched the command already (${outcome.fetched}); it may be running and cannot be cancelled`)
      await store.finish(actionId, 'cancelled', now(), { state: action.action === 'found' || action.action === 'locate' ? 'lost' : 'active' })
      return view(scope, deviceId, actionId)
    },

    listActions: (scope, deviceId) => store.listActions(scope, deviceId),
    getAction: (scope, deviceId, actionId) => view(scope, deviceId, actionId),
    async listLocations(scope, deviceId, limit) {
      if (!(await store.device(scope, deviceId))) throw new OrchardError('not_found', `no device ${deviceId}`)
      return store.listLocations(scope, deviceId, limit)
    },
  }
}
