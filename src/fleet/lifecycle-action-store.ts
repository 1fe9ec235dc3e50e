// Lifecycle actions: begun (pending, with the commands each queued), finished from the
// device's answers, recorded when already over, listed with their commands' status on the
// device, and cancelled while the device has not fetched their commands.
import { sql, type Kysely } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database, LifecycleCommandRef } from '../db/schema.js'
import type { LifecycleActionKind, LifecycleState } from '../model/devices.js'
import { isUniqueViolation } from '../db/pg-errors.js'
import { isCancellable, isInFlight } from '../queue/queue-sql.js'
import { insertAction, setLifecycleState, type BeginAction, type LifecycleActionRow } from './lifecycle-shared-store.js'

export interface CommandStatus {
  commandUuid: string
  status: string | null
  errorChain: unknown
  resultAt: Date | null
}

export interface LifecycleActionView extends LifecycleActionRow {
  /** The status of each of its commands on this device (null: not queued, e.g. cancelled before). */
  commandStatus: CommandStatus[]
}

export interface LifecycleActionStore {
  /**
   * Records a pending action (and the device's new state), audited, in one transaction.
   * 'busy': another erase, selective wipe or reinstall of this device is pending.
   */
  begin(scope: AccessScope, action: BeginAction, at: Date): Promise<'ok' | 'busy'>
  /** The commands the action queued, in order. */
  attachCommands(actionId: string, commands: readonly LifecycleCommandRef[], details?: Record<string, unknown>): Promise<void>
  /** Ends a pending action; `state` sets the device's lifecycle state in the same transaction. */
  finish(
    actionId: string,
    status: 'completed' | 'failed' | 'cancelled',
    at: Date,
    options?: { state?: LifecycleState; details?: Record<string, unknown> },
  ): Promise<boolean>
  /** An action that is already over when it starts (kind changed, retire). */
  record(scope: AccessScope, action: BeginAction & { commands?: LifecycleCommandRef[] }, at: Date): Promise<void>
  pendingForCommand(deviceId: string, commandUuid: string): Promise<LifecycleActionRow | undefined>
  pendingOfDevice(deviceId: string, actions: readonly LifecycleActionKind[]): Promise<LifecycleActionRow[]>
  listActions(scope: AccessScope, deviceId: string): Promise<LifecycleActionView[]>
  getAction(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView | undefined>
  /** Cancels the action's commands the device has not fetched; returns how many were and were not. */
  cancelCommands(scope: AccessScope, action: LifecycleActionRow, reason: string): Promise<{ cancelled: number; fetched: number }>
}

/** Merges keys into an action's details (jsonb ||). */
const mergedDetails = (details: Record<string, unknown>) => sql`coalesce(details, '{}'::jsonb) || ${JSON.stringify(details)}::jsonb` as never

export function createLifecycleActionStore(db: Kysely<Database>): LifecycleActionStore {
  async function withCommandStatus(rows: LifecycleActionRow[]): Promise<LifecycleActionView[]> {
    const wanted = rows.flatMap((row) => row.commands.map((command) => ({ deviceId: row.device_id, uuid: command.command_uuid })))
    const statuses = new Map<string, CommandStatus>()
    if (wanted.length > 0) {
      const found = await db
        .selectFrom('command_targets as t')
        .innerJoin('enrollments as e', 'e.id', 't.enrollment_id')
        .select(['e.device_id', 't.command_uuid', 't.status', 't.error_chain', 't.result_at'])
        .where('t.command_uuid', 'in', [...new Set(wanted.map((w) => w.uuid))])
        .where('e.device_id', 'in', [...new Set(wanted.map((w) => w.deviceId))])
        .where('e.channel', '=', 'device')
        .execute()
      for (const row of found)
        statuses.set(`${row.device_id} ${row.command_uuid}`, {
          commandUuid: row.command_uuid,
          status: row.status,
          errorChain: row.error_chain,
          resultAt: row.result_at,
        })
    }
    return rows.map((row) => ({
      ...row,
      commandStatus: row.commands.map(
        (command) =>
          statuses.get(`${row.device_id} ${command.command_uuid}`) ?? { commandUuid: command.command_uuid, status: null, errorChain: null, resultAt: null },
      ),
    }))
  }

  function actionsOf(scope: AccessScope, deviceId: string) {
    return db
      .selectFrom('lifecycle_actions as a')
      .innerJoin('devices as d', 'd.id', 'a.device_id')
      .selectAll('a')
      .where('a.device_id', '=', deviceId)
      .where(inScope(scope, 'd.tenant_id'))
  }

  return {
    async begin(scope, action, at) {
      try {
        await db.transaction().execute((trx) => insertAction(trx, scope, action, 'pending', at))
        return 'ok'
      } catch (error) {
        if (isUniqueViolation(error)) return 'busy'
        throw error
      }
    },

    async attachCommands(actionId, commands, details) {
      await db
        .updateTable('lifecycle_actions')
        .set({ commands: JSON.stringify(commands), ...(details ? { details: mergedDetails(details) } : {}) })
        .where('id', '=', actionId)
        .execute()
    },

    async finish(actionId, status, at, options = {}) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('lifecycle_actions')
          .set({
            status,
            completed_at: at,
            ...(options.details ? { details: mergedDetails(options.details) } : {}),
          })
          .where('id', '=', actionId)
          .where('status', '=', 'pending')
          .returning('device_id')
          .executeTakeFirst()
        if (!row) return false
        if (options.state) await setLifecycleState(trx, row.device_id, options.state, at)
        return true
      })
    },

    async record(scope, action, at) {
      await db.transaction().execute((trx) => insertAction(trx, scope, action, 'completed', at))
    },

    async pendingForCommand(deviceId, commandUuid) {
      return db
        .selectFrom('lifecycle_actions')
        .selectAll()
        .where('device_id', '=', deviceId)
        .where('status', '=', 'pending')
        .where(sql<boolean>`commands @> ${JSON.stringify([{ command_uuid: commandUuid }])}::jsonb`)
        .executeTakeFirst()
    },

    async pendingOfDevice(deviceId, actions) {
      if (actions.length === 0) return []
      return db
        .selectFrom('lifecycle_actions')
        .selectAll()
        .where('device_id', '=', deviceId)
        .where('status', '=', 'pending')
        .where('action', 'in', actions)
        .orderBy('created_at')
        .execute()
    },

    async listActions(scope, deviceId) {
      return withCommandStatus(await actionsOf(scope, deviceId).orderBy('a.created_at', 'desc').orderBy('a.id').limit(200).execute())
    },

    async getAction(scope, deviceId, actionId) {
      const row = await actionsOf(scope, deviceId).where('a.id', '=', actionId).executeTakeFirst()
      return row ? (await withCommandStatus([row]))[0] : undefined
    },

    async cancelCommands(scope, action, reason) {
      const uuids = action.commands.map((command) => command.command_uuid)
      if (uuids.length === 0) return { cancelled: 0, fetched: 0 }
      return db.transaction().execute(async (trx) => {
        // Queued and never fetched (or refused with NotNow): the device has not started it.
        const { rows } = await sql<{ cancelled: number; fetched: number }>`
          with cancelled as (
            update command_targets t set status = 'Cancelled', cancel_reason = ${reason}, updated_at = now()
            where t.enrollment_id = ${action.device_id} and t.command_uuid in (${sql.join(uuids)})
              and ${isCancellable('t')}
            returning t.command_uuid
          )
          select (select count(*) from cancelled)::int as cancelled,
            (select count(*) from command_targets t where t.enrollment_id = ${action.device_id} and t.command_uuid in (${sql.join(uuids)})
              and ${isInFlight('t')})::int as fetched`.execute(trx)
        const outcome = rows[0]!
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: action.device_id,
          tenantId: action.tenant_id,
          deviceId: action.device_id,
          details: { lifecycle_action_id: action.id, cancelled: outcome.cancelled, fetched: outcome.fetched },
        })
        return outcome
      })
    },
  }
}
