// What a device says of a managed app while and after it installs it: InstallApplication's
// answer carries the install's State, ManagedApplicationList each app's Status. An
// acknowledged InstallApplication only means the device took the command: the App Store
// download may still be queued, prompting the user, or fail later.
// https://developer.apple.com/documentation/devicemanagement/installapplicationresponse
// https://developer.apple.com/documentation/devicemanagement/managedapplicationlistresponse
import { isPlistDict, type PlistDict } from '../mdm/plist.js'

/** Where an app stands by the device's word. */
export type ManagedAppOutcome =
  | { kind: 'installed' }
  | { kind: 'installing'; detail: string }
  | { kind: 'failed'; detail: string }
  /** The device has no managed app by that name (any more): it is installed again. */
  | { kind: 'missing' }

/** The detail of an app the device is still installing; convergence asks how it goes instead of installing it again. */
export const installingPrefix = 'the device is installing it'

const failures: Record<string, string> = {
  UserRejected: 'the user declined the installation',
  UpdateRejected: 'the user declined the update',
  ManagementRejected: 'the user declined to let the app be managed',
  Failed: 'the installation failed on the device',
  UserInstalledApp: 'the user installed the app: it is not managed (it can be taken over with ChangeManagementState on a supervised device)',
}

/** Statuses and states of an install still going: download queued, redeeming, prompting, validating, installing, updating. */
const underway = new Set([
  'Queued',
  'NeedsRedemption',
  'Redeeming',
  'Prompting',
  'PromptingForLogin',
  'ValidatingPurchase',
  'PromptingForUpdate',
  'PromptingForUpdateLogin',
  'PromptingForManagement',
  'ValidatingUpdate',
  'Updating',
  'Installing',
])

/** One app's Status (ManagedApplicationList) or State (InstallApplication's answer). */
export function managedAppOutcome(status: string | undefined): ManagedAppOutcome {
  if (status === undefined || status === 'Managed') return { kind: 'installed' }
  if (underway.has(status)) return { kind: 'installing', detail: `${installingPrefix} (${status})` }
  const failure = failures[status]
  if (failure !== undefined) return { kind: 'failed', detail: `${status}: ${failure}` }
  // ManagedButUninstalled (the user deleted it), Unknown, and states Apple adds later.
  return { kind: 'missing' }
}

/** InstallApplication's answer: the State of the install (none: an older device, taken as installed). */
export function installAnswerOutcome(report: PlistDict): ManagedAppOutcome {
  const state = report['State']
  return managedAppOutcome(typeof state === 'string' ? state : undefined)
}

/** ManagedApplicationList's answer: bundle id -> Status, for the apps it lists. */
export function managedAppStatuses(report: PlistDict): Map<string, string | undefined> {
  const list = report['ManagedApplicationList']
  const statuses = new Map<string, string | undefined>()
  if (!isPlistDict(list)) return statuses
  for (const [bundleId, app] of Object.entries(list)) {
    const status = isPlistDict(app) ? app['Status'] : undefined
    statuses.set(bundleId, typeof status === 'string' ? status : undefined)
  }
  return statuses
}
