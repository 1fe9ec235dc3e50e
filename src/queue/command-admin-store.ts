// The command queue as operators see it: commands with status counts, per-target status
// and results, a channel's queue and history, cancellation, and pruning of old results.
import { sql, type Kysely, type RawBuilder } from 'kysely'
import { defaultTenantOf, type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import { afterCursor, decodeCursor, orderFor, pageOf, type Page } from '../db/pagination.js'
import type { Database } from '../db/schema.js'
import type { CommandTargetStatus } from '../model/commands.js'
import { isCancellable, isFinished, isOpen } from './queue-sql.js'

export interface CommandRow {
  uuid: string
  request_type: string
  priority: number
  expires_at: Date | null
  created_at: Date
}

export interface CommandWithCounts extends CommandRow {
  payload: Buffer
  counts: Partial<Record<CommandTargetStatus, number>>
}

export interface CommandTargetRow {
  enrollment_id: string
  command_uuid: string
  request_type: string
  status: CommandTargetStatus
  not_now_count: number
  delivery_count: number
  first_delivered_at: Date | null
  last_delivered_at: Date | null
  result_at: Date | null
  result_raw: Buffer | null
  error_chain: unknown
  cancel_reason: string | null
  created_at: Date
  updated_at: Date
}

export interface CancelOutcome {
  cancelled: number
  /** Fetched by the device, not answered: it may be running, so it stays. */
  inFlight: number
  finished: number
  notTargeted: number
}

export interface CommandAdminStore {
  listCommands(
    scope: AccessScope,
    filter: { requestType?: string; createdBefore?: Date; createdAfter?: Date },
    page: { limit: number; cursor?: string },
  ): Promise<Page<CommandRow>>
  getCommand(scope: AccessScope, uuid: string): Promise<CommandWithCounts | undefined>
  commandExists(scope: AccessScope, uuid: string): Promise<boolean>
  listCommandTargets(
    scope: AccessScope,
    uuid: string,
    filter: { status?: CommandTargetStatus },
    page: { limit: number; cursor?: string },
  ): Promise<Page<CommandTargetRow>>
  listEnrollmentCommands(
    scope: AccessScope,
    enrollmentId: string,
    state: 'open' | 'finished' | 'all',
    page: { limit: number; cursor?: string },
  ): Promise<Page<CommandTargetRow>>
  /** Cancels the command for the named channels, or all its targets. */
  cancelCommand(scope: AccessScope, uuid: string, enrollmentIds: readonly string[] | undefined, reason: string): Promise<CancelOutcome>
  /** Cancels everything queued for a channel that the device has not fetched. */
  clearQueue(scope: AccessScope, enrollmentId: string, reason: string): Promise<{ cancelled: number; inFlight: number }>
  /** Deletes finished targets last changed before `before`, then commands left without targets. */
  pruneFinished(before: Date, batchSize?: number): Promise<{ targets: number; commands: number }>
  /**
   * Deletes the finished targets of the commands of these request types queued at this
   * priority that finished before `before`, then those commands once they have no target
   * left (Orchard's own inventory queries, whose answers live on in the inventory tables).
   */
  pruneFinishedOf(kind: { requestTypes: readonly string[]; priority: number }, before: Date, batchSize?: number): Promise<{ targets: number; commands: number }>
  /**
   * Audits a command request answered as a success although no target could take it, so
   * nothing was stored (no change, hence no transaction to share): filed under the caller's
   * own tenant, as the caller sees no target's.
   */
  recordUnstoredCommand(scope: AccessScope, command: { uuid: string; requestType: string; targets: number }): Promise<void>
  /** Audits a dry run (who looked at which targets for a command), which queues nothing. */
  recordDryRun(scope: AccessScope, dryRun: { requestType: string; count: number; destructive: string | null }): Promise<void>
}

export function createCommandAdminStore(db: Kysely<Database>): CommandAdminStore {
  /**
   * Deletes the targets `batch(limit)` selects, a batch at a time until one comes back short (a
   * large backlog never holds long locks), then the commands matching `commands` (alias c) left
   * without a target.
   */
  async function pruneTargetsThenCommands(
    batchSize: number,
    batch: (limit: number) => RawBuilder<unknown>,
    commands: RawBuilder<unknown>,
  ): Promise<{ targets: number; commands: number }> {
    let targets = 0
    for (;;) {
      const result = await sql`delete from command_targets where (enrollment_id, command_uuid) in (${batch(batchSize)}) returning 1`.execute(db)
      // Counted from the returned rows: PGlite reports no affected-row count for raw SQL.
      targets += result.rows.length
      if (result.rows.length < batchSize) break
    }
    const removed = await sql`
      delete from commands c where ${commands} and not exists (select 1 from command_targets t where t.command_uuid = c.uuid)
      returning 1`.execute(db)
    return { targets, commands: removed.rows.length }
  }

  function targetsQuery() {
    return db
      .selectFrom('command_targets as t')
      .innerJoin('commands as c', 'c.uuid', 't.command_uuid')
      .select([
        't.enrollment_id',
        't.command_uuid',
        'c.request_type',
        't.status',
        't.not_now_count',
        't.delivery_count',
        't.first_delivered_at',
        't.last_delivered_at',
        't.result_at',
        't.result_raw',
        't.error_chain',
        't.cancel_reason',
        't.created_at',
        't.updated_at',
      ])
  }

  return {
    async listCommands(scope, filter, page) {
      const sort = '-created_at'
      let query = db
        .selectFrom('commands as c')
        .select(['c.uuid', 'c.tenant_id', 'c.request_type', 'c.priority', 'c.expires_at', 'c.created_at', sql<string>`c.created_at::text`.as('sort_key')])
        .where(inScope(scope, 'c.tenant_id'))
      if (filter.requestType !== undefined) query = query.where('c.request_type', '=', filter.requestType)
      if (filter.createdBefore !== undefined) query = query.where('c.created_at', '<', filter.createdBefore)
      if (filter.createdAfter !== undefined) query = query.where('c.created_at', '>', filter.createdAfter)
      if (page.cursor !== undefined)
        query = query.where(afterCursor('c.created_at', 'c.uuid', 'desc', decodeCursor(page.cursor, sort, { value: 'timestamptz', id: 'text' }), 'timestamptz'))
      const rows = await query
        .orderBy(orderFor('c.created_at', 'c.uuid', 'desc'))
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sort,
        (row) => ({ value: row.sort_key, id: row.uuid }),
        ({ sort_key: _key, ...row }) => row,
      )
    },

    async getCommand(scope, uuid) {
      const command = await db
        .selectFrom('commands')
        .select(['uuid', 'tenant_id', 'request_type', 'priority', 'expires_at', 'created_at', 'payload'])
        .where('uuid', '=', uuid)
        .where(inScope(scope, 'tenant_id'))
        .executeTakeFirst()
      if (!command) return undefined
      const counts = await db
        .selectFrom('command_targets')
        .select(['status', sql<number>`count(*)::int`.as('count')])
        .where('command_uuid', '=', uuid)
        .groupBy('status')
        .execute()
      return { ...command, counts: Object.fromEntries(counts.map((row) => [row.status, row.count])) }
    },

    async commandExists(scope, uuid) {
      return (await db.selectFrom('commands').select('uuid').where('uuid', '=', uuid).where(inScope(scope, 'tenant_id')).executeTakeFirst()) !== undefined
    },

    async listCommandTargets(scope, uuid, filter, page) {
      const sort = 'enrollment_id'
      let query = targetsQuery().where('t.command_uuid', '=', uuid).where(inScope(scope, 'c.tenant_id'))
      if (filter.status !== undefined) query = query.where('t.status', '=', filter.status)
      if (page.cursor !== undefined) query = query.where('t.enrollment_id', '>', decodeCursor(page.cursor, sort, { value: null, id: 'text' }).id)
      const rows = await query
        .orderBy('t.enrollment_id')
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sort,
        (row) => ({ value: null, id: row.enrollment_id }),
        (row) => row,
      )
    },

    async listEnrollmentCommands(scope, enrollmentId, state, page) {
      const sort = '-seq'
      // Scoped by the device: its tenant sees every command it got, central IT's included.
      let query = targetsQuery()
        .innerJoin('enrollments as e', 'e.id', 't.enrollment_id')
        .innerJoin('devices as d', 'd.id', 'e.device_id')
        .select(sql<string>`t.seq::text`.as('seq'))
        .where('t.enrollment_id', '=', enrollmentId)
        .where(inScope(scope, 'd.tenant_id'))
      if (state === 'open') query = query.where(isOpen('t'))
      if (state === 'finished') query = query.where(isFinished('t'))
      if (page.cursor !== undefined) query = query.where(sql<boolean>`t.seq < ${decodeCursor(page.cursor, sort, { value: null, id: 'bigint' }).id}::bigint`)
      const rows = await query
        .orderBy('t.seq', 'desc')
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sort,
        (row) => ({ value: null, id: row.seq }),
        ({ seq: _seq, ...row }) => row,
      )
    },

    async cancelCommand(scope, uuid, enrollmentIds, reason) {
      const named = enrollmentIds === undefined ? null : [...new Set(enrollmentIds)]
      return db.transaction().execute(async (trx) => {
        const command = await trx.selectFrom('commands').select('tenant_id').where('uuid', '=', uuid).where(inScope(scope, 'tenant_id')).executeTakeFirst()
        if (!command) return { cancelled: 0, inFlight: 0, finished: 0, notTargeted: named?.length ?? 0 }
        const { rows } = await sql<{ cancelled: number; in_flight: number; finished: number; targeted: number }>`
          with cancelled as (
            update command_targets t
            set status = 'Cancelled', cancel_reason = ${reason}, updated_at = now()
            where t.command_uuid = ${uuid}
              and (${named === null}::boolean or t.enrollment_id = any(${named ?? []}::text[]))
              and ${isCancellable('t')}
            returning t.enrollment_id
          ),
          others as (
            select t.status, t.first_delivered_at from command_targets t
            where t.command_uuid = ${uuid}
              and (${named === null}::boolean or t.enrollment_id = any(${named ?? []}::text[]))
              and t.enrollment_id not in (select enrollment_id from cancelled)
          )
          select (select count(*) from cancelled)::int as cancelled,
                 -- Open but not cancellable: fetched by the device, maybe just now by a poll
                 -- this statement waited for (the snapshot still shows it undelivered).
                 (select count(*) from others where ${isOpen()})::int as in_flight,
                 (select count(*) from others where ${isFinished()})::int as finished,
                 ((select count(*) from cancelled) + (select count(*) from others))::int as targeted`.execute(trx)
        const row = rows[0]!
        await recordAdminWrite(trx, scope, {
          type: 'command',
          id: uuid,
          tenantId: command.tenant_id,
          details: { cancelled: row.cancelled, in_flight: row.in_flight },
        })
        // Rows the update skipped because they changed meanwhile are counted by what they are now.
        return {
          cancelled: row.cancelled,
          inFlight: row.in_flight,
          finished: row.finished,
          notTargeted: named === null ? 0 : named.length - row.targeted,
        }
      })
    },

    async clearQueue(scope, enrollmentId, reason) {
      return db.transaction().execute(async (trx) => {
        const device = await trx
          .selectFrom('enrollments as e')
          .innerJoin('devices as d', 'd.id', 'e.device_id')
          .select(['d.id', 'd.tenant_id'])
          .where('e.id', '=', enrollmentId)
          .where(inScope(scope, 'd.tenant_id'))
          .executeTakeFirst()
        if (!device) return { cancelled: 0, inFlight: 0 }
        const { rows } = await sql<{ cancelled: number; in_flight: number }>`
          with cancelled as (
            update command_targets t
            set status = 'Cancelled', cancel_reason = ${reason}, updated_at = now()
            where t.enrollment_id = ${enrollmentId} and ${isOpen('t')} and ${isCancellable('t')}
            returning t.command_uuid
          )
          select (select count(*) from cancelled)::int as cancelled,
                 (select count(*) from command_targets t
                  where t.enrollment_id = ${enrollmentId} and ${isOpen('t')}
                    and t.command_uuid not in (select command_uuid from cancelled))::int as in_flight`.execute(trx)
        await recordAdminWrite(trx, scope, {
          type: 'enrollment',
          id: enrollmentId,
          tenantId: device.tenant_id,
          deviceId: device.id,
          details: { cancelled: rows[0]!.cancelled },
        })
        return { cancelled: rows[0]!.cancelled, inFlight: rows[0]!.in_flight }
      })
    },

    async recordUnstoredCommand(scope, command) {
      await recordAdminWrite(db, scope, {
        type: 'command',
        id: command.uuid,
        tenantId: defaultTenantOf(scope),
        details: { request_type: command.requestType, stored: false, targets: command.targets },
      })
    },

    async recordDryRun(scope, dryRun) {
      await recordAdminWrite(db, scope, {
        type: 'command',
        id: null,
        tenantId: defaultTenantOf(scope),
        details: { dry_run: true, request_type: dryRun.requestType, targets: dryRun.count, destructive: dryRun.destructive },
      })
    },

    async pruneFinished(before, batchSize = 5000) {
      // Served by command_targets_finished_idx.
      return pruneTargetsThenCommands(
        batchSize,
        (limit) => sql`select enrollment_id, command_uuid from command_targets where ${isFinished()} and updated_at < ${before} limit ${limit}`,
        sql`c.created_at < ${before}`,
      )
    },

    async pruneFinishedOf(kind, before, batchSize = 5000) {
      // From the commands (commands_request_type_idx) to their targets (command_targets_command_enrollment_idx):
      // the finished-targets index would be walked past every other command's history each batch.
      const ofKind = sql`c.request_type = any(${kind.requestTypes}::text[]) and c.priority = ${kind.priority} and c.created_at < ${before}`
      return pruneTargetsThenCommands(
        batchSize,
        (limit) => sql`select t.enrollment_id, t.command_uuid from commands c join command_targets t on t.command_uuid = c.uuid
          where ${ofKind} and ${isFinished('t')} and t.updated_at < ${before} limit ${limit}`,
        ofKind,
      )
    },
  }
}
