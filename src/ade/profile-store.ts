// PreStage (DEP) profiles of a token: the settings Orchard sends to Apple, the UUID Apple
// gave the last definition, and the enrollment steps queued for the devices that get it.
import type { Kysely } from 'kysely'
import { fullAccess, type AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database } from '../db/schema.js'
import { profilesInScope, tenantOfProfile, tenantOfToken, tokenIdsInScope, type DepProfileRow } from './shared-store.js'

export interface NewDepProfile {
  id: string
  tokenId: string
  name: string
  profile: Record<string, unknown>
  deviceKind: 'work' | 'function'
  minimumOsVersion: string | null
  enrollmentCommands: unknown[]
}

export interface ProfileStore {
  createProfile(profile: NewDepProfile, scope?: AccessScope): Promise<void>
  updateProfile(id: string, changes: Partial<Omit<NewDepProfile, 'id' | 'tokenId'>>, scope?: AccessScope): Promise<void>
  listProfiles(scope: AccessScope, tokenId?: string): Promise<DepProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<DepProfileRow | undefined>
  deleteProfile(scope: AccessScope, id: string): Promise<boolean>
  recordDefinition(id: string, outcome: { profileUuid: string; at: Date } | { error: string }, scope?: AccessScope): Promise<void>
  /** The PreStage an enrolled device came with (devices.dep_profile_id). */
  profileForDevice(deviceId: string): Promise<DepProfileRow | undefined>
}

export function createProfileStore(db: Kysely<Database>): ProfileStore {
  return {
    async createProfile(profile, scope = fullAccess) {
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('dep_profiles')
          .values({
            id: profile.id,
            token_id: profile.tokenId,
            name: profile.name,
            profile: JSON.stringify(profile.profile),
            device_kind: profile.deviceKind,
            minimum_os_version: profile.minimumOsVersion,
            enrollment_commands: JSON.stringify(profile.enrollmentCommands),
          })
          .execute()
        await recordAdminWrite(trx, scope, {
          type: 'dep_profile',
          id: profile.id,
          tenantId: await tenantOfToken(trx, profile.tokenId),
          details: { name: profile.name },
        })
      })
    },

    async updateProfile(id, changes, scope = fullAccess) {
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('dep_profiles')
          .set({
            ...(changes.name !== undefined ? { name: changes.name } : {}),
            ...(changes.profile !== undefined ? { profile: JSON.stringify(changes.profile) } : {}),
            ...(changes.deviceKind !== undefined ? { device_kind: changes.deviceKind } : {}),
            ...(changes.minimumOsVersion !== undefined ? { minimum_os_version: changes.minimumOsVersion } : {}),
            ...(changes.enrollmentCommands !== undefined ? { enrollment_commands: JSON.stringify(changes.enrollmentCommands) } : {}),
            updated_at: new Date(),
          })
          .where('id', '=', id)
          .execute()
        await recordAdminWrite(trx, scope, { type: 'dep_profile', id, tenantId: await tenantOfProfile(trx, id) })
      })
    },

    async listProfiles(scope, tokenId) {
      let query = profilesInScope(db, scope).orderBy('p.created_at').orderBy('p.id')
      if (tokenId) query = query.where('p.token_id', '=', tokenId)
      return query.execute()
    },

    async getProfile(scope, id) {
      return profilesInScope(db, scope).where('p.id', '=', id).executeTakeFirst()
    },

    async deleteProfile(scope, id) {
      return db.transaction().execute(async (trx) => {
        const tenantId = await tenantOfProfile(trx, id)
        const deleted = await trx.deleteFrom('dep_profiles').where('id', '=', id).where('token_id', 'in', tokenIdsInScope(trx, scope)).returning('id').execute()
        if (deleted.length > 0) await recordAdminWrite(trx, scope, { type: 'dep_profile', id, tenantId })
        return deleted.length > 0
      })
    },

    async recordDefinition(id, outcome, scope = fullAccess) {
      const now = new Date()
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('dep_profiles')
          .set(
            'error' in outcome
              ? { define_error: outcome.error.slice(0, 2000), updated_at: now }
              : { profile_uuid: outcome.profileUuid, defined_at: outcome.at, define_error: null, updated_at: now },
          )
          .where('id', '=', id)
          .execute()
        const details = 'error' in outcome ? { define_error: outcome.error.slice(0, 500) } : { profile_uuid: outcome.profileUuid }
        await recordAdminWrite(trx, scope, { type: 'dep_profile', id, tenantId: await tenantOfProfile(trx, id), details })
      })
    },

    async profileForDevice(deviceId) {
      return profilesInScope(db)
        .where('p.id', '=', (eb) => eb.selectFrom('devices').select('dep_profile_id').where('id', '=', deviceId))
        .executeTakeFirst()
    },
  }
}
