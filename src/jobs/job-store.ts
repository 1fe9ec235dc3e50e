// The jobs table: created by an admin request, claimed by a runner on any replica under a
// lease it renews, progress checkpointed with each step, errors appended in order. Every
// write of a runner names its lease: a runner that lost its job (its lease ran out and
// another replica took the job) changes nothing any more. A job that ends keeps no params
// (they may hold secrets: an EraseDevice PIN); finished jobs are pruned after the retention.
import { sql, type Kysely, type Selectable, type SqlBool } from 'kysely'
import { decodeCursor, orderFor, pageOf, type Page } from '../db/pagination.js'
import type { Database } from '../db/schema.js'
import type { JobErrorsTable, JobsTable, JobState, JobType } from '../db/schema-jobs.js'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'

export type JobRow = Selectable<JobsTable>
export type JobErrorRow = Pick<Selectable<JobErrorsTable>, 'seq' | 'target' | 'code' | 'message' | 'created_at'>
export type { JobState, JobType }

export interface JobErrorInput {
  target: string | null
  code: string
  message: string
}

export interface NewJob {
  id: string
  tenantId: string | null
  type: JobType
  params: Record<string, unknown>
  total: number | null
  done?: number
  outcomes?: Record<string, number>
  result?: Record<string, unknown> | null
  startedBy: { id: string; name: string } | null
  /** Known at creation (targets skipped before any work). */
  errors?: readonly JobErrorInput[]
}

export interface JobProgress {
  done: number
  total: number | null
  outcomes: Record<string, number>
  checkpoint: unknown
  result?: Record<string, unknown> | null
  errors: readonly JobErrorInput[]
  /** What the job produced, kept in job_outputs; written with the final state only. */
  output?: unknown
}

/** A claimed job; `firstStart`: no runner had started it before. */
export type ClaimedJob = JobRow & { firstStart: boolean }

export interface JobStore {
  /** Inserts the job (and its audit row, for an admin's scope) in one transaction. */
  createJob(scope: AccessScope, job: NewJob, audit: { action: string; details?: Record<string, unknown> }): Promise<JobRow>
  getJob(scope: AccessScope, id: string): Promise<JobRow | undefined>
  /** The job and its output (null: none); undefined when the job does not exist for the scope. */
  getOutput(scope: AccessScope, id: string): Promise<{ row: JobRow; content: unknown } | undefined>
  listJobs(scope: AccessScope, filter: { state?: JobState; type?: JobType }, page: { limit: number; cursor?: string }): Promise<Page<JobRow>>
  /** Undefined when the job does not exist for the scope. */
  listErrors(scope: AccessScope, id: string, page: { limit: number; cursor?: string }): Promise<Page<JobErrorRow> | undefined>
  /** Cancels a queued job at once, or flags a running one (when `running` allows) for its runner; answers the row after. */
  cancel(scope: AccessScope, id: string, options: { running: boolean }): Promise<{ row: JobRow; changed: boolean } | undefined>
  /** Claims the oldest queued job, or a running one whose lease ran out, for `owner`. */
  claim(owner: string, leaseMs: number): Promise<ClaimedJob | undefined>
  /** Renews the lease; undefined when `owner` lost the job. */
  heartbeat(id: string, owner: string, leaseMs: number): Promise<{ cancelRequested: boolean } | undefined>
  /** Saves a step's progress and errors (one transaction) and renews the lease; undefined when `owner` lost the job. */
  checkpoint(id: string, owner: string, leaseMs: number, progress: JobProgress): Promise<{ cancelRequested: boolean } | undefined>
  /** Lets the lease go at once (this replica stops between two steps): any runner may claim the job now. */
  release(id: string, owner: string): Promise<void>
  /** Ends the job in `state`, releasing the lease; undefined when `owner` lost it. */
  finish(id: string, owner: string, state: 'succeeded' | 'failed' | 'cancelled', progress: JobProgress): Promise<JobRow | undefined>
  /** Deletes jobs that finished before `before` (their errors and output go with them), in batches; answers how many. */
  pruneFinished(before: Date, batchSize?: number): Promise<number>
}

const json = (value: unknown) => JSON.stringify(value)
const leaseEnd = (leaseMs: number) => sql<Date>`now() + make_interval(secs => ${leaseMs / 1000}::float8)`

export function createJobStore(db: Kysely<Database>): JobStore {
  type Executor = Pick<Kysely<Database>, 'updateTable' | 'insertInto'>
  async function appendErrors(trx: Executor, id: string, owner: string, leaseMs: number, progress: JobProgress, final: JobState | null) {
    const count = progress.errors.length
    const row = await trx
      .updateTable('jobs')
      .set({
        done: progress.done,
        total: progress.total,
        outcomes: json(progress.outcomes),
        checkpoint: json(progress.checkpoint ?? null),
        ...(progress.result !== undefined ? { result: progress.result === null ? null : json(progress.result) } : {}),
        error_count: sql<number>`error_count + ${count}::int`,
        // A job that ends forgets its params (a bulk command's payload, an offboarding's erase PIN).
        ...(final
          ? { state: final, finished_at: sql<Date>`now()`, lease_owner: null, lease_until: null, params: json({}) }
          : { lease_until: leaseEnd(leaseMs) }),
      })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .where('state', '=', 'running')
      .returningAll()
      .executeTakeFirst()
    if (!row) return undefined
    if (final && progress.output !== undefined) {
      const content = json(progress.output)
      await trx
        .insertInto('job_outputs')
        .values({ job_id: id, content })
        .onConflict((conflict) => conflict.column('job_id').doUpdateSet({ content }))
        .execute()
    }
    const first = row.error_count - count + 1
    for (let i = 0; i < count; i += 1000) {
      const chunk = progress.errors.slice(i, i + 1000)
      await trx
        .insertInto('job_errors')
        .values(chunk.map((error, k) => ({ job_id: id, seq: first + i + k, target: error.target, code: error.code, message: error.message.slice(0, 2000) })))
        .execute()
    }
    return row
  }

  async function getJob(scope: AccessScope, id: string) {
    return db.selectFrom('jobs').selectAll().where('id', '=', id).where(inScope(scope, 'tenant_id')).executeTakeFirst()
  }

  return {
    getJob,
    async getOutput(scope, id) {
      const row = await getJob(scope, id)
      if (!row) return undefined
      const output = await db.selectFrom('job_outputs').select('content').where('job_id', '=', id).executeTakeFirst()
      return { row, content: output ? output.content : null }
    },

    async createJob(scope, job, audit) {
      return db.transaction().execute(async (trx) => {
        const errors = job.errors ?? []
        const row = await trx
          .insertInto('jobs')
          .values({
            id: job.id,
            tenant_id: job.tenantId,
            type: job.type,
            params: json(job.params),
            total: job.total,
            done: job.done ?? 0,
            outcomes: json(job.outcomes ?? {}),
            result: job.result ? json(job.result) : null,
            error_count: errors.length,
            started_by_id: job.startedBy?.id ?? null,
            started_by_name: job.startedBy?.name ?? null,
          })
          .returningAll()
          .executeTakeFirstOrThrow()
        for (let i = 0; i < errors.length; i += 1000) {
          await trx
            .insertInto('job_errors')
            .values(errors.slice(i, i + 1000).map((error, k) => ({ job_id: job.id, seq: i + k + 1, ...error, message: error.message.slice(0, 2000) })))
            .execute()
        }
        await recordAdminWrite(trx, scope, { type: 'job', id: job.id, tenantId: job.tenantId, details: { job_type: job.type, ...audit.details } })
        return row
      })
    },

    async listJobs(scope, filter, page) {
      const sort = '-created_at'
      let query = db
        .selectFrom('jobs')
        .selectAll()
        .select(sql<string>`created_at::text`.as('sort_key'))
        .where(inScope(scope, 'tenant_id'))
      if (filter.state !== undefined) query = query.where('state', '=', filter.state)
      if (filter.type !== undefined) query = query.where('type', '=', filter.type)
      if (page.cursor !== undefined) {
        // Newest first; ids compared as text (the order of uuids), so a tampered id is no SQL error.
        const after = decodeCursor(page.cursor, sort, { value: 'timestamptz', id: 'text' })
        const at = sql`${after.value}::timestamptz`
        query = query.where(sql<SqlBool>`(created_at < ${at} or (created_at = ${at} and id::text < ${after.id}))`)
      }
      const rows = await query
        .orderBy(orderFor('created_at', 'id', 'desc'))
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sort,
        (row) => ({ value: row.sort_key, id: row.id }),
        ({ sort_key: _key, ...row }) => row,
      )
    },

    async listErrors(scope, id, page) {
      if (!(await getJob(scope, id))) return undefined
      const sort = 'seq'
      let query = db.selectFrom('job_errors').select(['seq', 'target', 'code', 'message', 'created_at']).where('job_id', '=', id)
      if (page.cursor !== undefined) {
        const after = decodeCursor(page.cursor, sort, { value: null, id: 'bigint' })
        query = query.where('seq', '>', Number(after.id))
      }
      const rows = await query
        .orderBy('seq')
        .limit(page.limit + 1)
        .execute()
      return pageOf(
        rows,
        page.limit,
        sort,
        (row) => ({ value: null, id: String(row.seq) }),
        (row) => row,
      )
    },

    async cancel(scope, id, options) {
      return db.transaction().execute(async (trx) => {
        const current = await trx.selectFrom('jobs').selectAll().where('id', '=', id).where(inScope(scope, 'tenant_id')).forUpdate().executeTakeFirst()
        if (!current) return undefined
        let row: JobRow | undefined
        if (current.state === 'queued') {
          row = await trx
            .updateTable('jobs')
            .set({ state: 'cancelled', finished_at: sql<Date>`now()`, cancel_requested: true, params: json({}) })
            .where('id', '=', id)
            .returningAll()
            .executeTakeFirstOrThrow()
        } else if (current.state === 'running' && options.running && !current.cancel_requested) {
          row = await trx.updateTable('jobs').set({ cancel_requested: true }).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
        }
        if (!row) return { row: current, changed: false }
        await recordAdminWrite(trx, scope, { type: 'job', id, tenantId: current.tenant_id, details: { job_type: current.type, state: row.state } })
        return { row, changed: true }
      })
    },

    async claim(owner, leaseMs) {
      // Served by jobs_open_idx; SKIP LOCKED: replicas claiming at once take different jobs.
      const { rows } = await sql<JobRow & { first_start: boolean }>`
        with picked as (
          select id, started_at from jobs
          where state = 'queued' or (state = 'running' and lease_until < now())
          order by created_at, id
          limit 1
          for update skip locked
        )
        update jobs j
        set state = 'running', lease_owner = ${owner}, lease_until = ${leaseEnd(leaseMs)},
          started_at = coalesce(j.started_at, now()), attempts = j.attempts + 1
        from picked
        where j.id = picked.id
        returning j.*, picked.started_at is null as first_start`.execute(db)
      const row = rows[0]
      if (!row) return undefined
      const { first_start: firstStart, ...job } = row
      return { ...job, firstStart }
    },

    async heartbeat(id, owner, leaseMs) {
      const row = await db
        .updateTable('jobs')
        .set({ lease_until: leaseEnd(leaseMs) })
        .where('id', '=', id)
        .where('lease_owner', '=', owner)
        .where('state', '=', 'running')
        .returning('cancel_requested')
        .executeTakeFirst()
      return row ? { cancelRequested: row.cancel_requested } : undefined
    },

    async release(id, owner) {
      await db
        .updateTable('jobs')
        .set({ lease_until: sql<Date>`now() - interval '1 millisecond'` })
        .where('id', '=', id)
        .where('lease_owner', '=', owner)
        .where('state', '=', 'running')
        .execute()
    },

    async checkpoint(id, owner, leaseMs, progress) {
      const row = await db.transaction().execute((trx) => appendErrors(trx, id, owner, leaseMs, progress, null))
      return row ? { cancelRequested: row.cancel_requested } : undefined
    },

    async finish(id, owner, state, progress) {
      return db.transaction().execute((trx) => appendErrors(trx, id, owner, 0, progress, state))
    },

    async pruneFinished(before, batchSize = 1000) {
      let removed = 0
      for (;;) {
        // Batched, so a large backlog never holds long locks (served by jobs_finished_idx).
        const result = await sql`
          delete from jobs where id in (
            select id from jobs where finished_at is not null and finished_at < ${before}
            order by finished_at
            limit ${batchSize})
          returning 1`.execute(db)
        // Counted from the returned rows: PGlite reports no affected-row count for raw SQL.
        removed += result.rows.length
        if (result.rows.length < batchSize) return removed
      }
    },
  }
}
