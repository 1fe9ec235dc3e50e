// Library profiles served to devices through legacy-profile declarations: the device fetches
// the ProfileURL Orchard put in the declaration (legacy-profile-urls.ts); the profile is
// signed on delivery when a signing identity is configured, as InstallProfile's are.
// https://developer.apple.com/documentation/devicemanagement/legacyprofile
import type { Logger } from 'pino'
import { signProfile, type ProfileSigner } from '../crypto/profile-signing.js'
import { OrchardError } from '../errors.js'
import type { DeclarationSetStore } from './declaration-set-store.js'
import type { LegacyProfileUrls } from './legacy-profile-urls.js'

export interface LegacyProfiles {
  /** The profile's bytes (signed when Orchard signs profiles); throws forbidden or not_found. */
  profile(declarationId: string, deviceId: string, signature: string): Promise<Buffer>
}

export function createLegacyProfiles(deps: {
  store: Pick<DeclarationSetStore, 'servedProfile'>
  urls: LegacyProfileUrls | null
  signer: ProfileSigner | null
  log: Logger
  now: () => Date
}): LegacyProfiles {
  return {
    async profile(declarationId, deviceId, signature) {
      if (!deps.urls || !deps.urls.verify(deviceId, declarationId, signature))
        throw new OrchardError('forbidden', 'this profile URL is not signed for this device (take ProfileURL from the declaration Orchard served)')
      const content = await deps.store.servedProfile(deviceId, declarationId)
      if (!content) throw new OrchardError('not_found', 'the device is not enrolled, or its declaration set no longer carries this declaration')
      deps.log.info({ device_id: deviceId, declaration_id: declarationId }, 'legacy profile served')
      return deps.signer ? signProfile(content, deps.signer, deps.now()) : content
    },
  }
}
