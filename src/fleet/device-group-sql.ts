// Device groups as SQL over `devices d`. A smart group's filter has two forms with one meaning:
// where the filter is a value (listing a group's devices, counting them, bulk commands) only its
// conditions are written, so that the planner can use indexes and joins; where it is a column
// (blueprint and update policy targeting: `g.filter` of every group a row names) one predicate
// reads each field. Membership is never stored for smart groups: it is this SQL, at query time.
import { sql, type RawBuilder } from 'kysely'
import type { SmartGroupFilter } from '../db/schema-groups.js'

/**
 * Whether `d` matches the smart filter stored in column `f` (jsonb): the form targeting uses,
 * for every group a blueprint or policy names. Each line is the one of `smartFilterSql` below,
 * written for a filter known only when the row is read.
 */
export function matchesSmartFilter(f: RawBuilder<unknown>): RawBuilder<boolean> {
  const seenSince = (days: RawBuilder<unknown>) =>
    sql`exists (select 1 from enrollments e where e.id = d.id and e.last_seen_at >= now() - make_interval(days => (${days})::int))`
  return sql<boolean>`(
    (${f} ->> 'model' is null or d.product_name = ${f} ->> 'model' or d.model = ${f} ->> 'model')
    and (${f} ->> 'model_prefix' is null or left(d.product_name, length(${f} ->> 'model_prefix')) = ${f} ->> 'model_prefix')
    and (${f} ->> 'os_version_at_least' is null
      or orchard_version_parts(d.os_version) >= orchard_version_parts(${f} ->> 'os_version_at_least'))
    and (${f} ->> 'os_version_below' is null
      or orchard_version_parts(d.os_version) < orchard_version_parts(${f} ->> 'os_version_below'))
    and (${f} -> 'kinds' is null or (${f} -> 'kinds') ? d.kind)
    and (${f} -> 'lifecycle_states' is null or (${f} -> 'lifecycle_states') ? d.lifecycle_state)
    and (${f} -> 'supervised' is null or coalesce(d.is_supervised, false) = (${f} ->> 'supervised')::boolean)
    and (${f} -> 'user_enrollment' is null or d.user_enrollment = (${f} ->> 'user_enrollment')::boolean)
    and (${f} -> 'enrolled' is null
      or exists (select 1 from enrollments e where e.id = d.id and e.enabled) = (${f} ->> 'enrolled')::boolean)
    and (${f} ->> 'enrollment_group' is null or d.enrollment_group = ${f} ->> 'enrollment_group')
    and (${f} ->> 'not_seen_for_days' is null or not ${seenSince(sql`${f} ->> 'not_seen_for_days'`)})
    and (${f} ->> 'seen_within_days' is null or ${seenSince(sql`${f} ->> 'seen_within_days'`)})
    and (${f} ->> 'app_installed' is null
      or exists (select 1 from installed_applications a where a.enrollment_id = d.id and a.identifier = ${f} ->> 'app_installed'))
    and (${f} ->> 'app_not_installed' is null
      or not exists (select 1 from installed_applications a where a.enrollment_id = d.id and a.identifier = ${f} ->> 'app_not_installed'))
    and (${f} ->> 'profile_installed' is null
      or exists (select 1 from installed_profiles p where p.enrollment_id = d.id and p.identifier = ${f} ->> 'profile_installed'))
    and (${f} ->> 'profile_not_installed' is null
      or not exists (select 1 from installed_profiles p where p.enrollment_id = d.id and p.identifier = ${f} ->> 'profile_not_installed'))
  )`
}

/** `value` with LIKE's wildcards escaped (backslash is the default escape character). */
export const likeEscaped = (value: string) => value.replace(/[\\%_]/g, (c) => `\\${c}`)

/**
 * Whether `d` matches `filter`, a filter known when the query is built (the device list, counts,
 * bulk commands): only its conditions, each a top-level AND, so the planner turns the EXISTS into
 * semi- and anti-joins and uses the indexes (os versions, installed lists) instead of testing
 * row by row. Same meaning as matchesSmartFilter (test/fleet/device-groups.test.ts compares both
 * with a reference).
 */
export function smartFilterSql(filter: SmartGroupFilter): RawBuilder<boolean> {
  const conditions: Array<RawBuilder<unknown>> = []
  const seenSince = (days: number) =>
    sql`exists (select 1 from enrollments e where e.id = d.id and e.last_seen_at >= now() - make_interval(days => ${days}::int))`
  const installed = (table: 'installed_applications' | 'installed_profiles', identifier: string) =>
    sql`exists (select 1 from ${sql.table(table)} i where i.enrollment_id = d.id and i.identifier = ${identifier})`
  const f = filter
  if (f.model !== undefined) conditions.push(sql`(d.product_name = ${f.model} or d.model = ${f.model})`)
  if (f.model_prefix !== undefined) conditions.push(sql`d.product_name like ${`${likeEscaped(f.model_prefix)}%`}`)
  if (f.os_version_at_least !== undefined) conditions.push(sql`orchard_version_parts(d.os_version) >= orchard_version_parts(${f.os_version_at_least})`)
  if (f.os_version_below !== undefined) conditions.push(sql`orchard_version_parts(d.os_version) < orchard_version_parts(${f.os_version_below})`)
  if (f.kinds !== undefined) conditions.push(sql`d.kind = any(${f.kinds}::text[])`)
  if (f.lifecycle_states !== undefined) conditions.push(sql`d.lifecycle_state = any(${f.lifecycle_states}::text[])`)
  if (f.supervised !== undefined) conditions.push(sql`coalesce(d.is_supervised, false) = ${f.supervised}`)
  if (f.user_enrollment !== undefined) conditions.push(sql`d.user_enrollment = ${f.user_enrollment}`)
  if (f.enrolled !== undefined) {
    const enrolled = sql`exists (select 1 from enrollments e where e.id = d.id and e.enabled)`
    conditions.push(f.enrolled ? enrolled : sql`not ${enrolled}`)
  }
  if (f.enrollment_group !== undefined) conditions.push(sql`d.enrollment_group = ${f.enrollment_group}`)
  if (f.not_seen_for_days !== undefined) conditions.push(sql`not ${seenSince(f.not_seen_for_days)}`)
  if (f.seen_within_days !== undefined) conditions.push(seenSince(f.seen_within_days))
  if (f.app_installed !== undefined) conditions.push(installed('installed_applications', f.app_installed))
  if (f.app_not_installed !== undefined) conditions.push(sql`not ${installed('installed_applications', f.app_not_installed)}`)
  if (f.profile_installed !== undefined) conditions.push(installed('installed_profiles', f.profile_installed))
  if (f.profile_not_installed !== undefined) conditions.push(sql`not ${installed('installed_profiles', f.profile_not_installed)}`)
  return conditions.length === 0 ? sql<boolean>`true` : sql<boolean>`${sql.join(conditions, sql` and `)}`
}

/** The devices group `g` may hold: its tenant's and, for an organisation, its departments'; every device for central IT. */
export const groupCovers = sql<boolean>`(g.tenant_id is null or d.tenant_id = g.tenant_id
    or d.tenant_id in (select t.id from tenants t where t.parent_id = g.tenant_id))`

/** Whether device `d` is in group `g` (a row of device_groups): a member of a static group, or matching a smart one. */
export const groupContains = sql<boolean>`(${groupCovers} and case when g.filter is null
    then exists (select 1 from device_group_members m where m.group_id = g.id and m.device_id = d.id)
    else ${matchesSmartFilter(sql`g.filter`)} end)`
