// Shared iPad users and configuration at rest (shared_ipad_users, shared_ipad_devices,
// migration 0021): what the device said it is (DeviceInformation IsMultiUser, its PreStage),
// the users of its last UserList answer, and the SharedDeviceConfiguration last sent.
import { sql, type InsertObject, type Insertable, type Kysely, type Selectable } from 'kysely'
import type { AccessScope } from '../model/access.js'
import type { LifecycleState } from '../model/devices.js'
import { inScope } from '../db/scope-sql.js'
import type { Database } from '../db/schema.js'
import type { SharedDeviceConfigurationStatus, SharedIpadDevicesTable, SharedIpadUsersTable } from '../db/schema-shared-ipad.js'
import { openCommandStatuses } from '../model/commands.js'

export type SharedIpadDeviceRow = Selectable<SharedIpadDevicesTable>
export type SharedIpadUserRow = Selectable<SharedIpadUsersTable>
export type NewSharedIpadUser = Omit<Insertable<SharedIpadUsersTable>, 'device_id' | 'reported_at'>

/** What tells whether a device is a Shared iPad. */
export interface SharedIpadFacts {
  deviceId: string
  tenantId: string | null
  /** Its device channel is enrolled. */
  enrolled: boolean
  lifecycleState: LifecycleState
  productName: string | null
  model: string | null
  osVersion: string | null
  /** DeviceInformation IsMultiUser, when the device has answered it. */
  reportedMultiUser: boolean | null
  /** Its PreStage (ADE profile) set is_multi_user. */
  preStageMultiUser: boolean
  /** User channels Orchard knows on it (iOS has them only on Shared iPad). */
  userChannels: number
}

/** A user channel of the device (a Shared iPad user who logged in with a Managed Apple ID). */
export interface UserChannelRow {
  id: string
  user_id: string | null
  user_short_name: string | null
  user_long_name: string | null
  enabled: boolean
  last_seen_at: Date | null
}

export interface SharedIpadView {
  state: SharedIpadDeviceRow | undefined
  users: SharedIpadUserRow[]
  channels: UserChannelRow[]
  /** A UserList is queued and not answered yet. */
  userListOpen: boolean
}

export interface SharedIpadUserStore {
  /** undefined: no such device in scope. */
  facts(scope: AccessScope, deviceId: string): Promise<SharedIpadFacts | undefined>
  view(deviceId: string): Promise<SharedIpadView>
  /** One user of the last answer, and when that answer came (null: never). */
  user(deviceId: string, userName: string): Promise<{ reportedAt: Date | null; user: SharedIpadUserRow | undefined }>
  /** Whether a UserList is queued for the device and not answered yet. */
  userListOpen(deviceId: string): Promise<boolean>
  /** The users of an Acknowledged UserList, replacing those of the previous answer. */
  replaceUsers(deviceId: string, commandUuid: string, users: readonly NewSharedIpadUser[]): Promise<void>
  /** A UserList the device answered with an error: the users of the last good answer stay. */
  userListFailed(deviceId: string, commandUuid: string, detail: string): Promise<void>
  /** The configuration just queued (pending until the device answers). */
  configurationSent(deviceId: string, configuration: Record<string, unknown>, commandUuid: string): Promise<void>
  /** The device's answer to that Settings command; false when it is not the one last sent. */
  configurationAnswered(
    deviceId: string,
    commandUuid: string,
    status: Exclude<SharedDeviceConfigurationStatus, 'pending'>,
    detail: string | null,
  ): Promise<boolean>
}

export function createSharedIpadUserStore(db: Kysely<Database>): SharedIpadUserStore {
  type DeviceValues = Omit<InsertObject<Database, 'shared_ipad_devices'>, 'device_id'>
  const now = () => sql<Date>`now()`
  const upsertDevice = async (deviceId: string, values: DeviceValues, executor: Kysely<Database> = db) => {
    await executor
      .insertInto('shared_ipad_devices')
      .values({ device_id: deviceId, ...values })
      .onConflict((oc) => oc.column('device_id').doUpdateSet({ ...values, updated_at: sql`now()` }))
      .execute()
  }

  async function userListOpen(deviceId: string): Promise<boolean> {
    // command_targets_next_idx (enrollment_id, open statuses)
    const row = await db
      .selectFrom('command_targets as ct')
      .innerJoin('commands as c', 'c.uuid', 'ct.command_uuid')
      .select(sql.lit(1).as('one'))
      .where('ct.enrollment_id', '=', deviceId)
      .where('ct.status', 'in', openCommandStatuses)
      .where('c.request_type', '=', 'UserList')
      .executeTakeFirst()
    return row !== undefined
  }

  return {
    async facts(scope, deviceId) {
      const row = await db
        .selectFrom('devices as d')
        .leftJoin('enrollments as e', 'e.id', 'd.id')
        .leftJoin('dep_profiles as p', 'p.id', 'd.dep_profile_id')
        .select([
          'd.id',
          'd.tenant_id',
          'd.lifecycle_state',
          'd.product_name',
          'd.model',
          'd.os_version',
          'e.enabled',
          sql<unknown>`d.device_information -> 'IsMultiUser'`.as('is_multi_user'),
          sql<unknown>`p.profile -> 'is_multi_user'`.as('pre_stage_multi_user'),
          // enrollments_device_id_idx
          sql<number>`(select count(*)::int from enrollments u where u.device_id = d.id and u.channel = 'user')`.as('user_channels'),
        ])
        .where('d.id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      if (!row) return undefined
      return {
        deviceId: row.id,
        tenantId: row.tenant_id,
        enrolled: row.enabled === true,
        lifecycleState: row.lifecycle_state,
        productName: row.product_name,
        model: row.model,
        osVersion: row.os_version,
        reportedMultiUser: typeof row.is_multi_user === 'boolean' ? row.is_multi_user : null,
        preStageMultiUser: row.pre_stage_multi_user === true,
        userChannels: row.user_channels,
      }
    },

    async view(deviceId) {
      const [state, users, channels, open] = await Promise.all([
        db.selectFrom('shared_ipad_devices').selectAll().where('device_id', '=', deviceId).executeTakeFirst(),
        db.selectFrom('shared_ipad_users').selectAll().where('device_id', '=', deviceId).orderBy('user_name').execute(),
        db
          .selectFrom('enrollments')
          .select(['id', 'user_id', 'user_short_name', 'user_long_name', 'enabled', 'last_seen_at'])
          .where('device_id', '=', deviceId)
          .where('channel', '=', 'user')
          .orderBy('id')
          .execute(),
        userListOpen(deviceId),
      ])
      return { state, users, channels, userListOpen: open }
    },

    async user(deviceId, userName) {
      const [state, user] = await Promise.all([
        db.selectFrom('shared_ipad_devices').select('users_reported_at').where('device_id', '=', deviceId).executeTakeFirst(),
        db.selectFrom('shared_ipad_users').selectAll().where('device_id', '=', deviceId).where('user_name', '=', userName).executeTakeFirst(),
      ])
      return { reportedAt: state?.users_reported_at ?? null, user }
    },

    userListOpen,

    async replaceUsers(deviceId, commandUuid, users) {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('shared_ipad_users').where('device_id', '=', deviceId).execute()
        if (users.length > 0) {
          await trx
            .insertInto('shared_ipad_users')
            .values(users.map((user) => ({ ...user, device_id: deviceId, reported_at: now() })))
            .execute()
        }
        await upsertDevice(deviceId, { users_reported_at: now(), users_command_uuid: commandUuid, users_detail: null }, trx)
      })
    },

    userListFailed: (deviceId, commandUuid, detail) => upsertDevice(deviceId, { users_command_uuid: commandUuid, users_detail: detail }),

    configurationSent: (deviceId, configuration, commandUuid) =>
      upsertDevice(deviceId, {
        configuration: JSON.stringify(configuration),
        configuration_command_uuid: commandUuid,
        configuration_status: 'pending',
        configuration_detail: null,
        configuration_sent_at: now(),
        configuration_answered_at: null,
      }),

    async configurationAnswered(deviceId, commandUuid, status, detail) {
      const result = await db
        .updateTable('shared_ipad_devices')
        .set({ configuration_status: status, configuration_detail: detail, configuration_answered_at: now(), updated_at: now() })
        .where('device_id', '=', deviceId)
        .where('configuration_command_uuid', '=', commandUuid)
        .executeTakeFirst()
      return result.numUpdatedRows > 0n
    },
  }
}
