// Desired configuration in the admin API's JSON: library profiles, blueprints, and a
// device's convergence; and a blueprint as requests send it.
import type { Blueprint, BlueprintInputIn, DeviceConfiguration as DeviceConfigurationJson, LibraryProfile } from '../http/generated/operations.js'
import { iso } from '../http/views.js'
import type { BlueprintInput, BlueprintRow, LibraryProfileRow } from './blueprint-store.js'
import type { DeviceConfiguration } from './blueprints.js'

export function libraryProfileJson(row: LibraryProfileRow): LibraryProfile {
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

export function blueprintJson(row: BlueprintRow): Blueprint {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    description: row.description,
    profile_ids: row.profile_ids,
    declaration_ids: row.declaration_ids,
    applications: row.applications,
    kinds: row.kinds,
    groups: row.groups,
    group_ids: row.group_ids,
    device_ids: row.device_ids,
    kiosk: row.kiosk,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  }
}

export function configurationJson(configuration: DeviceConfiguration): DeviceConfigurationJson {
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

export function blueprintInput(body: BlueprintInputIn): BlueprintInput {
  return {
    name: body.name,
    description: body.description ?? null,
    profileIds: body.profile_ids,
    declarationIds: body.declaration_ids ?? [],
    applications: body.applications,
    kinds: body.kinds,
    groups: body.groups,
    groupIds: body.group_ids ?? [],
    deviceIds: body.device_ids,
    kiosk: body.kiosk ?? null,
    kioskProfile: null,
  }
}
