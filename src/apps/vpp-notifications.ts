// Apple's Apps and Books notifications for a content token (POST /vpp/notifications/<token id>):
// the bearer value is checked, then ASSET_MANAGEMENT settles the licences of the event it names
// as the event-status poll would (per serial, so a repeated or late notification changes
// nothing), ASSET_COUNT re-reads that asset's licence counts, TEST_NOTIFICATION (sent when
// client config sets the URL) and types Apple may add are answered 200 and logged.
// https://developer.apple.com/documentation/devicemanagement/subscribing-to-notifications
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { VppAccess } from './vpp-access.js'
import type { VppAssetStore } from './vpp-asset-store.js'
import type { VppLicenceStore } from './vpp-licence-store.js'
import type { VppNotificationEndpoint } from './vpp-notification-endpoint.js'
import type { VppTokenRow, VppTokenStore } from './vpp-token-store.js'

export interface VppNotifications {
  /**
   * One notification as Apple posted it. Throws OrchardError: not_found (no such token),
   * forbidden (wrong or missing bearer), bad_request / invalid_json (not a notification).
   * Returns the devices whose licence was assigned or failed: ask them for their app list.
   */
  receive(tokenId: string, authorization: string | undefined, body: Buffer | undefined): Promise<{ settled: string[] }>
}

export interface VppNotificationsDeps {
  tokens: Pick<VppTokenStore, 'getToken'>
  licences: Pick<VppLicenceStore, 'eventRows' | 'completeAssigning' | 'completeRevoking' | 'failInEvent' | 'countAssigned'>
  assets: Pick<VppAssetStore, 'saveAssets'>
  access: VppAccess
  endpoint: VppNotificationEndpoint
  log: Logger
  now: () => Date
}

interface Notification {
  notificationId: string | null
  notificationType: string
  uId: string | null
  notification: Record<string, unknown>
}

interface AssetManagement {
  eventId: string
  type: string
  result: 'SUCCESS' | 'FAILURE'
  /** adamId|serialNumber of the device assignments; user assignments (clientUserId) are not Orchard's. */
  targets: Set<string>
  error: { errorNumber: number; errorMessage: string } | null
}

const tokenIdPattern = /^[0-9a-f-]{36}$/
const malformed = (detail: string) => new OrchardError('bad_request', `not an Apps and Books notification: ${detail}`)
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
/** Apple sends adamId and uId as strings; numbers are taken too. */
const idText = (value: unknown): string | null =>
  typeof value === 'string' && value !== '' ? value : typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : null

function parseNotification(body: Buffer | undefined): Notification {
  if (!body || body.length === 0) throw malformed('the body is empty')
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw new OrchardError('invalid_json', `the body is not valid JSON: ${(error as Error).message}`)
  }
  if (!isObject(json)) throw malformed('the body is not a JSON object')
  const type = json['notificationType']
  if (typeof type !== 'string' || type === '') throw malformed('notificationType is missing')
  const id = json['notificationId']
  if (id !== undefined && typeof id !== 'string') throw malformed('notificationId is not a string')
  const notification = json['notification'] ?? {}
  if (!isObject(notification)) throw malformed('notification is not an object')
  return { notificationId: id ?? null, notificationType: type, uId: idText(json['uId']), notification }
}

function parseAssetManagement(n: Record<string, unknown>): AssetManagement {
  const { eventId, type, result, assignments, error } = n
  if (typeof eventId !== 'string' || eventId === '') throw malformed('notification.eventId is missing')
  if (typeof type !== 'string') throw malformed('notification.type is missing')
  if (result !== 'SUCCESS' && result !== 'FAILURE') throw malformed('notification.result is neither SUCCESS nor FAILURE')
  if (!Array.isArray(assignments)) throw malformed('notification.assignments is not an array')
  const targets = new Set<string>()
  for (const assignment of assignments) {
    if (!isObject(assignment)) throw malformed('an assignment is not an object')
    const adamId = idText(assignment['adamId'])
    if (adamId === null) throw malformed('an assignment has no adamId')
    const serial = assignment['serialNumber']
    if (serial !== undefined && typeof serial !== 'string') throw malformed('an assignment serialNumber is not a string')
    if (serial) targets.add(`${adamId}|${serial}`)
  }
  if (error !== undefined && !isObject(error)) throw malformed('notification.error is not an object')
  return {
    eventId,
    type,
    result,
    targets,
    error: error
      ? {
          errorNumber: typeof error['errorNumber'] === 'number' ? error['errorNumber'] : 0,
          errorMessage: typeof error['errorMessage'] === 'string' && error['errorMessage'] !== '' ? error['errorMessage'] : 'unknown failure',
        }
      : null,
  }
}

export function createVppNotifications(deps: VppNotificationsDeps): VppNotifications {
  const { licences, endpoint, log, now } = deps

  /** Settles the event's rows of the serials named, as followEvents would; returns the devices assigned or failed. */
  async function assetManagement(token: VppTokenRow, event: AssetManagement, meta: Record<string, unknown>): Promise<string[]> {
    const at = now()
    // Apple may notify before Orchard has stored the eventId it answered (or after the poll
    // settled the event): rows not (or no longer) in the event are left to the poll.
    const rows = (await licences.eventRows(token.id, event.eventId)).filter(
      (row) => (row.state === 'assigning' || row.state === 'revoking') && event.targets.has(`${row.adam_id}|${row.serial_number}`),
    )
    const deviceIds = rows.map((row) => row.device_id)
    const first = rows[0]
    if (!first) {
      log.info({ ...meta, event_id: event.eventId }, 'Apps and Books notification: nothing left to settle for this event')
      return []
    }
    if (event.result === 'FAILURE') {
      const detail = `Apple error ${event.error?.errorNumber ?? 0}: ${event.error?.errorMessage ?? 'unknown failure'}`
      const failed = await licences.failInEvent(token.id, event.eventId, deviceIds, detail, at)
      log.warn({ ...meta, event_id: event.eventId, devices: failed.length, apple_error: event.error?.errorNumber }, `licences failed: ${detail}`)
      return failed
    }
    if (event.type === 'ASSOCIATE') {
      const assigned = await licences.completeAssigning(token.id, event.eventId, at, deviceIds)
      if (assigned.length > 0) await licences.countAssigned(token.id, first.adam_id, first.pricing_param ?? 'STDQ', assigned.length)
      log.info({ ...meta, event_id: event.eventId, assigned: assigned.length }, 'licences assigned (notified)')
      return assigned
    }
    const released = await licences.completeRevoking(token.id, event.eventId, deviceIds)
    if (released > 0) await licences.countAssigned(token.id, first.adam_id, first.pricing_param ?? 'STDQ', -released)
    log.info({ ...meta, event_id: event.eventId, released }, 'licences released (notified)')
    return []
  }

  /** Licences bought, transferred or retired: that asset's counts are read again (one call). */
  async function assetCount(token: VppTokenRow, notification: Record<string, unknown>, meta: Record<string, unknown>): Promise<void> {
    const adamId = idText(notification['adamId'])
    if (adamId === null || !/^\d{1,20}$/.test(adamId)) {
      log.info({ ...meta }, 'Apps and Books asset count changed (no adamId): the next sync reads the counts')
      return
    }
    try {
      const page = await deps.access.client(token).assets(0, { adamId })
      await deps.assets.saveAssets(
        token.id,
        page.items.filter((asset) => asset.adamId === adamId),
        now(),
      )
      log.info({ ...meta, adam_id: adamId, count_delta: notification['countDelta'] }, 'Apps and Books asset count changed: counts read again')
    } catch (error) {
      log.warn({ ...meta, adam_id: adamId, err: error }, 'Apps and Books asset count changed; reading the counts failed, the next sync reads them')
    }
  }

  return {
    async receive(tokenId, authorization, body) {
      const token = tokenIdPattern.test(tokenId) ? await deps.tokens.getToken({ kind: 'all' }, tokenId) : undefined
      if (!token) {
        log.warn({ vpp_token_id: tokenId.slice(0, 100) }, 'Apps and Books notification for an unknown content token')
        throw new OrchardError('not_found', `no content token ${tokenId.slice(0, 100)}`)
      }
      if (!endpoint.verify(token.id, authorization)) {
        log.warn(
          { vpp_token_id: token.id, authorization: authorization === undefined ? 'missing' : 'wrong' },
          'Apps and Books notification refused: bad bearer token',
        )
        throw new OrchardError('forbidden', "the Authorization header does not carry this content token's notification bearer token")
      }
      const notification = parseNotification(body)
      const meta = { vpp_token_id: token.id, notification_id: notification.notificationId, notification_type: notification.notificationType }
      if (notification.uId !== null && token.location_uid !== null && notification.uId !== token.location_uid) {
        log.warn({ ...meta, uid: notification.uId }, "Apps and Books notification for another location than the token's")
        throw new OrchardError('not_found', `the notification is for location ${notification.uId}, not this content token's`)
      }
      if (endpoint.enabled) endpoint.noteNotifying(token.id, true)
      switch (notification.notificationType) {
        case 'TEST_NOTIFICATION':
          log.info(meta, 'Apps and Books test notification received')
          return { settled: [] }
        case 'ASSET_MANAGEMENT': {
          const event = parseAssetManagement(notification.notification)
          if (event.type !== 'ASSOCIATE' && event.type !== 'DISASSOCIATE') {
            log.info({ ...meta, event_type: event.type }, 'Apps and Books notification of an event Orchard does not make: ignored')
            return { settled: [] }
          }
          return { settled: await assetManagement(token, event, meta) }
        }
        case 'ASSET_COUNT':
          await assetCount(token, notification.notification, meta)
          return { settled: [] }
        default:
          // Apple adds types (subscriptions, users); answering 2xx keeps it from retrying.
          log.info(meta, 'Apps and Books notification of a type Orchard does not handle: ignored')
          return { settled: [] }
      }
    },
  }
}
