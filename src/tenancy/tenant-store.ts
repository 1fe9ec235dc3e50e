// Tenants (departments), nested at most one level: an organisation and its departments.
import { type Kysely, type Selectable } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { adminWriteRow, closeTenancy, recordAdminWrite } from './audit-store.js'
import type { Database, TenantsTable } from '../db/schema.js'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'
import type { DeviceKind } from '../model/devices.js'

export type TenantRow = Selectable<TenantsTable>

export type CreateTenantOutcome = { ok: true; tenant: TenantRow } | { ok: false; reason: 'exists' | 'name_taken' | 'parent_not_found' | 'parent_is_nested' }
export type DeleteTenantOutcome = 'deleted' | 'not_found' | 'in_use'
export type MoveOutcome = { ok: true; moved: string[]; unchanged: string[]; notFound: string[] } | { ok: false; reason: 'tenant_not_found' }
/** What a tenant's update changes; an absent field stays. Prices are decimal text. */
export interface TenantChanges {
  name?: string
  price?: string | null
  billedKinds?: DeviceKind[] | null
}
export interface NewTenant {
  id: string
  name: string
  parentId: string | null
  price?: string | null
  billedKinds?: DeviceKind[] | null
}

export interface TenantStore {
  /** Every tenant with its parent: small, read to resolve a principal's tenants. */
  allTenants(): Promise<Array<{ id: string; parentId: string | null }>>
  listTenants(scope: AccessScope): Promise<TenantRow[]>
  getTenant(scope: AccessScope, id: string): Promise<TenantRow | undefined>
  createTenant(scope: AccessScope, input: NewTenant): Promise<CreateTenantOutcome>
  /** Renames it or sets its billing, in one transaction with its audit row. */
  updateTenant(scope: AccessScope, id: string, changes: TenantChanges): Promise<TenantRow | undefined | 'name_taken'>
  deleteTenant(scope: AccessScope, id: string): Promise<DeleteTenantOutcome>
  /**
   * Moves devices (inside the scope) to `tenantId` in one transaction: their tenancy
   * periods close and reopen in the new tenant, one audit row per device.
   */
  moveDevices(scope: AccessScope, deviceIds: readonly string[], tenantId: string | null, at: Date): Promise<MoveOutcome>
}

export function createTenantStore(db: Kysely<Database>): TenantStore {
  return {
    async allTenants() {
      const rows = await db.selectFrom('tenants').select(['id', 'parent_id']).execute()
      return rows.map((row) => ({ id: row.id, parentId: row.parent_id }))
    },

    async listTenants(scope) {
      return db.selectFrom('tenants').selectAll().where(inScope(scope, 'id')).orderBy('id').execute()
    },

    async getTenant(scope, id) {
      return db.selectFrom('tenants').selectAll().where('id', '=', id).where(inScope(scope, 'id')).executeTakeFirst()
    },

    async createTenant(scope, input) {
      try {
        return await db.transaction().execute(async (trx) => {
          if (input.parentId !== null) {
            // Locked: a parent cannot get a parent of its own while this child is added.
            const parent = await trx
              .selectFrom('tenants')
              .select(['id', 'parent_id'])
              .where('id', '=', input.parentId)
              .where(inScope(scope, 'id'))
              .forUpdate()
              .executeTakeFirst()
            if (!parent) return { ok: false as const, reason: 'parent_not_found' as const }
            if (parent.parent_id !== null) return { ok: false as const, reason: 'parent_is_nested' as const }
          }
          const existing = await trx.selectFrom('tenants').select('id').where('id', '=', input.id).executeTakeFirst()
          if (existing) return { ok: false as const, reason: 'exists' as const }
          const tenant = await trx
            .insertInto('tenants')
            .values({
              id: input.id,
              name: input.name,
              parent_id: input.parentId,
              price_per_device_year: input.price ?? null,
              billed_kinds: input.billedKinds ?? null,
            })
            .returningAll()
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, {
            type: 'tenant',
            id: tenant.id,
            tenantId: tenant.id,
            details: {
              name: tenant.name,
              parent_id: tenant.parent_id,
              ...(input.price !== undefined ? { price_per_device_year: input.price } : {}),
              ...(input.billedKinds !== undefined ? { billed_kinds: input.billedKinds } : {}),
            },
          })
          return { ok: true as const, tenant }
        })
      } catch (error) {
        if (isUniqueViolation(error))
          return { ok: false, reason: (error as { constraint?: string }).constraint === 'tenants_name_key' ? 'name_taken' : 'exists' }
        throw error
      }
    },

    async updateTenant(scope, id, changes) {
      try {
        return await db.transaction().execute(async (trx) => {
          const tenant = await trx
            .updateTable('tenants')
            .set({
              ...(changes.name !== undefined ? { name: changes.name } : {}),
              ...(changes.price !== undefined ? { price_per_device_year: changes.price } : {}),
              ...(changes.billedKinds !== undefined ? { billed_kinds: changes.billedKinds } : {}),
              updated_at: new Date(),
            })
            .where('id', '=', id)
            .where(inScope(scope, 'id'))
            .returningAll()
            .executeTakeFirst()
          if (tenant) {
            const details = {
              ...(changes.name !== undefined ? { name: changes.name } : {}),
              ...(changes.price !== undefined ? { price_per_device_year: changes.price } : {}),
              ...(changes.billedKinds !== undefined ? { billed_kinds: changes.billedKinds } : {}),
            }
            await recordAdminWrite(trx, scope, { type: 'tenant', id, tenantId: id, details })
          }
          return tenant
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken'
        throw error
      }
    },

    async deleteTenant(scope, id) {
      try {
        return await db.transaction().execute(async (trx) => {
          const deleted = await trx.deleteFrom('tenants').where('id', '=', id).where(inScope(scope, 'id')).returning('id').executeTakeFirst()
          if (!deleted) return 'not_found' as const
          await recordAdminWrite(trx, scope, { type: 'tenant', id, tenantId: id })
          return 'deleted' as const
        })
      } catch (error) {
        // Devices, links, tokens, keys or departments still name it.
        if (isReferenceViolation(error)) return 'in_use'
        throw error
      }
    },

    async moveDevices(scope, deviceIds, tenantId, at) {
      if (tenantId !== null) {
        const target = await db.selectFrom('tenants').select('id').where('id', '=', tenantId).executeTakeFirst()
        if (!target) return { ok: false, reason: 'tenant_not_found' }
      }
      try {
        return await moveInTransaction(scope, deviceIds, tenantId, at)
      } catch (error) {
        if (isReferenceViolation(error)) return { ok: false, reason: 'tenant_not_found' }
        throw error
      }
    },
  }

  function moveInTransaction(scope: AccessScope, deviceIds: readonly string[], tenantId: string | null, at: Date): Promise<MoveOutcome> {
    return db.transaction().execute(async (trx) => {
      const found = await trx
        .selectFrom('devices')
        .select(['id', 'tenant_id'])
        .where('id', 'in', deviceIds)
        .where(inScope(scope, 'tenant_id'))
        .forUpdate()
        .execute()
      const byId = new Map(found.map((row) => [row.id, row.tenant_id]))
      const notFound = deviceIds.filter((id) => !byId.has(id))
      // In the order asked for.
      const moving = deviceIds.filter((id) => byId.has(id) && byId.get(id) !== tenantId)
      const unchanged = deviceIds.filter((id) => byId.has(id) && byId.get(id) === tenantId)
      if (moving.length > 0) {
        await trx.updateTable('devices').set({ tenant_id: tenantId, updated_at: at }).where('id', 'in', moving).execute()
        // Devices that were being billed somewhere go on being billed in the new tenant.
        const open = await trx.selectFrom('device_tenancy').select('device_id').where('device_id', 'in', moving).where('ended_at', 'is', null).execute()
        const billed = open.map((row) => row.device_id)
        await closeTenancy(trx, billed, at)
        if (billed.length > 0) {
          await trx
            .insertInto('device_tenancy')
            .values(billed.map((deviceId) => ({ device_id: deviceId, tenant_id: tenantId, started_at: at })))
            .execute()
        }
        const actor = scope.actor
        if (actor) {
          // One row on each side, so both tenants' auditors see the move.
          const rows = moving.flatMap((deviceId) => {
            const from = byId.get(deviceId) ?? null
            const row = (side: string | null) =>
              adminWriteRow(actor, { type: 'device', id: deviceId, deviceId, tenantId: side, details: { from_tenant_id: from, to_tenant_id: tenantId } })
            return from === null || tenantId === null ? [row(from ?? tenantId)] : [row(from), row(tenantId)]
          })
          await trx.insertInto('audit_events').values(rows).execute()
          actor.recorded = true
        }
      } else {
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: null,
          tenantId,
          details: { to_tenant_id: tenantId, moved: [], unchanged, not_found: notFound },
        })
      }
      return { ok: true as const, moved: moving, unchanged, notFound }
    })
  }
}
