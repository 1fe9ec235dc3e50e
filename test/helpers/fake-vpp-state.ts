// Data model, error table and pure helpers of the fake Apple "Apps and Books for Organizations"
// (VPP) v2 server in fake-vpp.ts. Field names follow Apple's documentation
// (https://developer.apple.com/documentation/devicemanagement/app-book-and-subscription-management);
// see /tmp/vpp-protocol.md for the digest and what is unconfirmed.

export type PricingParam = 'STDQ' | 'PLUS'
export interface MdmInfo {
  id: string
  name: string
  metadata: string
}
/** Apple's `Asset`: what requests name. pricingParam may be omitted in requests (Apple's own examples do). */
export interface FakeVppAssetRef {
  adamId: string
  pricingParam?: string
}
/** Apple's `ResponseAsset`. */
export interface FakeVppAsset {
  adamId: string
  pricingParam: PricingParam
  productType: 'App' | 'Book'
  assignedCount: number
  availableCount: number
  retiredCount: number
  totalCount: number
  deviceAssignable: boolean
  revocable: boolean
  supportedPlatforms: string[]
}
/** Apple's `Assignment` (exactly one of serialNumber / clientUserId), plus the fake's assignments version. */
export interface FakeVppAssignment {
  adamId: string
  pricingParam: PricingParam
  serialNumber?: string
  clientUserId?: string
  version: number
}
export interface FakeVppErrorInfo {
  assets?: Array<{ adamId: string; pricingParam: string }>
  serialNumbers?: string[]
  clientUserIds?: string[]
}
/** Apple's `ErrorResponse`. */
export interface FakeVppError {
  errorNumber: number
  errorMessage: string
  errorInfo?: FakeVppErrorInfo
}
/** One location (library), reached with one sToken. Every field may be changed by a test. */
export interface FakeVppLocation {
  /** The Bearer value: the .vpptoken file's contents, base64 of {"token","expDate","orgName"}. */
  sToken: string
  /** The `token` field inside the sToken; sending it as the Bearer value is refused with 9622. */
  innerToken: string
  orgName: string
  locationName: string
  uId: string
  countryISO2ACode: string
  defaultPlatform: 'volumestore' | 'enterprisestore'
  websiteURL: string
  expDate: Date
  revoked: boolean
  /** Set it to pretend another MDM has claimed the location (Apple echoes it in every answer). */
  mdmInfo?: MdmInfo
  /** v1's claim; echoed by GET/POST client/config only when a test sets it (unconfirmed for v2). */
  clientContext?: string
  notificationUrl?: string
  notificationAuthToken?: string
  subscribedNotificationTypes: string[]
  assets: FakeVppAsset[]
  assignments: FakeVppAssignment[]
  /** clientUserIds known as registered users; associating to any other user fails with 9609. */
  registeredUsers: Set<string>
  assetsVersion: number
  assignmentsVersion: number
}
export interface FakeVppEvent {
  eventId: string
  sToken: string
  eventType: 'ASSOCIATE' | 'DISASSOCIATE'
  eventStatus: 'PENDING' | 'COMPLETE' | 'FAILED'
  assets: Array<{ adamId: string; pricingParam: PricingParam }>
  serialNumbers: string[]
  clientUserIds: string[]
  numRequested: number
  numCompleted: number
  failures: FakeVppError[]
  /** Assignments the event made (ASSOCIATE) or removed (DISASSOCIATE), including no-op ones. */
  succeeded: Array<Omit<FakeVppAssignment, 'version'>>
  polls: number
  notified: boolean
}
export interface FakeVppRequest {
  method: string
  path: string // without the query, e.g. '/mdm/v2/assets'
  query: Record<string, string>
  body: unknown
  sToken: string | undefined
  status: number
  errorNumber?: number
}
export interface FakeVppDelivery {
  url: string
  authorization: string
  body: Record<string, unknown>
  status: number // 0 when the POST itself failed
}

export const DEFAULT_LIMITS = {
  maxAssets: 25,
  maxUsers: 100,
  maxNotificationLength: 512,
  maxRevokeClientUserIds: 100,
  maxClientUserIds: 1000,
  maxSerialNumbers: 1000,
  maxRevokeSerialNumbers: 100,
  maxRequestPerSecond: 15,
  maxSubscriptions: 25,
  maxSubscriptionClientUserIds: 1000,
  maxMdmNameLength: 100,
  maxMdmMetadataLength: 255,
  maxMdmIdLength: 100,
}
export type FakeVppLimits = typeof DEFAULT_LIMITS

export const NOTIFICATION_TYPES = ['ASSET_MANAGEMENT', 'USER_MANAGEMENT', 'USER_ASSOCIATED', 'ASSET_COUNT']
const ALL_NOTIFICATION_TYPES = [...NOTIFICATION_TYPES, 'SUBSCRIPTION_MANAGEMENT', 'SUBSCRIPTION_COUNT', 'UNLIMITED_ASSET']
export const isNotificationType = (v: unknown): boolean => typeof v === 'string' && ALL_NOTIFICATION_TYPES.includes(v)

/** errorNumber → [errorMessage, HTTP status], from "Handling error responses" (synchronous and asynchronous tables). */
export const ERRORS: Record<number, [string, number]> = {
  9601: ['Login required.', 401],
  9602: ['Invalid argument.', 400],
  9603: ['Internal error.', 500],
  9609: ['Unable to find the registered user.', 400],
  9621: [
    "The token has expired. You need to generate a new token online using your organization's account at either school.apple.com or business.apple.com.",
    401,
  ],
  // Not in the v2 table, but what Apple answers for an unknown sToken (legacy table; seen by Fleet and Zentral).
  9622: ['Invalid authentication token', 401],
  9625: ['The server has revoked the sToken.', 401],
  9644: ['The service is in maintenance mode. Try again later.', 503],
  9646: ['There are too many recent requests. Try again momentarily.', 429],
  9650: ['The provided page index must be greater than 0, and less than the total number of pages.', 400],
  9700: ['This request exceeds the maximum assets limit. Change the request to stay within the specified limit.', 400],
  9701: ['This request exceeds the maximum clientUserIds limit. Change the request to stay within the specified limit.', 400],
  9702: ['This request exceeds the maximum serialNumbers limit. Change the request to stay within the specified limit.', 400],
  9703: ['This request contains duplicate assets. Change the request to send unique assets.', 400],
  9704: ['This request contains duplicate clientUserIds. Change the request to send unique client IDs.', 400],
  9705: ['This request contains duplicate serialNumbers. Change the request to send unique serial numbers.', 400],
  9707: ["The asset in the request isn't device-assignable. Change the request to send device-assignable assets.", 400],
  9708: ['Unable to find eventId.', 400],
  9709: ["There aren't enough assets available to complete this association.", 400],
  9710: ['Both the notification URL and the authentication token are necessary.', 400],
  9711: ['Either the notification URL or the authentication token exceeds its maximum length. Change the request to stay within the specified limit.', 400],
  9712: ['The provided notification URL must be a valid URL and use HTTPS as the protocol.', 400],
  9713: ['The device management service metadata exceeds the maximum length. Change the request to stay within the specified limit.', 400],
  9718: ["This request doesn't contain an asset, which is a required argument. Change the request to provide an asset.", 400],
  9719: ['Either clientUserIds or serialNumbers are required arguments. Change the request to provide assignable users and devices.', 400],
  9721: ['This request contains an invalid version ID. Change the request to send the version ID from the read APIs.', 400],
  9722: [
    "This request contains an invalid authorization header. Change the request to send an authorization header that matches the format 'Bearer {sToken}'.",
    401,
  ],
  9723: ['You must provide a name, ID, and metadata when setting the device management information.', 400],
  9724: ['The device management ID exceeds the maximum length. Change the request to stay within the specified limit.', 400],
  9725: ['The device management name exceeds the maximum length. Change the request to stay within the specified limit.', 400],
  9726: ['This request contains an unsupported HTTP method for the requested endpoint.', 405],
  9727: ['This request contains an unsupported Content-Type for the requested endpoint.', 415],
  9728: ['The provided notification URL is unreachable.', 400],
  9729: ['The service is temporarily unavailable. Try again later.', 503],
}

export function vppError(errorNumber: number, errorInfo?: FakeVppErrorInfo): FakeVppError {
  const [errorMessage] = ERRORS[errorNumber] ?? ['Internal error.', 500]
  return errorInfo ? { errorNumber, errorMessage, errorInfo } : { errorNumber, errorMessage }
}

/** The contents of a .vpptoken file (what Apple calls the sToken): base64 of {"token","expDate","orgName"}. */
export function vppTokenFile(fields: { token: string; expDate: string; orgName: string }): string {
  return Buffer.from(JSON.stringify({ token: fields.token, expDate: fields.expDate, orgName: fields.orgName }), 'utf8').toString('base64')
}

/** Apple's date form: ISO-8601, UTC, no milliseconds, '+0000' (e.g. 2030-11-08T22:33:22+0000). */
export const appleDate = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, '+0000')

export const assetKey = (a: { adamId: string; pricingParam: string }): string => `${a.adamId}/${a.pricingParam}`

/** The location's asset a request names; a missing pricingParam prefers STDQ. */
export function findAsset(loc: FakeVppLocation, ref: FakeVppAssetRef): FakeVppAsset | undefined {
  const candidates = loc.assets.filter((a) => a.adamId === ref.adamId && (ref.pricingParam === undefined || a.pricingParam === ref.pricingParam))
  return candidates.find((a) => a.pricingParam === 'STDQ') ?? candidates[0]
}

export const sameTarget = (a: Omit<FakeVppAssignment, 'version'>, b: Omit<FakeVppAssignment, 'version'>): boolean =>
  a.adamId === b.adamId && a.pricingParam === b.pricingParam && a.serialNumber === b.serialNumber && a.clientUserId === b.clientUserId

/** Runs a PENDING event to its end: licence accounting, per-task failures, COMPLETE or FAILED. */
export function runEvent(loc: FakeVppLocation, event: FakeVppEvent, failSerials: Map<string, FakeVppError>): void {
  if (event.eventStatus !== 'PENDING') return
  const groups = new Map<string, FakeVppError>()
  const fail = (asset: { adamId: string; pricingParam: string }, target: { serialNumber?: string; clientUserId?: string }, error: FakeVppError): void => {
    const key = `${error.errorNumber}|${assetKey(asset)}`
    let group = groups.get(key)
    if (!group) {
      group = {
        errorNumber: error.errorNumber,
        errorMessage: error.errorMessage,
        errorInfo: { assets: [{ adamId: asset.adamId, pricingParam: asset.pricingParam }] },
      }
      groups.set(key, group)
    }
    const info = group.errorInfo as FakeVppErrorInfo
    if (target.serialNumber !== undefined) (info.serialNumbers ??= []).push(target.serialNumber)
    if (target.clientUserId !== undefined) (info.clientUserIds ??= []).push(target.clientUserId)
  }
  let changed = false
  // Keyed once per event, not searched per target: a bench assigns 10,000 serials at a time.
  const targetKey = (a: { adamId: string; pricingParam: string; serialNumber?: string; clientUserId?: string }) =>
    `${a.adamId}|${a.pricingParam}|${a.serialNumber ?? ''}|${a.clientUserId ?? ''}`
  const held = new Set(loc.assignments.map(targetKey))
  const removed = new Set<string>()
  for (const ref of event.assets) {
    const asset = findAsset(loc, ref)
    const targets: Array<{ serialNumber?: string; clientUserId?: string }> = [
      ...event.serialNumbers.map((serialNumber) => ({ serialNumber })),
      ...event.clientUserIds.map((clientUserId) => ({ clientUserId })),
    ]
    for (const target of targets) {
      const wanted = { adamId: ref.adamId, pricingParam: ref.pricingParam, ...target }
      const injected = target.serialNumber !== undefined ? failSerials.get(target.serialNumber) : undefined
      if (injected) {
        fail(ref, target, injected)
        continue
      }
      if (!asset) {
        fail(ref, target, vppError(9603))
        continue
      }
      const key = targetKey({ ...wanted, pricingParam: wanted.pricingParam })
      const index = held.has(key) ? 0 : -1
      if (event.eventType === 'ASSOCIATE') {
        if (target.clientUserId !== undefined && !loc.registeredUsers.has(target.clientUserId)) {
          fail(ref, target, vppError(9609))
          continue
        }
        if (index < 0) {
          if (asset.availableCount <= 0) {
            fail(ref, target, vppError(9709))
            continue
          }
          asset.availableCount--
          asset.assignedCount++
          loc.assignments.push({ ...wanted, version: loc.assignmentsVersion + 1 })
          held.add(key)
          changed = true
        }
      } else if (index >= 0) {
        held.delete(key)
        removed.add(key)
        asset.assignedCount--
        asset.availableCount++
        changed = true
      }
      event.succeeded.push(wanted)
      event.numCompleted++
    }
  }
  if (removed.size > 0) loc.assignments = loc.assignments.filter((a) => !removed.has(targetKey(a)))
  if (changed) {
    loc.assignmentsVersion++
    loc.assetsVersion++
  }
  event.failures = [...groups.values()]
  event.eventStatus = event.failures.length > 0 ? 'FAILED' : 'COMPLETE'
}

/** Apple's notification bodies for a finished event: SUCCESS batches, then one FAILURE batch per error, at most 100 assignments each. */
export function assetManagementNotifications(loc: FakeVppLocation, event: FakeVppEvent, newId: () => string): Array<Record<string, unknown>> {
  const batches: Array<{ assignments: Array<Record<string, string>>; error?: FakeVppError }> = []
  const chunk = <T>(list: T[]): T[][] => Array.from({ length: Math.ceil(list.length / 100) }, (_, i) => list.slice(i * 100, i * 100 + 100))
  const strip = (a: Omit<FakeVppAssignment, 'version'>): Record<string, string> => JSON.parse(JSON.stringify(a)) as Record<string, string>
  for (const part of chunk(event.succeeded)) batches.push({ assignments: part.map(strip) })
  for (const failure of event.failures) {
    const info = failure.errorInfo ?? {}
    const targets = [
      ...(info.serialNumbers ?? []).map((serialNumber) => ({ serialNumber })),
      ...(info.clientUserIds ?? []).map((clientUserId) => ({ clientUserId })),
    ]
    const failed = (info.assets ?? []).flatMap((asset) => targets.map((target) => ({ adamId: asset.adamId, pricingParam: asset.pricingParam, ...target })))
    for (const part of chunk(failed)) batches.push({ assignments: part, error: { errorMessage: failure.errorMessage, errorNumber: failure.errorNumber } })
  }
  return batches.map((batch) => ({
    notification: {
      assignments: batch.assignments,
      ...(batch.error ? { error: batch.error } : {}),
      eventId: event.eventId,
      result: batch.error ? 'FAILURE' : 'SUCCESS',
      type: event.eventType,
    },
    notificationId: newId(),
    notificationType: 'ASSET_MANAGEMENT',
    uId: loc.uId,
  }))
}

type Body = Record<string, unknown>
const stringList = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : undefined)
const hasDuplicates = (list: string[]): boolean => new Set(list).size !== list.length

/** The fields Apple adds to every authenticated answer. */
export const stamp = (loc: FakeVppLocation): Body => ({
  ...(loc.mdmInfo ? { mdmInfo: { ...loc.mdmInfo } } : {}),
  tokenExpirationDate: appleDate(loc.expDate),
  uId: loc.uId,
})

/** ClientConfigResponse (clientContext only when a test set one: unconfirmed that v2 echoes it). */
export const clientConfigBody = (loc: FakeVppLocation): Body => ({
  ...(loc.clientContext !== undefined ? { clientContext: loc.clientContext } : {}),
  countryISO2ACode: loc.countryISO2ACode,
  defaultPlatform: loc.defaultPlatform,
  locationName: loc.locationName,
  ...(loc.notificationAuthToken !== undefined ? { notificationAuthToken: loc.notificationAuthToken } : {}),
  ...(loc.notificationUrl !== undefined ? { notificationUrl: loc.notificationUrl } : {}),
  subscribedNotificationTypes: [...loc.subscribedNotificationTypes],
  ...stamp(loc),
  websiteURL: loc.websiteURL,
})

/** ServiceConfigResponse; `apiBase` ends with /mdm/v2. Only the URLs the fake serves are listed. */
export const serviceConfigBody = (apiBase: string, limits: FakeVppLimits): Body => ({
  errorCodes: Object.entries(ERRORS).map(([n, [errorMessage]]) => ({ errorMessage, errorNumber: Number(n) })),
  limits: { ...limits },
  notificationTypes: [...NOTIFICATION_TYPES],
  urls: Object.fromEntries(
    Object.entries({
      clientConfig: 'client/config',
      getAssignments: 'assignments',
      eventStatus: 'status',
      associateAssets: 'assets/associate',
      disassociateAssets: 'assets/disassociate',
      getAssets: 'assets',
    }).map(([key, path]) => [key, `${apiBase}/${path}`]),
  ),
})

const boolFilter = (q: URLSearchParams, name: string, value: boolean): boolean => !q.has(name) || q.get(name) === String(value)
const numFilter = (q: URLSearchParams, name: string, ok: (limit: number) => boolean): boolean => !q.has(name) || ok(Number(q.get(name)))
const eqFilter = (q: URLSearchParams, name: string, value: string | undefined): boolean => !q.has(name) || q.get(name) === value

/** Get Assets' filters. */
export const filterAssets = (loc: FakeVppLocation, q: URLSearchParams): FakeVppAsset[] =>
  loc.assets.filter(
    (a) =>
      eqFilter(q, 'adamId', a.adamId) &&
      eqFilter(q, 'pricingParam', a.pricingParam) &&
      eqFilter(q, 'productType', a.productType) &&
      boolFilter(q, 'revocable', a.revocable) &&
      boolFilter(q, 'deviceAssignable', a.deviceAssignable) &&
      numFilter(q, 'maxAvailableCount', (n) => a.availableCount <= n) &&
      numFilter(q, 'minAvailableCount', (n) => a.availableCount >= n) &&
      numFilter(q, 'maxAssignedCount', (n) => a.assignedCount <= n) &&
      numFilter(q, 'minAssignedCount', (n) => a.assignedCount >= n),
  )

export const versionId = (kind: 'assets' | 'assignments', loc: FakeVppLocation): string =>
  `${kind}-${loc.uId}-${kind === 'assets' ? loc.assetsVersion : loc.assignmentsVersion}`

/** Get Assignments' filters, sinceVersionId included (assignments made since; removals are not reported). */
export function filterAssignments(loc: FakeVppLocation, q: URLSearchParams): FakeVppAssignment[] | FakeVppError {
  let since = -1
  const sinceVersionId = q.get('sinceVersionId')
  if (sinceVersionId !== null) {
    const m = /^assignments-(.+)-(\d+)$/.exec(sinceVersionId)
    if (!m || m[1] !== loc.uId || Number(m[2]) > loc.assignmentsVersion) return vppError(9721)
    since = Number(m[2])
  }
  return loc.assignments.filter(
    (a) =>
      a.version > since &&
      eqFilter(q, 'adamId', a.adamId) &&
      eqFilter(q, 'pricingParam', a.pricingParam) &&
      eqFilter(q, 'serialNumber', a.serialNumber) &&
      eqFilter(q, 'clientUserId', a.clientUserId),
  )
}

/** ManageAssetsRequest checks, in the fake's order; the resolved request, or the synchronous error. */
export function validateManage(
  loc: FakeVppLocation,
  limits: FakeVppLimits,
  body: Body,
  eventType: FakeVppEvent['eventType'],
): Pick<FakeVppEvent, 'assets' | 'serialNumbers' | 'clientUserIds'> | FakeVppError {
  const refs = body['assets']
  if (!Array.isArray(refs) || refs.length === 0) return vppError(9718)
  if (!refs.every((r): r is FakeVppAssetRef => typeof r === 'object' && r !== null && typeof (r as Body)['adamId'] === 'string')) return vppError(9602)
  const serialNumbers = body['serialNumbers'] === undefined ? [] : stringList(body['serialNumbers'])
  const clientUserIds = body['clientUserIds'] === undefined ? [] : stringList(body['clientUserIds'])
  if (!serialNumbers || !clientUserIds) return vppError(9602)
  if (serialNumbers.length === 0 && clientUserIds.length === 0) return vppError(9719)
  if (refs.length > limits.maxAssets) return vppError(9700)
  if (clientUserIds.length > limits.maxClientUserIds) return vppError(9701)
  if (serialNumbers.length > limits.maxSerialNumbers) return vppError(9702)
  if (hasDuplicates(refs.map((r) => `${r.adamId}/${r.pricingParam ?? ''}`))) return vppError(9703)
  if (hasDuplicates(clientUserIds)) return vppError(9704)
  if (hasDuplicates(serialNumbers)) return vppError(9705)
  const unknown = refs.filter((r) => !findAsset(loc, r))
  if (unknown.length > 0) return vppError(9602, { assets: unknown.map((r) => ({ adamId: r.adamId, pricingParam: r.pricingParam ?? 'STDQ' })) })
  const assets = refs
    .map((r) => findAsset(loc, r) as FakeVppAsset)
    .map((a) => ({ adamId: a.adamId, pricingParam: a.pricingParam, deviceAssignable: a.deviceAssignable }))
  const notAssignable = assets.filter((a) => !a.deviceAssignable).map(({ adamId, pricingParam }) => ({ adamId, pricingParam }))
  if (eventType === 'ASSOCIATE' && serialNumbers.length > 0 && notAssignable.length > 0) return vppError(9707, { assets: notAssignable })
  return { assets: assets.map(({ adamId, pricingParam }) => ({ adamId, pricingParam })), serialNumbers, clientUserIds }
}

export interface ClientConfigChange {
  mdmInfo?: MdmInfo
  notificationTypes?: string[]
  notification?: { url: string; token: string }
}

/** ClientConfigRequest checks (all but the reachability of the URL); the change, or the synchronous error. */
export function validateClientConfig(body: Body, limits: FakeVppLimits, requireHttps: boolean): ClientConfigChange | FakeVppError {
  const change: ClientConfigChange = {}
  const mdmInfo = body['mdmInfo']
  if (mdmInfo !== undefined) {
    const m: Partial<Record<keyof MdmInfo, unknown>> = typeof mdmInfo === 'object' && mdmInfo !== null ? mdmInfo : {}
    if (typeof m.id !== 'string' || typeof m.name !== 'string' || typeof m.metadata !== 'string') return vppError(9723)
    if (m.id.length > limits.maxMdmIdLength) return vppError(9724)
    if (m.name.length > limits.maxMdmNameLength) return vppError(9725)
    if (m.metadata.length > limits.maxMdmMetadataLength) return vppError(9713)
    change.mdmInfo = { id: m.id, name: m.name, metadata: m.metadata }
  }
  const types = body['notificationTypes']
  if (types !== undefined) {
    if (!Array.isArray(types) || !types.every(isNotificationType)) return vppError(9602)
    change.notificationTypes = [...new Set(types as string[])]
  }
  const url = body['notificationUrl']
  const token = body['notificationAuthToken']
  if ((url === undefined) !== (token === undefined)) return vppError(9710)
  if (url === undefined) return change
  if (typeof url !== 'string' || typeof token !== 'string') return vppError(9602)
  if (url.length > limits.maxNotificationLength || token.length > limits.maxNotificationLength) return vppError(9711)
  let protocol: string
  try {
    protocol = new URL(url).protocol
  } catch {
    return vppError(9712)
  }
  if (protocol !== 'https:' && (requireHttps || protocol !== 'http:')) return vppError(9712)
  change.notification = { url, token }
  return change
}
