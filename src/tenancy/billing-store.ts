// Every tenant's own billing settings (columns of tenants, migrations/0020_billing.ts). Read
// without a scope on purpose: a department's bill needs its organisation's price even when
// the caller holds no role there; callers pick the tenants of their scope from it.
import { sql, type Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { TenantBillingSettings } from './billing.js'

export interface BillingStore {
  /** One row per tenant (a small table, read whole like the tenant tree). */
  allBillingSettings(): Promise<TenantBillingSettings[]>
}

export function createBillingStore(db: Kysely<Database>): BillingStore {
  return {
    async allBillingSettings() {
      const rows = await db
        .selectFrom('tenants')
        .select(['id', 'name', 'parent_id', 'billed_kinds', sql<string | null>`price_per_device_year::text`.as('price')])
        .orderBy('id')
        .execute()
      return rows.map((row) => ({ id: row.id, name: row.name, parentId: row.parent_id, price: row.price, billedKinds: row.billed_kinds }))
    },
  }
}
