// Admin API: device lifecycle (lost, found, locate, wipe, reinstall, retire, kind) and the
// device's lifecycle actions and locations.
import { OrchardError } from '../errors.js'
import type { DeviceLifecycle } from './device-lifecycle.js'
import type { EraseInput } from './lifecycle-policy.js'
import type { DeviceDirectoryStore } from './device-directory-store.js'
import type { LifecycleActionView, LocationRow } from './lifecycle-store.js'
import type { DeviceKind } from '../model/devices.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { deviceJson, iso } from '../http/views.js'

export interface LifecycleHandlerDeps {
  lifecycle: DeviceLifecycle
  directory: DeviceDirectoryStore
}

export function lifecycleActionJson(action: LifecycleActionView) {
  return {
    id: action.id,
    device_id: action.device_id,
    action: action.action,
    status: action.status,
    principal: action.principal_id === null ? null : { id: action.principal_id, name: action.principal_name },
    details: (action.details ?? null) as Record<string, unknown> | null,
    commands: action.commands.map((command, index) => {
      const status = action.commandStatus[index]
      return {
        command_uuid: command.command_uuid,
        request_type: command.request_type,
        item: command.item ?? null,
        status: status?.status ?? null,
        error_chain: status?.errorChain ?? null,
      }
    }),
    created_at: iso(action.created_at)!,
    completed_at: iso(action.completed_at),
  }
}

function locationJson(row: LocationRow) {
  return {
    latitude: row.latitude,
    longitude: row.longitude,
    horizontal_accuracy: row.horizontal_accuracy,
    vertical_accuracy: row.vertical_accuracy,
    altitude: row.altitude,
    speed: row.speed,
    course: row.course,
    located_at: iso(row.located_at),
    received_at: iso(row.received_at)!,
    command_uuid: row.command_uuid,
  }
}

/** The EraseOptions of openapi.yaml (wipe, reinstall, erase). */
export function eraseInput(body: { pin?: string; preserve_data_plan?: boolean; disallow_proximity_setup?: boolean }): EraseInput {
  return {
    ...(body.pin !== undefined ? { pin: body.pin } : {}),
    ...(body.preserve_data_plan !== undefined ? { preserveDataPlan: body.preserve_data_plan } : {}),
    ...(body.disallow_proximity_setup !== undefined ? { disallowProximitySetup: body.disallow_proximity_setup } : {}),
  }
}

export function lifecycleHandlers(deps: LifecycleHandlerDeps): OperationHandlers {
  const deviceIdOf = (params: unknown) => (params as { device_id: string }).device_id
  return {
    async updateDevice(request) {
      const deviceId = deviceIdOf(request.params)
      const scope = accessOf(request)
      const { kind, reason } = request.body as { kind: DeviceKind; reason?: string }
      const centralOwner = request.principal?.grants.some((grant) => grant.tenantId === null && grant.role === 'owner') === true
      const outcome = await deps.lifecycle.setKind(scope, deviceId, kind, { centralOwner, ...(reason !== undefined ? { reason } : {}) })
      request.log.info({ device_id: deviceId, kind, outcome }, 'device kind')
      const detail = await deps.directory.getDevice(scope, deviceId)
      if (!detail) throw new OrchardError('not_found', `no device ${deviceId}`)
      return deviceJson(detail)
    },
    async reportDeviceLost(request, reply) {
      const body = request.body as { message?: string; phone_number?: string; footnote?: string }
      const action = await deps.lifecycle.lost(accessOf(request), deviceIdOf(request.params), {
        ...(body.message !== undefined ? { message: body.message } : {}),
        ...(body.phone_number !== undefined ? { phoneNumber: body.phone_number } : {}),
        ...(body.footnote !== undefined ? { footnote: body.footnote } : {}),
      })
      return reply.code(201).send(lifecycleActionJson(action))
    },
    async reportDeviceFound(request, reply) {
      return reply.code(201).send(lifecycleActionJson(await deps.lifecycle.found(accessOf(request), deviceIdOf(request.params))))
    },
    async locateDevice(request, reply) {
      return reply.code(201).send(lifecycleActionJson(await deps.lifecycle.locate(accessOf(request), deviceIdOf(request.params))))
    },
    async listDeviceLocations(request) {
      const { limit } = request.query as { limit: number }
      return { items: (await deps.lifecycle.listLocations(accessOf(request), deviceIdOf(request.params), limit)).map(locationJson) }
    },
    async wipeDevice(request, reply) {
      const action = await deps.lifecycle.wipe(accessOf(request), deviceIdOf(request.params), eraseInput(request.body as Record<string, never>))
      return reply.code(201).send(lifecycleActionJson(action))
    },
    async reinstallDevice(request, reply) {
      const action = await deps.lifecycle.reinstall(accessOf(request), deviceIdOf(request.params), eraseInput(request.body as Record<string, never>))
      return reply.code(201).send(lifecycleActionJson(action))
    },
    async retireDevice(request, reply) {
      const { disown_from_abm: disown } = request.body as { disown_from_abm: boolean }
      return reply.code(201).send(lifecycleActionJson(await deps.lifecycle.retire(accessOf(request), deviceIdOf(request.params), { disown })))
    },
    async listDeviceLifecycle(request) {
      const scope = accessOf(request)
      const deviceId = deviceIdOf(request.params)
      const items = await deps.lifecycle.listActions(scope, deviceId)
      if (items.length === 0 && !(await deps.directory.getDevice(scope, deviceId))) throw new OrchardError('not_found', `no device ${deviceId}`)
      return { items: items.map(lifecycleActionJson) }
    },
    async getLifecycleAction(request) {
      const { action_id: actionId } = request.params as { action_id: string }
      return lifecycleActionJson(await deps.lifecycle.getAction(accessOf(request), deviceIdOf(request.params), actionId))
    },
    async cancelLifecycleAction(request) {
      const { action_id: actionId } = request.params as { action_id: string }
      return lifecycleActionJson(await deps.lifecycle.cancel(accessOf(request), deviceIdOf(request.params), actionId))
    },
  }
}
