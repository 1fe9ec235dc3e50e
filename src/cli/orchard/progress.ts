// Follows a job to its end: a progress bar on a terminal (redrawn in place on stderr), plain
// lines otherwise (one each time the job moves), so stdout keeps only the result.
import { CliError, exitCodes } from './errors.js'
import type { Context } from './context.js'
import { jobsApi, terminalStates, type Job } from './job-client.js'
import { counts, keyValues } from './output.js'

const barWidth = 30

export function progressText(job: Job): string {
  const of = job.total === null ? `${job.done} done` : `${job.done}/${job.total}`
  const outcomes = counts(job.outcomes)
  return `${of}${outcomes ? ` (${outcomes})` : ''}`
}

export function progressBar(job: Job): string {
  const fraction = job.total ? Math.min(1, job.done / job.total) : job.state === 'succeeded' ? 1 : 0
  const filled = Math.round(fraction * barWidth)
  const percent = job.total ? ` ${Math.floor(fraction * 100)}%` : ''
  return `${job.type} [${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${percent} ${progressText(job)} ${job.state}`
}

export function describeJob(job: Job): string {
  return keyValues([
    ['Job', job.id],
    ['Type', job.type],
    ['State', job.state],
    ['Progress', progressText(job)],
    ['Tenant', job.tenant_id ?? '(central)'],
    ['Started by', job.started_by ? `${job.started_by.name} (${job.started_by.api_key_id})` : 'Orchard'],
    ['Created', job.created_at],
    ['Started', job.started_at],
    ['Finished', job.finished_at],
    ['Cancellable', job.cancellable],
  ])
}

/** Polls until the job ends; returns it in its final state. */
export async function followJob(ctx: Context, first: Job): Promise<Job> {
  const jobs = jobsApi(ctx)
  let job = first
  let last = ''
  for (;;) {
    if (ctx.io.isTTY) ctx.io.stderr.write(`\r\x1b[K${progressBar(job)}`)
    else {
      const line = `job ${job.id} ${job.state}: ${progressText(job)}`
      if (line !== last) ctx.err(line)
      last = line
    }
    if (terminalStates.has(job.state)) break
    await ctx.sleep(ctx.pollIntervalMs)
    job = await jobs.get(job.id)
  }
  if (ctx.io.isTTY) ctx.io.stderr.write('\n')
  return job
}

/** Prints the job's first errors on stderr. */
async function showErrors(ctx: Context, job: Job): Promise<void> {
  const page = await jobsApi(ctx).errors(job.id, { limit: 10 })
  for (const error of page.items) ctx.err(`  ${error.target ?? '(job)'}: ${error.code}: ${error.message}`)
  if (page.next_cursor) ctx.err(`  ... more with: orchard jobs errors ${job.id}`)
}

/**
 * After a 202: prints the job and answers null (--no-wait, with `then` saying what to do once
 * it ends), or follows it to its end and answers it once it succeeded. A job that failed or
 * was cancelled exits 1.
 */
export async function settledJob(ctx: Context, jobId: string, accepted: unknown, then = `follow it with: orchard jobs wait ${jobId}`): Promise<Job | null> {
  const start = isJob(accepted) ? accepted : await jobsApi(ctx).get(jobId)
  if (ctx.noWait) {
    ctx.print(start, () => `${describeJob(start)}\n${then}`)
    return null
  }
  const job = await followJob(ctx, start)
  if (job.state === 'succeeded') return job
  if (ctx.json) ctx.out(JSON.stringify(job, null, 2))
  if (job.state === 'failed') await showErrors(ctx, job)
  throw new CliError(`job ${job.id} ${job.state}: ${progressText(job)}`, exitCodes.error)
}

/** After a 202: settledJob, then the job's result printed with `render` (or the job with --json). */
export async function finishJob(ctx: Context, jobId: string, accepted: unknown, render: (result: unknown) => string): Promise<number> {
  const job = await settledJob(ctx, jobId, accepted)
  if (job) ctx.print(job, () => (job.result !== undefined && job.result !== null ? render(job.result) : `job ${job.id} succeeded: ${progressText(job)}`))
  return exitCodes.ok
}

function isJob(value: unknown): value is Job {
  return typeof value === 'object' && value !== null && typeof (value as Job).id === 'string' && typeof (value as Job).state === 'string'
}
