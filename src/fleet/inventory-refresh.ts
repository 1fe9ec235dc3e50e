// Inventory: the queries whose answers fill a device's inventory (DeviceInformation with the
// full query list, SecurityInfo, the app, profile and certificate lists). Queued on demand
// (POST /api/v1/devices/{id}/refresh-inventory), at enrollment, and on a schedule for devices
// whose inventory got old (ORCHARD_INVENTORY_REFRESH_HOURS); the answers are stored by the
// report pipeline (device/inventory-store.ts).
import type { Logger } from 'pino'
import type { PlistDict } from '../mdm/plist.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import type { PushReport } from '../push/push-service.js'
import type { CommandDispatcher, DispatchResult } from '../queue/dispatch.js'
import type { InventoryRefreshStore } from './inventory-refresh-store.js'

/** The inventory commands, in the order they are queued. */
export const inventoryRequestTypes = ['DeviceInformation', 'SecurityInfo', 'InstalledApplicationList', 'ProfileList', 'CertificateList'] as const

/** DeviceInformation queries for the inventory view (without Queries a device answers only a default set). */
export const inventoryQueries = [
  'UDID',
  'DeviceName',
  'OSVersion',
  'BuildVersion',
  'ModelName',
  'Model',
  'ProductName',
  // What the OS catalogue lists a Mac under (macOS 12, iOS 15 and later).
  'SoftwareUpdateDeviceID',
  'SerialNumber',
  'IMEI',
  'MEID',
  // Phone numbers for device search (PhoneNumber before iOS 12; one subscription per SIM since).
  'PhoneNumber',
  'ServiceSubscriptions',
  'DeviceCapacity',
  'AvailableDeviceCapacity',
  'BatteryLevel',
  'IsSupervised',
  'IsDeviceLocatorServiceEnabled',
  'IsActivationLockEnabled',
  'IsCloudBackupEnabled',
  'WiFiMAC',
  'BluetoothMAC',
  'EthernetMAC',
  'IsMDMLostModeEnabled',
  'IsMultiUser',
  'EASDeviceIdentifier',
  'OSUpdateSettings',
  'SupplementalBuildVersion',
  'SupplementalOSVersionExtra',
]

/**
 * Inventory Orchard asks for by itself (enrollment, schedule) goes after what an admin or a
 * blueprint queued (priority 0): it never delays them.
 */
export const backgroundInventoryPriority = -10

/** Devices the scheduled refresh asks at most per batch. */
export const inventoryRefreshBatch = 500
/** Batches per scheduled run (the rest waits for the next run). */
const maxBatchesPerRun = 20

export interface InventoryRefreshResult {
  /** One dispatch per inventory command, in inventoryRequestTypes order. */
  results: DispatchResult[]
  /** The one push to the devices that got at least one command (null: none asked, or nothing queued). */
  push: PushReport | { error: string } | null
}

export interface InventoryRefresh {
  /**
   * Queues the inventory commands for these devices (their device channels). Each command goes
   * to the devices it applies to (a User Enrollment gets only those allowed there); one push
   * after all of them when `push`.
   */
  refresh(scope: AccessScope, deviceIds: readonly string[], options: { push: boolean; priority?: number }): Promise<InventoryRefreshResult>
  /**
   * The scheduled refresh: enrolled, active devices whose inventory is older than `olderThan`
   * and that have no DeviceInformation open or asked since then, in batches; pushed. Answers
   * how many devices were asked.
   */
  refreshStale(olderThan: Date): Promise<number>
  /** A device channel just enrolled: its inventory, pushed; a failure is logged, never thrown (enrollment goes on). */
  deviceEnrolled(deviceId: string): Promise<void>
}

export interface InventoryRefreshDeps {
  dispatcher: Pick<CommandDispatcher, 'dispatch' | 'pushOnly'>
  store: InventoryRefreshStore
  log: Logger
}

export function createInventoryRefresh(deps: InventoryRefreshDeps): InventoryRefresh {
  const { dispatcher, store, log } = deps

  async function refresh(scope: AccessScope, deviceIds: readonly string[], options: { push: boolean; priority?: number }): Promise<InventoryRefreshResult> {
    const results: DispatchResult[] = []
    for (const requestType of inventoryRequestTypes) {
      const keys: PlistDict = requestType === 'DeviceInformation' ? { Queries: inventoryQueries } : {}
      results.push(
        await dispatcher.dispatch(scope, {
          targets: { enrollmentIds: deviceIds },
          command: { kind: 'built', requestType, keys },
          ...(options.priority !== undefined ? { priority: options.priority } : {}),
          push: false,
        }),
      )
    }
    const queued = [...new Set(results.flatMap((result) => result.targets.filter((t) => t.result === 'queued').map((t) => t.enrollmentId)))]
    // One push wakes each device for all of them.
    const push = options.push && queued.length > 0 ? await dispatcher.pushOnly(scope, queued) : null
    return { results, push }
  }

  return {
    refresh,

    async refreshStale(olderThan) {
      let asked = 0
      for (let batch = 0; batch < maxBatchesPerRun; batch++) {
        const deviceIds = await store.staleDevices(olderThan, inventoryRefreshBatch)
        if (deviceIds.length === 0) break
        await refresh(fullAccess, deviceIds, { push: true, priority: backgroundInventoryPriority })
        asked += deviceIds.length
        // Every device of this batch now has a DeviceInformation open: the next query skips it.
        if (deviceIds.length < inventoryRefreshBatch) break
      }
      if (asked > 0) log.info({ devices: asked, older_than: olderThan.toISOString() }, 'inventory refresh queued')
      return asked
    },

    async deviceEnrolled(deviceId) {
      try {
        // After its TokenUpdate a device does not poll by itself: pushed, as blueprints do.
        await refresh(fullAccess, [deviceId], { push: true, priority: backgroundInventoryPriority })
      } catch (error) {
        log.error({ err: error, device_id: deviceId }, 'inventory at enrollment not queued')
      }
    },
  }
}
