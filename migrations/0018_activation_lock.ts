// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Activation Lock bypass codes of supervised devices (ActivationLockBypassCode), sealed with
// ORCHARD_SECRET_KEYS (label `activation-lock-bypass-code:<device id>`), never in clear. The
// row outlives a wipe or a retirement: only an admin (or forgetting the device) deletes it.
// request_state: awaiting_supervision (enrolled, supervision not known yet), requested (the
// command is queued), received (code_sealed holds the code), failed (the device answered an
// error: detail), not_kept (the code came without a master key to seal it: dropped).
// https://developer.apple.com/documentation/devicemanagement/activation-lock-bypass-code
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table activation_lock_bypass_codes (
      device_id text primary key references devices (id) on delete cascade,
      code_sealed bytea check (length(code_sealed) > 0),
      code_received_at timestamptz,
      request_state text not null check (request_state in ('awaiting_supervision', 'requested', 'received', 'failed', 'not_kept')),
      command_uuid text,
      detail text,
      updated_at timestamptz not null default now(),
      constraint activation_lock_bypass_codes_received check ((code_sealed is null) = (code_received_at is null))
    )`.execute(db)
}
