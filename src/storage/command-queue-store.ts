// The command queue: commands stored once, one command_targets row per target enrollment
// holding its delivery state and result.
import { sql, type Kysely } from 'kysely'
import type { CommandTargetStatus, Database } from './schema.js'

export interface NewCommand {
  uuid: string
  requestType: string
  payload: Buffer
  priority: number
  expiresAt: Date | null
}

export type TargetOutcome = 'queued' | 'unknown_enrollment' | 'enrollment_disabled'

export type InsertCommandOutcome =
  | { ok: true; stored: boolean; targets: Array<{ enrollmentId: string; outcome: TargetOutcome }> }
  | { ok: false; reason: 'duplicate_uuid' }

export interface NextCommand {
  uuid: string
  requestType: string
  payload: Buffer
}

export type ResultOutcome =
  | { recorded: true; requestType: string }
  /** Already answered (a repeated report) or cancelled/expired meanwhile. */
  | { recorded: false; reason: 'already_answered' | 'unknown_command' }

export interface CommandResult {
  status: Exclude<CommandTargetStatus, 'Pending' | 'Expired' | 'Cancelled'>
  raw: Buffer
  errorChain?: unknown
}

export interface TargetState {
  enrollmentId: string
  status: CommandTargetStatus
  notNowCount: number
  deliveryCount: number
  resultAt: Date | null
  resultRaw: Buffer | null
  errorChain: unknown
  cancelReason: string | null
}

export interface CommandQueueStore {
  /** Stores the command once and queues it for each enabled target, in one transaction. */
  insertCommand(command: NewCommand, targets: readonly string[]): Promise<InsertCommandOutcome>
  /** Records a device's answer to a delivered command (NotNow keeps it queued). */
  recordResult(enrollmentId: string, commandUuid: string, result: CommandResult): Promise<ResultOutcome>
  /**
   * The next command to send, marked delivered: highest priority first, then oldest.
   * `includeNotNow` false offers only commands the device has never answered.
   */
  nextCommand(enrollmentId: string, includeNotNow: boolean): Promise<NextCommand | undefined>
  /** Marks this enrollment's undelivered commands past their deadline as Expired. */
  expireCommands(enrollmentId: string): Promise<number>
  targetStates(commandUuid: string): Promise<TargetState[]>
}

export function createCommandQueueStore(db: Kysely<Database>): CommandQueueStore {
  return {
    async insertCommand(command, targets) {
      const unique = [...new Set(targets)]
      try {
        return await db.transaction().execute(async (trx) => {
          const known = unique.length
            ? await trx.selectFrom('enrollments').select(['id', 'enabled']).where('id', 'in', unique).execute()
            : []
          const enabled = new Map(known.map((row) => [row.id, row.enabled]))
          const queued = unique.filter((id) => enabled.get(id) === true)
          const targetOutcomes = unique.map((enrollmentId) => ({
            enrollmentId,
            outcome: (!enabled.has(enrollmentId) ? 'unknown_enrollment' : enabled.get(enrollmentId) ? 'queued' : 'enrollment_disabled') as TargetOutcome,
          }))
          // A command no target can receive is not stored.
          if (queued.length === 0) return { ok: true as const, stored: false, targets: targetOutcomes }

          const inserted = await trx
            .insertInto('commands')
            .values({
              uuid: command.uuid,
              request_type: command.requestType,
              payload: command.payload,
              priority: command.priority,
              expires_at: command.expiresAt,
            })
            .onConflict((oc) => oc.column('uuid').doNothing())
            .returning('uuid')
            .executeTakeFirst()
          if (!inserted) return { ok: false as const, reason: 'duplicate_uuid' as const }
          for (let i = 0; i < queued.length; i += 1000) {
            await trx
              .insertInto('command_targets')
              .values(
                queued.slice(i, i + 1000).map((enrollmentId) => ({
                  enrollment_id: enrollmentId,
                  command_uuid: command.uuid,
                  priority: command.priority,
                  expires_at: command.expiresAt,
                })),
              )
              .execute()
          }
          return { ok: true as const, stored: true, targets: targetOutcomes }
        })
      } catch (error) {
        // Two callers inserting the same CommandUUID at once: the loser sees a unique violation.
        if ((error as { code?: string }).code === '23505') return { ok: false, reason: 'duplicate_uuid' }
        throw error
      }
    },

    async recordResult(enrollmentId, commandUuid, result) {
      const notNow = result.status === 'NotNow'
      const updated = await sql<{ request_type: string }>`
        update command_targets t
        set status = ${result.status},
            not_now_count = t.not_now_count + ${notNow ? 1 : 0},
            last_not_now_at = case when ${notNow} then now() else t.last_not_now_at end,
            result_at = case when ${notNow} then t.result_at else now() end,
            result_raw = ${result.raw},
            error_chain = ${result.errorChain === undefined ? null : JSON.stringify(result.errorChain)}::text::jsonb,
            updated_at = now()
        from commands c
        where t.enrollment_id = ${enrollmentId} and t.command_uuid = ${commandUuid}
          and t.status in ('Pending', 'NotNow') and c.uuid = t.command_uuid
        returning c.request_type`.execute(db)
      const row = updated.rows[0]
      if (row) return { recorded: true, requestType: row.request_type }
      const exists = await db
        .selectFrom('command_targets')
        .select('status')
        .where('enrollment_id', '=', enrollmentId)
        .where('command_uuid', '=', commandUuid)
        .executeTakeFirst()
      return { recorded: false, reason: exists ? 'already_answered' : 'unknown_command' }
    },

    async nextCommand(enrollmentId, includeNotNow) {
      // One statement: pick the head of this enrollment's queue (served by
      // command_targets_next_idx) and mark it delivered.
      const result = await sql<{ uuid: string; request_type: string; payload: Buffer }>`
        with head as (
          select enrollment_id, command_uuid from command_targets
          where enrollment_id = ${enrollmentId}
            and status in ('Pending', 'NotNow')
            and (status = 'Pending' or ${includeNotNow})
            and (expires_at is null or expires_at > now() or first_delivered_at is not null and status = 'Pending')
          order by priority desc, seq
          limit 1
        )
        update command_targets t
        set delivery_count = t.delivery_count + 1,
            first_delivered_at = coalesce(t.first_delivered_at, now()),
            last_delivered_at = now(),
            updated_at = now()
        from head, commands c
        where t.enrollment_id = head.enrollment_id and t.command_uuid = head.command_uuid and c.uuid = t.command_uuid
        returning c.uuid, c.request_type, c.payload`.execute(db)
      const row = result.rows[0]
      return row ? { uuid: row.uuid, requestType: row.request_type, payload: row.payload } : undefined
    },

    async expireCommands(enrollmentId) {
      // Undelivered ones, and ones the device refused (NotNow): a command the device has
      // fetched and may be running (delivered, no answer yet) is not expired under it.
      const result = await db
        .updateTable('command_targets')
        .set({ status: 'Expired', updated_at: sql`now()` })
        .where('enrollment_id', '=', enrollmentId)
        .where('expires_at', '<=', sql<Date>`now()`)
        .where((eb) => eb.or([eb('status', '=', 'NotNow'), eb.and([eb('status', '=', 'Pending'), eb('first_delivered_at', 'is', null)])]))
        .executeTakeFirst()
      return Number(result.numUpdatedRows)
    },

    async targetStates(commandUuid) {
      const rows = await db
        .selectFrom('command_targets')
        .select(['enrollment_id', 'status', 'not_now_count', 'delivery_count', 'result_at', 'result_raw', 'error_chain', 'cancel_reason'])
        .where('command_uuid', '=', commandUuid)
        .orderBy('enrollment_id')
        .execute()
      return rows.map((row) => ({
        enrollmentId: row.enrollment_id,
        status: row.status,
        notNowCount: row.not_now_count,
        deliveryCount: row.delivery_count,
        resultAt: row.result_at,
        resultRaw: row.result_raw,
        errorChain: row.error_chain,
        cancelReason: row.cancel_reason,
      }))
    },
  }
}
