// OS update policies per tenant; every write audited in its transaction. The compliance rows: each
// enrolled device under a policy, with what it reported of its OS and its updates.
import { sql, type Kysely, type Selectable } from 'kysely'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'
import type { Database } from '../db/schema.js'
import type { UpdatePoliciesTable, UpdatePolicyMode } from '../db/schema-ddm.js'
import { inScope, unusableForTenant } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import { governingPolicyJson } from './update-policy-sql.js'

export type UpdatePolicyRow = Selectable<UpdatePoliciesTable>

export interface UpdatePolicyInput {
  name: string
  mode: UpdatePolicyMode
  targetOsVersion: string | null
  targetBuildVersion: string | null
  targetLocalDateTime: string | null
  latestWithinDays: number | null
  detailsUrl: string | null
  kinds: string[]
  groups: string[]
  groupIds: string[]
  deviceIds: string[]
}

export interface ComplianceRow {
  deviceId: string
  tenantId: string | null
  serialNumber: string | null
  productName: string | null
  /** DeviceInformation SoftwareUpdateDeviceID: what the OS catalogue lists a Mac under. */
  softwareUpdateDeviceId: string | null
  osVersion: string | null
  policy: UpdatePolicyRow
  /** softwareupdate.install-state, softwareupdate.failure-reason, softwareupdate.pending-version, mdm.os-update-status. */
  items: Record<string, unknown>
}

export interface UpdatePolicyStore {
  list(scope: AccessScope): Promise<UpdatePolicyRow[]>
  get(scope: AccessScope, id: string): Promise<UpdatePolicyRow | undefined>
  /** `{ groupNotUsable }`: a device group of another tenant than the policy's, its organisation's or central IT's. */
  create(
    scope: AccessScope,
    id: string,
    tenantId: string | null,
    input: UpdatePolicyInput,
  ): Promise<UpdatePolicyRow | 'name_taken' | 'unknown_tenant' | { groupNotUsable: string }>
  update(scope: AccessScope, id: string, input: UpdatePolicyInput): Promise<UpdatePolicyRow | undefined | 'name_taken' | { groupNotUsable: string }>
  remove(scope: AccessScope, id: string): Promise<UpdatePolicyRow | undefined>
  /** Enrolled devices in scope under a policy (of `policyId` only when given). */
  complianceRows(scope: AccessScope, filter: { policyId?: string; tenantId?: string | null }): Promise<ComplianceRow[]>
  /** What an MDM command told of the device's updates, kept as a status item (mdm.os-update-status). */
  putStatusItem(deviceId: string, item: string, value: unknown, at: Date): Promise<void>
}

const statusItems = ['softwareupdate.install-state', 'softwareupdate.failure-reason', 'softwareupdate.pending-version', 'mdm.os-update-status']

export function createUpdatePolicyStore(db: Kysely<Database>): UpdatePolicyStore {
  const columns = (input: UpdatePolicyInput) => ({
    name: input.name,
    mode: input.mode,
    target_os_version: input.targetOsVersion,
    target_build_version: input.targetBuildVersion,
    target_local_datetime: input.targetLocalDateTime,
    latest_within_days: input.latestWithinDays,
    details_url: input.detailsUrl,
    kinds: input.kinds,
    groups: input.groups,
    group_ids: input.groupIds,
    device_ids: input.deviceIds,
  })
  const query = (scope: AccessScope, executor: Kysely<Database> = db) => executor.selectFrom('update_policies').selectAll().where(inScope(scope, 'tenant_id'))
  const audit = (input: UpdatePolicyInput) => ({
    name: input.name,
    mode: input.mode,
    target_os_version: input.targetOsVersion,
    latest_within_days: input.latestWithinDays,
  })

  return {
    list: (scope) => query(scope).orderBy('name').orderBy('id').execute(),
    get: (scope, id) => query(scope).where('id', '=', id).executeTakeFirst(),
    async create(scope, id, tenantId, input) {
      try {
        return await db.transaction().execute(async (trx) => {
          const group = await unusableForTenant(trx, scope, tenantId, input.groupIds, 'device_groups')
          if (group) return { groupNotUsable: group }
          await trx
            .insertInto('update_policies')
            .values({ id, tenant_id: tenantId, ...columns(input) })
            .execute()
          await recordAdminWrite(trx, scope, { type: 'update_policy', id, tenantId, details: audit(input) })
          return await query(scope, trx).where('id', '=', id).executeTakeFirstOrThrow()
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken'
        if (isReferenceViolation(error)) return 'unknown_tenant'
        throw error
      }
    },
    async update(scope, id, input) {
      try {
        return await db.transaction().execute(async (trx) => {
          const current = await query(scope, trx).where('id', '=', id).forUpdate().executeTakeFirst()
          if (!current) return undefined
          const group = await unusableForTenant(trx, scope, current.tenant_id, input.groupIds, 'device_groups')
          if (group) return { groupNotUsable: group }
          await trx
            .updateTable('update_policies')
            .set({ ...columns(input), updated_at: new Date() })
            .where('id', '=', id)
            .execute()
          await recordAdminWrite(trx, scope, { type: 'update_policy', id, tenantId: current.tenant_id, details: audit(input) })
          return await query(scope, trx).where('id', '=', id).executeTakeFirstOrThrow()
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken'
        throw error
      }
    },
    async remove(scope, id) {
      return db.transaction().execute(async (trx) => {
        const row = await query(scope, trx).where('id', '=', id).executeTakeFirst()
        if (!row) return undefined
        await trx.deleteFrom('update_policies').where('id', '=', id).execute()
        await recordAdminWrite(trx, scope, { type: 'update_policy', id, tenantId: row.tenant_id, details: { name: row.name } })
        return row
      })
    },
    async putStatusItem(deviceId, item, value, at) {
      const values = { value: JSON.stringify(value), updated_at: at }
      await db
        .insertInto('device_status_items')
        .values({ device_id: deviceId, item, ...values })
        .onConflict((oc) => oc.columns(['device_id', 'item']).doUpdateSet(values))
        .execute()
    },
    async complianceRows(scope, filter) {
      const { rows } = await sql<{
        device_id: string
        device_tenant_id: string | null
        serial_number: string | null
        product_name: string | null
        software_update_device_id: string | null
        os_version: string | null
        policy: UpdatePolicyRow
        items: Record<string, unknown> | null
      }>`
        select * from (
          select d.id as device_id, d.tenant_id as device_tenant_id, d.serial_number, d.product_name, d.software_update_device_id, d.os_version,
            ${governingPolicyJson} as policy,
            (select jsonb_object_agg(s.item, s.value) from device_status_items s where s.device_id = d.id and s.item = any(${statusItems}::text[])) as items
          from devices d
          join enrollments e on e.id = d.id and e.enabled
          where d.lifecycle_state in ('active', 'lost') and not d.user_enrollment and ${inScope(scope, 'd.tenant_id')}
            ${filter.tenantId !== undefined ? (filter.tenantId === null ? sql`and d.tenant_id is null` : sql`and d.tenant_id = ${filter.tenantId}`) : sql``}
        ) x
        where policy is not null ${filter.policyId !== undefined ? sql`and policy ->> 'id' = ${filter.policyId}` : sql``}
        order by policy ->> 'name', serial_number nulls last, device_id`.execute(db)
      return rows.map((row) => ({
        deviceId: row.device_id,
        tenantId: row.device_tenant_id,
        serialNumber: row.serial_number,
        productName: row.product_name,
        softwareUpdateDeviceId: row.software_update_device_id,
        osVersion: row.os_version,
        policy: { ...row.policy, created_at: new Date(row.policy.created_at), updated_at: new Date(row.policy.updated_at) },
        items: row.items ?? {},
      }))
    },
  }
}
