// Admin API: Apps and Books content tokens, their sync, and the assets with licence counts.
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { sendCsv } from '../http/views.js'
import { toCsv } from '../tenancy/tenant-reports.js'
import { vppAssetJson, vppTokenJson } from './vpp-json.js'
import { jobLocation } from '../jobs/job-json.js'
import type { JobStarter } from '../jobs/job-service.js'
import type { VppTokens } from './vpp-tokens.js'
import type { VppUnmanaged } from './vpp-unmanaged.js'

/** The asset filters both asset operations take. */
function assetFilter(query: { vpp_token_id?: string; adam_id?: string; tenant_id?: string }): Parameters<VppTokens['listAssets']>[1] {
  return {
    ...(query.vpp_token_id !== undefined ? { tokenId: query.vpp_token_id } : {}),
    ...(query.adam_id !== undefined ? { adamId: query.adam_id } : {}),
    ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}),
  }
}

/** `jobs`: a sync asked for through the API is a vpp_sync job (202). */
export function vppHandlers(deps: { tokens: VppTokens; unmanaged: VppUnmanaged; jobs: JobStarter }): OperationHandlers {
  const { tokens, unmanaged } = deps
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
    async syncVppToken(request, reply) {
      const scope = accessOf(request)
      const token = await tokens.getToken(scope, request.params.vpp_token_id)
      const job = await deps.jobs.start(scope, { type: 'vpp_sync', tenantId: token.tenant_id, params: { vpp_token_id: token.id }, total: 1 })
      return reply.header('location', jobLocation(job.id)).code(202).send(job)
    },
    async getLicenceReport(request, reply) {
      const query = request.query
      const generatedAt = new Date()
      const items = await tokens.licenceReport(accessOf(request), assetFilter(query))
      if (query.format === 'csv') {
        const header = [
          'tenant_id',
          'vpp_token_id',
          'token_name',
          'adam_id',
          'pricing_param',
          'total_count',
          'assigned_count',
          'available_count',
          'serial_number',
          'device_id',
        ]
        const rows = items.flatMap((item) => {
          const base = [item.tenantId, item.tokenId, item.tokenName, item.adamId, item.pricingParam, item.totalCount, item.assignedCount, item.availableCount]
          return item.holders.length === 0 ? [[...base, null, null]] : item.holders.map((holder) => [...base, holder.serialNumber, holder.deviceId])
        })
        return sendCsv(reply, `licences-${generatedAt.toISOString().slice(0, 10)}`, toCsv(header, rows))
      }
      return {
        generated_at: generatedAt.toISOString(),
        items: items.map((item) => ({
          ...vppAssetJson(item),
          holders: item.holders.map((holder) => ({ serial_number: holder.serialNumber, device_id: holder.deviceId })),
        })),
      }
    },
    async listVppAssets(request) {
      const query = request.query
      const assets = await tokens.listAssets(accessOf(request), assetFilter(query))
      return { items: assets.map(vppAssetJson) }
    },
    async listUnmanagedLicences(request) {
      const query = request.query
      const filter = {
        ...(query.vpp_token_id !== undefined ? { tokenId: query.vpp_token_id } : {}),
        ...(query.adam_id !== undefined ? { adamId: query.adam_id } : {}),
      }
      const { items, total } = await unmanaged.list(accessOf(request), filter, query.limit ?? 1000)
      return {
        total,
        items: items.map((item) => ({
          vpp_token_id: item.tokenId,
          tenant_id: item.tenantId,
          adam_id: item.adamId,
          pricing_param: item.pricingParam,
          serial_number: item.serialNumber,
          device_id: item.deviceId,
          synced_at: item.syncedAt.toISOString(),
        })),
      }
    },
    async releaseUnmanagedLicences(request) {
      const body = request.body
      const result = await unmanaged.release(accessOf(request), {
        tokenId: body.vpp_token_id,
        serialNumbers: body.serial_numbers,
        ...(body.adam_id !== undefined ? { adamId: body.adam_id } : {}),
      })
      return { released: result.released, event_ids: result.eventIds, skipped: result.skipped }
    },
  }
}
