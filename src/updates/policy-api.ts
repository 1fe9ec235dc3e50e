// Admin API: OS update policies and the compliance report.
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { sendCsv } from '../http/views.js'
import { toCsv } from '../tenancy/tenant-reports.js'
import type { UpdatePolicies } from './update-policies.js'

type Policy = Awaited<ReturnType<UpdatePolicies['get']>>
type PolicyInput = Parameters<UpdatePolicies['update']>[2]

function policyJson(row: Policy) {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    mode: row.mode,
    target_os_version: row.target_os_version,
    target_build_version: row.target_build_version,
    target_local_datetime: row.target_local_datetime,
    latest_within_days: row.latest_within_days,
    details_url: row.details_url,
    kinds: row.kinds,
    groups: row.groups,
    group_ids: row.group_ids,
    device_ids: row.device_ids,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  }
}

function inputOf(body: {
  name: string
  mode: 'specific' | 'latest'
  target_os_version?: string | null
  target_build_version?: string | null
  target_local_datetime?: string | null
  latest_within_days?: number | null
  details_url?: string | null
  kinds?: string[]
  groups?: string[]
  group_ids?: string[]
  device_ids?: string[]
}): PolicyInput {
  return {
    name: body.name,
    mode: body.mode,
    targetOsVersion: body.target_os_version ?? null,
    targetBuildVersion: body.target_build_version ?? null,
    targetLocalDateTime: body.target_local_datetime ?? null,
    latestWithinDays: body.latest_within_days ?? null,
    detailsUrl: body.details_url ?? null,
    kinds: body.kinds ?? [],
    groups: body.groups ?? [],
    groupIds: body.group_ids ?? [],
    deviceIds: body.device_ids ?? [],
  }
}

export function updatePolicyHandlers(deps: { policies: UpdatePolicies }): OperationHandlers {
  const { policies } = deps
  return {
    async listUpdatePolicies(request) {
      return { items: (await policies.list(accessOf(request))).map(policyJson) }
    },
    async createUpdatePolicy(request, reply) {
      const row = await policies.create(accessOf(request), request.body.tenant_id, inputOf(request.body))
      return reply.code(201).send(policyJson(row))
    },
    async getUpdatePolicy(request) {
      return policyJson(await policies.get(accessOf(request), request.params.update_policy_id))
    },
    async replaceUpdatePolicy(request) {
      return policyJson(await policies.update(accessOf(request), request.params.update_policy_id, inputOf(request.body)))
    },
    async deleteUpdatePolicy(request, reply) {
      await policies.remove(accessOf(request), request.params.update_policy_id)
      return reply.code(204).send()
    },
    async getOsComplianceReport(request, reply) {
      const query = request.query
      const generatedAt = new Date()
      const report = await policies.compliance(accessOf(request), {
        ...(query.policy_id !== undefined ? { policyId: query.policy_id } : {}),
        ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}),
      })
      const items = report.items.map((item) => ({
        policy_id: item.policyId,
        device_id: item.deviceId,
        tenant_id: item.tenantId,
        serial_number: item.serialNumber,
        model: item.model,
        path: item.path,
        current_version: item.currentVersion,
        target_version: item.target?.version ?? null,
        target_build: item.target?.build ?? null,
        deadline: item.target?.deadline ?? null,
        state: item.state,
        detail: item.detail,
      }))
      if (query.format === 'csv') {
        const columns = [
          'policy_id',
          'device_id',
          'tenant_id',
          'serial_number',
          'model',
          'path',
          'current_version',
          'target_version',
          'target_build',
          'deadline',
          'state',
          'detail',
        ] as const
        return sendCsv(
          reply,
          `os-compliance-${generatedAt.toISOString().slice(0, 10)}`,
          toCsv(
            [...columns],
            items.map((item) => columns.map((column) => item[column])),
          ),
        )
      }
      return {
        generated_at: generatedAt.toISOString(),
        policies: report.policies.map((policy) => ({ policy_id: policy.policyId, name: policy.name, counts: policy.counts })),
        items,
      }
    },
  }
}
