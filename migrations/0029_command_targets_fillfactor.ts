// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Room for in-place updates of queued targets (issue 26). Handing a device its next command
// changes no indexed column, so PostgreSQL can write the new row version on the same page (a
// HOT update) and add no entry to the table's five indexes, three of which hold every target
// kept as history. That needs free room on the page: a fleet command's targets are written by
// one insert that fills its pages, so the first delivery of each found none. 10% of each new
// page is left free; existing pages keep their fill until their rows are rewritten.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table command_targets set (fillfactor = 90)`.execute(db)
}
