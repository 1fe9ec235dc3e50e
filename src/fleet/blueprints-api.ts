// Admin API: the profile library, blueprints, and each device's configuration.
import { OrchardError } from '../errors.js'
import type { BlueprintService, DeviceConfiguration } from './blueprints.js'
import type { BlueprintInput, BlueprintRow, LibraryProfileRow } from './blueprint-store.js'
import type { BlueprintApplication } from '../db/schema.js'
import type { DeviceKind } from '../model/devices.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { iso } from '../http/views.js'

export interface BlueprintHandlerDeps {
  blueprints: BlueprintService
}

function profileJson(row: LibraryProfileRow) {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    identifier: row.identifier,
    payload_uuid: row.payload_uuid,
    name: row.name,
    payload_types: row.payload_types,
    sha256: row.sha256,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

function blueprintJson(row: BlueprintRow) {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    description: row.description,
    profile_ids: row.profile_ids,
    applications: row.applications,
    kinds: row.kinds,
    groups: row.groups,
    device_ids: row.device_ids,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

function configurationJson(configuration: DeviceConfiguration) {
  return {
    device_id: configuration.deviceId,
    status: configuration.status,
    profiles: configuration.profiles.map((item) => ({
      identifier: item.identifier,
      name: item.name,
      profile_id: item.profileId,
      status: item.status,
      detail: item.detail,
      command_uuid: item.commandUuid,
      updated_at: iso(item.updatedAt),
    })),
    applications: configuration.applications.map((item) => ({
      bundle_id: item.bundleId,
      status: item.status,
      detail: item.detail,
      command_uuid: item.commandUuid,
      updated_at: iso(item.updatedAt),
    })),
  }
}

interface BlueprintBody {
  name: string
  description?: string | null
  profile_ids: string[]
  applications: BlueprintApplication[]
  kinds: DeviceKind[]
  groups: string[]
  device_ids: string[]
  tenant_id?: string | null
}

function blueprintInput(body: BlueprintBody): BlueprintInput {
  return {
    name: body.name,
    description: body.description ?? null,
    profileIds: body.profile_ids,
    applications: body.applications,
    kinds: body.kinds,
    groups: body.groups,
    deviceIds: body.device_ids,
  }
}

function profileBody(body: unknown): Buffer {
  if (!Buffer.isBuffer(body) || body.length === 0) throw new OrchardError('validation_failed', 'the body must be the .mobileconfig file (Content-Type application/x-apple-aspen-config)')
  return body
}

export function blueprintHandlers(deps: BlueprintHandlerDeps): OperationHandlers {
  const profileIdOf = (params: unknown) => (params as { profile_id: string }).profile_id
  const blueprintIdOf = (params: unknown) => (params as { blueprint_id: string }).blueprint_id
  const deviceIdOf = (params: unknown) => (params as { device_id: string }).device_id
  return {
    async listProfiles(request) {
      return { items: (await deps.blueprints.listProfiles(accessOf(request))).map(profileJson) }
    },
    async uploadProfile(request, reply) {
      const { tenant_id: tenantId } = request.query as { tenant_id?: string }
      const row = await deps.blueprints.uploadProfile(accessOf(request), profileBody(request.body), tenantId)
      return reply.code(201).send(profileJson(row))
    },
    async getProfile(request) {
      return profileJson(await deps.blueprints.getProfile(accessOf(request), profileIdOf(request.params)))
    },
    async replaceProfile(request) {
      return profileJson(await deps.blueprints.replaceProfile(accessOf(request), profileIdOf(request.params), profileBody(request.body)))
    },
    async deleteProfile(request, reply) {
      await deps.blueprints.deleteProfile(accessOf(request), profileIdOf(request.params))
      return reply.code(204).send()
    },
    async listBlueprints(request) {
      return { items: (await deps.blueprints.listBlueprints(accessOf(request))).map(blueprintJson) }
    },
    async createBlueprint(request, reply) {
      const body = request.body as BlueprintBody
      const row = await deps.blueprints.createBlueprint(accessOf(request), body.tenant_id, blueprintInput(body))
      return reply.code(201).send(blueprintJson(row))
    },
    async getBlueprint(request) {
      return blueprintJson(await deps.blueprints.getBlueprint(accessOf(request), blueprintIdOf(request.params)))
    },
    async updateBlueprint(request) {
      return blueprintJson(await deps.blueprints.updateBlueprint(accessOf(request), blueprintIdOf(request.params), blueprintInput(request.body as BlueprintBody)))
    },
    async deleteBlueprint(request, reply) {
      await deps.blueprints.deleteBlueprint(accessOf(request), blueprintIdOf(request.params))
      return reply.code(204).send()
    },
    async getDeviceConfiguration(request) {
      return configurationJson(await deps.blueprints.deviceConfiguration(accessOf(request), deviceIdOf(request.params)))
    },
    async syncDeviceConfiguration(request, reply) {
      await deps.blueprints.syncDevice(accessOf(request), deviceIdOf(request.params))
      return reply.code(202).send()
    },
  }
}
