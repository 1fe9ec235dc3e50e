// The job runner every replica runs: it claims the oldest queued job (or a running one whose
// replica stopped renewing its lease), works it step by step, checkpoints the progress in
// the row after each step and renews the lease meanwhile. A replica that dies leaves a job
// whose lease runs out; another replica claims it and goes on from the last checkpoint.
import type { Logger } from 'pino'
import type { Job } from '../http/generated/operations.js'
import { jobJson } from './job-json.js'
import type { JobKind, JobStep, RunningJob } from './job-kind.js'
import type { ClaimedJob, JobErrorInput, JobProgress, JobRow, JobStore, JobType } from './job-store.js'

export interface JobRunner {
  /** Claims and runs jobs until none is left; `maxSteps` stops early, keeping the lease (tests: a replica that died). */
  runDue(options?: { maxSteps?: number }): Promise<number>
  /** Runs due jobs soon (a job was created here); nothing until start(). */
  wake(): void
  /** Resolves once the work wake() or the interval started is over. */
  settled(): Promise<void>
  start(intervalMs: number): void
  stop(): Promise<void>
}

export interface JobRunnerDeps {
  store: JobStore
  kinds: ReadonlyMap<JobType, JobKind>
  /** This replica, as the lease names it. */
  owner: string
  emit(type: 'job.started' | 'job.finished', job: Job): Promise<void>
  logger: Logger
  /** Default 60 s; renewed every third of it while a step runs, and at each checkpoint. */
  leaseMs?: number
  /** A job claimed this many times without finishing fails (it stops every replica that runs it). */
  maxAttempts?: number
}

const failure = (error: unknown): JobErrorInput => ({ target: null, code: 'job_failed', message: error instanceof Error ? error.message : String(error) })

export function createJobRunner(deps: JobRunnerDeps): JobRunner {
  const log = deps.logger.child({ service: 'job-runner' })
  const leaseMs = deps.leaseMs ?? 60_000
  const maxAttempts = deps.maxAttempts ?? 5
  let started = false
  let timer: NodeJS.Timeout | null = null
  let running: Promise<unknown> | null = null
  let again = false
  let stopping = false

  const stoppable = (type: JobType) => deps.kinds.get(type)?.stoppable === true
  const view = (row: JobRow) => jobJson(row, stoppable(row.type))

  async function finish(job: ClaimedJob, state: 'succeeded' | 'failed' | 'cancelled', progress: JobProgress): Promise<void> {
    const row = await deps.store.finish(job.id, deps.owner, state, progress)
    if (!row) return log.warn({ job_id: job.id }, 'job taken over by another replica before it finished here')
    log.info({ job_id: job.id, job_type: job.type, state, done: row.done, total: row.total }, 'job finished')
    await deps.emit('job.finished', view(row))
  }

  async function stepWithHeartbeat(kind: JobKind, job: RunningJob): Promise<JobStep> {
    const beat = setInterval(() => {
      void deps.store.heartbeat(job.id, deps.owner, leaseMs).catch((error: unknown) => log.warn({ err: error, job_id: job.id }, 'job lease renewal failed'))
    }, leaseMs / 3)
    beat.unref()
    try {
      return await kind.step(job)
    } finally {
      clearInterval(beat)
    }
  }

  /** Runs one claimed job; false when it stopped with the lease held (step budget, or the runner stopping). */
  async function runJob(job: ClaimedJob, budget: { steps: number }): Promise<boolean> {
    if (job.firstStart) await deps.emit('job.started', view({ ...job }))
    const progress: JobProgress = { done: job.done, total: job.total, outcomes: { ...job.outcomes }, checkpoint: job.checkpoint, errors: [] }
    const kind = deps.kinds.get(job.type)
    if (!kind) {
      await finish(job, 'failed', { ...progress, errors: [{ target: null, code: 'unknown_job_type', message: `no runner for ${job.type} jobs` }] })
      return true
    }
    if (job.attempts > maxAttempts) {
      const message = `claimed ${job.attempts - 1} times without finishing: given up`
      await finish(job, 'failed', { ...progress, errors: [{ target: null, code: 'too_many_attempts', message }] })
      return true
    }
    let cancelRequested = job.cancel_requested
    for (;;) {
      if (cancelRequested && kind.stoppable) {
        await finish(job, 'cancelled', progress)
        return true
      }
      if (budget.steps <= 0) return false
      if (stopping) {
        // Shutting down between two steps: another replica (or this one restarted) goes on at once.
        await deps.store.release(job.id, deps.owner)
        return false
      }
      budget.steps--
      let step: JobStep
      try {
        step = await stepWithHeartbeat(kind, { ...job, tenantId: job.tenant_id, done: progress.done, total: progress.total, checkpoint: progress.checkpoint })
      } catch (error) {
        log.error({ err: error, job_id: job.id, job_type: job.type }, 'job step failed')
        await finish(job, 'failed', { ...progress, errors: [failure(error)] })
        return true
      }
      for (const [outcome, count] of Object.entries(step.outcomes ?? {})) progress.outcomes[outcome] = (progress.outcomes[outcome] ?? 0) + count
      progress.done = step.done
      if (step.total !== undefined) progress.total = step.total
      if (step.checkpoint !== undefined) progress.checkpoint = step.checkpoint
      progress.errors = step.errors ?? []
      if (step.finished) {
        const { state, result, output } = step.finished
        await finish(job, state, { ...progress, ...(result ? { result } : {}), ...(output !== undefined ? { output } : {}) })
        return true
      }
      const held = await deps.store.checkpoint(job.id, deps.owner, leaseMs, progress)
      if (!held) {
        log.warn({ job_id: job.id }, 'job taken over by another replica: stopped here')
        return true
      }
      cancelRequested = held.cancelRequested
      progress.errors = []
    }
  }

  async function runDue(options: { maxSteps?: number } = {}): Promise<number> {
    const budget = { steps: options.maxSteps ?? Number.POSITIVE_INFINITY }
    let count = 0
    for (;;) {
      const job = await deps.store.claim(deps.owner, leaseMs)
      if (!job) return count
      count++
      log.info({ job_id: job.id, job_type: job.type, attempts: job.attempts, done: job.done }, job.firstStart ? 'job started' : 'job resumed')
      if (!(await runJob(job, budget))) return count
    }
  }

  function kick(): void {
    if (running) {
      again = true
      return
    }
    running = runDue()
      .catch((error: unknown) => log.error({ err: error }, 'job runner round failed'))
      .finally(() => {
        running = null
        if (again && started) {
          again = false
          kick()
        }
      })
  }

  return {
    runDue,
    wake() {
      if (started) kick()
    },
    async settled() {
      while (running) await running
    },
    start(intervalMs) {
      started = true
      stopping = false
      timer = setInterval(kick, intervalMs)
      timer.unref()
    },
    async stop() {
      started = false
      stopping = true
      if (timer) clearInterval(timer)
      timer = null
      while (running) await running
    },
  }
}
