// Device lifecycle storage, one store per concern: the actions taken on a device (lost, found,
// wipe, reinstall, retire...) with the commands each queued (lifecycle-action-store), the
// device's lifecycle state, kind and inventory (lifecycle-device-store), and the locations it
// reported (device-location-store). `LifecycleStore` is all three for the consumers that want
// them in one value. Every admin change is audited in its own transaction (recordAdminWrite).
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { createDeviceLocationStore, type DeviceLocationStore } from './device-location-store.js'
import { createLifecycleActionStore, type LifecycleActionStore } from './lifecycle-action-store.js'
import { createLifecycleDeviceStore, type LifecycleDeviceStore } from './lifecycle-device-store.js'

export type { DeviceLocationStore, LocationInput, LocationRow } from './device-location-store.js'
export type { CommandStatus, LifecycleActionStore, LifecycleActionView } from './lifecycle-action-store.js'
export type { InstalledInventory, LifecycleDevice, LifecycleDeviceStore } from './lifecycle-device-store.js'
export type { BeginAction, LifecycleActionRow } from './lifecycle-shared-store.js'

export interface LifecycleStore extends LifecycleDeviceStore, LifecycleActionStore, DeviceLocationStore {}

export function createLifecycleStore(db: Kysely<Database>): LifecycleStore {
  return { ...createLifecycleDeviceStore(db), ...createLifecycleActionStore(db), ...createDeviceLocationStore(db) }
}
