// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Jobs: long work (bulk commands, ABM/ASM and Apps and Books syncs, offboarding many
// devices) answered 202 and done by a runner on any replica. A replica claims a job with a
// lease it renews; a job whose lease ran out (its replica died) is claimed again and goes on
// from the progress checkpointed in its row. job_errors holds what failed, per target.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table jobs (
      id uuid primary key,
      -- null: central IT's job (only central principals see it).
      tenant_id text references tenants (id) on delete cascade,
      type text not null check (type in ('bulk_command', 'abm_sync', 'vpp_sync', 'offboarding')),
      state text not null default 'queued' check (state in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
      params jsonb not null check (jsonb_typeof(params) = 'object'),
      total integer check (total >= 0),
      done integer not null default 0 check (done >= 0),
      -- Counts by outcome, e.g. {"queued": 1200, "not_applicable": 3}.
      outcomes jsonb not null default '{}' check (jsonb_typeof(outcomes) = 'object'),
      -- Where the next step starts (the kind's own cursor); written with each step's progress.
      checkpoint jsonb,
      -- What a finished job produced (a sync's report...), where its kind has one.
      result jsonb check (result is null or jsonb_typeof(result) = 'object'),
      error_count integer not null default 0 check (error_count >= 0),
      -- Who started it, as the audit log records an actor (null: Orchard itself).
      started_by_id text,
      started_by_name text,
      created_at timestamptz not null default now(),
      started_at timestamptz,
      finished_at timestamptz,
      lease_owner text,
      lease_until timestamptz,
      -- Times a runner claimed it (more than 1: it was taken over after a replica stopped).
      attempts integer not null default 0 check (attempts >= 0),
      cancel_requested boolean not null default false,
      constraint jobs_done_within_total check (total is null or done <= total),
      constraint jobs_finished_at check ((state in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null)),
      constraint jobs_started_at check (state = 'queued' or started_at is not null or state = 'cancelled'),
      constraint jobs_lease_pair check ((lease_owner is null) = (lease_until is null)),
      constraint jobs_lease_running check (lease_owner is null or state = 'running'),
      constraint jobs_started_by_pair check ((started_by_id is null) = (started_by_name is null))
    )`.execute(db)
  // Serves the runner's claim: open jobs oldest first (queued, or running with a lease to check).
  await sql`create index jobs_open_idx on jobs (created_at, id) where state in ('queued', 'running')`.execute(db)
  // Serves a tenant's job list, newest first (keyset paging on created_at, id).
  await sql`create index jobs_tenant_created_idx on jobs (tenant_id, created_at desc, id desc)`.execute(db)
  // Serves central IT's list of every job, newest first.
  await sql`create index jobs_created_idx on jobs (created_at desc, id desc)`.execute(db)

  await sql`
    create table job_errors (
      job_id uuid not null references jobs (id) on delete cascade,
      seq integer not null check (seq >= 1),
      -- What failed (an enrollment, a device, a serial number); null: the job itself.
      target text check (length(target) between 1 and 400),
      code text not null check (length(code) between 1 and 100),
      message text not null check (length(message) <= 2000),
      created_at timestamptz not null default now(),
      -- Serves paging a job's errors in order.
      primary key (job_id, seq)
    )`.execute(db)
}
