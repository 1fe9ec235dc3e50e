// Kiosk mode for function devices: a blueprint's `kiosk` becomes a configuration profile that
// Orchard writes into the blueprint's tenant library and converges like any other. Either one
// app (App Lock, com.apple.app.lock: the device runs only that app until the profile goes) or an
// allow-list (Restrictions: only these apps show and launch). Both need supervised devices.
// https://developer.apple.com/documentation/devicemanagement/applock
// https://developer.apple.com/documentation/devicemanagement/restrictions
// Pure: no I/O.
import { createHash } from 'node:crypto'
import { OrchardError } from '../errors.js'
import { encodePlist, type PlistDict } from '../mdm/plist.js'
import type { BlueprintKiosk as Kiosk } from '../db/schema.js'

export type { Kiosk }

/** The PayloadIdentifier of a blueprint's kiosk profile; library uploads may not use the prefix. */
export const kioskIdentifierPrefix = 'orchard.kiosk.'
export const kioskIdentifier = (blueprintId: string) => `${kioskIdentifierPrefix}${blueprintId}`

/** A UUID (version 8 layout) from a hash: the same kiosk gives the same bytes, so nothing is installed again. */
function uuidOf(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\u0000')).digest('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`.toUpperCase()
}

/** A kiosk profile as the library keeps it (sha256: its version, as for uploaded profiles). */
export interface KioskProfile {
  identifier: string
  payloadUuid: string
  name: string
  payloadTypes: string[]
  content: Buffer
  sha256: string
}

export function kioskProfile(blueprintId: string, blueprintName: string, kiosk: Kiosk): KioskProfile {
  const identifier = kioskIdentifier(blueprintId)
  const canonical = JSON.stringify(kiosk)
  let payload: PlistDict
  if ('app' in kiosk) {
    const app: PlistDict = { Identifier: kiosk.app.bundle_id }
    if (kiosk.app.options && Object.keys(kiosk.app.options).length > 0) app['Options'] = { ...kiosk.app.options }
    if (kiosk.app.user_enabled_options && Object.keys(kiosk.app.user_enabled_options).length > 0)
      app['UserEnabledOptions'] = { ...kiosk.app.user_enabled_options }
    payload = { PayloadType: 'com.apple.app.lock', App: app }
  } else {
    // Apple's schema lists the key under its old and its new name; each OS reads the one it knows.
    payload = { PayloadType: 'com.apple.applicationaccess', allowListedAppBundleIDs: [...kiosk.allowed_apps], whitelistedAppBundleIDs: [...kiosk.allowed_apps] }
  }
  const name = `Kiosk: ${blueprintName}`.slice(0, 500)
  const profile: PlistDict = {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: identifier,
    PayloadUUID: uuidOf(identifier, canonical, blueprintName),
    PayloadDisplayName: name,
    PayloadRemovalDisallowed: true,
    PayloadContent: [
      {
        ...payload,
        PayloadVersion: 1,
        PayloadIdentifier: `${identifier}.payload`,
        PayloadUUID: uuidOf(identifier, 'payload', canonical),
        PayloadDisplayName: 'app' in kiosk ? 'Single app' : 'Allowed apps',
      },
    ],
  }
  const content = encodePlist(profile)
  return {
    identifier,
    payloadUuid: profile['PayloadUUID'] as string,
    name,
    payloadTypes: [payload['PayloadType'] as string],
    content,
    sha256: createHash('sha256').update(content).digest('hex'),
  }
}

/** Refuses a kiosk on a blueprint that may reach other than function devices. */
export function checkKioskKinds(kinds: readonly string[]): void {
  if (kinds.length !== 1 || kinds[0] !== 'function') {
    throw new OrchardError('validation_failed', 'kiosk: a kiosk blueprint is for function devices: give kinds ["function"]', {
      details: { errors: [{ pointer: '/kinds', detail: 'must be ["function"] when kiosk is set' }] },
    })
  }
}
