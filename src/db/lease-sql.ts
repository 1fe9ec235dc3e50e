// The sync lease of a row (sync_lease_owner, sync_lease_until): one instance at a time works on
// it (ABM/ASM tokens, Apps and Books tokens). The lease is free for `owner` when nobody holds
// it, `owner` holds it already, or the holder's lease ran out.
import { sql, type RawBuilder, type SqlBool } from 'kysely'

export function leaseFreeFor(owner: string, now: Date): RawBuilder<SqlBool> {
  return sql<SqlBool>`(sync_lease_owner is null or sync_lease_owner = ${owner} or sync_lease_until < ${now})`
}
