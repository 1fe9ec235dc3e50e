// What the command queue means, as SQL fragments for the stores that read or change
// command_targets: which targets are open, which one a device is offered next, when one
// expires, and when an operator may still cancel it. SQL vocabulary only (no queries), like
// db/scope-sql.ts; the statuses themselves are model/commands.ts.
//
// Each fragment takes the alias of the command_targets row it tests (none: the bare table).
// Statuses are inlined as literals, never parameters: Postgres uses the partial indexes on
// `status in ('Pending', 'NotNow')` (command_targets_next_idx, command_targets_finished_idx;
// migrations spell the list themselves, frozen in time) only when it can see that the
// query's condition implies the index's, which a prepared statement's parameter hides.
import { sql, type RawBuilder, type SqlBool } from 'kysely'
import { openCommandStatuses, type CommandTargetStatus } from '../model/commands.js'

type Column = 'status' | 'first_delivered_at' | 'expires_at' | 'priority' | 'seq' | 'enrollment_id'

function column(target: string | undefined, name: Column): RawBuilder<unknown> {
  return sql.ref(target === undefined ? name : `${target}.${name}`)
}

function status(value: CommandTargetStatus): RawBuilder<string> {
  return sql.lit(value)
}

const openList = sql.join(openCommandStatuses.map(status))

/** Queued for the device: not answered yet (Pending) or refused for now (NotNow). */
export function isOpen(target?: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`${column(target, 'status')} in (${openList})`
}

/**
 * Targets of one device's channels. Written as `= any(array(subquery))`, which runs the
 * subquery once (an InitPlan): the channels come from enrollments_device_id_idx and their
 * targets from the indexes that lead with enrollment_id, whatever the statistics say. As
 * `in (subquery)` the planner may join the other way round, walking every open target of the
 * fleet and looking up each one's channel: with statistics from when the queue was all
 * answered it did, 21,000 index scans per Authenticate at 9,000 devices.
 */
export function ofDevice(deviceId: string, target?: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`${column(target, 'enrollment_id')} = any(array(select id from enrollments where device_id = ${deviceId}))`
}

/** Answered, expired or cancelled: history, pruned after the retention window. */
export function isFinished(target?: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`${column(target, 'status')} not in (${openList})`
}

/** Fetched by the device and not answered yet: it may be running it. */
export function isInFlight(target?: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`(${column(target, 'status')} = ${status('Pending')} and ${column(target, 'first_delivered_at')} is not null)`
}

/**
 * May be cancelled: queued and never fetched, or refused (NotNow: the device is not running
 * it); that is, open and not in flight. Checked again under the row lock by an update, so a
 * device fetching it at the same moment either gets it or finds it cancelled.
 */
export function isCancellable(target?: string): RawBuilder<SqlBool> {
  const state = column(target, 'status')
  return sql<SqlBool>`(${state} = ${status('NotNow')} or (${state} = ${status('Pending')} and ${column(target, 'first_delivered_at')} is null))`
}

/**
 * Expires now (on the device's Idle, marked Expired): open, past its expiry and not in
 * flight; a command the device fetched and may be running is not expired under it.
 */
export function isDueToExpire(target?: string): RawBuilder<SqlBool> {
  return sql<SqlBool>`${isOpen(target)} and ${column(target, 'expires_at')} <= now() and ${isCancellable(target)}`
}

/**
 * May be offered to the device now. `refusedThisSession` is the channel's
 * enrollments.not_now_this_session (see notNowThisSessionAfter): after a NotNow, until the
 * next Idle, only commands never answered are offered. An overdue command is never offered,
 * unless it is in flight (fetched, no answer: sent again, as it was not expired under it).
 */
export function isOfferable(target: string | undefined, refusedThisSession: RawBuilder<unknown>): RawBuilder<SqlBool> {
  const expiresAt = column(target, 'expires_at')
  return sql<SqlBool>`${isOpen(target)}
            and (${column(target, 'status')} = ${status('Pending')} or not ${refusedThisSession})
            and (${expiresAt} is null or ${expiresAt} > now() or ${isInFlight(target)})`
}

/**
 * The delivery order, for `order by`: highest priority first, then first queued first
 * (served by command_targets_next_idx).
 */
export function deliveryOrder(target?: string): RawBuilder<unknown> {
  return sql`${column(target, 'priority')} desc, ${column(target, 'seq')}`
}

/**
 * enrollments.not_now_this_session after a report with this Status: a NotNow sets it (the
 * device is busy: offer only never-answered commands for the rest of the connection), an
 * Idle starts a new connection and clears it, any other result keeps it.
 */
export function notNowThisSessionAfter(reportStatus: string, enrollment: string): RawBuilder<boolean> {
  return sql<boolean>`case ${reportStatus}::text when 'Idle' then false when ${status('NotNow')} then true else ${sql.ref(`${enrollment}.not_now_this_session`)} end`
}

/**
 * Channels that got a command are pushed again if they stay silent: their next re-push is
 * brought forward to `seconds` from now, never pushed back. Only rows it brings forward are
 * written: a channel that already has an earlier one (the usual case while commands pile up)
 * keeps its row as it is, with no new row version and no wait for its lock.
 */
export function repushDueBy(seconds: number): { next: RawBuilder<Date>; isLater: RawBuilder<SqlBool> } {
  const due = sql<Date>`now() + make_interval(secs => ${seconds}::int)`
  return { next: due, isLater: sql<SqlBool>`(next_repush_at is null or next_repush_at > ${due})` }
}
