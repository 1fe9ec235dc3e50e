// What offboarding does to one device, by its kind and what is known of it. Pure: no I/O.
//  - gone (no contact for `gone_for_days`) or no longer enrolled: retired at once, nothing sent;
//  - a work or function device: erased (EraseDevice, with Return to Service when it applies),
//    then retired when it acknowledges the erase; returned to service, it is not retired but
//    awaited back: the action completes when it has enrolled again;
//  - a personal device: selective wipe (what we installed), ending with the removal of the
//    enrollment profile, then retired when it acknowledges that (or checks out).
import type { EraseInput } from './lifecycle-policy.js'
import type { LifecycleDevice } from './lifecycle-store.js'

export type OffboardMethod = 'erase' | 'return_to_service' | 'selective_wipe' | 'retire'

export interface OffboardOptions {
  /** true: Return to Service (refused when the device cannot); false: never; absent: the tenant's default. */
  returnToService?: boolean
  /** A device silent this many days counts as gone: retired at once. */
  goneForDays?: number
  reason?: string
  /**
   * Never erase: every kind leaves management as a personal device does (managed content, then
   * the enrollment profile). What Orchard starts by itself, without a person confirming, uses it.
   */
  selectiveOnly?: boolean
  erase: Omit<EraseInput, 'returnToService'>
}

export type OffboardPlan =
  /** `gone`: retired because it has not been in contact for gone_for_days. */
  | { method: OffboardMethod; why: string; gone?: boolean }
  /** Nothing to do: retired already, or another wipe is pending. */
  | { method: null; skip: 'retired' | 'busy'; why: string }

/** The smallest `gone_for_days`: a device off over a long weekend is not gone. */
export const minimumGoneForDays = 7

const dayMs = 86_400_000

/**
 * The plan for one device. A work or function device's is 'erase': whether the erase returns
 * it to service is return-to-service.ts's decision (offboarding.ts asks it).
 */
export function planOffboarding(
  device: Pick<LifecycleDevice, 'id' | 'kind' | 'state' | 'enrolled' | 'lastContactAt'>,
  options: Pick<OffboardOptions, 'goneForDays' | 'selectiveOnly'>,
  context: { now: Date; pendingWipe: string | null },
): OffboardPlan {
  if (device.state === 'retired') return { method: null, skip: 'retired', why: 'retired already' }
  if (context.pendingWipe !== null) return { method: null, skip: 'busy', why: `a ${context.pendingWipe} is pending: cancel it first or wait for it` }
  const gone = options.goneForDays !== undefined && device.lastContactAt.getTime() <= context.now.getTime() - options.goneForDays * dayMs
  if (gone)
    return { method: 'retire', gone, why: `no contact since ${device.lastContactAt.toISOString()} (${options.goneForDays} days or more): retired at once` }
  if (!device.enrolled) return { method: 'retire', why: 'not enrolled (checked out, wiped or never finished enrolling): nothing can be sent; retired at once' }
  if (device.kind === 'personal') return { method: 'selective_wipe', why: 'personal: what the organisation installed is removed, then the enrollment profile' }
  if (options.selectiveOnly === true)
    return { method: 'selective_wipe', why: `${device.kind}, not erased without a person's confirmation: managed content removed, then the enrollment profile` }
  return { method: 'erase', why: `${device.kind}: erased, then retired` }
}

export const returnToServiceWhy = (kind: string) => `${kind}: erased with Return to Service; it comes back enrolled and stays in service`

export type StepStatus = 'pending' | 'done' | 'failed'
export interface OffboardStep {
  step: 'erase' | 'remove_managed_content' | 'remove_enrollment_profile' | 'retire' | 're_enroll'
  status: StepStatus
}

/** The steps of an offboarding by method, the first `done` of them done and the next `failed` when it failed. */
export function offboardSteps(method: Exclude<OffboardMethod, 'retire'>, done: number, failed = false): OffboardStep[] {
  const names: OffboardStep['step'][] =
    method === 'selective_wipe'
      ? ['remove_managed_content', 'remove_enrollment_profile', 'retire']
      : method === 'return_to_service'
        ? ['erase', 're_enroll']
        : ['erase', 'retire']
  return names.map((step, index) => ({ step, status: index < done ? 'done' : index === done && failed ? 'failed' : 'pending' }))
}
