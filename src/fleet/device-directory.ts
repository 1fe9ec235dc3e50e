// The fleet's devices for the admin API and other features: filtered, sorted, paged lists,
// one device with its channels and inventory, forgetting one, and which channels a caller
// can see. A thin layer over the directory store that answers not_found for what the
// caller cannot see, so handlers and other features never reach the store.
import { OrchardError } from '../errors.js'
import type { Page } from '../db/pagination.js'
import type { AccessScope } from '../model/access.js'
import type { DeviceDetail, DeviceDirectoryStore, DeviceFilter, DeviceRow, DeviceSort } from './device-directory-store.js'

export type { DeviceDetail, DeviceFilter, DeviceRow, DeviceSort }

export interface DeviceDirectory {
  listDevices(scope: AccessScope, filter: DeviceFilter, page: { sort: DeviceSort; limit: number; cursor?: string }): Promise<Page<DeviceRow>>
  /** One device with its channels, push state and inventory; not_found when the caller cannot see it. */
  getDevice(scope: AccessScope, deviceId: string): Promise<DeviceDetail>
  /** Forgets the device and everything under it; not_found when the caller cannot see it. */
  deleteDevice(scope: AccessScope, deviceId: string): Promise<void>
  /** not_found unless the caller can see the channel. */
  requireEnrollment(scope: AccessScope, enrollmentId: string): Promise<void>
  /** Those of the named channels the caller can see. */
  visibleEnrollments(scope: AccessScope, enrollmentIds: readonly string[]): Promise<Set<string>>
  /** The person the device belongs to (null: nobody); not_found when the caller cannot see the device. */
  setUserEmail(scope: AccessScope, deviceId: string, email: string | null): Promise<void>
}

export function createDeviceDirectory(
  store: Pick<DeviceDirectoryStore, 'listDevices' | 'getDevice' | 'deleteDevice' | 'enrollmentExists' | 'targetFacts' | 'setUserEmail'>,
): DeviceDirectory {
  const noDevice = (deviceId: string) => new OrchardError('not_found', `no device ${deviceId}`)
  return {
    async listDevices(scope, filter, page) {
      const listed = await store.listDevices(scope, filter, page)
      if (listed === 'unknown_group') throw new OrchardError('not_found', `no device group ${filter.groupId}`)
      return listed
    },
    async setUserEmail(scope, deviceId, email) {
      if (!(await store.setUserEmail(scope, deviceId, email))) throw noDevice(deviceId)
    },
    async getDevice(scope, deviceId) {
      const detail = await store.getDevice(scope, deviceId)
      if (!detail) throw noDevice(deviceId)
      return detail
    },
    async deleteDevice(scope, deviceId) {
      if (!(await store.deleteDevice(scope, deviceId))) throw noDevice(deviceId)
    },
    async requireEnrollment(scope, enrollmentId) {
      if (!(await store.enrollmentExists(scope, enrollmentId))) throw new OrchardError('not_found', `no enrollment ${enrollmentId}`)
    },
    async visibleEnrollments(scope, enrollmentIds) {
      return new Set((await store.targetFacts(scope, enrollmentIds)).map((facts) => facts.enrollmentId))
    },
  }
}
