// Device lifecycle: the actions taken on a device (lost, found, wipe, reinstall, retire...)
// with the commands each queued, the device's lifecycle state and kind, and the locations
// it reported. Every admin change is audited in its own transaction (recordAdminWrite).
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { closeTenancy, recordAdminWrite } from '../tenancy/audit-store.js'
import { cancelQueuedForDevice } from '../device/enrollment-store.js'
import type { Database, LifecycleActionsTable, LifecycleCommandRef } from '../db/schema.js'
import type { DeviceKind, LifecycleActionKind, LifecycleState } from '../model/devices.js'
import { isUniqueViolation } from '../db/pg-errors.js'
import { isCancellable, isInFlight } from '../queue/queue-sql.js'

type Executor = Kysely<Database> | Transaction<Database>

export type LifecycleActionRow = Selectable<LifecycleActionsTable>

export interface LifecycleDevice {
  id: string
  tenantId: string | null
  kind: DeviceKind
  state: LifecycleState
  userEnrollment: boolean
  supervised: boolean | null
  productName: string | null
  model: string | null
  serialNumber: string | null
  /** The device channel is enabled. */
  enrolled: boolean
  /** The ABM/ASM token that lists this serial (the device comes back through ADE), if any. */
  depTokenId: string | null
}

export interface CommandStatus {
  commandUuid: string
  status: string | null
  errorChain: unknown
  resultAt: Date | null
}

export interface LifecycleActionView extends LifecycleActionRow {
  /** The status of each of its commands on this device (null: not queued, e.g. cancelled before). */
  commandStatus: CommandStatus[]
}

export interface InstalledInventory {
  profiles: Array<{ identifier: string; isManaged: boolean | null; payloadTypes: string[] }>
  applications: Array<{ identifier: string; isManaged: boolean | null }>
}

export interface LocationInput {
  deviceId: string
  commandUuid: string | null
  latitude: number
  longitude: number
  horizontalAccuracy: number | null
  verticalAccuracy: number | null
  altitude: number | null
  speed: number | null
  course: number | null
  locatedAt: Date | null
}

export type LocationRow = Selectable<Database['device_locations']>

export interface BeginAction {
  id: string
  deviceId: string
  tenantId: string | null
  action: LifecycleActionKind
  /** The device's lifecycle state from now on (unchanged when absent). */
  state?: LifecycleState
  details?: Record<string, unknown>
}

export interface LifecycleStore {
  device(scope: AccessScope, deviceId: string): Promise<LifecycleDevice | undefined>
  inventory(deviceId: string): Promise<InstalledInventory>
  /**
   * Records a pending action (and the device's new state), audited, in one transaction.
   * 'busy': another erase, selective wipe or reinstall of this device is pending.
   */
  begin(scope: AccessScope, action: BeginAction, at: Date): Promise<'ok' | 'busy'>
  /** The commands the action queued, in order. */
  attachCommands(actionId: string, commands: readonly LifecycleCommandRef[], details?: Record<string, unknown>): Promise<void>
  /** Ends a pending action; `state` sets the device's lifecycle state in the same transaction. */
  finish(
    actionId: string,
    status: 'completed' | 'failed' | 'cancelled',
    at: Date,
    options?: { state?: LifecycleState; details?: Record<string, unknown> },
  ): Promise<boolean>
  /** An action that is already over when it starts (kind changed, retire). */
  record(scope: AccessScope, action: BeginAction & { commands?: LifecycleCommandRef[] }, at: Date): Promise<void>
  pendingForCommand(deviceId: string, commandUuid: string): Promise<LifecycleActionRow | undefined>
  pendingOfDevice(deviceId: string, actions: readonly LifecycleActionKind[]): Promise<LifecycleActionRow[]>
  listActions(scope: AccessScope, deviceId: string): Promise<LifecycleActionView[]>
  getAction(scope: AccessScope, deviceId: string, actionId: string): Promise<LifecycleActionView | undefined>
  /** Cancels the action's commands the device has not fetched; returns how many were and were not. */
  cancelCommands(scope: AccessScope, action: LifecycleActionRow, reason: string): Promise<{ cancelled: number; fetched: number }>
  setState(deviceId: string, state: LifecycleState, at: Date): Promise<void>
  /** The device acknowledged an erase: wiped, and no longer managed (it will not check out). */
  markWiped(deviceId: string, at: Date): Promise<void>
  /** The device no longer answers to us: its channels are disabled, queued commands cancelled, billing stops. */
  stopManaging(trx: Executor, deviceId: string, at: Date, reason: string): Promise<void>
  retire(scope: AccessScope, action: BeginAction, at: Date): Promise<void>
  /**
   * Changes the kind under the device's row lock. Away from personal only when
   * `leavePersonal` says so (the caller is a central owner and gave a reason, kept in the action).
   */
  setKind(
    scope: AccessScope,
    deviceId: string,
    kind: DeviceKind,
    actionId: string,
    at: Date,
    options?: { leavePersonal?: { reason: string } },
  ): Promise<'ok' | 'unchanged' | 'not_found' | 'user_enrollment' | 'leaving_personal'>
  recordLocation(location: LocationInput): Promise<void>
  listLocations(scope: AccessScope, deviceId: string, limit: number): Promise<LocationRow[]>
}

export function createLifecycleStore(db: Kysely<Database>): LifecycleStore {
  async function withCommandStatus(rows: LifecycleActionRow[]): Promise<LifecycleActionView[]> {
    const wanted = rows.flatMap((row) => row.commands.map((command) => ({ deviceId: row.device_id, uuid: command.command_uuid })))
    const statuses = new Map<string, CommandStatus>()
    if (wanted.length > 0) {
      const found = await db
        .selectFrom('command_targets as t')
        .innerJoin('enrollments as e', 'e.id', 't.enrollment_id')
        .select(['e.device_id', 't.command_uuid', 't.status', 't.error_chain', 't.result_at'])
        .where('t.command_uuid', 'in', [...new Set(wanted.map((w) => w.uuid))])
        .where('e.device_id', 'in', [...new Set(wanted.map((w) => w.deviceId))])
        .where('e.channel', '=', 'device')
        .execute()
      for (const row of found)
        statuses.set(`${row.device_id} ${row.command_uuid}`, {
          commandUuid: row.command_uuid,
          status: row.status,
          errorChain: row.error_chain,
          resultAt: row.result_at,
        })
    }
    return rows.map((row) => ({
      ...row,
      commandStatus: row.commands.map(
        (command) =>
          statuses.get(`${row.device_id} ${command.command_uuid}`) ?? { commandUuid: command.command_uuid, status: null, errorChain: null, resultAt: null },
      ),
    }))
  }

  function actionsOf(scope: AccessScope, deviceId: string) {
    return db
      .selectFrom('lifecycle_actions as a')
      .innerJoin('devices as d', 'd.id', 'a.device_id')
      .selectAll('a')
      .where('a.device_id', '=', deviceId)
      .where(inScope(scope, 'd.tenant_id'))
  }

  async function insertAction(
    trx: Executor,
    scope: AccessScope,
    action: BeginAction & { commands?: LifecycleCommandRef[] },
    status: 'pending' | 'completed',
    at: Date,
  ) {
    const actor = scope.actor
    await trx
      .insertInto('lifecycle_actions')
      .values({
        id: action.id,
        device_id: action.deviceId,
        tenant_id: action.tenantId,
        action: action.action,
        status,
        principal_id: actor?.principalId ?? null,
        principal_name: actor?.principalName ?? null,
        request_id: actor?.requestId ?? null,
        commands: JSON.stringify(action.commands ?? []),
        details: action.details ? JSON.stringify(action.details) : null,
        created_at: at,
        completed_at: status === 'pending' ? null : at,
      })
      .execute()
    if (action.state) {
      await setLifecycleState(trx, action.deviceId, action.state, at)
    }
    await recordAdminWrite(trx, scope, {
      type: 'device',
      id: action.deviceId,
      tenantId: action.tenantId,
      deviceId: action.deviceId,
      details: { lifecycle_action: action.action, lifecycle_action_id: action.id, ...(action.details ?? {}) },
    })
  }

  /** The device's lifecycle state from `at`, with any other columns that change with it. */
  async function setLifecycleState(executor: Executor, deviceId: string, state: LifecycleState, at: Date, also: { wiped_at?: Date; retired_at?: null } = {}) {
    await executor
      .updateTable('devices')
      .set({ lifecycle_state: state, lifecycle_changed_at: at, updated_at: at, ...also })
      .where('id', '=', deviceId)
      .execute()
  }

  /** Merges keys into an action's details (jsonb ||). */
  const mergedDetails = (details: Record<string, unknown>) => sql`coalesce(details, '{}'::jsonb) || ${JSON.stringify(details)}::jsonb` as never

  const store: LifecycleStore = {
    async device(scope, deviceId) {
      const row = await db
        .selectFrom('devices as d')
        .leftJoin('enrollments as e', 'e.id', 'd.id')
        .leftJoin('dep_devices as dd', (join) => join.onRef('dd.serial_number', '=', 'd.serial_number').on('dd.removed_at', 'is', null))
        .select([
          'd.id',
          'd.tenant_id',
          'd.kind',
          'd.lifecycle_state',
          'd.user_enrollment',
          'd.is_supervised',
          'd.product_name',
          'd.model',
          'd.serial_number',
          sql<boolean>`coalesce(e.enabled, false)`.as('enrolled'),
          'dd.token_id',
        ])
        .where('d.id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .executeTakeFirst()
      if (!row) return undefined
      return {
        id: row.id,
        tenantId: row.tenant_id,
        kind: row.kind,
        state: row.lifecycle_state,
        userEnrollment: row.user_enrollment,
        supervised: row.is_supervised,
        productName: row.product_name,
        model: row.model,
        serialNumber: row.serial_number,
        enrolled: row.enrolled,
        depTokenId: row.token_id ?? null,
      }
    },

    async inventory(deviceId) {
      // The device channel's inventory: its enrollment id is the device id.
      const profiles = await db
        .selectFrom('installed_profiles')
        .select(['identifier', 'is_managed', 'attributes'])
        .where('enrollment_id', '=', deviceId)
        .orderBy('identifier')
        .execute()
      const applications = await db
        .selectFrom('installed_applications')
        .select(['identifier', 'is_managed'])
        .where('enrollment_id', '=', deviceId)
        .orderBy('identifier')
        .execute()
      // What blueprints installed counts too, even when the device's last lists are older.
      const ours = await db
        .selectFrom('device_config_state')
        .select(['item_type', 'identifier'])
        .where('device_id', '=', deviceId)
        .where('status', 'in', ['installed', 'installing', 'failed'])
        .execute()
      const result: InstalledInventory = {
        profiles: profiles.map((row) => {
          const content = (row.attributes as { PayloadContent?: unknown } | null)?.PayloadContent
          const payloadTypes = Array.isArray(content)
            ? content.map((payload) => (payload as { PayloadType?: unknown }).PayloadType).filter((type): type is string => typeof type === 'string')
            : []
          return { identifier: row.identifier, isManaged: row.is_managed, payloadTypes }
        }),
        applications: applications.map((row) => ({ identifier: row.identifier, isManaged: row.is_managed })),
      }
      for (const row of ours) {
        const list: Array<{ identifier: string; isManaged: boolean | null }> = row.item_type === 'profile' ? result.profiles : result.applications
        const known = list.find((item) => item.identifier === row.identifier)
        if (known) known.isManaged = true
        else if (row.item_type === 'profile') result.profiles.push({ identifier: row.identifier, isManaged: true, payloadTypes: [] })
        else result.applications.push({ identifier: row.identifier, isManaged: true })
      }
      result.profiles.sort((a, b) => a.identifier.localeCompare(b.identifier))
      result.applications.sort((a, b) => a.identifier.localeCompare(b.identifier))
      return result
    },

    async begin(scope, action, at) {
      try {
        await db.transaction().execute((trx) => insertAction(trx, scope, action, 'pending', at))
        return 'ok'
      } catch (error) {
        if (isUniqueViolation(error)) return 'busy'
        throw error
      }
    },

    async attachCommands(actionId, commands, details) {
      await db
        .updateTable('lifecycle_actions')
        .set({ commands: JSON.stringify(commands), ...(details ? { details: mergedDetails(details) } : {}) })
        .where('id', '=', actionId)
        .execute()
    },

    async finish(actionId, status, at, options = {}) {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('lifecycle_actions')
          .set({
            status,
            completed_at: at,
            ...(options.details ? { details: mergedDetails(options.details) } : {}),
          })
          .where('id', '=', actionId)
          .where('status', '=', 'pending')
          .returning('device_id')
          .executeTakeFirst()
        if (!row) return false
        if (options.state) await setLifecycleState(trx, row.device_id, options.state, at)
        return true
      })
    },

    async record(scope, action, at) {
      await db.transaction().execute((trx) => insertAction(trx, scope, action, 'completed', at))
    },

    async pendingForCommand(deviceId, commandUuid) {
      return db
        .selectFrom('lifecycle_actions')
        .selectAll()
        .where('device_id', '=', deviceId)
        .where('status', '=', 'pending')
        .where(sql<boolean>`commands @> ${JSON.stringify([{ command_uuid: commandUuid }])}::jsonb`)
        .executeTakeFirst()
    },

    async pendingOfDevice(deviceId, actions) {
      if (actions.length === 0) return []
      return db
        .selectFrom('lifecycle_actions')
        .selectAll()
        .where('device_id', '=', deviceId)
        .where('status', '=', 'pending')
        .where('action', 'in', actions)
        .orderBy('created_at')
        .execute()
    },

    async listActions(scope, deviceId) {
      return withCommandStatus(await actionsOf(scope, deviceId).orderBy('a.created_at', 'desc').orderBy('a.id').limit(200).execute())
    },

    async getAction(scope, deviceId, actionId) {
      const row = await actionsOf(scope, deviceId).where('a.id', '=', actionId).executeTakeFirst()
      return row ? (await withCommandStatus([row]))[0] : undefined
    },

    async cancelCommands(scope, action, reason) {
      const uuids = action.commands.map((command) => command.command_uuid)
      if (uuids.length === 0) return { cancelled: 0, fetched: 0 }
      return db.transaction().execute(async (trx) => {
        // Queued and never fetched (or refused with NotNow): the device has not started it.
        const { rows } = await sql<{ cancelled: number; fetched: number }>`
          with cancelled as (
            update command_targets t set status = 'Cancelled', cancel_reason = ${reason}, updated_at = now()
            where t.enrollment_id = ${action.device_id} and t.command_uuid in (${sql.join(uuids)})
              and ${isCancellable('t')}
            returning t.command_uuid
          )
          select (select count(*) from cancelled)::int as cancelled,
            (select count(*) from command_targets t where t.enrollment_id = ${action.device_id} and t.command_uuid in (${sql.join(uuids)})
              and ${isInFlight('t')})::int as fetched`.execute(trx)
        const outcome = rows[0]!
        await recordAdminWrite(trx, scope, {
          type: 'device',
          id: action.device_id,
          tenantId: action.tenant_id,
          deviceId: action.device_id,
          details: { lifecycle_action_id: action.id, cancelled: outcome.cancelled, fetched: outcome.fetched },
        })
        return outcome
      })
    },

    async setState(deviceId, state, at) {
      await setLifecycleState(db, deviceId, state, at, state === 'active' ? { retired_at: null } : {})
    },

    async markWiped(deviceId, at) {
      await db.transaction().execute(async (trx) => {
        await setLifecycleState(trx, deviceId, 'wiped', at, { wiped_at: at })
        await store.stopManaging(trx, deviceId, at, 'device wiped')
      })
    },

    async stopManaging(trx, deviceId, at, reason) {
      await trx
        .updateTable('enrollments')
        .set({ enabled: false, checked_out_at: at, updated_at: at })
        .where('device_id', '=', deviceId)
        .where('enabled', '=', true)
        .execute()
      await cancelQueuedForDevice(trx, deviceId, reason, at)
      await closeTenancy(trx, [deviceId], at)
    },

    async retire(scope, action, at) {
      await db.transaction().execute(async (trx) => {
        await insertAction(trx, scope, { ...action, state: 'retired' }, 'completed', at)
        await trx.updateTable('devices').set({ retired_at: at }).where('id', '=', action.deviceId).execute()
        await store.stopManaging(trx, action.deviceId, at, 'device retired')
      })
    },

    async setKind(scope, deviceId, kind, actionId, at, options = {}) {
      return db.transaction().execute(async (trx) => {
        const device = await trx
          .selectFrom('devices')
          .select(['kind', 'tenant_id', 'user_enrollment'])
          .where('id', '=', deviceId)
          .where(inScope(scope, 'tenant_id'))
          .forUpdate()
          .executeTakeFirst()
        if (!device) return 'not_found' as const
        if (device.kind === kind) {
          // Answered as a success (nothing to do), so audited as one.
          await recordAdminWrite(trx, scope, { type: 'device', id: deviceId, tenantId: device.tenant_id, deviceId, details: { kind, unchanged: true } })
          return 'unchanged' as const
        }
        if (device.user_enrollment && kind !== 'personal') return 'user_enrollment' as const
        const leaving = device.kind === 'personal'
        if (leaving && !options.leavePersonal) return 'leaving_personal' as const
        await trx.updateTable('devices').set({ kind, updated_at: at }).where('id', '=', deviceId).execute()
        const details = { from: device.kind, to: kind, ...(leaving ? { reason: options.leavePersonal!.reason } : {}) }
        await insertAction(trx, scope, { id: actionId, deviceId, tenantId: device.tenant_id, action: 'kind_changed', details }, 'completed', at)
        return 'ok' as const
      })
    },

    async recordLocation(location) {
      await db
        .insertInto('device_locations')
        .values({
          device_id: location.deviceId,
          command_uuid: location.commandUuid,
          latitude: location.latitude,
          longitude: location.longitude,
          horizontal_accuracy: location.horizontalAccuracy,
          vertical_accuracy: location.verticalAccuracy,
          altitude: location.altitude,
          speed: location.speed,
          course: location.course,
          located_at: location.locatedAt,
        })
        .execute()
    },

    async listLocations(scope, deviceId, limit) {
      return db
        .selectFrom('device_locations as l')
        .innerJoin('devices as d', 'd.id', 'l.device_id')
        .selectAll('l')
        .where('l.device_id', '=', deviceId)
        .where(inScope(scope, 'd.tenant_id'))
        .orderBy('l.id', 'desc')
        .limit(limit)
        .execute()
    },
  }
  return store
}
