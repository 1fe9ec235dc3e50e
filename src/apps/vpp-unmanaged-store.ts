// Licences Apple holds for serial numbers Orchard does not manage (no enrolled device has the
// serial): devices that left management elsewhere, or were never ours. Read from the
// assignments of the last sync; the reconcile reports them and frees them on an admin's word.
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { inScope } from '../db/scope-sql.js'
import type { AccessScope } from '../model/access.js'

export interface UnmanagedLicence {
  tokenId: string
  tenantId: string | null
  adamId: string
  pricingParam: string
  serialNumber: string
  /** A device Orchard knew with the serial, not enrolled any more; null: a serial Orchard never saw. */
  deviceId: string | null
  syncedAt: Date
}

export interface UnmanagedLicenceFilter {
  tokenId?: string
  adamId?: string
  serialNumbers?: readonly string[]
}

export interface VppUnmanagedStore {
  /** Unmanaged licences in scope, by token, serial and asset; at most `limit`, and how many in all. */
  unmanaged(scope: AccessScope, filter: UnmanagedLicenceFilter, limit: number): Promise<{ items: UnmanagedLicence[]; total: number }>
  /** How many each token has (the daily reconcile's warning). */
  countsByToken(): Promise<Array<{ tokenId: string; count: number }>>
  /** The disassociation was sent: the rows go until the next sync says otherwise. */
  forget(tokenId: string, adamId: string, pricingParam: string, serialNumbers: readonly string[]): Promise<void>
}

export function createVppUnmanagedStore(db: Kysely<Database>): VppUnmanagedStore {
  const managedSerial = sql<boolean>`exists (select 1 from devices m join enrollments e on e.id = m.id and e.enabled
    where m.serial_number = a.serial_number)`

  function base(scope: AccessScope, filter: UnmanagedLicenceFilter) {
    let query = db
      .selectFrom('vpp_assignments as a')
      .innerJoin('vpp_tokens as t', 't.id', 'a.token_id')
      .where(inScope(scope, 't.tenant_id'))
      .where(sql<boolean>`not ${managedSerial}`)
    if (filter.tokenId !== undefined) query = query.where('a.token_id', '=', filter.tokenId)
    if (filter.adamId !== undefined) query = query.where('a.adam_id', '=', filter.adamId)
    if (filter.serialNumbers !== undefined) query = query.where('a.serial_number', 'in', filter.serialNumbers.length > 0 ? filter.serialNumbers : [''])
    return query
  }

  return {
    async unmanaged(scope, filter, limit) {
      const [rows, count] = await Promise.all([
        base(scope, filter)
          .select([
            'a.token_id as tokenId',
            't.tenant_id as tenantId',
            'a.adam_id as adamId',
            'a.pricing_param as pricingParam',
            'a.serial_number as serialNumber',
            'a.synced_at as syncedAt',
            sql<string | null>`(select d.id from devices d where d.serial_number = a.serial_number order by d.id limit 1)`.as('deviceId'),
          ])
          .orderBy('a.token_id')
          .orderBy('a.serial_number')
          .orderBy('a.adam_id')
          .orderBy('a.pricing_param')
          .limit(limit)
          .execute(),
        base(scope, filter)
          .select(sql<string>`count(*)`.as('count'))
          .executeTakeFirstOrThrow(),
      ])
      return { items: rows, total: Number(count.count) }
    },

    async countsByToken() {
      const rows = await db
        .selectFrom('vpp_assignments as a')
        .where(sql<boolean>`not ${managedSerial}`)
        .groupBy('a.token_id')
        .select(['a.token_id as tokenId', sql<string>`count(*)`.as('count')])
        .execute()
      return rows.map((row) => ({ tokenId: row.tokenId, count: Number(row.count) }))
    },

    async forget(tokenId, adamId, pricingParam, serialNumbers) {
      if (serialNumbers.length === 0) return
      await db
        .deleteFrom('vpp_assignments')
        .where('token_id', '=', tokenId)
        .where('adam_id', '=', adamId)
        .where('pricing_param', '=', pricingParam)
        .where('serial_number', 'in', serialNumbers)
        .execute()
    },
  }
}
