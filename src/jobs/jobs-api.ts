// Admin API: jobs (long work answered 202 by the operations that start them), their
// progress, their errors and cancellation. Tenant scoped like every other row.
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import type { JobService } from './job-service.js'

const page = (query: { limit: number; cursor?: string }) => ({ limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) })

export function jobHandlers(deps: { jobs: JobService }): OperationHandlers {
  const { jobs } = deps
  return {
    async listJobs(request) {
      const { query } = request
      const filter = { ...(query.state !== undefined ? { state: query.state } : {}), ...(query.type !== undefined ? { type: query.type } : {}) }
      const found = await jobs.listJobs(accessOf(request), filter, page(query))
      return { items: found.items, next_cursor: found.nextCursor }
    },

    async getJob(request) {
      return jobs.getJob(accessOf(request), request.params.job_id)
    },

    async cancelJob(request, reply) {
      const { job, stopping } = await jobs.cancelJob(accessOf(request), request.params.job_id)
      return reply.code(stopping ? 202 : 200).send(job)
    },

    async listJobErrors(request) {
      const errors = await jobs.listErrors(accessOf(request), request.params.job_id, page(request.query))
      return {
        items: errors.items.map((error) => ({ ...error, created_at: error.created_at.toISOString() })),
        next_cursor: errors.nextCursor,
      }
    },
  }
}
