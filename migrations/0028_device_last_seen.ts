// Frozen: never edit a migration that has landed; add a new numbered one instead.
// The device list sorted or filtered by last contact, index-backed (issue 26): `last_seen_at`
// lives on the channel (enrollments), and a sort by it joined every device to its channel and
// sorted them all (60 ms a page at 20,000 devices, growing with the fleet). The device row now
// carries a copy of its device channel's `last_seen_at`, indexed with the id as the list's
// keyset. A trigger keeps the copy: every statement that sets a channel's last contact (the
// TokenUpdate, the touch of a talking channel at most once a minute) updates the device row
// in the same transaction, so the two never differ, whatever wrote the channel.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table devices add column last_seen_at timestamptz`.execute(db)
  await sql`
    update devices d set last_seen_at = e.last_seen_at
    from enrollments e where e.id = d.id and e.channel = 'device' and e.last_seen_at is not null`.execute(db)
  // Ascending walks it forwards (nulls last), descending backwards (nulls first): the list's order.
  await sql`create index devices_last_seen_idx on devices (last_seen_at, id)`.execute(db)
  await sql`
    create function orchard_device_last_seen() returns trigger language plpgsql as $$
    begin
      update devices set last_seen_at = new.last_seen_at
      where id = new.device_id and last_seen_at is distinct from new.last_seen_at;
      return null;
    end
    $$`.execute(db)
  await sql`
    create trigger enrollments_device_last_seen_insert after insert on enrollments
    for each row when (new.channel = 'device' and new.last_seen_at is not null) execute function orchard_device_last_seen()`.execute(db)
  await sql`
    create trigger enrollments_device_last_seen_update after update of last_seen_at on enrollments
    for each row when (new.channel = 'device' and new.last_seen_at is distinct from old.last_seen_at) execute function orchard_device_last_seen()`.execute(db)
}
