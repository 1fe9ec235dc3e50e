// Table types of jobs (migrations/0025_jobs.ts, 0027_report_jobs.ts), beside schema.ts.
import type { ColumnType, Generated } from 'kysely'

type Json<T = unknown> = ColumnType<T, string, string>
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>

export const jobTypes = ['bulk_command', 'abm_sync', 'vpp_sync', 'offboarding', 'report'] as const
export type JobType = (typeof jobTypes)[number]
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'

export interface JobsTable {
  id: string
  tenant_id: string | null
  type: JobType
  state: Generated<JobState>
  params: Json<Record<string, unknown>>
  total: number | null
  done: Generated<number>
  outcomes: ColumnType<Record<string, number>, string | undefined, string>
  checkpoint: Json | null
  result: Json<Record<string, unknown>> | null
  error_count: Generated<number>
  started_by_id: string | null
  started_by_name: string | null
  created_at: Generated<Date>
  started_at: Timestamp | null
  finished_at: Timestamp | null
  lease_owner: string | null
  lease_until: Timestamp | null
  attempts: Generated<number>
  cancel_requested: Generated<boolean>
}

export interface JobErrorsTable {
  job_id: string
  seq: number
  target: string | null
  code: string
  message: string
  created_at: Generated<Date>
}

export interface JobOutputsTable {
  job_id: string
  content: Json
  created_at: Generated<Date>
}

export interface JobsTables {
  jobs: JobsTable
  job_errors: JobErrorsTable
  job_outputs: JobOutputsTable
}
