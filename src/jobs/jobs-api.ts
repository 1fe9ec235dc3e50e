// Admin API: jobs (long work answered 202 by the operations that start them), their
// progress, their errors, their output and cancellation. Tenant scoped like every other row.
// A job's output (a report job's report) is rendered by the feature that produced it: the
// renderer main.ts composes, so that jobs know nothing of what a report is.
import type { Operations, Query } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { sendCsv } from '../http/views.js'
import type { JobService, JobType } from './job-service.js'

const page = (query: { limit: number; cursor?: string }) => ({ limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) })

export type JobOutputQuery = Query<'getJobResult'>
export type JobOutputJson = Operations['getJobResult']['responses'][200]['application/json']

/** Renders a job's stored output as asked (`format`, `rows`, `per_device`). */
export type JobOutputRenderer = (type: JobType, content: unknown, query: JobOutputQuery) => { json: JobOutputJson } | { csv: string; filename: string }

export function jobHandlers(deps: { jobs: JobService; render: JobOutputRenderer }): OperationHandlers {
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

    async getJobResult(request, reply) {
      const { type, content } = await jobs.getOutput(accessOf(request), request.params.job_id)
      const rendered = deps.render(type, content, request.query)
      return 'csv' in rendered ? sendCsv(reply, rendered.filename, rendered.csv) : rendered.json
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
