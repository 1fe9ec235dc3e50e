// Admin API: declarations, and each device's declarations and status items.
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { effectiveServerToken } from '../mdm/declarations.js'
import type { DeclarationService, DeviceDeclarationView } from './declaration-service.js'

type Declaration = Awaited<ReturnType<DeclarationService['get']>>
type StatusItemRow = Awaited<ReturnType<DeclarationService['statusItems']>>['items'][number]

function declarationJson(row: Declaration) {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    identifier: row.identifier,
    type: row.type,
    kind: row.kind,
    name: row.name,
    payload: row.payload,
    profile_id: row.profile_id,
    channel: row.channel,
    server_token: effectiveServerToken(row.server_token, row.profile_sha256),
    blueprint_count: row.blueprint_count,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  }
}

const inputOf = (body: {
  identifier: string
  type: string
  name?: string | null
  payload: Record<string, unknown>
  profile_id?: string | null
  channel?: 'device' | 'user'
}) => ({
  identifier: body.identifier,
  type: body.type,
  ...(body.name !== undefined ? { name: body.name } : {}),
  payload: body.payload,
  ...(body.profile_id !== undefined ? { profileId: body.profile_id } : {}),
  ...(body.channel !== undefined ? { channel: body.channel } : {}),
})

const itemJson = (item: DeviceDeclarationView) => ({
  identifier: item.identifier,
  type: item.type,
  kind: item.kind,
  server_token: item.serverToken,
  declaration_id: item.declarationId,
  state: item.state,
  reasons: item.reasons,
  reported_at: item.reportedAt?.toISOString() ?? null,
})

const statusItemJson = (row: StatusItemRow) => ({ item: row.item, value: row.value, updated_at: row.updatedAt.toISOString() })

export function declarationHandlers(deps: { declarations: DeclarationService }): OperationHandlers {
  const { declarations } = deps
  return {
    async listDeclarations(request) {
      const query = request.query
      const rows = await declarations.list(accessOf(request), {
        ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}),
        ...(query.kind !== undefined ? { kind: query.kind } : {}),
      })
      return { items: rows.map(declarationJson) }
    },
    async createDeclaration(request, reply) {
      const body = request.body
      const row = await declarations.create(accessOf(request), body.tenant_id, inputOf(body))
      return reply.code(201).send(declarationJson(row))
    },
    async getDeclaration(request) {
      return declarationJson(await declarations.get(accessOf(request), request.params.declaration_id))
    },
    async replaceDeclaration(request) {
      return declarationJson(await declarations.update(accessOf(request), request.params.declaration_id, inputOf(request.body)))
    },
    async deleteDeclaration(request, reply) {
      await declarations.remove(accessOf(request), request.params.declaration_id)
      return reply.code(204).send()
    },
    async getDeviceDeclarations(request) {
      const deviceId = request.params.device_id
      const view = await declarations.deviceDeclarations(accessOf(request), deviceId)
      return {
        device_id: deviceId,
        declarations_token: view.declarationsToken,
        sent_token: view.sentToken,
        items: view.items.map(itemJson),
        user_channels: view.userChannels.map((channel) => ({
          enrollment_id: channel.enrollmentId,
          user_short_name: channel.userShortName,
          user_long_name: channel.userLongName,
          platform: channel.platform,
          declarations_token: channel.declarationsToken,
          sent_token: channel.sentToken,
          items: channel.items.map(itemJson),
        })),
      }
    },
    async getDeviceStatusItems(request) {
      const deviceId = request.params.device_id
      const view = await declarations.statusItems(accessOf(request), deviceId)
      return {
        device_id: deviceId,
        items: view.items.map(statusItemJson),
        user_channels: view.userChannels.map((channel) => ({
          enrollment_id: channel.enrollmentId,
          user_short_name: channel.userShortName,
          items: channel.items.map(statusItemJson),
        })),
      }
    },
  }
}
