// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Report jobs and the pruning of finished jobs: a device-days report over a long period (or
// asked for with `Prefer: respond-async`) runs as a `report` job whose output, the report
// itself, is kept in job_outputs until the job is pruned (ORCHARD_JOB_RETENTION_DAYS after it
// finished; its errors and output go with it).
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // The type check of 0025 was declared on its column: PostgreSQL named it jobs_type_check.
  await sql`alter table jobs drop constraint jobs_type_check`.execute(db)
  await sql`alter table jobs add constraint jobs_type_check check (type in ('bulk_command', 'abm_sync', 'vpp_sync', 'offboarding', 'report'))`.execute(db)
  // Serves the pruning of finished jobs (oldest finished first, in batches).
  await sql`create index jobs_finished_idx on jobs (finished_at) where finished_at is not null`.execute(db)

  await sql`
    create table job_outputs (
      job_id uuid primary key references jobs (id) on delete cascade,
      -- What the job produced for GET /api/v1/jobs/{id}/result to render (a report job: the report).
      content jsonb not null,
      created_at timestamptz not null default now()
    )`.execute(db)
}
