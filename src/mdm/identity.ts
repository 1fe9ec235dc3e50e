// Which enrollment channel a message belongs to, from its identity keys.
// https://developer.apple.com/documentation/devicemanagement/check-in (identity keys)
import { OrchardError } from '../errors.js'
import type { PlistDict } from './plist.js'

/** Shared iPad users all report this UserID: key them on UserShortName instead. */
export const sharedIPadUserId = 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'

export interface Channel {
  kind: 'device' | 'user'
  /** Device channel ID: UDID, or EnrollmentID for User Enrollment. */
  deviceId: string
  /** This channel's enrollment ID (= deviceId on the device channel). */
  enrollmentId: string
  udid?: string
  /** EnrollmentID of a User Enrollment (BYOD) device. */
  userEnrollmentId?: string
  userId?: string
  userShortName?: string
  userLongName?: string
}

const maxIdLength = 200

function idValue(dict: PlistDict, key: string): string | undefined {
  const value = dict[key]
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length === 0 || value.length > maxIdLength) {
    throw new OrchardError('malformed_message', `${key} must be a non-empty string of at most ${maxIdLength} characters`)
  }
  return value
}

/**
 * Device channel = UDID (or EnrollmentID under User Enrollment). User channels:
 * macOS user `UDID:UserID`; Shared iPad user `UDID:UserShortName`; User Enrollment user
 * = EnrollmentUserID.
 */
export function resolveChannel(dict: PlistDict): Channel {
  const udid = idValue(dict, 'UDID')
  const userEnrollmentId = idValue(dict, 'EnrollmentID')
  const deviceId = udid ?? userEnrollmentId
  if (deviceId === undefined) throw new OrchardError('malformed_message', 'neither UDID nor EnrollmentID is present')

  const userId = idValue(dict, 'UserID')
  const userShortName = idValue(dict, 'UserShortName')
  const userLongName = typeof dict['UserLongName'] === 'string' ? dict['UserLongName'] : undefined
  if (userLongName !== undefined && userLongName.length > 512) throw new OrchardError('malformed_message', 'UserLongName is longer than 512 characters')
  const enrollmentUserId = idValue(dict, 'EnrollmentUserID')
  const common = {
    deviceId,
    ...(udid !== undefined ? { udid } : {}),
    ...(udid === undefined && userEnrollmentId !== undefined ? { userEnrollmentId } : {}),
  }

  if (enrollmentUserId !== undefined) {
    return { ...common, kind: 'user', enrollmentId: enrollmentUserId, userId, userShortName, userLongName }
  }
  if (userShortName !== undefined && (userId === undefined || userId.toUpperCase() === sharedIPadUserId)) {
    return { ...common, kind: 'user', enrollmentId: `${deviceId}:${userShortName}`, userId, userShortName, userLongName }
  }
  if (userId !== undefined) {
    return { ...common, kind: 'user', enrollmentId: `${deviceId}:${userId}`, userId, userShortName, userLongName }
  }
  return { ...common, kind: 'device', enrollmentId: deviceId }
}
