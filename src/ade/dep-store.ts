// ADE storage, one store per concern: ABM/ASM server tokens (token-store), their device sync
// (sync-store), PreStage profiles (profile-store) and the devices Apple assigned to us
// (device-store). `DepStore` is all four for the consumers that want them in one value.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { createDeviceStore, type DeviceStore } from './device-store.js'
import { createProfileStore, type ProfileStore } from './profile-store.js'
import { createSyncStore, type SyncStore } from './sync-store.js'
import { createTokenStore, type TokenStore } from './token-store.js'

export type { DepDeviceRow, DepProfileRow, DepTokenRow } from './shared-store.js'
export type { AdeDeviceLookup, AssignOutcome, DepDeviceFilter, DeviceStore } from './device-store.js'
export type { NewDepProfile, ProfileStore } from './profile-store.js'
export type { SyncStore } from './sync-store.js'
export type { TokenStore } from './token-store.js'

export interface DepStore extends TokenStore, SyncStore, ProfileStore, DeviceStore {}

export function createDepStore(db: Kysely<Database>): DepStore {
  return { ...createTokenStore(db), ...createSyncStore(db), ...createProfileStore(db), ...createDeviceStore(db) }
}
