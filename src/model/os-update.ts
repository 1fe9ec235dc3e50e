// OS updates, the pure part: which path a device takes (the declaration on iOS/iPadOS 17 and
// macOS 14 and later, the MDM commands before), the target a policy gives a device, and where
// the device stands against it. Versions compare as dotted numbers.
// https://support.apple.com/guide/deployment/software-update-enforcement-dep0eb8e0e7f/web
import { compareVersions } from './app-version.js'

export type OsPlatform = 'iOS' | 'macOS' | 'tvOS' | 'visionOS' | 'watchOS'
/** ddm: SoftwareUpdateEnforcementSpecific; mdm: ScheduleOSUpdate; unsupported: neither (an unknown model). */
export type UpdatePath = 'ddm' | 'mdm' | 'unsupported'

/** The platform of a model identifier (ProductName, e.g. iPad13,1, Mac14,2). */
export function platformOf(productName: string | null): OsPlatform | undefined {
  if (!productName) return undefined
  if (/^(iPhone|iPad|iPod)/.test(productName)) return 'iOS'
  if (/^(Mac|iMac|MacBook|Macmini|MacPro|VirtualMac)/.test(productName)) return 'macOS'
  if (/^AppleTV/.test(productName)) return 'tvOS'
  if (/^RealityDevice/.test(productName)) return 'visionOS'
  if (/^Watch/.test(productName)) return 'watchOS'
  return undefined
}

/** What tells a device's model to the OS catalogue. */
export interface CatalogueModelFacts {
  /** The model identifier (Mac14,2, iPad13,1): the platform, and the key for all but Macs. */
  productName: string | null
  /** DeviceInformation SoftwareUpdateDeviceID (macOS 12, iOS 15 and later). */
  softwareUpdateDeviceId?: string | null
}

/**
 * The key the OS catalogue (SupportedDevices) lists the device's model under: for a Mac its
 * SoftwareUpdateDeviceID (J413AP, Mac-827FAC58A8FDFA22, VMA2MACOSAP), since the catalogue names
 * Macs by those and not by ProductName; for the others, and a Mac that has not reported one,
 * the ProductName (which for a Mac then matches nothing).
 */
export function catalogueModel(device: CatalogueModelFacts): string | null {
  if (device.softwareUpdateDeviceId && platformOf(device.productName) === 'macOS') return device.softwareUpdateDeviceId
  return device.productName
}

/** The first OS with declarative software update enforcement, per platform. */
const declarativeSince: Partial<Record<OsPlatform, string>> = { iOS: '17.0', macOS: '14.0' }

export function updatePath(productName: string | null, osVersion: string | null): UpdatePath {
  const platform = platformOf(productName)
  if (!platform || platform === 'watchOS' || platform === 'visionOS') return 'unsupported'
  const since = declarativeSince[platform]
  if (since && osVersion && compareVersions(osVersion, since) >= 0) return 'ddm'
  return 'mdm'
}

export interface PolicyTarget {
  version: string
  build: string | null
  /** The device's local date and time, YYYY-MM-DDTHH:MM:SS. */
  deadline: string
  detailsUrl: string | null
}

/** An update policy's columns as stored (update_policies). */
export interface PolicyFacts {
  mode: 'specific' | 'latest'
  target_os_version: string | null
  target_build_version: string | null
  target_local_datetime: string | null
  latest_within_days: number | null
  details_url: string | null
}

/** A release as the OS catalogue gives it for a model: the target of a "latest" policy. */
export interface LatestRelease {
  productVersion: string
  build: string
  postingDate: string
}

export type LatestReleaseLookup = (model: string) => Promise<LatestRelease | undefined>

/** The hour a "latest within N days" deadline falls at, device local time: the end of a working day. */
export const latestDeadlineTime = '18:00:00'

/**
 * A policy's target for a device; `model` is its catalogueModel (a Mac's SoftwareUpdateDeviceID,
 * else the ProductName). For "latest", from the newest release for that model in `latest`
 * (none: undefined).
 */
export function policyTarget(policy: PolicyFacts, model: string | null, latest: ReadonlyMap<string, LatestRelease>): PolicyTarget | undefined {
  if (policy.mode === 'specific') {
    if (!policy.target_os_version || !policy.target_local_datetime) return undefined
    return { version: policy.target_os_version, build: policy.target_build_version, deadline: policy.target_local_datetime, detailsUrl: policy.details_url }
  }
  const release = model === null ? undefined : latest.get(model)
  if (!release) return undefined
  const posted = new Date(`${release.postingDate}T00:00:00Z`)
  posted.setUTCDate(posted.getUTCDate() + (policy.latest_within_days ?? 0))
  return {
    version: release.productVersion,
    build: release.build,
    deadline: `${posted.toISOString().slice(0, 10)}T${latestDeadlineTime}`,
    detailsUrl: policy.details_url,
  }
}

/**
 * The newest release of each model that a "latest" policy governs, looked up once per model;
 * keyed by catalogueModel (what policyTarget is given).
 */
export async function latestReleasesFor(
  devices: Iterable<CatalogueModelFacts & { policy: Pick<PolicyFacts, 'mode'> | null }>,
  lookup: LatestReleaseLookup | undefined,
): Promise<Map<string, LatestRelease>> {
  const latest = new Map<string, LatestRelease>()
  if (!lookup) return latest
  const models = new Set<string>()
  for (const device of devices) {
    const model = catalogueModel(device)
    if (device.policy?.mode === 'latest' && model) models.add(model)
  }
  for (const model of models) {
    const release = await lookup(model)
    if (release) latest.set(model, release)
  }
  return latest
}

export type ComplianceState = 'compliant' | 'pending' | 'downloading' | 'installing' | 'failed' | 'overdue' | 'unsupported'

export interface DeviceUpdateFacts {
  osVersion: string | null
  /** DDM: softwareupdate.install-state; MDM: OSUpdateStatus's Status (Idle, Downloading, Installing). */
  installState: string | null
  /** A failure the device reported (DDM failure-reason with a count, or an MDM install or download failure). */
  failure: string | null
}

/**
 * Where a device stands against its target. The deadline is the device's local time; Orchard
 * compares it with UTC, so "overdue" may come up to a day early or late at the far time zones.
 */
export function complianceState(target: PolicyTarget | undefined, path: UpdatePath, device: DeviceUpdateFacts, now: Date): ComplianceState {
  if (!target || path === 'unsupported') return 'unsupported'
  if (device.osVersion && compareVersions(device.osVersion, target.version) >= 0) return 'compliant'
  if (device.failure) return 'failed'
  const state = device.installState?.toLowerCase() ?? ''
  if (state === 'installing') return 'installing'
  if (state === 'downloading' || state === 'prepared') return 'downloading'
  if (new Date(`${target.deadline}Z`).getTime() < now.getTime()) return 'overdue'
  return 'pending'
}
