// Activation Lock bypass codes at rest (activation_lock_bypass_codes, migration 0018): the
// code arrives and leaves sealed, this store never sees it in clear. A row outlives a wipe or
// a retirement; an admin deletes it (audited), or forgetting the device does.
import { sql, type Insertable, type Kysely, type Selectable } from 'kysely'
import type { AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { ActivationLockBypassCodesTable, Database } from '../db/schema.js'

export type BypassCodeRow = Selectable<ActivationLockBypassCodesTable>
export type BypassCodeState = BypassCodeRow['request_state']

/** What the device side decides on: its supervision and the row, if any. */
export interface ActivationLockFacts {
  supervised: boolean | null
  userEnrollment: boolean
  row: BypassCodeRow | undefined
}

export interface ActivationLockStore {
  /** undefined: no such device. */
  facts(deviceId: string): Promise<ActivationLockFacts | undefined>
  /** Sets the request state (and command, detail); the code held, if any, stays. */
  setState(deviceId: string, state: Exclude<BypassCodeState, 'received'>, fields?: { commandUuid?: string | null; detail?: string | null }): Promise<void>
  /** Stores a newly received code (sealed), replacing the one held. */
  storeCode(deviceId: string, sealed: Buffer, commandUuid: string): Promise<void>
  /** Replaces a stored command result by `raw` (the answer without its code), so the code is nowhere in clear. */
  replaceResult(enrollmentId: string, commandUuid: string, raw: Buffer): Promise<void>
  /** Drops a row still waiting for supervision that holds no code (the device turned out unsupervised). */
  dropAwaiting(deviceId: string): Promise<void>
  /** The rows of these devices (for the device JSON). */
  rows(deviceIds: readonly string[]): Promise<Map<string, BypassCodeRow>>
  /**
   * The device's row read for an admin, the read recorded in the audit log (the scope's actor)
   * in the same transaction. undefined: no such device in scope; row undefined: none held.
   */
  readForAdmin(scope: AccessScope, deviceId: string): Promise<{ tenantId: string | null; row: BypassCodeRow | undefined } | undefined>
  /** Deletes the device's row, audited in the same transaction. undefined: no such device in scope; else whether there was one. */
  deleteForAdmin(scope: AccessScope, deviceId: string): Promise<boolean | undefined>
}

/** The device, when it is inside the scope (an admin reading or deleting its code). */
const deviceInScope = (trx: Kysely<Database>, scope: AccessScope, deviceId: string) =>
  trx.selectFrom('devices as d').select(['d.id', 'd.tenant_id']).where('d.id', '=', deviceId).where(inScope(scope, 'd.tenant_id')).executeTakeFirst()

export function createActivationLockStore(db: Kysely<Database>): ActivationLockStore {
  /** The device's one row, created or changed (these columns only). */
  const upsert = async (deviceId: string, values: Omit<Insertable<ActivationLockBypassCodesTable>, 'device_id'>) => {
    await db
      .insertInto('activation_lock_bypass_codes')
      .values({ device_id: deviceId, ...values })
      .onConflict((oc) => oc.column('device_id').doUpdateSet({ ...values, updated_at: sql`now()` }))
      .execute()
  }

  return {
    async facts(deviceId) {
      const device = await db
        .selectFrom('devices as d')
        .leftJoin('activation_lock_bypass_codes as a', 'a.device_id', 'd.id')
        .select(['d.is_supervised', 'd.user_enrollment', 'a.device_id as row_device_id'])
        .where('d.id', '=', deviceId)
        .executeTakeFirst()
      if (!device) return undefined
      const row = device.row_device_id
        ? await db.selectFrom('activation_lock_bypass_codes').selectAll().where('device_id', '=', deviceId).executeTakeFirst()
        : undefined
      return { supervised: device.is_supervised, userEnrollment: device.user_enrollment, row }
    },

    setState: (deviceId, state, fields = {}) =>
      upsert(deviceId, {
        request_state: state,
        ...(fields.commandUuid !== undefined ? { command_uuid: fields.commandUuid } : {}),
        detail: fields.detail ?? null,
      }),

    storeCode: (deviceId, sealed, commandUuid) =>
      upsert(deviceId, { code_sealed: sealed, code_received_at: new Date(), request_state: 'received', command_uuid: commandUuid, detail: null }),

    async replaceResult(enrollmentId, commandUuid, raw) {
      await db
        .updateTable('command_targets')
        .set({ result_raw: raw })
        .where('command_uuid', '=', commandUuid)
        .where('enrollment_id', '=', enrollmentId)
        .execute()
    },

    async dropAwaiting(deviceId) {
      await db
        .deleteFrom('activation_lock_bypass_codes')
        .where('device_id', '=', deviceId)
        .where('request_state', '=', 'awaiting_supervision')
        .where('code_sealed', 'is', null)
        .execute()
    },

    async rows(deviceIds) {
      if (deviceIds.length === 0) return new Map()
      const rows = await db
        .selectFrom('activation_lock_bypass_codes')
        .selectAll()
        .where('device_id', 'in', [...deviceIds])
        .execute()
      return new Map(rows.map((row) => [row.device_id, row]))
    },

    async readForAdmin(scope, deviceId) {
      return db.transaction().execute(async (trx) => {
        const device = await deviceInScope(trx, scope, deviceId)
        if (!device) return undefined
        const row = await trx.selectFrom('activation_lock_bypass_codes').selectAll().where('device_id', '=', deviceId).executeTakeFirst()
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: deviceId,
          tenantId: device.tenant_id,
          deviceId,
          details: { revealed: ['activation_lock_bypass_code'], held: Boolean(row?.code_sealed) },
        })
        return { tenantId: device.tenant_id, row }
      })
    },

    async deleteForAdmin(scope, deviceId) {
      return db.transaction().execute(async (trx) => {
        const device = await deviceInScope(trx, scope, deviceId)
        if (!device) return undefined
        const deleted = await trx.deleteFrom('activation_lock_bypass_codes').where('device_id', '=', deviceId).returning('code_sealed').executeTakeFirst()
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: deviceId,
          tenantId: device.tenant_id,
          deviceId,
          details: { deleted: ['activation_lock_bypass_code'], held: Boolean(deleted?.code_sealed) },
        })
        return deleted !== undefined
      })
    },
  }
}
