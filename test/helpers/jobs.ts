// Jobs in tests: the app's job runner, found by its Fastify instance, so that a test (and
// apiClient, after a 202 naming a job) can wait for the work a request started, without
// sleeping; and following a 202 to the finished job.
import type { FastifyInstance } from 'fastify'
import type { ApiResponse } from './api.js'

const runners = new WeakMap<FastifyInstance, { settled(): Promise<void> }>()

export function registerJobRunner(app: FastifyInstance, runner: { settled(): Promise<void> }): void {
  runners.set(app, runner)
}

/** Waits until the jobs this app's runner started have run (nothing when it has no runner). */
export async function settleJobs(app: FastifyInstance): Promise<void> {
  await runners.get(app)?.settled()
}

type Api = (method: 'GET', url: string) => Promise<ApiResponse>

/**
 * A 202 answered with a job, followed to its end: throws unless the answer is 202 with
 * `Location: /api/v1/jobs/{id}` and the job has finished; answers the finished job.
 */
export async function followJob(api: Api, accepted: ApiResponse): Promise<any> {
  const location = accepted.headers['location']
  if (accepted.statusCode !== 202 || typeof location !== 'string' || location !== `/api/v1/jobs/${accepted.json?.id}`)
    throw new Error(`expected 202 with a job: ${accepted.statusCode} ${accepted.body}`)
  const job = await api('GET', location)
  if (job.statusCode !== 200 || !['succeeded', 'failed', 'cancelled'].includes(job.json.state)) throw new Error(`job not finished: ${job.body}`)
  return job.json
}

/**
 * POST a sync (ABM/ASM or Apps and Books), answered 202 with a job: the 202, with the
 * finished job's result (the sync report) as `json`, as the sync used to answer.
 */
export async function syncThroughJob(api: (method: 'GET' | 'POST', url: string) => Promise<ApiResponse>, url: string): Promise<ApiResponse & { job: any }> {
  const accepted = await api('POST', url)
  const job = await followJob(api, accepted)
  return { ...accepted, json: job.result, body: JSON.stringify(job.result), job }
}
