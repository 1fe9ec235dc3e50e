// The jobs endpoints (GET /api/v1/jobs, GET and DELETE /api/v1/jobs/{job_id}, GET .../errors)
// through the generated client. A long operation answers 202 with `Location:
// /api/v1/jobs/{job_id}` and the Job; progress.ts follows it.
import type { components } from '../generated/admin-api.js'
import { send } from './client.js'
import type { Context } from './context.js'

export type Job = components['schemas']['Job']
export type JobState = components['schemas']['JobStateValue']
export type JobType = components['schemas']['JobTypeValue']

export const terminalStates: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'cancelled'])

export function jobsApi(ctx: Context) {
  return {
    list: async (query: { state?: JobState; type?: JobType; limit?: number; cursor?: string }) =>
      (await send(ctx.api.GET('/api/v1/jobs', { params: { query } }))).data,
    get: async (id: string) => (await send(ctx.api.GET('/api/v1/jobs/{job_id}', { params: { path: { job_id: id } } }))).data,
    cancel: async (id: string) => await send(ctx.api.DELETE('/api/v1/jobs/{job_id}', { params: { path: { job_id: id } } })),
    errors: async (id: string, query: { limit?: number; cursor?: string }) =>
      (await send(ctx.api.GET('/api/v1/jobs/{job_id}/errors', { params: { path: { job_id: id }, query } }))).data,
  }
}
