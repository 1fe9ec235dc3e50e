// Return to Service settings: the Wi-Fi profile (from the profile library) each tenant's
// erases carry, one per tenant (null: central IT), a department without one inheriting its
// organisation's; and what an erase needs to know of the device's PreStage. Writes are audited.
import { sql, type Kysely } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database } from '../db/schema.js'

export const wifiPayloadType = 'com.apple.wifi.managed'

export interface ReturnToServiceSetting {
  tenantId: string | null
  wifiProfileId: string
  wifiProfileName: string
  updatedAt: Date
}

/** The Wi-Fi profile a tenant's erases carry, and the tenant whose setting it is (its own or its organisation's). */
export interface EffectiveWifi {
  profileId: string
  profileName: string
  fromTenantId: string | null
}

export interface ReturnToServiceStore {
  listSettings(scope: AccessScope): Promise<ReturnToServiceSetting[]>
  /**
   * Sets (or, with null, clears) the tenant's Wi-Fi profile, audited. 'unusable': the profile is
   * not in scope, not one the tenant may use (its own, its organisation's, central IT's), or has
   * no Wi-Fi payload. 'unknown_tenant': no such tenant.
   */
  setSetting(
    scope: AccessScope,
    tenantId: string | null,
    wifiProfileId: string | null,
    at: Date,
  ): Promise<ReturnToServiceSetting | 'cleared' | 'unusable' | 'unknown_tenant'>
  effectiveWifi(tenantId: string | null): Promise<EffectiveWifi | undefined>
  wifiContent(profileId: string): Promise<Buffer | undefined>
  /** Whether the PreStage the device comes back through opens a configuration web URL (then the erase must carry the MDM profile). */
  preStageHasWebUrl(deviceId: string): Promise<boolean>
}

export function createReturnToServiceStore(db: Kysely<Database>): ReturnToServiceStore {
  const settings = () =>
    db
      .selectFrom('return_to_service_settings as s')
      .innerJoin('library_profiles as p', 'p.id', 's.wifi_profile_id')
      .select(['s.tenant_id', 's.wifi_profile_id', 'p.name', 's.updated_at'])

  const toSetting = (row: { tenant_id: string | null; wifi_profile_id: string; name: string; updated_at: Date }): ReturnToServiceSetting => ({
    tenantId: row.tenant_id,
    wifiProfileId: row.wifi_profile_id,
    wifiProfileName: row.name,
    updatedAt: row.updated_at,
  })

  return {
    async listSettings(scope) {
      const rows = await settings()
        .where(inScope(scope, 's.tenant_id'))
        .orderBy(sql`s.tenant_id nulls first`)
        .execute()
      return rows.map(toSetting)
    },

    async setSetting(scope, tenantId, wifiProfileId, at) {
      return db.transaction().execute(async (trx) => {
        let parent: string | null = null
        if (tenantId !== null) {
          const tenant = await trx.selectFrom('tenants').select('parent_id').where('id', '=', tenantId).executeTakeFirst()
          if (!tenant) return 'unknown_tenant' as const
          parent = tenant.parent_id
        }
        if (wifiProfileId === null) {
          await trx
            .deleteFrom('return_to_service_settings')
            .where(tenantId === null ? sql<boolean>`tenant_id is null` : sql<boolean>`tenant_id = ${tenantId}`)
            .execute()
          await recordAdminWrite(trx, scope, { type: 'return_to_service', id: tenantId, tenantId, details: { wifi_profile_id: null } })
          return 'cleared' as const
        }
        const usable = await trx
          .selectFrom('library_profiles')
          .select(['id', 'name'])
          .where('id', '=', wifiProfileId)
          .where(inScope(scope, 'tenant_id'))
          .where(sql<boolean>`${wifiPayloadType} = any(payload_types)`)
          .where((eb) =>
            eb.or([
              eb('tenant_id', 'is', null),
              ...(tenantId !== null ? [eb('tenant_id', '=', tenantId)] : []),
              ...(parent !== null ? [eb('tenant_id', '=', parent)] : []),
            ]),
          )
          .executeTakeFirst()
        if (!usable) return 'unusable' as const
        await trx
          .insertInto('return_to_service_settings')
          .values({ tenant_id: tenantId, wifi_profile_id: wifiProfileId, updated_at: at })
          .onConflict((oc) => oc.column('tenant_id').doUpdateSet({ wifi_profile_id: wifiProfileId, updated_at: at }))
          .execute()
        await recordAdminWrite(trx, scope, { type: 'return_to_service', id: tenantId, tenantId, details: { wifi_profile_id: wifiProfileId } })
        return { tenantId, wifiProfileId, wifiProfileName: usable.name, updatedAt: at }
      })
    },

    async effectiveWifi(tenantId) {
      // Its own setting first, then its organisation's (tenants nest one level).
      const rows =
        tenantId === null
          ? await settings().where('s.tenant_id', 'is', null).execute()
          : await settings()
              .select(sql<number>`case when s.tenant_id = ${tenantId} then 0 else 1 end`.as('rank'))
              .where((eb) =>
                eb.or([eb('s.tenant_id', '=', tenantId), eb('s.tenant_id', '=', eb.selectFrom('tenants').select('parent_id').where('id', '=', tenantId))]),
              )
              .orderBy('rank')
              .execute()
      const row = rows[0]
      return row ? { profileId: row.wifi_profile_id, profileName: row.name, fromTenantId: row.tenant_id } : undefined
    },

    async wifiContent(profileId) {
      return (await db.selectFrom('library_profiles').select('content').where('id', '=', profileId).executeTakeFirst())?.content
    },

    async preStageHasWebUrl(deviceId) {
      // The PreStage Apple hands the serial now, else the one the device last enrolled through.
      const row = await db
        .selectFrom('devices as d')
        .leftJoin('dep_devices as dd', (join) => join.onRef('dd.serial_number', '=', 'd.serial_number').on('dd.removed_at', 'is', null))
        .leftJoin('dep_profiles as assigned', 'assigned.id', 'dd.assigned_profile_id')
        .leftJoin('dep_profiles as enrolled', 'enrolled.id', 'd.dep_profile_id')
        .select(sql<string | null>`coalesce(assigned.profile, enrolled.profile) ->> 'configuration_web_url'`.as('web_url'))
        .where('d.id', '=', deviceId)
        .executeTakeFirst()
      return typeof row?.web_url === 'string' && row.web_url !== ''
    },
  }
}
