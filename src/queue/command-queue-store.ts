// The command queue: commands stored once, one command_targets row per target enrollment
// holding its delivery state and result.
import type { AccessScope } from '../model/access.js'
import { adminWriteRow } from '../tenancy/audit-store.js'
import { sql, type Kysely } from 'kysely'
import { preparedStatement } from '../db/statement-names.js'
import type { Database } from '../db/schema.js'
import { isUniqueViolation } from '../db/pg-errors.js'
import { deliveryOrder, isDueToExpire, isOfferable, isOpen, notNowThisSessionAfter, repushDueBy } from './queue-sql.js'

export interface NewCommand {
  uuid: string
  requestType: string
  payload: Buffer
  priority: number
  expiresAt: Date | null
  /** The tenant all its targets belong to; null when central IT or several tenants. */
  tenantId?: string | null
}

export type TargetOutcome = 'queued' | 'unknown_enrollment' | 'enrollment_disabled'

export type InsertCommandOutcome =
  { ok: true; stored: boolean; targets: Array<{ enrollmentId: string; outcome: TargetOutcome }> } | { ok: false; reason: 'duplicate_uuid' }

export interface NextCommand {
  uuid: string
  requestType: string
  payload: Buffer
}

export type ResultOutcome =
  | { recorded: true; requestType: string; notNowCount: number }
  /** Already answered (a repeated report), cancelled or expired meanwhile, or never sent here. */
  | { recorded: false; reason: 'already_answered' | 'unknown_command' }

export interface ReportInput {
  enrollmentId: string
  deviceId: string
  certificateSha256: string
  status: 'Idle' | 'Acknowledged' | 'Error' | 'CommandFormatError' | 'NotNow'
  /** Absent on Idle. */
  commandUuid?: string
  raw: Buffer
  errorChain?: unknown
}

/** Why a report was refused; `retired`: the device was retired (its platform and OS say how to make it unenroll). */
export type Refusal =
  | { accepted: false; reason: 'unknown_enrollment' | 'enrollment_disabled' | 'identity_mismatch' }
  | { accepted: false; reason: 'retired'; productName: string | null; osVersion: string | null }

export type ReportOutcome = Refusal | { accepted: true; result?: ResultOutcome; expired: number; next?: NextCommand }

export interface CommandQueueStore {
  /** Stores the command once and queues it for each enabled target, in one transaction. */
  /** `scope` carries the admin who queued it, audited in the same transaction. */
  insertCommand(command: NewCommand, targets: readonly string[], scope?: AccessScope): Promise<InsertCommandOutcome>
  /**
   * A device's report, in one round trip: the channel must be enabled and its device bound
   * to this certificate; a result is recorded (NotNow keeps the command queued); Idle
   * expires overdue commands; and the next command (highest priority, then oldest) is
   * marked delivered and returned.
   */
  processReport(report: ReportInput): Promise<ReportOutcome>
}

export interface CommandQueueStoreOptions {
  /** When a device with queued commands is pushed again if it has not connected (see push-store). */
  repushAfterSeconds: number
}

export function createCommandQueueStore(db: Kysely<Database>, options: CommandQueueStoreOptions): CommandQueueStore {
  // How often a talking channel's row is touched at most (see processReport): a fifth of the
  // re-push interval, at most a minute (last_seen_at is as fresh as that).
  const touchSeconds = Math.min(60, Math.floor(options.repushAfterSeconds / 5))
  const repush = repushDueBy(options.repushAfterSeconds)
  // The rare refusal path explains itself with a second look.
  async function explainRefusal(report: ReportInput): Promise<Refusal> {
    const row = await db
      .selectFrom('enrollments as e')
      .innerJoin('devices as d', 'd.id', 'e.device_id')
      .select(['e.enabled', 'e.device_id', 'd.identity_sha256', 'd.lifecycle_state', 'd.product_name', 'd.os_version'])
      .where('e.id', '=', report.enrollmentId)
      .executeTakeFirst()
    if (!row || row.device_id !== report.deviceId) return { accepted: false, reason: 'unknown_enrollment' }
    if (row.identity_sha256 !== report.certificateSha256) return { accepted: false, reason: 'identity_mismatch' }
    if (row.lifecycle_state === 'retired') return { accepted: false, reason: 'retired', productName: row.product_name, osVersion: row.os_version }
    return { accepted: false, reason: 'enrollment_disabled' }
  }

  async function commandTargetExists(enrollmentId: string, commandUuid: string): Promise<boolean> {
    const row = await db
      .selectFrom('command_targets')
      .select('status')
      .where('enrollment_id', '=', enrollmentId)
      .where('command_uuid', '=', commandUuid)
      .executeTakeFirst()
    return row !== undefined
  }

  return {
    async insertCommand(command, targets, scope) {
      const unique = [...new Set(targets)]
      if (unique.length === 0) return { ok: true, stored: false, targets: [] }
      // The admin who queued it, audited with the change (once per request, as recordAdminWrite).
      const actor = scope?.actor && !scope.actor.recorded ? scope.actor : undefined
      const audit = actor && adminWriteRow(actor, { type: 'command', id: command.uuid, tenantId: command.tenantId ?? null })
      const expiresAt = command.expiresAt
      try {
        // One statement, one round trip (an API call per command is how automation queues
        // work): which targets exist and are enabled, the command stored once (not at all
        // when no target can receive it, or its UUID is taken), their queue rows, the re-push
        // schedule and the audit row. A statement is atomic: all of it or nothing.
        const { rows } = await sql<{ known: Array<[string, boolean]>; stored: boolean }>`${sql.raw(preparedStatement)}
          with known as (
            select id, enabled from enrollments where id = any(${unique}::text[])
          ),
          queued as (select id from known where enabled),
          stored as (
            insert into commands (uuid, request_type, payload, priority, expires_at, tenant_id)
            select ${command.uuid}::text, ${command.requestType}::text, ${command.payload}::bytea, ${command.priority}::smallint,
              ${expiresAt}::timestamptz, ${command.tenantId ?? null}::text
            where exists (select 1 from queued)
            on conflict (uuid) do nothing
            returning uuid
          ),
          -- A device that does not answer the push is pushed again after the re-push interval.
          repushed as (
            update enrollments set next_repush_at = ${repush.next}
            where id in (select id from queued) and exists (select 1 from stored) and ${repush.isLater}
          ),
          targets as (
            insert into command_targets (enrollment_id, command_uuid, priority, expires_at)
            select q.id, s.uuid, ${command.priority}::smallint, ${expiresAt}::timestamptz from queued q cross join stored s
          ),
          audited as (
            insert into audit_events (category, tenant_id, principal_id, principal_name, principal_source, action, target_type, target_id,
              device_id, request_id, outcome, details)
            select 'admin', ${audit?.tenant_id ?? null}::text, ${audit?.principal_id ?? null}::text, ${audit?.principal_name ?? null}::text,
              ${audit?.principal_source ?? null}::text, ${audit?.action ?? null}::text, 'command', s.uuid,
              (select min(id) from queued having count(*) = 1), ${audit?.request_id ?? null}::text, 'success',
              jsonb_build_object('request_type', ${command.requestType}::text, 'queued', (select count(*) from queued))
            from stored s where ${audit !== undefined}
          )
          -- The parts above that write run to completion whether or not this reads them.
          select coalesce((select json_agg(json_build_array(id, enabled)) from known), '[]') as known,
            exists (select 1 from stored) as stored`.execute(db)
        const row = rows[0]!
        const enabled = new Map(row.known)
        const outcomeOf = (enrollmentId: string): TargetOutcome =>
          !enabled.has(enrollmentId) ? 'unknown_enrollment' : enabled.get(enrollmentId) ? 'queued' : 'enrollment_disabled'
        const targetOutcomes = unique.map((enrollmentId) => ({ enrollmentId, outcome: outcomeOf(enrollmentId) }))
        // A command no target can receive is not stored.
        if (!targetOutcomes.some((target) => target.outcome === 'queued')) return { ok: true, stored: false, targets: targetOutcomes }
        if (!row.stored) return { ok: false, reason: 'duplicate_uuid' }
        if (actor) actor.recorded = true
        return { ok: true, stored: true, targets: targetOutcomes }
      } catch (error) {
        // Two callers inserting the same CommandUUID at once: the loser sees a unique violation.
        if (isUniqueViolation(error)) return { ok: false, reason: 'duplicate_uuid' }
        throw error
      }
    },

    async processReport(report) {
      const isIdle = report.status === 'Idle'
      const notNow = report.status === 'NotNow'
      // One statement, one round trip: check the channel (enabled, bound to this
      // certificate) and touch it, record the result, expire overdue commands on Idle, and
      // take the next command (served by command_targets_next_idx) marking it delivered.
      // All parts see the snapshot from before the statement, so the command answered
      // now is excluded from "next" by its UUID.
      const { rows } = await sql<{
        gate_ok: number
        recorded_type: string | null
        not_now_count: number | null
        expired: number
        next_uuid: string | null
        next_type: string | null
        next_payload: Buffer | null
      }>`${sql.raw(preparedStatement)}
        with gate as (
          select e.id, e.not_now_this_session as was_not_now, ${notNowThisSessionAfter(report.status, 'e')} as not_now_this_session,
            e.repush_count, e.last_seen_at, e.next_repush_at
          from enrollments e
          join devices d on d.id = e.device_id
          where e.id = ${report.enrollmentId} and e.device_id = ${report.deviceId} and e.enabled
            and d.identity_sha256 = ${report.certificateSha256}
          -- Requests of one channel are taken one after the other (the next command of one is
          -- not the head another is being handed): a row lock, not a new row version.
          for no key update of e
        ),
        -- The channel is touched (last seen, and the re-push backoff starting over since it
        -- answered) at most once per touch interval while nothing else about it changes: a drain
        -- is several requests a second, and each update of the row left a dead row version and
        -- new entries in its six indexes. The re-push comes at most a fifth of its interval early.
        touched as (
          update enrollments e
          set last_seen_at = now(), repush_count = 0,
              next_repush_at = now() + make_interval(secs => ${options.repushAfterSeconds}::int),
              not_now_this_session = gate.not_now_this_session
          from gate
          where e.id = gate.id
            and (gate.not_now_this_session is distinct from gate.was_not_now or gate.repush_count <> 0
              or gate.last_seen_at is null or gate.last_seen_at < now() - make_interval(secs => ${touchSeconds}::int)
              or gate.next_repush_at is null
              or gate.next_repush_at < now() + make_interval(secs => ${options.repushAfterSeconds - touchSeconds}::int))
          returning 1
        ),
        recorded as (
          update command_targets t
          set status = ${report.status}::text,
              not_now_count = t.not_now_count + ${notNow ? 1 : 0}::int,
              last_not_now_at = case when ${notNow}::boolean then now() else t.last_not_now_at end,
              result_at = case when ${notNow}::boolean then t.result_at else now() end,
              result_raw = ${isIdle ? null : report.raw}::bytea,
              error_chain = ${report.errorChain === undefined ? null : JSON.stringify(report.errorChain)}::text::jsonb,
              updated_at = now()
          from commands c
          where not ${isIdle}::boolean and exists (select 1 from gate)
            and t.enrollment_id = ${report.enrollmentId} and t.command_uuid = ${report.commandUuid ?? null}::text
            and ${isOpen('t')} and c.uuid = t.command_uuid
          returning c.request_type, t.not_now_count
        ),
        expired as (
          -- Undelivered or refused (NotNow) ones only: a command the device fetched and may
          -- be running (delivered, no answer yet) is not expired under it.
          update command_targets
          set status = 'Expired', updated_at = now()
          where ${isIdle}::boolean and exists (select 1 from gate) and enrollment_id = ${report.enrollmentId}
            and ${isDueToExpire()}
          returning command_uuid
        ),
        head as (
          select enrollment_id, command_uuid from command_targets
          where exists (select 1 from gate) and enrollment_id = ${report.enrollmentId}
            and command_uuid is distinct from ${report.commandUuid ?? null}::text
            -- After a NotNow, until the next Idle: only commands never answered.
            and ${isOfferable(undefined, sql`(select not_now_this_session from gate)`)}
          order by ${deliveryOrder()}
          limit 1
          -- An operator cancelling this row right now holds its lock: take the next one
          -- rather than wait, and never hand out a row the cancel is about to commit.
          for update skip locked
        ),
        -- A delivery changes no indexed column (updated_at, which command_targets_finished_idx
        -- holds, is the last change of status; last_delivered_at says when it was handed out):
        -- PostgreSQL updates the row in place on its page (HOT), with no new entry in the
        -- table's indexes, three of which hold every target kept as history.
        -- The row is named by its key (the head's UUID as an InitPlan), not joined to head: with
        -- statistics from when every target was answered, the join was planned as a walk of
        -- every queued target of the fleet (40 ms per Idle at 100,000 queued).
        delivered as (
          update command_targets t
          set delivery_count = t.delivery_count + 1,
              first_delivered_at = coalesce(t.first_delivered_at, now()),
              last_delivered_at = now()
          where t.enrollment_id = ${report.enrollmentId} and t.command_uuid = (select command_uuid from head)
            and ${isOpen('t')}
          returning t.command_uuid
        )
        select (select count(*) from gate)::int as gate_ok, (select count(*) from touched)::int as touched,
               (select request_type from recorded) as recorded_type,
               (select not_now_count from recorded) as not_now_count,
               (select count(*) from expired)::int as expired,
               c.uuid as next_uuid, c.request_type as next_type, c.payload as next_payload
        from (select 1) as one
        left join delivered on true
        left join commands c on c.uuid = delivered.command_uuid`.execute(db)
      const row = rows[0]!
      if (row.gate_ok === 0) return explainRefusal(report)
      let result: ResultOutcome | undefined
      if (!isIdle) {
        result =
          row.recorded_type !== null
            ? { recorded: true, requestType: row.recorded_type, notNowCount: row.not_now_count ?? 0 }
            : { recorded: false, reason: (await commandTargetExists(report.enrollmentId, report.commandUuid!)) ? 'already_answered' : 'unknown_command' }
      }
      return {
        accepted: true,
        result,
        expired: row.expired,
        next: row.next_uuid !== null ? { uuid: row.next_uuid, requestType: row.next_type!, payload: row.next_payload! } : undefined,
      }
    },
  }
}
