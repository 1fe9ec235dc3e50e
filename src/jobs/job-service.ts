// Jobs as the admin API sees them: started by another feature's handler (answered 202 with
// the job), read by id or listed (tenant-scoped), their errors paged, cancelled where safe.
import { randomUUID } from 'node:crypto'
import { OrchardError } from '../errors.js'
import type { Job } from '../http/generated/operations.js'
import type { Page } from '../db/pagination.js'
import type { AccessScope } from '../model/access.js'
import { jobJson, jobLocation } from './job-json.js'
import type { JobKind } from './job-kind.js'
import type { JobErrorInput, JobErrorRow, JobState, JobStore, JobType } from './job-store.js'

export type { JobErrorInput, JobState, JobType }

export interface JobStart {
  type: JobType
  tenantId: string | null
  params: Record<string, unknown>
  total: number | null
  /** Units settled before any work (targets skipped at once). */
  done?: number
  outcomes?: Record<string, number>
  /** Known from the start (a bulk command's UUID). */
  result?: Record<string, unknown>
  errors?: JobErrorInput[]
  /** Added to the audit row of the request that started it. */
  details?: Record<string, unknown>
}

/** What a feature's handler needs to answer 202 with a job. */
export interface JobStarter {
  start(scope: AccessScope, job: JobStart): Promise<Job>
}

export interface JobService extends JobStarter {
  getJob(scope: AccessScope, id: string): Promise<Job>
  /** A succeeded job's output (a report job's report): not_found as getJob, conflict while it has none. */
  getOutput(scope: AccessScope, id: string): Promise<{ type: JobType; content: unknown }>
  listJobs(scope: AccessScope, filter: { state?: JobState; type?: JobType }, page: { limit: number; cursor?: string }): Promise<Page<Job>>
  listErrors(scope: AccessScope, id: string, page: { limit: number; cursor?: string }): Promise<Page<JobErrorRow>>
  /** `stopping`: a running job was asked to stop after its current step. */
  cancelJob(scope: AccessScope, id: string): Promise<{ job: Job; stopping: boolean }>
}

export interface JobServiceDeps {
  store: JobStore
  kinds: ReadonlyMap<JobType, Pick<JobKind, 'stoppable'>>
  /** A job was created here: run it soon. */
  wake(): void
  /** job.finished for a job cancelled while queued (the runner emits the others). */
  finished(job: Job): Promise<void>
}

export function createJobService(deps: JobServiceDeps): JobService {
  const stoppable = (type: JobType) => deps.kinds.get(type)?.stoppable === true
  const view = (row: Parameters<typeof jobJson>[0]) => jobJson(row, stoppable(row.type))
  const notFound = (id: string) => new OrchardError('not_found', `no job ${id}`)

  return {
    async start(scope, job) {
      const actor = scope.actor
      const row = await deps.store.createJob(
        scope,
        {
          id: randomUUID(),
          tenantId: job.tenantId,
          type: job.type,
          params: job.params,
          total: job.total,
          ...(job.done !== undefined ? { done: job.done } : {}),
          ...(job.outcomes ? { outcomes: job.outcomes } : {}),
          result: job.result ?? null,
          startedBy: actor ? { id: actor.principalId, name: actor.principalName } : null,
          ...(job.errors ? { errors: job.errors } : {}),
        },
        { action: actor?.action ?? 'job', ...(job.details ? { details: job.details } : {}) },
      )
      deps.wake()
      return view(row)
    },

    async getJob(scope, id) {
      const row = await deps.store.getJob(scope, id)
      if (!row) throw notFound(id)
      return view(row)
    },

    async getOutput(scope, id) {
      const found = await deps.store.getOutput(scope, id)
      if (!found) throw notFound(id)
      const { row, content } = found
      if (row.state === 'queued' || row.state === 'running')
        throw new OrchardError('conflict', `the job has not finished yet (${row.state}): follow it at ${jobLocation(id)}, then fetch its result`)
      if (row.state !== 'succeeded') throw new OrchardError('conflict', `the job ended ${row.state}: it has no result (its errors: ${jobLocation(id)}/errors)`)
      if (content === null) throw new OrchardError('conflict', `a ${row.type} job keeps no output: what it produced is the job's result (${jobLocation(id)})`)
      return { type: row.type, content }
    },

    async listJobs(scope, filter, page) {
      const rows = await deps.store.listJobs(scope, filter, page)
      return { items: rows.items.map(view), nextCursor: rows.nextCursor }
    },

    async listErrors(scope, id, page) {
      const errors = await deps.store.listErrors(scope, id, page)
      if (!errors) throw notFound(id)
      return errors
    },

    async cancelJob(scope, id) {
      const current = await deps.store.getJob(scope, id)
      if (!current) throw notFound(id)
      const outcome = await deps.store.cancel(scope, id, { running: stoppable(current.type) })
      if (!outcome) throw notFound(id)
      const { row, changed } = outcome
      if (!changed) {
        if (row.state === 'running' && row.cancel_requested) return { job: view(row), stopping: true }
        const why =
          row.state === 'running' ? `a running ${row.type} job cannot be stopped midway; it ends by itself` : `the job has finished already (${row.state})`
        throw new OrchardError('conflict', why)
      }
      const job = view(row)
      if (row.state === 'cancelled') await deps.finished(job)
      return { job, stopping: row.state === 'running' }
    },
  }
}
