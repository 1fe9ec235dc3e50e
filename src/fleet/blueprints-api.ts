// Admin API: the profile library, blueprints, and each device's configuration.
import { OrchardError } from '../errors.js'
import type { BlueprintService } from './blueprints.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { blueprintInput, blueprintJson, configurationJson, libraryProfileJson } from './blueprint-json.js'

export interface BlueprintHandlerDeps {
  blueprints: BlueprintService
}

/** The raw body (a body in another content type still reaches the handler: it is refused here). */
function profileBody(body: unknown): Buffer {
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw new OrchardError('validation_failed', 'the body must be the .mobileconfig file (Content-Type application/x-apple-aspen-config)')
  return body
}

export function blueprintHandlers(deps: BlueprintHandlerDeps): OperationHandlers {
  return {
    async listProfiles(request) {
      return { items: (await deps.blueprints.listProfiles(accessOf(request))).map(libraryProfileJson) }
    },
    async uploadProfile(request, reply) {
      const row = await deps.blueprints.uploadProfile(accessOf(request), profileBody(request.body), request.query.tenant_id)
      return reply.code(201).send(libraryProfileJson(row))
    },
    async getProfile(request) {
      return libraryProfileJson(await deps.blueprints.getProfile(accessOf(request), request.params.profile_id))
    },
    async replaceProfile(request) {
      return libraryProfileJson(await deps.blueprints.replaceProfile(accessOf(request), request.params.profile_id, profileBody(request.body)))
    },
    async deleteProfile(request, reply) {
      await deps.blueprints.deleteProfile(accessOf(request), request.params.profile_id)
      return reply.code(204).send()
    },
    async listBlueprints(request) {
      return { items: (await deps.blueprints.listBlueprints(accessOf(request))).map(blueprintJson) }
    },
    async createBlueprint(request, reply) {
      const { body } = request
      const row = await deps.blueprints.createBlueprint(accessOf(request), body.tenant_id, blueprintInput(body))
      return reply.code(201).send(blueprintJson(row))
    },
    async getBlueprint(request) {
      return blueprintJson(await deps.blueprints.getBlueprint(accessOf(request), request.params.blueprint_id))
    },
    async updateBlueprint(request) {
      return blueprintJson(await deps.blueprints.updateBlueprint(accessOf(request), request.params.blueprint_id, blueprintInput(request.body)))
    },
    async deleteBlueprint(request, reply) {
      await deps.blueprints.deleteBlueprint(accessOf(request), request.params.blueprint_id)
      return reply.code(204).send()
    },
    async getDeviceConfiguration(request) {
      return configurationJson(await deps.blueprints.deviceConfiguration(accessOf(request), request.params.device_id))
    },
    async syncDeviceConfiguration(request, reply) {
      await deps.blueprints.syncDevice(accessOf(request), request.params.device_id)
      return reply.code(202).send()
    },
  }
}
