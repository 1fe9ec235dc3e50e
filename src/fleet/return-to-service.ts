// Return to Service: an EraseDevice that carries a Wi-Fi profile (and the MDM profile where the
// device needs it), so that a supervised iPhone or iPad on iOS 17 or later erases itself, joins
// the Wi-Fi, enrolls again and is back at the Home Screen with no hands on it.
// https://developer.apple.com/documentation/devicemanagement/returning-a-managed-device-to-service
//
// The keys (Apple's EraseDevice ReturnToService): Enabled; WiFiProfileData, needed unless the
// device has Ethernet; MDMProfileData, needed unless the device comes back through Automated
// Device Enrollment (and there too when its PreStage opens a configuration web URL, which
// Setup Assistant cannot show unattended). The device comes back wiped, so the re-enrollment
// policy accepts its new identity (reenrollment-policy.ts: 'wiped').
//
// Which erase carries it: the one asked for (`return_to_service: true`, refused with a clear
// reason when the device cannot), none when asked not to (false), and otherwise function
// devices' erases whenever a Wi-Fi profile is set for their tenant (or its organisation).
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import { platformFromProduct } from '../mdm/command-validation.js'
import type { PlistDict } from '../mdm/plist.js'
import { compareVersions } from '../model/app-version.js'
import { tenantForNewRow, type AccessScope } from '../model/access.js'
import type { DeviceKind } from '../model/devices.js'
import { notApplicable } from './lifecycle-runner.js'
import { wifiPayloadType, type EffectiveWifi, type ReturnToServiceSetting, type ReturnToServiceStore } from './return-to-service-store.js'

export type { ReturnToServiceSetting } from './return-to-service-store.js'

/** The first OS with Return to Service (iOS and iPadOS 17). */
export const returnToServiceSince = '17.0'

export interface ReturnToServiceFacts {
  id: string
  tenantId: string | null
  kind: DeviceKind
  productName: string | null
  model: string | null
  osVersion: string | null
  supervised: boolean | null
  userEnrollment: boolean
  /** Assigned to us in ABM/ASM: it comes back through its PreStage. */
  depTokenId: string | null
  topic: string | null
}

export type ReturnToServiceRefusal = 'not_for_personal_device' | 'not_for_user_enrollment' | 'unsupported_platform' | 'os_too_old' | 'requires_supervision'

/** Why this device cannot be returned to service, or null. Pure. */
export function returnToServiceRefusal(device: ReturnToServiceFacts): { reason: ReturnToServiceRefusal; detail: string } | null {
  if (device.kind === 'personal') return { reason: 'not_for_personal_device', detail: 'it is a personal device: it is never erased' }
  if (device.userEnrollment) return { reason: 'not_for_user_enrollment', detail: 'it is a User Enrollment' }
  if (platformFromProduct(device.productName, device.model) !== 'iOS')
    return { reason: 'unsupported_platform', detail: 'only iPhones and iPads return to service' }
  if (device.osVersion === null || compareVersions(device.osVersion, returnToServiceSince) < 0) {
    return {
      reason: 'os_too_old',
      detail: `it runs ${device.osVersion === null ? 'an unknown OS version' : `iOS ${device.osVersion}`}; Return to Service needs iOS 17 or later`,
    }
  }
  if (device.supervised !== true) {
    return {
      reason: 'requires_supervision',
      detail: `it is ${device.supervised === false ? 'not supervised' : 'not known to be supervised (refresh its inventory)'}`,
    }
  }
  return null
}

/** What an erase of the device would do about Return to Service. */
export type ReturnToServiceDecision =
  | { use: true; wifi: EffectiveWifi; mdmProfile: boolean }
  | { use: false; why: 'not_asked' | 'refused_by_request' | 'not_function_device' | 'no_wifi_profile' | ReturnToServiceRefusal }

export interface ReturnToServicePlan {
  /** EraseDevice's ReturnToService dictionary. */
  keys: PlistDict
  /** What the lifecycle action records. */
  details: { wifi_profile_id: string; wifi_profile_name: string; wifi_from_tenant_id: string | null; mdm_profile: boolean }
}

export interface ReturnToService {
  listSettings(scope: AccessScope): Promise<ReturnToServiceSetting[]>
  /** `tenantId` undefined: the caller's own tenant (central IT for a central caller); `wifiProfileId` null clears it. */
  setSetting(scope: AccessScope, tenantId: string | null | undefined, wifiProfileId: string | null): Promise<ReturnToServiceSetting | null>
  /** Decides without side effects (dry runs); throws not_applicable when asked for and impossible. */
  decide(device: ReturnToServiceFacts, requested: boolean | undefined): Promise<ReturnToServiceDecision>
  /** The ReturnToService keys of an erase of the device (null: a plain erase); mints the MDM profile's one-time challenge when needed. */
  planFor(device: ReturnToServiceFacts, requested: boolean | undefined): Promise<ReturnToServicePlan | null>
}

export interface ReturnToServiceDeps {
  store: ReturnToServiceStore
  /** The enrollment profile MDMProfileData carries (enrollment-service.ts returnToServiceProfile). */
  mdmProfile: (device: { topic: string | null }) => Promise<Buffer>
  log: Logger
  now?: () => Date
}

export function createReturnToService(deps: ReturnToServiceDeps): ReturnToService {
  const { store, log } = deps
  const now = deps.now ?? (() => new Date())

  async function decide(device: ReturnToServiceFacts, requested: boolean | undefined): Promise<ReturnToServiceDecision> {
    if (requested === false) return { use: false, why: 'refused_by_request' }
    const refusal = returnToServiceRefusal(device)
    if (requested === true && refusal) {
      throw notApplicable(`device ${device.id} cannot return to service: ${refusal.detail}`, refusal.reason)
    }
    if (requested === undefined && device.kind !== 'function') return { use: false, why: 'not_asked' }
    const wifi = await store.effectiveWifi(device.tenantId)
    if (!wifi) {
      if (requested === undefined) return { use: false, why: 'no_wifi_profile' }
      const where = device.tenantId === null ? 'central IT' : `tenant ${device.tenantId} (or its organisation)`
      throw notApplicable(
        `device ${device.id} cannot return to service: no Wi-Fi profile is set for ${where}; name one with PUT /api/v1/return-to-service`,
        'no_wifi_profile',
      )
    }
    if (refusal) return { use: false, why: refusal.reason }
    // Through ADE the device fetches its enrollment profile itself, unless its PreStage needs a web sign-in.
    const mdmProfile = device.depTokenId === null || (await store.preStageHasWebUrl(device.id))
    return { use: true, wifi, mdmProfile }
  }

  return {
    listSettings: (scope) => store.listSettings(scope),

    async setSetting(scope, requestedTenant, wifiProfileId) {
      const tenantId = tenantForNewRow(scope, requestedTenant)
      const outcome = await store.setSetting(scope, tenantId, wifiProfileId, now())
      if (outcome === 'unknown_tenant') {
        throw new OrchardError('validation_failed', `tenant_id: no tenant ${tenantId}`, {
          details: { errors: [{ pointer: '/tenant_id', detail: 'no such tenant' }] },
        })
      }
      if (outcome === 'unusable') {
        const detail = `must be a library profile with a Wi-Fi payload (${wifiPayloadType}) of this tenant, its organisation or central IT`
        throw new OrchardError('validation_failed', `wifi_profile_id: ${detail}`, { details: { errors: [{ pointer: '/wifi_profile_id', detail }] } })
      }
      log.info({ tenant_id: tenantId, wifi_profile_id: wifiProfileId }, 'Return to Service Wi-Fi profile set')
      return outcome === 'cleared' ? null : outcome
    },

    decide,

    async planFor(device, requested) {
      const decision = await decide(device, requested)
      if (!decision.use) return null
      const wifi = await store.wifiContent(decision.wifi.profileId)
      if (!wifi) throw new OrchardError('conflict', `the Wi-Fi profile ${decision.wifi.profileId} of Return to Service was deleted meanwhile`)
      const keys: PlistDict = { Enabled: true, WiFiProfileData: wifi }
      if (decision.mdmProfile) keys['MDMProfileData'] = await deps.mdmProfile({ topic: device.topic })
      return {
        keys,
        details: {
          wifi_profile_id: decision.wifi.profileId,
          wifi_profile_name: decision.wifi.profileName,
          wifi_from_tenant_id: decision.wifi.fromTenantId,
          mdm_profile: decision.mdmProfile,
        },
      }
    },
  }
}
