// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Activation Lock at Apple, beside the device's own bypass code (0018):
// - organization-linked Activation Lock of ADE devices (ABM/ASM POST /device/activationlock):
//   the bypass code Orchard created for it, sealed (label `activation-lock-server-code:<device
//   id>`), and how sending its escrow key went. escrow_state: pending (to send, at
//   escrow_retry_at), escrowed (Apple locked the device with it), failed (retried at
//   escrow_retry_at), refused (Apple's final answer, in escrow_detail), cleared (an admin
//   unlocked the device since; sent again only after the device reports a new code).
// - the last unlock through Apple's escrowKeyUnlock (POST .../activation-lock/clear): when,
//   with which code (device or server), or why it failed; and ClearActivationLockBypassCode
//   sent to the device with it (device_clear_*).
// https://developer.apple.com/documentation/devicemanagement/creating-and-using-bypass-codes
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table activation_lock_bypass_codes
      add column server_code_sealed bytea check (length(server_code_sealed) > 0),
      add column escrow_state text check (escrow_state in ('pending', 'escrowed', 'failed', 'refused', 'cleared')),
      add column escrow_detail text,
      add column escrow_attempts integer not null default 0,
      add column escrow_attempted_at timestamptz,
      add column escrow_retry_at timestamptz,
      add column escrowed_at timestamptz,
      add column unlocked_at timestamptz,
      add column unlocked_with text check (unlocked_with in ('device', 'server')),
      add column unlock_detail text,
      add column device_clear_state text check (device_clear_state in ('requested', 'cleared', 'failed')),
      add column device_clear_command_uuid text,
      add column device_clear_detail text,
      add constraint activation_lock_escrow_due check (escrow_state not in ('pending', 'failed') or escrow_retry_at is not null)`.execute(db)
  // The periodic escrow run: rows due for sending (claimEscrows).
  await sql`
    create index activation_lock_escrow_due_idx on activation_lock_bypass_codes (escrow_retry_at)
    where escrow_state in ('pending', 'failed')`.execute(db)
}
