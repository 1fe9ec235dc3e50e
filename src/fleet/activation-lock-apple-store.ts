// What Orchard does about Activation Lock at Apple, on the device's activation_lock_bypass_codes
// row (migration 0023): the organization-linked lock of ADE devices (the server-created code,
// sealed, and the state of sending its escrow key through ABM/ASM), and unlocking through
// Apple's escrowKeyUnlock (the last outcome, and ClearActivationLockBypassCode sent with it).
import { sql, type Kysely, type Selectable } from 'kysely'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { ActivationLockBypassCodesTable, Database } from '../db/schema.js'

type CodeRow = Selectable<ActivationLockBypassCodesTable>
export type EscrowState = NonNullable<CodeRow['escrow_state']>

/** A row claimed for sending its escrow key now. */
export interface ClaimedEscrow {
  deviceId: string
  serialNumber: string | null
  serverCodeSealed: Buffer | null
  attempts: number
}

/** What unlocking a device at Apple needs to know, and what its status shows. */
export interface UnlockFacts {
  deviceId: string
  tenantId: string | null
  serialNumber: string | null
  /** DeviceInformation ProductName (iPad13,1): Apple's productType. */
  productName: string | null
  imei: string | null
  meid: string | null
  /** The last DeviceInformation QueryResponses, as stored (JSON). */
  deviceInformation: unknown
  topic: string | null
  supervised: boolean | null
  userEnrollment: boolean
  /** The device channel is enrolled (commands can reach it). */
  enrolled: boolean
  lifecycleState: string
  row: CodeRow | undefined
}

export interface UnlockOutcome {
  at: Date
  codeUsed: 'device' | 'server'
  detail: string | null
}

export interface ActivationLockAppleStore {
  /**
   * An ADE device (its serial synced under an ABM/ASM token, not removed) reported a code: its
   * organization-linked lock is due, unless it is on, under way or being retried. False: nothing to send.
   */
  markEscrowDue(deviceId: string, at: Date): Promise<boolean>
  /** Rows due at `now`, leased until `leaseUntil` (replicas skip them meanwhile), attempts counted. */
  claimEscrows(now: Date, leaseUntil: Date, limit: number): Promise<ClaimedEscrow[]>
  storeServerCode(deviceId: string, sealed: Buffer): Promise<void>
  recordEscrow(deviceId: string, state: Exclude<EscrowState, 'cleared'>, fields: { detail: string | null; retryAt: Date | null; at: Date }): Promise<void>
  /** undefined: no such device in scope. */
  unlockFacts(scope: AccessScope, deviceId: string): Promise<UnlockFacts | undefined>
  /**
   * Apple turned Activation Lock off: recorded (audited in the same transaction), and an
   * organization-linked lock pending, on or being retried is `cleared` (not sent again until
   * the device reports a new code).
   */
  recordUnlock(scope: AccessScope, facts: Pick<UnlockFacts, 'deviceId' | 'tenantId'>, outcome: UnlockOutcome): Promise<void>
  /** Apple refused every code, or could not be reached (the API audits the failure). */
  recordUnlockFailure(deviceId: string, detail: string): Promise<void>
  /** ClearActivationLockBypassCode queued (or why not) with an unlock. */
  recordDeviceClear(deviceId: string, state: 'requested' | 'failed', commandUuid: string | null, detail: string | null): Promise<void>
  /** The device's answer to the ClearActivationLockBypassCode recorded with an unlock. */
  recordDeviceClearAnswer(deviceId: string, commandUuid: string, state: 'cleared' | 'failed', detail: string | null): Promise<void>
}

export function createActivationLockAppleStore(db: Kysely<Database>): ActivationLockAppleStore {
  return {
    async markEscrowDue(deviceId, at) {
      const marked = await db
        .updateTable('activation_lock_bypass_codes as a')
        .set({ escrow_state: 'pending', escrow_retry_at: at, escrow_detail: null, updated_at: sql`now()` })
        .where('a.device_id', '=', deviceId)
        .where((eb) => eb.or([eb('a.escrow_state', 'is', null), eb('a.escrow_state', 'in', ['refused', 'cleared'])]))
        .where(({ exists, selectFrom }) =>
          exists(
            selectFrom('devices as d')
              .innerJoin('dep_devices as dd', 'dd.serial_number', 'd.serial_number')
              .select(sql`1`.as('one'))
              .whereRef('d.id', '=', 'a.device_id')
              .where('dd.removed_at', 'is', null),
          ),
        )
        .executeTakeFirst()
      return Number(marked.numUpdatedRows) > 0
    },

    async claimEscrows(now, leaseUntil, limit) {
      const { rows } = await sql<{ device_id: string; serial_number: string | null; server_code_sealed: Buffer | null; escrow_attempts: number }>`
        update activation_lock_bypass_codes a
        set escrow_retry_at = ${leaseUntil}, escrow_attempts = a.escrow_attempts + 1, escrow_attempted_at = ${now}, updated_at = now()
        from devices d
        where d.id = a.device_id
          and a.device_id in (
            select device_id from activation_lock_bypass_codes
            where escrow_state in ('pending', 'failed') and escrow_retry_at <= ${now}
            order by escrow_retry_at
            limit ${limit}
            for update skip locked)
        returning a.device_id, d.serial_number, a.server_code_sealed, a.escrow_attempts`.execute(db)
      return rows.map((row) => ({
        deviceId: row.device_id,
        serialNumber: row.serial_number,
        serverCodeSealed: row.server_code_sealed,
        attempts: row.escrow_attempts,
      }))
    },

    async storeServerCode(deviceId, sealed) {
      await db
        .updateTable('activation_lock_bypass_codes')
        .set({ server_code_sealed: sealed, updated_at: sql`now()` })
        .where('device_id', '=', deviceId)
        .execute()
    },

    async recordEscrow(deviceId, state, fields) {
      await db
        .updateTable('activation_lock_bypass_codes')
        .set({
          escrow_state: state,
          escrow_detail: fields.detail,
          escrow_retry_at: fields.retryAt,
          ...(state === 'escrowed' ? { escrowed_at: fields.at } : {}),
          updated_at: sql`now()`,
        })
        .where('device_id', '=', deviceId)
        .execute()
    },

    async unlockFacts(scope, deviceId) {
      const device = await db
        .selectFrom('devices as d')
        .leftJoin('enrollments as e', (join) => join.onRef('e.id', '=', 'd.id').on('e.channel', '=', 'device'))
        .select([
          'd.id',
          'd.tenant_id',
          'd.serial_number',
          'd.product_name',
          'd.imei',
          'd.meid',
          'd.device_information',
          'd.topic',
          'd.is_supervised',
          'd.user_enrollment',
          'd.lifecycle_state',
          sql<boolean>`coalesce(e.enabled, false)`.as('enrolled'),
        ])
        .where('d.id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      if (!device) return undefined
      const row = await db.selectFrom('activation_lock_bypass_codes').selectAll().where('device_id', '=', deviceId).executeTakeFirst()
      return {
        deviceId: device.id,
        tenantId: device.tenant_id,
        serialNumber: device.serial_number,
        productName: device.product_name,
        imei: device.imei,
        meid: device.meid,
        deviceInformation: device.device_information,
        topic: device.topic,
        supervised: device.is_supervised,
        userEnrollment: device.user_enrollment,
        enrolled: device.enrolled,
        lifecycleState: device.lifecycle_state,
        row,
      }
    },

    async recordUnlock(scope, facts, outcome) {
      await db.transaction().execute(async (trx) => {
        const before = await trx
          .selectFrom('activation_lock_bypass_codes')
          .select('escrow_state')
          .where('device_id', '=', facts.deviceId)
          .forUpdate()
          .executeTakeFirst()
        const lockedByOrchard = before?.escrow_state === 'escrowed' || before?.escrow_state === 'pending' || before?.escrow_state === 'failed'
        await trx
          .updateTable('activation_lock_bypass_codes')
          .set({
            unlocked_at: outcome.at,
            unlocked_with: outcome.codeUsed,
            unlock_detail: outcome.detail,
            ...(lockedByOrchard
              ? { escrow_state: 'cleared', escrow_retry_at: null, escrow_detail: `Activation Lock turned off at Apple on ${outcome.at.toISOString()}` }
              : {}),
            updated_at: sql`now()`,
          })
          .where('device_id', '=', facts.deviceId)
          .execute()
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: facts.deviceId,
          tenantId: facts.tenantId,
          deviceId: facts.deviceId,
          details: { activation_lock: 'turned off at Apple', code_used: outcome.codeUsed, organization_lock_cleared: lockedByOrchard },
        })
      })
    },

    async recordUnlockFailure(deviceId, detail) {
      await db
        .updateTable('activation_lock_bypass_codes')
        .set({ unlock_detail: detail, updated_at: sql`now()` })
        .where('device_id', '=', deviceId)
        .execute()
    },

    async recordDeviceClear(deviceId, state, commandUuid, detail) {
      await db
        .updateTable('activation_lock_bypass_codes')
        .set({ device_clear_state: state, device_clear_command_uuid: commandUuid, device_clear_detail: detail, updated_at: sql`now()` })
        .where('device_id', '=', deviceId)
        .execute()
    },

    async recordDeviceClearAnswer(deviceId, commandUuid, state, detail) {
      await db
        .updateTable('activation_lock_bypass_codes')
        .set({ device_clear_state: state, device_clear_detail: detail, updated_at: sql`now()` })
        .where('device_id', '=', deviceId)
        .where('device_clear_command_uuid', '=', commandUuid)
        .execute()
    },
  }
}
