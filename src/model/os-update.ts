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

export interface PolicyFacts {
  mode: 'specific' | 'latest'
  targetOsVersion: string | null
  targetBuildVersion: string | null
  targetLocalDateTime: string | null
  latestWithinDays: number | null
  detailsUrl: string | null
}

/** The hour a "latest within N days" deadline falls at, device local time: the end of a working day. */
export const latestDeadlineTime = '18:00:00'

/** A policy's target for a device; for "latest", from the newest release for its model (none: undefined). */
export function policyTarget(
  policy: PolicyFacts,
  latest: { productVersion: string; build: string; postingDate: string } | undefined,
): PolicyTarget | undefined {
  if (policy.mode === 'specific') {
    if (!policy.targetOsVersion || !policy.targetLocalDateTime) return undefined
    return { version: policy.targetOsVersion, build: policy.targetBuildVersion, deadline: policy.targetLocalDateTime, detailsUrl: policy.detailsUrl }
  }
  if (!latest) return undefined
  const posted = new Date(`${latest.postingDate}T00:00:00Z`)
  posted.setUTCDate(posted.getUTCDate() + (policy.latestWithinDays ?? 0))
  return {
    version: latest.productVersion,
    build: latest.build,
    deadline: `${posted.toISOString().slice(0, 10)}T${latestDeadlineTime}`,
    detailsUrl: policy.detailsUrl,
  }
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
