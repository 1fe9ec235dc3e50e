// Admin API: device groups (static and smart) and the members of static ones. A group's
// devices are listed by GET /devices?group_id= (devices-api.ts).
import type { DeviceGroup, DeviceGroupInput as DeviceGroupInputJson } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import type { DeviceGroupInput, DeviceGroupRow, DeviceGroups } from './device-groups.js'

export function deviceGroupJson(row: DeviceGroupRow): DeviceGroup {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    description: row.description,
    type: row.filter === null ? 'static' : 'smart',
    filter: row.filter,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

function groupInput(body: DeviceGroupInputJson): DeviceGroupInput {
  return { name: body.name, description: body.description ?? null, filter: body.filter ?? null }
}

export function deviceGroupHandlers(deps: { groups: DeviceGroups }): OperationHandlers {
  const { groups } = deps
  return {
    async listDeviceGroups(request) {
      const { tenant_id: tenantId } = request.query
      return { items: (await groups.list(accessOf(request), tenantId !== undefined ? { tenantId } : {})).map(deviceGroupJson) }
    },
    async createDeviceGroup(request, reply) {
      const row = await groups.create(accessOf(request), request.body.tenant_id, groupInput(request.body))
      return reply.code(201).send(deviceGroupJson(row))
    },
    async getDeviceGroup(request) {
      const row = await groups.get(accessOf(request), request.params.group_id)
      return { ...deviceGroupJson(row), device_count: row.deviceCount }
    },
    async updateDeviceGroup(request) {
      return deviceGroupJson(await groups.update(accessOf(request), request.params.group_id, groupInput(request.body)))
    },
    async deleteDeviceGroup(request, reply) {
      await groups.remove(accessOf(request), request.params.group_id)
      return reply.code(204).send()
    },
    async changeDeviceGroupMembers(request) {
      const { add = [], remove = [] } = request.body
      return groups.changeMembers(accessOf(request), request.params.group_id, { add, remove })
    },
  }
}
