// Frozen: never edit a migration that has landed; add a new numbered one instead.
// Billing settings of a tenant: the price of one device-year, in the installation's currency
// (ORCHARD_BILLING_CURRENCY), and the device kinds it bills. Null in either column = the
// organisation's (the parent's) setting; an organisation without one has no price and bills
// every kind. Prices are exact decimals (numeric, never a float); three decimals cover every
// ISO 4217 currency's minor unit.
import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table tenants
      add column price_per_device_year numeric(13, 3)
        constraint tenants_price_per_device_year_check check (price_per_device_year >= 0),
      add column billed_kinds text[]
        constraint tenants_billed_kinds_check check (billed_kinds <@ array['personal', 'work', 'function']::text[])`.execute(db)
}
