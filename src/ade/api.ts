// Admin API: ABM/ASM server tokens, device sync, PreStage profiles and ADE devices.
import { OrchardError } from '../errors.js'
import type { DepService } from './dep-service.js'
import type { DepProfileFields } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { assignJson, deviceJson, profileJson, tokenJson } from './dep-json.js'
import { jobLocation } from '../jobs/job-json.js'
import type { JobStarter } from '../jobs/job-service.js'

/** The optional fields of a PreStage body, as the service takes them. */
function profileFields(body: DepProfileFields) {
  return {
    ...(body.device_kind !== undefined ? { deviceKind: body.device_kind } : {}),
    ...(body.minimum_os_version !== undefined ? { minimumOsVersion: body.minimum_os_version } : {}),
    ...(body.enrollment_commands !== undefined ? { enrollmentCommands: body.enrollment_commands } : {}),
    ...(body.default !== undefined ? { isDefault: body.default } : {}),
  }
}

/** `jobs`: a sync asked for through the API is an abm_sync job (202). */
export function depHandlers(deps: { dep: DepService; jobs: JobStarter }): OperationHandlers {
  const { dep } = deps

  return {
    async listDepTokens(request) {
      return { items: (await dep.listTokens(accessOf(request))).map(tokenJson) }
    },
    async createDepToken(request, reply) {
      const { name, tenant_id: tenantId } = request.body
      return reply.code(201).send(tokenJson(await dep.createToken(accessOf(request), name, tenantId)))
    },
    async getDepToken(request) {
      return tokenJson(await dep.getToken(accessOf(request), request.params.token_id))
    },
    async updateDepToken(request) {
      return tokenJson(await dep.setDefaultProfile(accessOf(request), request.params.token_id, request.body.default_profile_id))
    },
    async deleteDepToken(request, reply) {
      await dep.deleteToken(accessOf(request), request.params.token_id)
      return reply.code(204).send()
    },
    async getDepTokenCertificate(request, reply) {
      const id = request.params.token_id
      const token = await dep.getToken(accessOf(request), id)
      return reply
        .type('application/x-pem-file')
        .header('content-disposition', `attachment; filename="orchard-ade-${id}.pem"`)
        .code(200)
        .send(token.certificatePem)
    },
    async uploadDepServerToken(request) {
      // A body in another content type still reaches the handler: it is refused here.
      const file: unknown = request.body
      if (!Buffer.isBuffer(file) || file.length === 0) throw new OrchardError('bad_request', 'the body must be the .p7m server token file')
      return tokenJson(await dep.uploadServerToken(accessOf(request), request.params.token_id, file))
    },
    async syncDepToken(request, reply) {
      const scope = accessOf(request)
      const token = await dep.getToken(scope, request.params.token_id)
      const job = await deps.jobs.start(scope, { type: 'abm_sync', tenantId: token.tenant_id, params: { token_id: token.id }, total: 1 })
      return reply.header('location', jobLocation(job.id)).code(202).send(job)
    },
    async unassignDepProfile(request) {
      return assignJson(await dep.removeProfile(accessOf(request), request.params.token_id, request.body.serial_numbers))
    },
    async disownDepDevices(request) {
      return { devices: await dep.disownDevices(accessOf(request), request.params.token_id, request.body.serial_numbers) }
    },

    async listDepProfiles(request) {
      return { items: (await dep.listProfiles(accessOf(request), request.query.token_id)).map(profileJson) }
    },
    async createDepProfile(request, reply) {
      const { body } = request
      const profile = await dep.createProfile(accessOf(request), {
        tokenId: body.token_id,
        name: body.name,
        settings: body.settings ?? {},
        ...profileFields(body),
      })
      return reply.code(201).send(profileJson(profile))
    },
    async getDepProfile(request) {
      return profileJson(await dep.getProfile(accessOf(request), request.params.profile_id))
    },
    async updateDepProfile(request) {
      const { body } = request
      const profile = await dep.updateProfile(accessOf(request), request.params.profile_id, {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.settings !== undefined ? { settings: body.settings } : {}),
        ...profileFields(body),
      })
      return profileJson(profile)
    },
    async deleteDepProfile(request, reply) {
      await dep.deleteProfile(accessOf(request), request.params.profile_id)
      return reply.code(204).send()
    },
    async defineDepProfile(request) {
      return profileJson(await dep.defineProfile(accessOf(request), request.params.profile_id))
    },
    async assignDepProfile(request) {
      return assignJson(await dep.assignProfile(accessOf(request), request.params.profile_id, request.body.serial_numbers))
    },

    async listDepDevices(request) {
      const { query } = request
      const page = await dep.listDevices(
        accessOf(request),
        {
          includeRemoved: query.include_removed,
          ...(query.token_id ? { tokenId: query.token_id } : {}),
          ...(query.profile_id ? { profileId: query.profile_id } : {}),
          ...(query.assign_status ? { assignStatus: query.assign_status } : {}),
        },
        { limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) },
      )
      return { items: page.items.map(deviceJson), next_cursor: page.nextCursor }
    },
    async getDepDevice(request) {
      return deviceJson(await dep.getDevice(accessOf(request), request.params.serial_number))
    },
  }
}
