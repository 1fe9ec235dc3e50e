// User channels' declarative management state (migrations/0026): the enrolled user channels of
// devices, each one's computed declaration set (user_channel_declaration_sets, served to its DDM
// check-ins from one indexed read), and what it reports on the status channel
// (user_channel_status_items, user_channel_declaration_status), kept apart from the device's.
import { sql, type Kysely } from 'kysely'
import { idIn } from '../db/id-list-sql.js'
import { preparedStatement } from '../db/statement-names.js'
import type { Database } from '../db/schema.js'
import type { DeclarationSetItem } from '../db/schema-ddm.js'
import { declarationStatusJson, type DeclarationStatus, type UserChannelPlatform } from '../mdm/declarations.js'
import { sharedIPadUserId } from '../mdm/identity.js'
import type { StoredSet } from './declaration-set-store.js'
import type { DeclarationStatusRow, StatusItemRow } from './status-store.js'

export interface UserChannelFacts {
  enrollmentId: string
  deviceId: string
  platform: UserChannelPlatform
  userShortName: string | null
  userLongName: string | null
  /** The person the device belongs to (devices.user_email). */
  deviceUserEmail: string | null
}

export interface UserChannelSetView extends StoredSet {
  enrollmentId: string
  userShortName: string | null
  userLongName: string | null
  platform: UserChannelPlatform
}

export interface UserChannelStore {
  /** The enabled user channels of these devices. */
  channelsOf(deviceIds: readonly string[]): Promise<UserChannelFacts[]>
  channel(enrollmentId: string): Promise<UserChannelFacts | undefined>
  /** Stores the sets whose token changed; returns those channels with the token last sent to them. */
  writeSets(
    sets: ReadonlyArray<{ enrollmentId: string; deviceId: string; token: string; items: DeclarationSetItem[] }>,
    at: Date,
  ): Promise<Array<{ enrollmentId: string; sentToken: string | null }>>
  markSent(enrollmentIds: readonly string[], at: Date): Promise<void>
  set(enrollmentId: string): Promise<StoredSet | undefined>
  /** Every user channel set of a device, with its user (admin view). */
  setsOfDevice(deviceId: string): Promise<UserChannelSetView[]>
  /** Stored values of these status items of the channel (for merging partial reports). */
  items(enrollmentId: string, names: readonly string[]): Promise<Map<string, unknown>>
  apply(
    enrollmentId: string,
    report: { items: ReadonlyMap<string, unknown>; declarations: readonly DeclarationStatus[]; full: boolean },
    at: Date,
  ): Promise<void>
  /** Status items of every user channel of the device, by enrollment. */
  statusItemsOfDevice(deviceId: string): Promise<Array<{ enrollmentId: string; userShortName: string | null; items: StatusItemRow[] }>>
  declarationStatuses(enrollmentId: string): Promise<DeclarationStatusRow[]>
}

/** A Shared iPad user reports the fixed UserID (or none); a macOS user its own. User Enrollment user channels are macOS's. */
const platformSql = sql<UserChannelPlatform>`case when not d.user_enrollment and upper(coalesce(e.user_id, ${sharedIPadUserId})) = ${sharedIPadUserId}
  and e.user_short_name is not null then 'sharedIPad' else 'macOS' end`

export function createUserChannelStore(db: Kysely<Database>): UserChannelStore {
  const channels = () =>
    db
      .selectFrom('enrollments as e')
      .innerJoin('devices as d', 'd.id', 'e.device_id')
      .select([
        'e.id as enrollmentId',
        'e.device_id as deviceId',
        platformSql.as('platform'),
        'e.user_short_name as userShortName',
        'e.user_long_name as userLongName',
        'd.user_email as deviceUserEmail',
      ])
      .where('e.channel', '=', 'user')
      .where('e.enabled', '=', true)

  return {
    async channelsOf(deviceIds) {
      if (deviceIds.length === 0) return []
      return channels().where(idIn('e.device_id', deviceIds)).orderBy('e.id').execute()
    },

    async channel(enrollmentId) {
      return channels().where('e.id', '=', enrollmentId).executeTakeFirst()
    },

    async writeSets(sets, at) {
      const changed: Array<{ enrollmentId: string; sentToken: string | null }> = []
      for (let i = 0; i < sets.length; i += 2000) {
        const batch = sets.slice(i, i + 2000)
        const rows = batch.map((set) => ({ enrollment_id: set.enrollmentId, device_id: set.deviceId, token: set.token, items: set.items }))
        const result = await sql<{ enrollmentId: string; sentToken: string | null }>`
          insert into user_channel_declaration_sets (enrollment_id, device_id, declarations_token, items, changed_at)
          select x.enrollment_id, x.device_id, x.token, x.items, ${at}::timestamptz
          from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(enrollment_id text, device_id text, token text, items jsonb)
          on conflict (enrollment_id) do update set declarations_token = excluded.declarations_token, items = excluded.items, changed_at = excluded.changed_at
          where user_channel_declaration_sets.declarations_token <> excluded.declarations_token
          returning enrollment_id as "enrollmentId", sent_token as "sentToken"`.execute(db)
        changed.push(...result.rows)
      }
      return changed
    },

    async markSent(enrollmentIds, at) {
      for (let i = 0; i < enrollmentIds.length; i += 5000)
        await db
          .updateTable('user_channel_declaration_sets')
          .set({ sent_token: sql`declarations_token`, sent_at: at })
          .where('enrollment_id', 'in', enrollmentIds.slice(i, i + 5000))
          .execute()
    },

    async set(enrollmentId) {
      // Every DDM check-in of every user channel: prepared once per connection.
      const { rows } = await sql<{ declarations_token: string; items: DeclarationSetItem[]; changed_at: Date; sent_token: string | null }>`${sql.raw(
        preparedStatement,
      )}
        select declarations_token, items, changed_at, sent_token from user_channel_declaration_sets where enrollment_id = ${enrollmentId}`.execute(db)
      const row = rows[0]
      return row && { token: row.declarations_token, items: row.items, changedAt: row.changed_at, sentToken: row.sent_token }
    },

    async setsOfDevice(deviceId) {
      const rows = await db
        .selectFrom('user_channel_declaration_sets as s')
        .innerJoin('enrollments as e', 'e.id', 's.enrollment_id')
        .innerJoin('devices as d', 'd.id', 'e.device_id')
        .select(['s.enrollment_id', 's.declarations_token', 's.items', 's.changed_at', 's.sent_token', 'e.user_short_name', 'e.user_long_name'])
        .select(platformSql.as('platform'))
        .where('s.device_id', '=', deviceId)
        .orderBy('s.enrollment_id')
        .execute()
      return rows.map((row) => ({
        enrollmentId: row.enrollment_id,
        token: row.declarations_token,
        items: row.items,
        changedAt: row.changed_at,
        sentToken: row.sent_token,
        userShortName: row.user_short_name,
        userLongName: row.user_long_name,
        platform: row.platform,
      }))
    },

    async items(enrollmentId, names) {
      if (names.length === 0) return new Map()
      const rows = await db
        .selectFrom('user_channel_status_items')
        .select(['item', 'value'])
        .where('enrollment_id', '=', enrollmentId)
        .where('item', 'in', names)
        .execute()
      return new Map(rows.map((row) => [row.item, row.value]))
    },

    async apply(enrollmentId, report, at) {
      // User channels report far less often than devices: plain statements in one transaction.
      await db.transaction().execute(async (trx) => {
        if (report.full) {
          const keep = [...report.items.keys()]
          let stale = trx.deleteFrom('user_channel_status_items').where('enrollment_id', '=', enrollmentId)
          if (keep.length > 0) stale = stale.where('item', 'not in', keep)
          await stale.execute()
        }
        for (const [item, value] of report.items)
          await trx
            .insertInto('user_channel_status_items')
            .values({ enrollment_id: enrollmentId, item, value: JSON.stringify(value), updated_at: at })
            .onConflict((oc) =>
              oc
                .columns(['enrollment_id', 'item'])
                .doUpdateSet({ value: JSON.stringify(value), updated_at: at })
                .where(sql<boolean>`user_channel_status_items.value is distinct from excluded.value`),
            )
            .execute()
        const live = report.declarations.filter((d) => !d.removed)
        const removed = report.declarations.filter((d) => d.removed).map((d) => d.identifier)
        if (report.full) {
          const keep = live.map((d) => d.identifier)
          let stale = trx.deleteFrom('user_channel_declaration_status').where('enrollment_id', '=', enrollmentId)
          if (keep.length > 0) stale = stale.where('identifier', 'not in', keep)
          await stale.execute()
        }
        if (removed.length > 0)
          await trx.deleteFrom('user_channel_declaration_status').where('enrollment_id', '=', enrollmentId).where('identifier', 'in', removed).execute()
        for (const status of live) {
          const row = declarationStatusJson(status)
          const values = {
            kind: row.kind,
            server_token: row.server_token,
            active: row.active,
            valid: row.valid,
            reasons: row.reasons === null ? null : JSON.stringify(row.reasons),
            updated_at: at,
          }
          await trx
            .insertInto('user_channel_declaration_status')
            .values({ enrollment_id: enrollmentId, identifier: row.identifier, ...values })
            .onConflict((oc) => oc.columns(['enrollment_id', 'identifier']).doUpdateSet(values))
            .execute()
        }
      })
    },

    async statusItemsOfDevice(deviceId) {
      const rows = await db
        .selectFrom('enrollments as e')
        .innerJoin('user_channel_status_items as s', 's.enrollment_id', 'e.id')
        .select(['e.id', 'e.user_short_name', 's.item', 's.value', 's.updated_at'])
        .where('e.device_id', '=', deviceId)
        .where('e.channel', '=', 'user')
        .orderBy('e.id')
        .orderBy('s.item')
        .execute()
      const byChannel = new Map<string, { enrollmentId: string; userShortName: string | null; items: StatusItemRow[] }>()
      for (const row of rows) {
        let entry = byChannel.get(row.id)
        if (!entry) byChannel.set(row.id, (entry = { enrollmentId: row.id, userShortName: row.user_short_name, items: [] }))
        entry.items.push({ item: row.item, value: row.value, updatedAt: row.updated_at })
      }
      return [...byChannel.values()]
    },

    async declarationStatuses(enrollmentId) {
      const rows = await db.selectFrom('user_channel_declaration_status').selectAll().where('enrollment_id', '=', enrollmentId).orderBy('identifier').execute()
      return rows.map((row) => ({
        identifier: row.identifier,
        kind: row.kind,
        serverToken: row.server_token,
        active: row.active,
        valid: row.valid,
        reasons: row.reasons,
        updatedAt: row.updated_at,
      }))
    },
  }
}
