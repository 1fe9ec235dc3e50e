// Jobs as main.ts composes them: the store, the service the admin API and other features'
// handlers use (JobStarter: answer 202 with a job), the runner background work starts, and
// the pruning of finished jobs (ORCHARD_JOB_RETENTION_DAYS). The kinds come from the
// features whose work they do (bulk commands, syncs, offboarding, reports).
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { DatabaseHandle } from '../db/database.js'
import type { Job } from '../http/generated/operations.js'
import type { JobKind } from './job-kind.js'
import { createJobRunner } from './job-runner.js'
import { createJobService } from './job-service.js'
import { createJobStore } from './job-store.js'

export { jobHandlers, type JobOutputRenderer } from './jobs-api.js'
export type { JobKind } from './job-kind.js'
export type { JobRunner } from './job-runner.js'
export type { JobService, JobStarter } from './job-service.js'

export function createJobsFeature(deps: {
  db: DatabaseHandle['db']
  kinds: readonly JobKind[]
  /** job.started and job.finished webhook events. */
  emit(type: 'job.started' | 'job.finished', job: Job): Promise<void>
  /** This replica in job leases (default: host, process and a random part). */
  owner?: string
  leaseMs?: number
  /** ORCHARD_JOB_RETENTION_DAYS: finished jobs older than this are pruned; 0 keeps them. */
  retentionDays: number
  logger: Logger
}) {
  const store = createJobStore(deps.db)
  const kinds = new Map(deps.kinds.map((kind) => [kind.type, kind]))
  const runner = createJobRunner({
    store,
    kinds,
    owner: deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
    emit: deps.emit,
    logger: deps.logger,
    ...(deps.leaseMs !== undefined ? { leaseMs: deps.leaseMs } : {}),
  })
  const service = createJobService({ store, kinds, wake: () => runner.wake(), finished: (job) => deps.emit('job.finished', job) })
  const log = deps.logger.child({ service: 'job-retention' })
  /** Deletes the jobs that finished more than the retention before `now` (with their errors and output). */
  async function prune(now: Date = new Date()): Promise<number> {
    if (deps.retentionDays === 0) return 0
    const removed = await store.pruneFinished(new Date(now.getTime() - deps.retentionDays * 86_400_000))
    if (removed > 0) log.info({ retention_days: deps.retentionDays, jobs: removed }, 'finished jobs pruned')
    return removed
  }
  return { service, runner, prune }
}
