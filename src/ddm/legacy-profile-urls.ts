// The URL a device fetches a library profile from when a legacy-profile declaration carries it
// (ProfileURL). Apple's documentation does not say how the device authenticates that fetch, so
// the URL itself is the credential: it names the declaration and the device and carries an
// HMAC-SHA256 over both, keyed from ORCHARD_SECRET_KEYS (HKDF, a label of its own). The
// profile is served only while the device is enrolled and its set carries the declaration.
// https://developer.apple.com/documentation/devicemanagement/legacyprofile
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'

export interface LegacyProfileUrls {
  /** The device's own URL of the declaration's profile. */
  urlOf(deviceId: string, declarationId: string): string
  /** Whether `signature` (from the URL's last segment) is the device's for this declaration. */
  verify(deviceId: string, declarationId: string, signature: string): boolean
}

/** The route devices fetch from; the signature is base64url. */
export const legacyProfilePath = '/mdm/ddm/profiles/:declarationId/:deviceId/:signature'

const label = 'orchard legacy profile url v1'

/** `secretKeys`: the first signs, all verify (a rotated key keeps URLs already handed out working). */
export function createLegacyProfileUrls(publicUrl: string, secretKeys: readonly Buffer[]): LegacyProfileUrls {
  if (secretKeys.length === 0) throw new Error('legacy profile URLs need at least one secret key')
  const keys = secretKeys.map((key) => Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), label, 32)))
  const base = publicUrl.replace(/\/+$/, '')
  const mac = (key: Buffer, deviceId: string, declarationId: string) => createHmac('sha256', key).update(`${declarationId}\u0000${deviceId}`).digest()
  return {
    urlOf(deviceId, declarationId) {
      const signature = mac(keys[0]!, deviceId, declarationId).toString('base64url')
      return `${base}/mdm/ddm/profiles/${encodeURIComponent(declarationId)}/${encodeURIComponent(deviceId)}/${signature}`
    },
    verify(deviceId, declarationId, signature) {
      const given = Buffer.from(signature, 'base64url')
      if (given.length !== 32) return false
      return keys.some((key) => timingSafeEqual(mac(key, deviceId, declarationId), given))
    },
  }
}
