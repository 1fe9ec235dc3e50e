// Jobs in the admin API's JSON (the Job schema of openapi.yaml).
import type { Job } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import type { JobRow } from './job-store.js'

export const jobLocation = (id: string) => `/api/v1/jobs/${id}`

export function jobJson(row: JobRow, stoppable: boolean): Job {
  const cancellable = row.state === 'queued' || (row.state === 'running' && stoppable && !row.cancel_requested)
  return {
    id: row.id,
    type: row.type,
    tenant_id: row.tenant_id,
    state: row.state,
    done: row.done,
    total: row.total,
    outcomes: row.outcomes,
    started_by: row.started_by_id !== null ? { api_key_id: row.started_by_id, name: row.started_by_name ?? '' } : null,
    created_at: row.created_at.toISOString(),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    cancellable,
    ...(row.result ? { result: row.result as Job['result'] } : {}),
  }
}
