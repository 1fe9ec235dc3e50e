// What a kind of job is to the runner: whether a running one may stop between steps, and
// its step. A step starts from the progress the job's row holds (`checkpoint`, `done`) and
// must be idempotent: a replica that stops after a step's work and before its checkpoint
// leaves the step to be done again by the replica that takes the job over.
import type { JobErrorInput, JobType } from './job-store.js'

export interface RunningJob {
  id: string
  tenantId: string | null
  params: Record<string, unknown>
  total: number | null
  done: number
  checkpoint: unknown
  /** Times a runner claimed it (more than 1: taken over). */
  attempts: number
}

export interface JobStep {
  /** Units done after this step (absolute). */
  done: number
  total?: number | null
  /** Added to the job's counts by outcome. */
  outcomes?: Record<string, number>
  /** Where the next step starts. */
  checkpoint?: unknown
  errors?: JobErrorInput[]
  /** Set by the last step; `output` (plain JSON) is kept for GET /api/v1/jobs/{id}/result. */
  finished?: { state: 'succeeded' | 'failed'; result?: Record<string, unknown>; output?: unknown }
}

export interface JobKind {
  type: JobType
  /** A running job of this kind may be cancelled between two steps. */
  stoppable: boolean
  step(job: RunningJob): Promise<JobStep>
}

/** A job whose one step is the whole work (a sync): not stoppable; its report is the result. */
export function singleStepKind(
  type: JobType,
  run: (params: Record<string, unknown>) => Promise<{ outcome: string; failed: boolean; report: Record<string, unknown> }>,
): JobKind {
  return {
    type,
    stoppable: false,
    async step(job) {
      const { outcome, failed, report } = await run(job.params)
      return { done: 1, total: 1, outcomes: { [outcome]: 1 }, finished: { state: failed ? 'failed' : 'succeeded', result: report } }
    },
  }
}

/** A job step's outcomes: how many items fall under each key. */
export function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1
  return counts
}
