// The device as lifecycle actions see it: what is known of it (kind, state, supervision, its
// ADE token), its installed inventory, and the changes to its state, kind and management
// (wiped, retired). Every admin change is audited in its own transaction.
import { sql, type Kysely } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { inScope } from '../db/scope-sql.js'
import { closeTenancy, recordAdminWrite } from '../tenancy/audit-store.js'
import { cancelQueuedForDevice } from '../device/enrollment-store.js'
import type { Database } from '../db/schema.js'
import type { DeviceKind, LifecycleState } from '../model/devices.js'
import { insertAction, setLifecycleState, type BeginAction, type Executor } from './lifecycle-shared-store.js'

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
  osVersion: string | null
  /** Its push topic (an enrollment profile for it names the same). */
  topic: string | null
  /** When it last talked to us (its device channel), else when it authenticated or was first seen. */
  lastContactAt: Date
}

export interface InstalledInventory {
  profiles: Array<{ identifier: string; isManaged: boolean | null; payloadTypes: string[] }>
  applications: Array<{ identifier: string; isManaged: boolean | null }>
}

export interface LifecycleDeviceStore {
  device(scope: AccessScope, deviceId: string): Promise<LifecycleDevice | undefined>
  inventory(deviceId: string): Promise<InstalledInventory>
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
}

export function createLifecycleDeviceStore(db: Kysely<Database>): LifecycleDeviceStore {
  const store: LifecycleDeviceStore = {
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
          'd.os_version',
          'd.topic',
          sql<Date>`coalesce(e.last_seen_at, d.authenticated_at, d.created_at)`.as('last_contact_at'),
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
        osVersion: row.os_version,
        topic: row.topic,
        lastContactAt: new Date(row.last_contact_at),
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
  }
  return store
}
