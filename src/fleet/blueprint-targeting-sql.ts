// Which devices a blueprint reaches, as SQL over `blueprints b` and `devices d`: its tenant's
// devices (or, for an organisation's blueprint, its departments' too; a blueprint without a
// tenant reaches every device), narrowed by kinds and by groups (enrollment groups by name,
// device groups by id: static members or smart filters, at query time), plus the devices it
// names. Update policies (`update_policies b`) have the same columns and use it too.
import { sql } from 'kysely'
import { groupContains } from './device-group-sql.js'

const narrowedByGroups = sql<boolean>`(cardinality(b.groups) > 0 or cardinality(b.group_ids) > 0)`

export const blueprintAppliesTo = sql<boolean>`
    (b.tenant_id is null or b.tenant_id = d.tenant_id or b.tenant_id = (select t.parent_id from tenants t where t.id = d.tenant_id))
    and ((cardinality(b.kinds) = 0 and not ${narrowedByGroups} and cardinality(b.device_ids) = 0)
      or ((cardinality(b.kinds) > 0 or ${narrowedByGroups})
        and (cardinality(b.kinds) = 0 or d.kind = any(b.kinds))
        and (not ${narrowedByGroups} or d.enrollment_group = any(b.groups)
          or exists (select 1 from device_groups g where g.id = any(b.group_ids) and ${groupContains})))
      or d.id = any(b.device_ids))`
