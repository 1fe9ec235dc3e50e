// Device groups per tenant: static ones keep their members here; smart ones keep a filter and
// have no stored members (device-group-sql.ts evaluates them). Every write is audited in its
// transaction.
import { sql, type Kysely, type Selectable } from 'kysely'
import { isReferenceViolation, isUniqueViolation } from '../db/pg-errors.js'
import type { Database } from '../db/schema.js'
import type { DeviceGroupsTable, SmartGroupFilter } from '../db/schema-groups.js'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import { groupCovers, smartFilterSql } from './device-group-sql.js'

export type DeviceGroupRow = Selectable<DeviceGroupsTable>

export interface DeviceGroupInput {
  name: string
  description: string | null
  /** null: a static group. */
  filter: SmartGroupFilter | null
}

/** What adding and removing members did, by device id. */
export interface MembershipChange {
  added: string[]
  removed: string[]
  /** Already in (to add) or already out (to remove). */
  unchanged: string[]
  /** Devices that do not exist for the caller, or that the group's tenant does not hold: nothing changed for them. */
  refused: string[]
}

/** What still targets a group (it cannot be deleted while anything does). */
export interface GroupReferences {
  blueprints: Array<{ id: string; name: string }>
  updatePolicies: Array<{ id: string; name: string }>
}

export interface DeviceGroupStore {
  list(scope: AccessScope, filter: { tenantId?: string | null }): Promise<DeviceGroupRow[]>
  get(scope: AccessScope, id: string): Promise<DeviceGroupRow | undefined>
  /** Devices in the group that the caller can see. */
  count(scope: AccessScope, group: DeviceGroupRow): Promise<number>
  create(scope: AccessScope, id: string, tenantId: string | null, input: DeviceGroupInput): Promise<DeviceGroupRow | 'name_taken' | 'unknown_tenant'>
  /** A static group stays static and a smart one smart ('kind_changed' otherwise). */
  update(scope: AccessScope, id: string, input: DeviceGroupInput): Promise<DeviceGroupRow | undefined | 'name_taken' | 'kind_changed'>
  remove(scope: AccessScope, id: string): Promise<DeviceGroupRow | undefined | GroupReferences>
  /** Both in one transaction. */
  changeMembers(scope: AccessScope, group: DeviceGroupRow, change: { add: readonly string[]; remove: readonly string[] }): Promise<MembershipChange>
  /** Whether any blueprint or update policy targets the group, and whether one of those blueprints carries apps. */
  targeting(groupId: string): Promise<{ targeted: boolean; apps: boolean }>
  /** Whether any blueprint or update policy targets a smart group (whose devices change with inventory). */
  smartGroupsTargeted(): Promise<boolean>
}

/** Device `d` is in `group` (a value, not a column): the predicate the device list and bulk commands add. */
export function deviceInGroup(group: DeviceGroupRow) {
  const covers = sql<boolean>`(${group.tenant_id}::text is null or d.tenant_id = ${group.tenant_id}
    or d.tenant_id in (select t.id from tenants t where t.parent_id = ${group.tenant_id}))`
  return group.filter === null
    ? sql<boolean>`(${covers} and d.id in (select m.device_id from device_group_members m where m.group_id = ${group.id}))`
    : sql<boolean>`(${covers} and ${smartFilterSql(group.filter)})`
}

export function createDeviceGroupStore(db: Kysely<Database>): DeviceGroupStore {
  const groups = (scope: AccessScope, executor: Kysely<Database> = db) => executor.selectFrom('device_groups').selectAll().where(inScope(scope, 'tenant_id'))
  const columns = (input: DeviceGroupInput) => ({
    name: input.name,
    description: input.description,
    filter: input.filter === null ? null : JSON.stringify(input.filter),
  })
  const audit = (input: DeviceGroupInput) => ({ name: input.name, smart: input.filter !== null, ...(input.filter ? { filter: input.filter } : {}) })

  /** Of `deviceIds`, those the caller sees and the group's tenant holds. */
  async function eligible(trx: Kysely<Database>, scope: AccessScope, group: DeviceGroupRow, deviceIds: readonly string[]): Promise<Set<string>> {
    if (deviceIds.length === 0) return new Set()
    const rows = await trx
      .selectFrom('devices as d')
      .innerJoin('device_groups as g', (join) => join.on('g.id', '=', group.id))
      .select('d.id')
      .where('d.id', 'in', [...new Set(deviceIds)])
      .where(inScope(scope, 'd.tenant_id'))
      .where(groupCovers)
      .execute()
    return new Set(rows.map((row) => row.id))
  }

  async function changeMembers(
    scope: AccessScope,
    group: DeviceGroupRow,
    change: { add: readonly string[]; remove: readonly string[] },
  ): Promise<MembershipChange> {
    return db.transaction().execute(async (trx) => {
      const named = [...new Set([...change.add, ...change.remove])]
      const allowed = await eligible(trx, scope, group, named)
      const [add, remove] = [change.add, change.remove].map((ids) => [...new Set(ids)].filter((id) => allowed.has(id)))
      const added =
        add!.length === 0
          ? []
          : await trx
              .insertInto('device_group_members')
              .values(add!.map((deviceId) => ({ group_id: group.id, device_id: deviceId })))
              .onConflict((oc) => oc.doNothing())
              .returning('device_id')
              .execute()
      const removed =
        remove!.length === 0
          ? []
          : await trx.deleteFrom('device_group_members').where('group_id', '=', group.id).where('device_id', 'in', remove!).returning('device_id').execute()
      const result = {
        added: added.map((row) => row.device_id).sort(),
        removed: removed.map((row) => row.device_id).sort(),
        unchanged: [] as string[],
        refused: named.filter((id) => !allowed.has(id)).sort(),
      }
      const changed = new Set([...result.added, ...result.removed])
      result.unchanged = [...add!, ...remove!].filter((id) => !changed.has(id)).sort()
      if (changed.size > 0) {
        await trx.updateTable('device_groups').set({ updated_at: new Date() }).where('id', '=', group.id).execute()
        await recordAdminWrite(trx, scope, {
          type: 'device_group',
          id: group.id,
          tenantId: group.tenant_id,
          details: { name: group.name, added: result.added.slice(0, 1000), removed: result.removed.slice(0, 1000), count: changed.size },
        })
      }
      return result
    })
  }

  return {
    async list(scope, filter) {
      let query = groups(scope)
      if (filter.tenantId !== undefined) query = query.where('tenant_id', filter.tenantId === null ? 'is' : '=', filter.tenantId)
      return query
        .orderBy(sql`lower(name)`)
        .orderBy('id')
        .execute()
    },
    get: (scope, id) => groups(scope).where('id', '=', id).executeTakeFirst(),

    async count(scope, group) {
      const row = await db
        .selectFrom('devices as d')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where(inScope(scope, 'd.tenant_id'))
        .where(deviceInGroup(group))
        .executeTakeFirstOrThrow()
      return Number(row.n)
    },

    async create(scope, id, tenantId, input) {
      try {
        return await db.transaction().execute(async (trx) => {
          const row = await trx
            .insertInto('device_groups')
            .values({ id, tenant_id: tenantId, ...columns(input) })
            .returningAll()
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, { type: 'device_group', id, tenantId, details: audit(input) })
          return row
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
          const current = await groups(scope, trx).where('id', '=', id).forUpdate().executeTakeFirst()
          if (!current) return undefined
          if ((current.filter === null) !== (input.filter === null)) return 'kind_changed' as const
          const row = await trx
            .updateTable('device_groups')
            .set({ ...columns(input), updated_at: new Date() })
            .where('id', '=', id)
            .returningAll()
            .executeTakeFirstOrThrow()
          await recordAdminWrite(trx, scope, { type: 'device_group', id, tenantId: current.tenant_id, details: audit(input) })
          return row
        })
      } catch (error) {
        if (isUniqueViolation(error)) return 'name_taken'
        throw error
      }
    },

    async remove(scope, id) {
      return db.transaction().execute(async (trx) => {
        const row = await groups(scope, trx).where('id', '=', id).forUpdate().executeTakeFirst()
        if (!row) return undefined
        // Arrays have no foreign keys: a group is deleted only when nothing targets it.
        const [blueprints, updatePolicies] = await Promise.all([
          trx
            .selectFrom('blueprints')
            .select(['id', 'name'])
            .where(sql<boolean>`${id}::uuid = any(group_ids)`)
            .orderBy('name')
            .execute(),
          trx
            .selectFrom('update_policies')
            .select(['id', 'name'])
            .where(sql<boolean>`${id}::uuid = any(group_ids)`)
            .orderBy('name')
            .execute(),
        ])
        if (blueprints.length > 0 || updatePolicies.length > 0) return { blueprints, updatePolicies }
        await trx.deleteFrom('device_groups').where('id', '=', id).execute()
        await recordAdminWrite(trx, scope, { type: 'device_group', id, tenantId: row.tenant_id, details: { name: row.name } })
        return row
      })
    },

    changeMembers,

    async targeting(groupId) {
      const row = await sql<{ targeted: boolean; apps: boolean }>`
        select exists (select 1 from blueprints where ${groupId}::uuid = any(group_ids))
          or exists (select 1 from update_policies where ${groupId}::uuid = any(group_ids)) as targeted,
          exists (select 1 from blueprints where ${groupId}::uuid = any(group_ids) and jsonb_array_length(applications) > 0) as apps`.execute(db)
      return row.rows[0] ?? { targeted: false, apps: false }
    },

    async smartGroupsTargeted() {
      const row = await sql<{ targeted: boolean }>`
        select exists (select 1 from device_groups g where g.filter is not null
          and (exists (select 1 from blueprints b where g.id = any(b.group_ids))
            or exists (select 1 from update_policies p where g.id = any(p.group_ids)))) as targeted`.execute(db)
      return row.rows[0]?.targeted ?? false
    },
  }
}
