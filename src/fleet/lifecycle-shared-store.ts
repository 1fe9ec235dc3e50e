// What the lifecycle stores share: the action row, and the two writes both actions and device
// changes make (an action with its audit row; the device's lifecycle state).
import type { Kysely, Selectable, Transaction } from 'kysely'
import { type AccessScope } from '../model/access.js'
import { recordAdminWrite } from '../tenancy/audit-store.js'
import type { Database, LifecycleActionsTable, LifecycleCommandRef } from '../db/schema.js'
import type { LifecycleActionKind, LifecycleState } from '../model/devices.js'

export type Executor = Kysely<Database> | Transaction<Database>

export type LifecycleActionRow = Selectable<LifecycleActionsTable>

export interface BeginAction {
  id: string
  deviceId: string
  tenantId: string | null
  action: LifecycleActionKind
  /** The device's lifecycle state from now on (unchanged when absent). */
  state?: LifecycleState
  details?: Record<string, unknown>
}

/** Records an action (and the device's new state, when it has one), audited. */
export async function insertAction(
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
export async function setLifecycleState(
  executor: Executor,
  deviceId: string,
  state: LifecycleState,
  at: Date,
  also: { wiped_at?: Date; retired_at?: null } = {},
) {
  await executor
    .updateTable('devices')
    .set({ lifecycle_state: state, lifecycle_changed_at: at, updated_at: at, ...also })
    .where('id', '=', deviceId)
    .execute()
}
