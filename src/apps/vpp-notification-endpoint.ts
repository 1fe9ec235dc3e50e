// Where Apple's Apps and Books service sends this installation's notifications, per content
// token: `<base>/vpp/notifications/<token id>`, with a bearer value Apple echoes. The value is
// derived (HMAC-SHA256 of the token id under a key derived from the master key), so nothing is
// stored and every instance on one database agrees; after a master key rotation the old keys
// still verify until the next sync sets the new value.
// https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
// https://developer.apple.com/documentation/devicemanagement/client-config-4szk1
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { VppClientConfig } from './vpp-client.js'

/** What Orchard subscribes to: licence events, and changes of a location's licence counts. */
export const vppNotificationTypes = ['ASSET_MANAGEMENT', 'ASSET_COUNT']

export interface VppNotificationSettings {
  notificationUrl: string
  notificationAuthToken: string
  notificationTypes: string[]
}

export interface VppNotificationEndpoint {
  /** Whether this installation asks Apple for notifications at all. */
  readonly enabled: boolean
  /** What client config sets for the token; null without a notification URL. */
  settingsFor(tokenId: string): VppNotificationSettings | null
  /** Whether Apple's client config holds what settingsFor would set (true when notifications are off). */
  current(tokenId: string, config: VppClientConfig): boolean
  /** Whether an Authorization header carries the token's bearer value, under any configured master key. */
  verify(tokenId: string, authorization: string | undefined): boolean
  /** Apple is known (in this process) to notify the token's events: the licence round polls them late. */
  notifying(tokenId: string): boolean
  /** Records what Apple's client config or a delivered notification says about the token. */
  noteNotifying(tokenId: string, notifying: boolean): void
}

/**
 * `baseUrl`: the ORCHARD_VPP_NOTIFICATION_URL setting ('off', a URL, or null for the public URL
 * when it is https); `masterKeys`: ORCHARD_SECRET_KEYS, the first one signs.
 */
export function createVppNotificationEndpoint(options: { baseUrl: string | null; publicUrl: string; masterKeys: readonly Buffer[] }): VppNotificationEndpoint {
  const base = options.baseUrl === 'off' ? null : (options.baseUrl ?? (options.publicUrl.startsWith('https://') ? options.publicUrl : null))
  const keys = options.masterKeys.map((master) => createHmac('sha256', master).update('orchard vpp notifications').digest())
  const bearer = (key: Buffer, tokenId: string) => createHmac('sha256', key).update(`vpp-notification:${tokenId}`).digest('base64url')
  const notifying = new Set<string>()
  const enabled = base !== null && keys.length > 0

  const settingsFor = (tokenId: string): VppNotificationSettings | null =>
    enabled
      ? {
          notificationUrl: `${base.replace(/\/+$/, '')}/vpp/notifications/${tokenId}`,
          notificationAuthToken: bearer(keys[0]!, tokenId),
          notificationTypes: [...vppNotificationTypes],
        }
      : null

  return {
    enabled,
    settingsFor,
    current(tokenId, config) {
      const wanted = settingsFor(tokenId)
      if (!wanted) return true
      return (
        config.notificationUrl === wanted.notificationUrl &&
        // Apple echoes the bearer value; a rotated master key makes it stale.
        (config.notificationAuthToken === null || config.notificationAuthToken === wanted.notificationAuthToken) &&
        vppNotificationTypes.every((type) => config.notificationTypes.includes(type))
      )
    },
    verify(tokenId, authorization) {
      const match = /^Bearer +(\S+)$/i.exec(authorization?.trim() ?? '')
      if (!match) return false
      const given = Buffer.from(match[1]!, 'utf8')
      let ok = false
      for (const key of keys) {
        const expected = Buffer.from(bearer(key, tokenId), 'utf8')
        // Constant time; a length mismatch says nothing about the value.
        if (given.length === expected.length && timingSafeEqual(given, expected)) ok = true
      }
      return ok
    },
    notifying: (tokenId) => notifying.has(tokenId),
    noteNotifying(tokenId, on) {
      if (on) notifying.add(tokenId)
      else notifying.delete(tokenId)
    },
  }
}
