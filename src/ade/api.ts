// Admin API: ABM/ASM server tokens, device sync, PreStage profiles and ADE devices.
import { OrchardError } from '../errors.js'
import type { AssignReport, DepService, DepTokenView, SyncReport } from './dep-service.js'
import type { DepDeviceRow, DepProfileRow } from './dep-store.js'
import type { DepAssignStatus } from '../db/schema.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { iso } from '../http/views.js'

/** A token expiring within this many days is flagged (and logged daily). */
export const depTokenWarningDays = 30

function tokenJson(token: DepTokenView) {
  return {
    id: token.id,
    tenant_id: token.tenant_id,
    name: token.name,
    certificate_pem: token.certificatePem,
    server_token_uploaded_at: iso(token.token_uploaded_at),
    access_token_expiry: iso(token.access_token_expiry),
    days_left: token.daysLeft,
    expires_soon: token.daysLeft !== null && token.daysLeft <= depTokenWarningDays,
    status: token.status,
    status_detail: token.status_detail,
    status_at: iso(token.status_at)!,
    retry_after: iso(token.retry_after),
    server_name: token.server_name,
    server_uuid: token.server_uuid,
    org_name: token.org_name,
    sync_phase: token.sync_phase,
    last_fetch_completed_at: iso(token.last_fetch_completed_at),
    last_sync_at: iso(token.last_sync_at),
    default_profile_id: token.default_profile_id,
    device_count: token.deviceCount,
    created_at: iso(token.created_at)!,
  }
}

function profileJson(profile: DepProfileRow) {
  return {
    id: profile.id,
    token_id: profile.token_id,
    name: profile.name,
    device_kind: profile.device_kind,
    minimum_os_version: profile.minimum_os_version,
    enrollment_commands: profile.enrollment_commands,
    settings: profile.profile,
    profile_uuid: profile.profile_uuid,
    defined_at: iso(profile.defined_at),
    define_error: profile.define_error,
    is_default: profile.is_default,
    created_at: iso(profile.created_at)!,
    updated_at: iso(profile.updated_at)!,
  }
}

function deviceJson(device: DepDeviceRow) {
  return {
    serial_number: device.serial_number,
    token_id: device.token_id,
    model: device.model,
    description: device.description,
    color: device.color,
    asset_tag: device.asset_tag,
    os: device.os,
    device_family: device.device_family,
    profile_status: device.profile_status,
    profile_uuid: device.profile_uuid,
    profile_assign_time: iso(device.profile_assign_time),
    profile_push_time: iso(device.profile_push_time),
    device_assigned_by: device.device_assigned_by,
    device_assigned_date: iso(device.device_assigned_date),
    op_type: device.op_type,
    op_date: iso(device.op_date),
    removed_at: iso(device.removed_at),
    assigned_profile_id: device.assigned_profile_id,
    assign_status: device.assign_status,
    assign_detail: device.assign_detail,
    assigned_at: iso(device.assigned_at),
    assign_retry_at: iso(device.assign_retry_at),
    device_id: device.device_id,
    first_seen_at: iso(device.first_seen_at)!,
    updated_at: iso(device.updated_at)!,
  }
}

function syncJson(report: SyncReport) {
  return { token_id: report.tokenId, outcome: report.outcome, pages: report.pages, devices: report.devices, added: report.added, restarted_fetch: report.restartedFetch, status: report.status, status_detail: report.detail }
}

function assignJson(report: AssignReport) {
  return { profile_uuid: report.profileUuid, results: report.results.map((r) => ({ serial_number: r.serialNumber, status: r.status, detail: r.detail, retry_at: iso(r.retryAt) })) }
}

interface ProfileBody {
  token_id?: string
  name?: string
  device_kind?: 'work' | 'function'
  minimum_os_version?: string | null
  enrollment_commands?: unknown[]
  default?: boolean
  settings?: Record<string, unknown>
}

export function depHandlers(deps: { dep: DepService }): OperationHandlers {
  const { dep } = deps

  return {
    async listDepTokens(request) {
      return { items: (await dep.listTokens(accessOf(request))).map(tokenJson) }
    },
    async createDepToken(request, reply) {
      const { name, tenant_id: tenantId } = request.body as { name: string; tenant_id?: string | null }
      return reply.code(201).send(tokenJson(await dep.createToken(accessOf(request), name, tenantId)))
    },
    async getDepToken(request) {
      const { token_id: id } = request.params as { token_id: string }
      return tokenJson(await dep.getToken(accessOf(request), id))
    },
    async updateDepToken(request) {
      const { token_id: id } = request.params as { token_id: string }
      const { default_profile_id: profileId } = request.body as { default_profile_id: string | null }
      return tokenJson(await dep.setDefaultProfile(accessOf(request), id, profileId))
    },
    async deleteDepToken(request, reply) {
      const { token_id: id } = request.params as { token_id: string }
      await dep.deleteToken(accessOf(request), id)
      return reply.code(204).send()
    },
    async getDepTokenCertificate(request, reply) {
      const { token_id: id } = request.params as { token_id: string }
      const token = await dep.getToken(accessOf(request), id)
      return reply.type('application/x-pem-file').header('content-disposition', `attachment; filename="orchard-ade-${id}.pem"`).send(token.certificatePem)
    },
    async uploadDepServerToken(request) {
      const { token_id: id } = request.params as { token_id: string }
      if (!Buffer.isBuffer(request.body) || request.body.length === 0) throw new OrchardError('bad_request', 'the body must be the .p7m server token file')
      return tokenJson(await dep.uploadServerToken(accessOf(request), id, request.body))
    },
    async syncDepToken(request) {
      const { token_id: id } = request.params as { token_id: string }
      await dep.getToken(accessOf(request), id)
      return syncJson(await dep.syncToken(id))
    },
    async unassignDepProfile(request) {
      const { token_id: id } = request.params as { token_id: string }
      const { serial_numbers: serials } = request.body as { serial_numbers: string[] }
      return assignJson(await dep.removeProfile(accessOf(request), id, serials))
    },
    async disownDepDevices(request) {
      const { token_id: id } = request.params as { token_id: string }
      const { serial_numbers: serials } = request.body as { serial_numbers: string[] }
      return { devices: await dep.disownDevices(accessOf(request), id, serials) }
    },

    async listDepProfiles(request) {
      const { token_id: tokenId } = request.query as { token_id?: string }
      return { items: (await dep.listProfiles(accessOf(request), tokenId)).map(profileJson) }
    },
    async createDepProfile(request, reply) {
      const body = request.body as ProfileBody & { token_id: string; name: string }
      const profile = await dep.createProfile(accessOf(request), {
        tokenId: body.token_id,
        name: body.name,
        settings: body.settings ?? {},
        ...(body.device_kind !== undefined ? { deviceKind: body.device_kind } : {}),
        ...(body.minimum_os_version !== undefined ? { minimumOsVersion: body.minimum_os_version } : {}),
        ...(body.enrollment_commands !== undefined ? { enrollmentCommands: body.enrollment_commands } : {}),
        ...(body.default !== undefined ? { isDefault: body.default } : {}),
      })
      return reply.code(201).send(profileJson(profile))
    },
    async getDepProfile(request) {
      const { profile_id: id } = request.params as { profile_id: string }
      return profileJson(await dep.getProfile(accessOf(request), id))
    },
    async updateDepProfile(request) {
      const { profile_id: id } = request.params as { profile_id: string }
      const body = request.body as ProfileBody
      const profile = await dep.updateProfile(accessOf(request), id, {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.settings !== undefined ? { settings: body.settings } : {}),
        ...(body.device_kind !== undefined ? { deviceKind: body.device_kind } : {}),
        ...(body.minimum_os_version !== undefined ? { minimumOsVersion: body.minimum_os_version } : {}),
        ...(body.enrollment_commands !== undefined ? { enrollmentCommands: body.enrollment_commands } : {}),
        ...(body.default !== undefined ? { isDefault: body.default } : {}),
      })
      return profileJson(profile)
    },
    async deleteDepProfile(request, reply) {
      const { profile_id: id } = request.params as { profile_id: string }
      await dep.deleteProfile(accessOf(request), id)
      return reply.code(204).send()
    },
    async defineDepProfile(request) {
      const { profile_id: id } = request.params as { profile_id: string }
      return profileJson(await dep.defineProfile(accessOf(request), id))
    },
    async assignDepProfile(request) {
      const { profile_id: id } = request.params as { profile_id: string }
      const { serial_numbers: serials } = request.body as { serial_numbers: string[] }
      return assignJson(await dep.assignProfile(accessOf(request), id, serials))
    },

    async listDepDevices(request) {
      const query = request.query as { token_id?: string; profile_id?: string; assign_status?: DepAssignStatus; include_removed: boolean; limit: number; cursor?: string }
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
      const { serial_number: serial } = request.params as { serial_number: string }
      return deviceJson(await dep.getDevice(accessOf(request), serial))
    },
  }
}
