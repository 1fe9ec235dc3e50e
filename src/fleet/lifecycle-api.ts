// Admin API: device lifecycle (lost, found, locate, wipe, reinstall, retire, kind) and the
// device's lifecycle actions and locations.
import type { DeviceLifecycle } from './device-lifecycle.js'
import type { DeviceDirectory } from './device-directory.js'
import { invalidField } from '../errors.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { deviceJson, eraseInput, lifecycleActionJson, locationJson } from './device-json.js'

export interface LifecycleHandlerDeps {
  lifecycle: DeviceLifecycle
  directory: Pick<DeviceDirectory, 'getDevice' | 'setUserEmail'>
}

export function lifecycleHandlers(deps: LifecycleHandlerDeps): OperationHandlers {
  return {
    async updateDevice(request) {
      const deviceId = request.params.device_id
      const scope = accessOf(request)
      const { kind, reason, user_email: userEmail } = request.body
      if (kind === undefined && reason !== undefined) throw invalidField('/reason', 'goes with kind')
      if (userEmail !== undefined) await deps.directory.setUserEmail(scope, deviceId, userEmail)
      if (kind !== undefined) {
        const centralOwner = request.principal?.grants.some((grant) => grant.tenantId === null && grant.role === 'owner') === true
        const outcome = await deps.lifecycle.setKind(scope, deviceId, kind, { centralOwner, ...(reason !== undefined ? { reason } : {}) })
        request.log.info({ device_id: deviceId, kind, outcome }, 'device kind')
      }
      return deviceJson(await deps.directory.getDevice(scope, deviceId))
    },
    async reportDeviceLost(request, reply) {
      const { body } = request
      const action = await deps.lifecycle.lost(accessOf(request), request.params.device_id, {
        ...(body.message !== undefined ? { message: body.message } : {}),
        ...(body.phone_number !== undefined ? { phoneNumber: body.phone_number } : {}),
        ...(body.footnote !== undefined ? { footnote: body.footnote } : {}),
      })
      return reply.code(201).send(lifecycleActionJson(action))
    },
    async reportDeviceFound(request, reply) {
      return reply.code(201).send(lifecycleActionJson(await deps.lifecycle.found(accessOf(request), request.params.device_id)))
    },
    async locateDevice(request, reply) {
      return reply.code(201).send(lifecycleActionJson(await deps.lifecycle.locate(accessOf(request), request.params.device_id)))
    },
    async listDeviceLocations(request) {
      return { items: (await deps.lifecycle.listLocations(accessOf(request), request.params.device_id, request.query.limit)).map(locationJson) }
    },
    async wipeDevice(request, reply) {
      const action = await deps.lifecycle.wipe(accessOf(request), request.params.device_id, eraseInput(request.body))
      return reply.code(201).send(lifecycleActionJson(action))
    },
    async reinstallDevice(request, reply) {
      const action = await deps.lifecycle.reinstall(accessOf(request), request.params.device_id, eraseInput(request.body))
      return reply.code(201).send(lifecycleActionJson(action))
    },
    async retireDevice(request, reply) {
      const { disown_from_abm: disown, reason, gone_for_days: goneForDays } = request.body
      const options = { disown, ...(reason !== undefined ? { reason } : {}), ...(goneForDays !== undefined ? { goneForDays } : {}) }
      return reply.code(201).send(lifecycleActionJson(await deps.lifecycle.retire(accessOf(request), request.params.device_id, options)))
    },
    async listDeviceLifecycle(request) {
      const scope = accessOf(request)
      const deviceId = request.params.device_id
      const items = await deps.lifecycle.listActions(scope, deviceId)
      // No actions: not_found unless the caller can see the device.
      if (items.length === 0) await deps.directory.getDevice(scope, deviceId)
      return { items: items.map(lifecycleActionJson) }
    },
    async getLifecycleAction(request) {
      const { device_id: deviceId, action_id: actionId } = request.params
      return lifecycleActionJson(await deps.lifecycle.getAction(accessOf(request), deviceId, actionId))
    },
    async cancelLifecycleAction(request) {
      const { device_id: deviceId, action_id: actionId } = request.params
      return lifecycleActionJson(await deps.lifecycle.cancel(accessOf(request), deviceId, actionId))
    },
  }
}
