// Blueprints: profiles from the library and apps, assigned to a tenant, device kinds,
// enrollment groups or devices. Every change asks the devices the tenant's blueprints reach
// for their lists, and their answers drive the convergence.
import { randomUUID } from 'node:crypto'
import { invalidField, OrchardError } from '../errors.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { BlueprintDefinitionStore, BlueprintInput, BlueprintRow, NotUsable } from './blueprint-definition-store.js'
import type { RefreshTenant } from './convergence-triggers.js'
import { checkKioskKinds, kioskProfile } from './kiosk-profile.js'

export interface BlueprintDefinitions {
  listBlueprints(scope: AccessScope): Promise<BlueprintRow[]>
  getBlueprint(scope: AccessScope, id: string): Promise<BlueprintRow>
  createBlueprint(scope: AccessScope, tenantId: string | null | undefined, input: BlueprintInput): Promise<BlueprintRow>
  updateBlueprint(scope: AccessScope, id: string, input: BlueprintInput): Promise<BlueprintRow>
  deleteBlueprint(scope: AccessScope, id: string): Promise<void>
  /** What blueprints target (a device group) changed for the devices of `tenantId`: they converge again. */
  targetsChanged(scope: AccessScope, tenantId: string | null, withApps: boolean): Promise<void>
}

export interface BlueprintDefinitionsDeps {
  store: BlueprintDefinitionStore
  refreshTenant: RefreshTenant
  /** A blueprint carrying declarations changed: the declaration sets of the devices it may reach are computed again. */
  declarationsChanged?: (tenantId: string | null) => Promise<void>
}

/** The input checked, with its kiosk profile built for blueprint `id`. */
function blueprintInputChecked(id: string, input: BlueprintInput): BlueprintInput {
  input.applications.forEach((app, index) => {
    const sources = [app.manifest_url, app.itunes_store_id, app.vpp_asset].filter((source) => source !== undefined)
    if (sources.length !== 1) throw invalidField(`/applications/${index}`, 'give exactly one of manifest_url, itunes_store_id and vpp_asset')
  })
  if (input.kiosk === null) return { ...input, kioskProfile: null }
  checkKioskKinds(input.kinds)
  return { ...input, kioskProfile: kioskProfile(id, input.name, input.kiosk) }
}

function blueprintOutcome<T>(outcome: T | 'name_taken' | 'unknown_tenant' | NotUsable, name: string): T {
  if (outcome === 'name_taken') throw new OrchardError('conflict', `a blueprint called ${name} exists already in this tenant`)
  if (outcome === 'unknown_tenant') throw invalidField('/tenant_id', 'no such tenant')
  if (outcome && typeof outcome === 'object' && 'profileNotUsable' in outcome) {
    throw invalidField(
      '/profile_ids',
      `profile ${outcome.profileNotUsable} is not one this blueprint can carry (its tenant's, its organisation's or central IT's)`,
    )
  }
  if (outcome && typeof outcome === 'object' && 'declarationNotUsable' in outcome) {
    throw invalidField(
      '/declaration_ids',
      `declaration ${outcome.declarationNotUsable} is not one this blueprint can carry (its tenant's, its organisation's or central IT's)`,
    )
  }
  if (outcome && typeof outcome === 'object' && 'kioskProfile' in outcome) {
    throw invalidField('/profile_ids', `profile ${outcome.kioskProfile} is another blueprint's kiosk: use kiosk instead`)
  }
  if (outcome && typeof outcome === 'object' && 'notSupervised' in outcome) {
    throw new OrchardError(
      'conflict',
      `kiosk mode needs supervised devices: ${outcome.count} device(s) the blueprint reaches are not supervised or not known to be (${outcome.notSupervised.join(', ')}${outcome.count > outcome.notSupervised.length ? ', ...' : ''}); narrow its targets or supervise them (ADE)`,
      { details: { not_supervised: outcome.notSupervised, not_supervised_count: outcome.count } },
    )
  }
  if (outcome && typeof outcome === 'object' && 'groupNotUsable' in outcome) {
    throw invalidField(
      '/group_ids',
      `device group ${outcome.groupNotUsable} is not one this blueprint can target (its tenant's, its organisation's or central IT's)`,
    )
  }
  return outcome
}

export function createBlueprintDefinitions(deps: BlueprintDefinitionsDeps): BlueprintDefinitions {
  const { store, refreshTenant } = deps
  const declarationsChanged = async (tenantId: string | null, ...rows: BlueprintRow[]) => {
    if (deps.declarationsChanged && rows.some((row) => row.declaration_ids.length > 0)) await deps.declarationsChanged(tenantId)
  }
  return {
    listBlueprints: (scope) => store.listBlueprints(scope),
    async getBlueprint(scope, id) {
      const row = await store.getBlueprint(scope, id)
      if (!row) throw new OrchardError('not_found', `no blueprint ${id}`)
      return row
    },

    async createBlueprint(scope, requestedTenant, input) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const id = randomUUID()
      const row = blueprintOutcome(await store.createBlueprint(scope, id, tenantId, blueprintInputChecked(id, input)), input.name)
      await refreshTenant(scope, tenantId, row.applications.length > 0)
      await declarationsChanged(tenantId, row)
      return row
    },

    async updateBlueprint(scope, id, input) {
      const before = await store.getBlueprint(scope, id)
      if (!before) throw new OrchardError('not_found', `no blueprint ${id}`)
      const row = blueprintOutcome(await store.updateBlueprint(scope, id, blueprintInputChecked(id, input)), input.name)
      if (!row) throw new OrchardError('not_found', `no blueprint ${id}`)
      await refreshTenant(scope, row.tenant_id, row.applications.length > 0 || before.applications.length > 0)
      await declarationsChanged(row.tenant_id, before, row)
      return row
    },

    async deleteBlueprint(scope, id) {
      const row = await store.deleteBlueprint(scope, id)
      if (!row) throw new OrchardError('not_found', `no blueprint ${id}`)
      await refreshTenant(scope, row.tenant_id, row.applications.length > 0)
      await declarationsChanged(row.tenant_id, row)
    },

    async targetsChanged(scope, tenantId, withApps) {
      await refreshTenant(scope, tenantId, withApps)
      if (deps.declarationsChanged) await deps.declarationsChanged(tenantId)
    },
  }
}
