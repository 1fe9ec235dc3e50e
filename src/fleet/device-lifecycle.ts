// Device lifecycle actions: lost, found, locate, wipe (erase for corporate devices, selective
// wipe for personal ones), reinstall through ADE (lifecycle-actions.ts), retire and the
// device's kind (lifecycle-records.ts). Each action is one call, audited, recorded with the
// commands it queued, and completed from the device's answers (command results, check-out,
// re-enrollment: lifecycle-results.ts). This facade composes the parts over one store.
import type { Logger } from 'pino'
import { createLifecycleActions, type LifecycleActions, type LifecycleActionsDeps } from './lifecycle-actions.js'
import { createLifecycleRecords, type LifecycleRecords, type LifecycleRecordsDeps } from './lifecycle-records.js'
import { createLifecycleResults, type LifecycleResults, type LifecycleResultsDeps } from './lifecycle-results.js'
import type { LifecycleStore } from './lifecycle-store.js'

export type { CommandResultEvent } from './lifecycle-results.js'

export interface DeviceLifecycleDeps
  extends Pick<LifecycleActionsDeps, 'dispatcher' | 'mdmProfileIdentifier'>, Pick<LifecycleRecordsDeps, 'disown'>, Pick<LifecycleResultsDeps, 'deviceEvent'> {
  store: LifecycleStore
  logger: Logger
  now?: () => Date
}

export interface DeviceLifecycle extends LifecycleActions, LifecycleRecords, LifecycleResults {}

export function createDeviceLifecycle(deps: DeviceLifecycleDeps): DeviceLifecycle {
  const { store } = deps
  const log = deps.logger.child({ service: 'lifecycle' })
  const now = deps.now ?? (() => new Date())
  const records = createLifecycleRecords({ store, disown: deps.disown, log, now })
  const actions = createLifecycleActions({
    store,
    dispatcher: deps.dispatcher,
    mdmProfileIdentifier: deps.mdmProfileIdentifier,
    view: records.getAction,
    log,
    now,
  })
  return { ...actions, ...records, ...createLifecycleResults({ store, deviceEvent: deps.deviceEvent, log, now }) }
}
