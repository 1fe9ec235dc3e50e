// The update policy that governs a device, as SQL: of the policies whose targeting reaches it
// (like a blueprint's), its own tenant's first, then its organisation's, then central IT's;
// the newest among equals. A scalar subquery over `devices d` giving the policy row as JSON.
import { sql } from 'kysely'
import { blueprintAppliesTo } from '../fleet/blueprint-targeting-sql.js'

export const governingPolicyJson = sql`(
    select to_jsonb(b) from update_policies b
    where ${blueprintAppliesTo}
    order by (b.tenant_id is not distinct from d.tenant_id) desc, (b.tenant_id is not null) desc, b.updated_at desc, b.id
    limit 1)`
