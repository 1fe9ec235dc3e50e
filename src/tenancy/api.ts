// Admin API: tenants (and their billing settings), moving devices between them, the audit log
// and the device report; the device-days report and invoices are in billing-api.ts.
import { OrchardError } from '../errors.js'
import { toCsv, type TenantReports } from './tenant-reports.js'
import { tenantForNewRow } from '../model/access.js'
import type { AuditFilter, TenantChanges, TenantRow, TenantService } from './tenant-service.js'
import type { DeviceKind } from '../model/devices.js'
import { decimalsOf, minorDigits } from './billing.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { sendCsv } from '../http/views.js'
import { auditEventJson, tenantJson as tenantJsonIn } from './tenant-json.js'

export interface TenantHandlerDeps {
  tenants: TenantService
  reports: TenantReports
  /** ORCHARD_BILLING_CURRENCY: prices have at most its minor digits. */
  currency: string
  now?: () => Date
}

function tenantProblem(pointer: string, detail: string): OrchardError {
  return new OrchardError('validation_failed', `${pointer.slice(1)}: ${detail}`, { details: { errors: [{ pointer, detail }] } })
}

/** The billing fields of a tenant body as store changes; a price finer than the currency's minor unit is refused. */
function billingChanges(
  body: { price_per_device_year?: string | null; billed_kinds?: DeviceKind[] | null },
  currency: string,
): Pick<TenantChanges, 'price' | 'billedKinds'> {
  const price = body.price_per_device_year
  const digits = minorDigits(currency)
  if (price !== undefined && price !== null && decimalsOf(price) > digits)
    throw tenantProblem('/price_per_device_year', `${currency} prices have at most ${digits} decimal${digits === 1 ? '' : 's'}`)
  return {
    ...(price !== undefined ? { price } : {}),
    ...(body.billed_kinds !== undefined ? { billedKinds: body.billed_kinds } : {}),
  }
}

export function tenantHandlers(deps: TenantHandlerDeps): OperationHandlers {
  const now = deps.now ?? (() => new Date())
  const tenantJson = (row: TenantRow) => tenantJsonIn(row, deps.currency)
  return {
    async listTenants(request) {
      return { items: (await deps.tenants.listTenants(accessOf(request))).map(tenantJson) }
    },
    async createTenant(request, reply) {
      const { body } = request
      const billing = billingChanges(body, deps.currency)
      const outcome = await deps.tenants.createTenant(accessOf(request), { id: body.id, name: body.name, parentId: body.parent_id ?? null, ...billing })
      if (!outcome.ok) {
        switch (outcome.reason) {
          case 'exists':
            throw new OrchardError('conflict', `a tenant ${body.id} exists already`)
          case 'name_taken':
            throw new OrchardError('conflict', `another tenant is called ${body.name}`)
          case 'parent_not_found':
            throw tenantProblem('/parent_id', `no tenant ${body.parent_id}`)
          case 'parent_is_nested':
            throw tenantProblem('/parent_id', `${body.parent_id} is itself a department: tenants nest one level`)
        }
      }
      request.log.info({ tenant_id: outcome.tenant.id, parent_id: outcome.tenant.parent_id }, 'tenant created')
      return reply.code(201).send(tenantJson(outcome.tenant))
    },
    async getTenant(request) {
      const id = request.params.tenant_id
      const tenant = await deps.tenants.getTenant(accessOf(request), id)
      if (!tenant) throw new OrchardError('not_found', `no tenant ${id}`)
      return tenantJson(tenant)
    },
    async updateTenant(request) {
      const id = request.params.tenant_id
      const { name } = request.body
      const changes = { ...(name !== undefined ? { name } : {}), ...billingChanges(request.body, deps.currency) }
      const outcome = await deps.tenants.updateTenant(accessOf(request), id, changes)
      if (outcome === 'name_taken') throw new OrchardError('conflict', `another tenant is called ${name}`)
      if (!outcome) throw new OrchardError('not_found', `no tenant ${id}`)
      return tenantJson(outcome)
    },
    async deleteTenant(request, reply) {
      const id = request.params.tenant_id
      const outcome = await deps.tenants.deleteTenant(accessOf(request), id)
      if (outcome === 'not_found') throw new OrchardError('not_found', `no tenant ${id}`)
      if (outcome === 'in_use')
        throw new OrchardError(
          'conflict',
          `tenant ${id} still has devices, enrollment links, commands, ABM/ASM tokens, push certificates, API keys or departments`,
        )
      request.log.info({ tenant_id: id }, 'tenant deleted')
      return reply.code(204).send()
    },

    async moveDevices(request) {
      const { body } = request
      const scope = accessOf(request)
      // The destination must be one of the caller's tenants (central IT only for central callers).
      const tenantId = tenantForNewRow(scope, body.tenant_id)
      const outcome = await deps.tenants.moveDevices(scope, body.device_ids, tenantId, now())
      if (!outcome.ok) throw tenantProblem('/tenant_id', `no tenant ${tenantId}`)
      request.log.info(
        { tenant_id: tenantId, moved: outcome.moved.length, unchanged: outcome.unchanged.length, not_found: outcome.notFound.length },
        'devices moved',
      )
      return { tenant_id: tenantId, moved: outcome.moved, unchanged: outcome.unchanged, not_found: outcome.notFound }
    },

    async listAuditEvents(request) {
      const { query } = request
      const filter: AuditFilter = {
        ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}),
        ...(query.device_id !== undefined ? { deviceId: query.device_id } : {}),
        ...(query.principal_id !== undefined ? { principalId: query.principal_id } : {}),
        ...(query.action !== undefined ? { action: query.action } : {}),
        ...(query.category !== undefined ? { category: query.category } : {}),
        ...(query.outcome !== undefined ? { outcome: query.outcome } : {}),
        ...(query.since !== undefined ? { since: new Date(query.since) } : {}),
        ...(query.until !== undefined ? { until: new Date(query.until) } : {}),
      }
      const page = await deps.tenants.listAuditEvents(accessOf(request), filter, {
        limit: query.limit,
        ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
      })
      return { items: page.items.map(auditEventJson), next_cursor: page.nextCursor }
    },

    async getDeviceReport(request, reply) {
      const { query } = request
      const generatedAt = now()
      const items = await deps.reports.deviceCounts(accessOf(request), query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}, generatedAt)
      if (query.format === 'csv') {
        const rows: Array<Array<string | number | null>> = []
        for (const item of items) {
          const base = [item.tenantId, item.tenantName]
          rows.push([...base, 'total', null, item.total], [...base, 'enrolled', null, item.enrolled], [...base, 'unenrolled', null, item.unenrolled])
          for (const [bucket, count] of Object.entries({
            within_1d: item.lastSeen.within1d,
            within_7d: item.lastSeen.within7d,
            within_30d: item.lastSeen.within30d,
            older: item.lastSeen.older,
            never: item.lastSeen.never,
          })) {
            rows.push([...base, 'last_seen', bucket, count])
          }
          for (const entry of item.byKind) rows.push([...base, 'kind', entry.value, entry.count])
          for (const entry of item.byModel) rows.push([...base, 'model', entry.value, entry.count])
          for (const entry of item.byOsVersion) rows.push([...base, 'os_version', entry.value, entry.count])
        }
        return sendCsv(reply, `devices-${generatedAt.toISOString().slice(0, 10)}`, toCsv(['tenant_id', 'tenant_name', 'dimension', 'value', 'count'], rows))
      }
      return {
        generated_at: generatedAt.toISOString(),
        items: items.map((item) => ({
          tenant_id: item.tenantId,
          tenant_name: item.tenantName,
          total: item.total,
          enrolled: item.enrolled,
          unenrolled: item.unenrolled,
          last_seen: {
            within_1d: item.lastSeen.within1d,
            within_7d: item.lastSeen.within7d,
            within_30d: item.lastSeen.within30d,
            older: item.lastSeen.older,
            never: item.lastSeen.never,
          },
          by_kind: item.byKind,
          by_model: item.byModel,
          by_os_version: item.byOsVersion,
        })),
      }
    },
  }
}
