// The device list's search parameter as SQL over `devices d` (see searchPredicate).
import { sql } from 'kysely'
import { likeEscaped } from './device-group-sql.js'

/**
 * The device list's search: a case-insensitive prefix of the name, serial number, UDID or user
 * email; digits also a prefix of the IMEI, and the start or the end of a phone number. Each
 * column has its index (migrations/0019_device_groups.ts): the devices' ORs are one bitmap of
 * index scans, and phone numbers (another table) join as a union, not as a test per device.
 */
export function searchPredicate(search: string) {
  const text = search.trim().toLowerCase()
  const prefix = `${likeEscaped(text)}%`
  const columns = [
    sql<boolean>`lower(s.device_name) like ${prefix}`,
    sql<boolean>`lower(s.serial_number) like ${prefix}`,
    sql<boolean>`lower(s.udid) like ${prefix}`,
    sql<boolean>`lower(s.user_email) like ${prefix}`,
  ]
  const digits = text.replace(/[\s\-().+]/g, '')
  const numeric = /^[0-9]{2,}$/.test(digits)
  if (numeric) columns.push(sql<boolean>`replace(s.imei, ' ', '') like ${`${digits}%`}`)
  const devices = sql`select s.id from devices s where ${sql.join(columns, sql` or `)}`
  if (!numeric || digits.length < 4) return sql<boolean>`d.id in (${devices})`
  const reversed = [...digits].reverse().join('')
  return sql<boolean>`d.id in (${devices} union all select p.device_id from device_phone_numbers p
    where p.digits like ${`${digits}%`} or reverse(p.digits) like ${`${reversed}%`})`
}
