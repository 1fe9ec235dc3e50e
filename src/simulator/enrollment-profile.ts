// Reading an enrollment profile (.mobileconfig) as a device does: opened from its CMS signature
// when signed, then its SCEP payload (where to get an identity, with which challenge and
// subject) and its MDM payload (where to check in and connect, the push topic).
import { decodePlist, isPlistDict, type PlistDict, type PlistValue } from '../mdm/plist.js'
import { cmsContent } from './faithful-device.js'
import { plistText } from './simulated-device.js'

/** The SCEP challenge and the MDM payload of a decoded enrollment profile. */
export function profileParts(profile: PlistDict): { challenge: string; scep: PlistDict; mdm: PlistDict; payloads: PlistDict[] } {
  const payloads = profile['PayloadContent'] as PlistDict[]
  const scep = payloads.find((p) => p['PayloadType'] === 'com.apple.security.scep')!
  const mdm = payloads.find((p) => p['PayloadType'] === 'com.apple.mdm')!
  const content = scep['PayloadContent'] as PlistDict
  return { challenge: plistText(content['Challenge']), scep: content, mdm, payloads }
}

export interface EnrollmentProfileInfo {
  /** The profile's own PayloadIdentifier and PayloadUUID (a device lists them in ProfileList). */
  identifier: string
  uuid: string
  scep: { url: string; challenge: string; subject: { commonName: string; organization?: string } }
  mdm: { serverUrl: string; checkInUrl: string; topic: string; signMessage: boolean }
  /** The profile's certificate payloads (the device CA), DER. */
  certificates: Buffer[]
}

const text = (dict: PlistDict, key: string, what: string): string => {
  const value = dict[key]
  if (typeof value !== 'string' || value === '') throw new Error(`the enrollment profile has no ${what} (${key})`)
  return value
}

/** The subject's CN and O from the SCEP payload's Subject: [[["O", "Orchard"]], [["CN", "..."]]]. */
function subjectOf(value: PlistValue | undefined): { commonName: string; organization?: string } {
  const pairs = Array.isArray(value) ? value.flatMap((rdn) => (Array.isArray(rdn) ? rdn : [])) : []
  const attribute = (name: string) => {
    const pair = pairs.find((p) => Array.isArray(p) && p[0] === name)
    return Array.isArray(pair) && typeof pair[1] === 'string' ? pair[1] : undefined
  }
  const organization = attribute('O')
  return { commonName: attribute('CN') ?? 'Simulated device', ...(organization !== undefined ? { organization } : {}) }
}

/** Reads a downloaded enrollment profile (signed or not); throws with what is missing. */
export function readEnrollmentProfile(body: Buffer): EnrollmentProfileInfo {
  const decoded = decodePlist(cmsContent(body) ?? body)
  if (!isPlistDict(decoded) || !Array.isArray(decoded['PayloadContent'])) throw new Error('not a configuration profile')
  const payloads = decoded['PayloadContent'].filter(isPlistDict)
  const scepPayload = payloads.find((p) => p['PayloadType'] === 'com.apple.security.scep')
  const mdm = payloads.find((p) => p['PayloadType'] === 'com.apple.mdm')
  if (!scepPayload || !isPlistDict(scepPayload['PayloadContent'])) throw new Error('the profile has no SCEP payload: not an enrollment profile')
  if (!mdm) throw new Error('the profile has no MDM payload: not an enrollment profile')
  const scep = scepPayload['PayloadContent']
  return {
    identifier: text(decoded, 'PayloadIdentifier', 'identifier'),
    uuid: text(decoded, 'PayloadUUID', 'UUID'),
    scep: { url: text(scep, 'URL', 'SCEP URL'), challenge: text(scep, 'Challenge', 'SCEP challenge'), subject: subjectOf(scep['Subject']) },
    mdm: {
      serverUrl: text(mdm, 'ServerURL', 'server URL'),
      checkInUrl: typeof mdm['CheckInURL'] === 'string' ? mdm['CheckInURL'] : text(mdm, 'ServerURL', 'server URL'),
      topic: text(mdm, 'Topic', 'push topic'),
      signMessage: mdm['SignMessage'] === true,
    },
    certificates: payloads.map((p) => p['PayloadContent']).filter((content): content is Buffer => Buffer.isBuffer(content)),
  }
}
