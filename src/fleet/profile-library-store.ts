// The profile library: each tenant's uploaded .mobileconfig files, one row per identifier,
// replaced in place by a new version. Every write is audited in its own transaction.
import { type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database, LibraryProfilesTable } from '../db/schema.js'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'

export type LibraryProfileRow = Omit<Selectable<LibraryProfilesTable>, 'content'>

export interface NewLibraryProfile {
  id: string
  tenantId: string | null
  identifier: string
  payloadUuid: string
  name: string
  payloadTypes: string[]
  content: Buffer
  sha256: string
}

export interface ProfileLibraryStore {
  listProfiles(scope: AccessScope): Promise<LibraryProfileRow[]>
  getProfile(scope: AccessScope, id: string): Promise<LibraryProfileRow | undefined>
  getProfileContent(scope: AccessScope, id: string): Promise<Buffer | undefined>
  /** 'unknown_tenant': the profile's tenant does not exist. */
  insertProfile(scope: AccessScope, profile: NewLibraryProfile): Promise<LibraryProfileRow | 'identifier_taken' | 'unknown_tenant'>
  /** A new version of a profile (same identifier): content, PayloadUUID, name, payload types. */
  replaceProfile(
    scope: AccessScope,
    id: string,
    profile: Omit<NewLibraryProfile, 'id' | 'tenantId'>,
  ): Promise<LibraryProfileRow | undefined | 'identifier_changed'>
  deleteProfile(scope: AccessScope, id: string): Promise<'deleted' | 'not_found' | 'in_use'>
  /** Tenants whose blueprints use the profile (to know whose devices to converge). */
  blueprintTenantsOfProfile(profileId: string): Promise<Array<string | null>>
}

const profileColumns = ['id', 'tenant_id', 'identifier', 'payload_uuid', 'name', 'payload_types', 'sha256', 'created_at', 'updated_at'] as const

export function createProfileLibraryStore(db: Kysely<Database>): ProfileLibraryStore {
  return {
    async listProfiles(scope) {
      return db.selectFrom('library_profiles').select(profileColumns).where(inScope(scope, 'tenant_id')).orderBy('identifier').orderBy('id').execute()
    },
    async getProfile(scope, id) {
      return db.selectFrom('library_profiles').select(profileColumns).where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
    },
    async getProfileContent(scope, id) {
      return (await db.selectFrom('library_profiles').select('content').where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst())?.content
    },
    async insertProfile(scope, profile) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('library_profiles')
            .values({
              id: profile.id,
              tenant_id: profile.tenantId,
              identifier: profile.identifier,
              payload_uuid: profile.payloadUuid,
              name: profile.name,
              payload_types: profile.payloadTypes,
              content: profile.content,
              sha256: profile.sha256,
            })
            .returning(profileColumns)
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, {
            type: 'profile',
            id: row.id,
            tenantId: row.tenant_id,
            details: { identifier: row.identifier, payload_uuid: row.payload_uuid, sha256: row.sha256 },
          })
          return row
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'identifier_taken'
        if (isReferenceViolation(error)) return 'unknown_tenant'
        throw error
      }
    },
    async replaceProfile(scope, id, profile) {
      return db.transaction().execute(async (trx) => {
        const current = await trx
          .selectFrom('library_profiles')
          .select(['identifier', 'tenant_id'])
          .where('id', '=', id)
          .where(inScope(scope, 'tenant_id'))
          .forUpdate()
          .executeTakeFirst()
        if (!current) return undefined
        if (current.identifier !== profile.identifier) return 'identifier_changed' as const
        const row = await trx
          .updateTable('library_profiles')
          .set({
            payload_uuid: profile.payloadUuid,
            name: profile.name,
            payload_types: profile.payloadTypes,
            content: profile.content,
            sha256: profile.sha256,
            updated_at: new Date(),
          })
          .where('id', '=', id)
          .returning(profileColumns)
          .executeTakeFirstOrThrow()
        await recordAdminWrite(trx, scope, {
          type: 'profile',
          id,
          tenantId: row.tenant_id,
          details: { identifier: row.identifier, payload_uuid: row.payload_uuid, sha256: row.sha256 },
        })
        return row
      })
    },
    async deleteProfile(scope, id) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .deleteFrom('library_profiles')
            .where('id', '=', id)
            .where(inScope(scope, 'tenant_id'))
            .returning(['tenant_id', 'identifier'])
            .executeTakeFirst()
          if (!row) return 'not_found' as const
          await recordAdminWrite(trx, scope, { type: 'profile', id, tenantId: row.tenant_id, details: { identifier: row.identifier } })
          return 'deleted' as const
        })
      } catch (error) {
        if (isReferenceViolation(error)) return 'in_use'
        throw error
      }
    },
    async blueprintTenantsOfProfile(profileId) {
      const rows = await db
        .selectFrom('blueprint_profiles as bp')
        .innerJoin('blueprints as b', 'b.id', 'bp.blueprint_id')
        .select('b.tenant_id')
        .distinct()
        .where('bp.profile_id', '=', profileId)
        .execute()
      return rows.map((row) => row.tenant_id)
    },
  }
}
