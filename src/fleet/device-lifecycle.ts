// Device lifecycle actions: lost, found, locate, wipe (erase for corporate devices, selective
// wipe for personal ones), reinstall through ADE (lifecycle-actions.ts), retire and the
// device's kind (lifecycle-records.ts), offboarding (offboarding.ts). Each action is one call,
// audited, recorded with the commands it queued, and completed from the device's answers
// (command results, check-out, re-enrollment: lifecycle-results.ts, offboarding-results.ts).
// This facade composes the parts over one store.
import type { Logger } from 'pino'
import { createLifecycleActions, type LifecycleActions, type LifecycleActionsDeps } from './lifecycle-actions.js'
import { createLifecycleRecords, type LifecycleRecords, type LifecycleRecordsDeps } from './lifecycle-records.js'
import { createLifecycleResults, type LifecycleResults, type LifecycleResultsDeps } from './lifecycle-results.js'
import { createLifecycleRunner } from './lifecycle-runner.js'
import type { LifecycleStore } from './lifecycle-store.js'
import { createOffboarding, type Offboarding } from './offboarding.js'
import { createOffboardingResults } from './offboarding-results.js'
import type { OffboardingStore } from './offboarding-store.js'
import type { ReturnToService } from './return-to-service.js'

export type { CommandResultEvent } from './lifecycle-results.js'

export interface DeviceLifecycleDeps
  extends Pick<LifecycleActionsDeps, 'dispatcher' | 'mdmProfileIdentifier'>, Pick<LifecycleRecordsDeps, 'disown'>, Pick<LifecycleResultsDeps, 'deviceEvent'> {
  store: LifecycleStore
  offboardingStore: OffboardingStore
  /** Erases that return devices to service (absent: none do). */
  returnToService?: Pick<ReturnToService, 'decide' | 'planFor'>
  logger: Logger
  now?: () => Date
}

export interface DeviceLifecycle extends LifecycleActions, LifecycleRecords, LifecycleResults, Offboarding {}

export function createDeviceLifecycle(deps: DeviceLifecycleDeps): DeviceLifecycle {
  const { store } = deps
  const log = deps.logger.child({ service: 'lifecycle' })
  const now = deps.now ?? (() => new Date())
  const records = createLifecycleRecords({ store, disown: deps.disown, log, now })
  const returnToService = deps.returnToService ? { returnToService: deps.returnToService } : {}
  const actions = createLifecycleActions({
    store,
    dispatcher: deps.dispatcher,
    mdmProfileIdentifier: deps.mdmProfileIdentifier,
    ...returnToService,
    view: records.getAction,
    log,
    now,
  })
  const runner = createLifecycleRunner({ store, dispatcher: deps.dispatcher, view: records.getAction, log, now })
  const offboarding = createOffboarding({ store, runner, records, mdmProfileIdentifier: deps.mdmProfileIdentifier, ...returnToService, log, now })
  const offboardingResults = createOffboardingResults({ store, offboarding: deps.offboardingStore, deviceEvent: deps.deviceEvent, log, now })
  const results = createLifecycleResults({ store, deviceEvent: deps.deviceEvent, offboarding: offboardingResults, log, now })
  return { ...actions, ...records, ...results, ...offboarding }
}
