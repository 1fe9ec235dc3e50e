// Desired configuration storage, one store per concern: the profile library
// (profile-library-store), blueprints and what they apply to (blueprint-definition-store),
// and per device what is wanted, reported and in flight (convergence-store).
// `BlueprintStore` is all three for the consumers that want them in one value.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { createBlueprintDefinitionStore, type BlueprintDefinitionStore } from './blueprint-definition-store.js'
import { createConvergenceStore, type ConvergenceStore } from './convergence-store.js'
import { createProfileLibraryStore, type ProfileLibraryStore } from './profile-library-store.js'

export type { BlueprintDefinitionStore, BlueprintInput, BlueprintRow } from './blueprint-definition-store.js'
export type { ConfigStateRow, ConvergenceDevice, ConvergenceStore, DesiredProfile } from './convergence-store.js'
export type { LibraryProfileRow, NewLibraryProfile, ProfileLibraryStore } from './profile-library-store.js'

export interface BlueprintStore extends ProfileLibraryStore, BlueprintDefinitionStore, ConvergenceStore {}

export function createBlueprintStore(db: Kysely<Database>): BlueprintStore {
  return { ...createProfileLibraryStore(db), ...createBlueprintDefinitionStore(db), ...createConvergenceStore(db) }
}
