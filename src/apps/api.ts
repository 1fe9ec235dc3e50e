// Admin API: Apps and Books content tokens, their sync, and the assets with licence counts.
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { vppAssetJson, vppSyncJson, vppTokenJson } from './vpp-json.js'
import type { VppSync } from './vpp-sync.js'
import type { VppTokens } from './vpp-tokens.js'

export function vppHandlers(deps: { tokens: VppTokens; sync: VppSync }): OperationHandlers {
  const { tokens, sync } = deps
  return {
    async listVppTokens(request) {
      return { items: (await tokens.listTokens(accessOf(request))).map(vppTokenJson) }
    },
    async uploadVppToken(request, reply) {
      const body = request.body
      const token = await tokens.uploadToken(accessOf(request), {
        name: body.name,
        contentToken: body.content_token,
        ...(body.tenant_id !== undefined ? { tenantId: body.tenant_id } : {}),
        ...(body.serves_sub_tenants !== undefined ? { servesSubTenants: body.serves_sub_tenants } : {}),
        ...(body.force !== undefined ? { force: body.force } : {}),
      })
      return reply.code(201).send(vppTokenJson(token))
    },
    async getVppToken(request) {
      return vppTokenJson(await tokens.getToken(accessOf(request), request.params.vpp_token_id))
    },
    async updateVppToken(request) {
      const body = request.body
      return vppTokenJson(
        await tokens.updateToken(accessOf(request), request.params.vpp_token_id, {
          ...(body.name !== undefined ? { name: body.name } : {}),
          ...(body.serves_sub_tenants !== undefined ? { servesSubTenants: body.serves_sub_tenants } : {}),
        }),
      )
    },
    async deleteVppToken(request, reply) {
      await tokens.deleteToken(accessOf(request), request.params.vpp_token_id)
      return reply.code(204).send()
    },
    async renewVppToken(request) {
      return vppTokenJson(await tokens.renewToken(accessOf(request), request.params.vpp_token_id, request.body.content_token))
    },
    async claimVppLocation(request) {
      return vppTokenJson(await tokens.claimLocation(accessOf(request), request.params.vpp_token_id))
    },
    async syncVppToken(request) {
      const id = request.params.vpp_token_id
      await tokens.getToken(accessOf(request), id)
      return vppSyncJson(await sync.syncToken(id))
    },
    async listVppAssets(request) {
      const query = request.query
      const assets = await tokens.listAssets(accessOf(request), {
        ...(query.vpp_token_id !== undefined ? { tokenId: query.vpp_token_id } : {}),
        ...(query.adam_id !== undefined ? { adamId: query.adam_id } : {}),
        ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}),
      })
      return { items: assets.map(vppAssetJson) }
    },
  }
}
