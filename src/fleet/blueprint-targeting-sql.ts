// Which devices a blueprint reaches, as SQL over `blueprints b` and `devices d`: its tenant's
// devices (or, for an organisation's blueprint, its departments' too; a blueprint without a
// tenant reaches every device), narrowed by kinds and groups, plus the devices it names.
import { sql } from 'kysely'

export const blueprintAppliesTo = sql<boolean>`
    (b.tenant_id is null or b.tenant_id = d.tenant_id or b.tenant_id = (select t.parent_id from tenants t where t.id = d.tenant_id))
    and ((cardinality(b.kinds) = 0 and cardinality(b.groups) = 0 and cardinality(b.device_ids) = 0)
      or ((cardinality(b.kinds) > 0 or cardinality(b.groups) > 0)
        and (cardinality(b.kinds) = 0 or d.kind = any(b.kinds))
        and (cardinality(b.groups) = 0 or d.enrollment_group = any(b.groups)))
      or d.id = any(b.device_ids))`
