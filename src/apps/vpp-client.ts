// Client for Apple's Apps and Books for Organizations API, version 2 (`/mdm/v2/...`), with the
// location's sToken as bearer. 429 and 503 are retried after Retry-After (with a doubling
// backoff when Apple gives none); Apple's errorNumber becomes a VppError code the services
// store as the token's status.
// https://developer.apple.com/documentation/devicemanagement/app-and-book-management
// https://developer.apple.com/documentation/devicemanagement/handling-error-responses
import { setTimeout as delay } from 'node:timers/promises'
import { retryAfterSeconds } from '../retry-after.js'
import { appleDate } from './vpp-token-file.js'

/** Who manages the location: Apple keeps it with the location and echoes it in client config. */
export interface VppMdmInfo {
  id: string
  name: string
  metadata: string
}

export interface VppClientConfig {
  locationName: string | null
  uId: string | null
  countryCode: string | null
  tokenExpirationDate: Date | null
  mdmInfo: VppMdmInfo | null
  /** v1's claim, still echoed for locations a legacy server claimed. */
  clientContext: string | null
  notificationUrl: string | null
  /** Apple echoes the bearer value it sends with notifications. */
  notificationAuthToken: string | null
  /** The notification types Apple sends (its `subscribedNotificationTypes`). */
  notificationTypes: string[]
}

export interface VppAsset {
  adamId: string
  pricingParam: string
  productType: string
  totalCount: number
  assignedCount: number
  availableCount: number
  retiredCount: number
  deviceAssignable: boolean
  revocable: boolean
  supportedPlatforms: string[]
}

export interface VppAssignment {
  adamId: string
  pricingParam: string
  serialNumber: string | null
  clientUserId: string | null
}

export interface VppPage<T> {
  items: T[]
  /** null on the last page. */
  nextPageIndex: number | null
  totalPages: number
}

export interface VppFailure {
  errorNumber: number
  errorMessage: string
  serialNumbers: string[]
  assets: Array<{ adamId: string; pricingParam: string }>
}

export interface VppEventStatus {
  eventStatus: 'PENDING' | 'COMPLETE' | 'FAILED'
  eventType: string | null
  numRequested: number
  numCompleted: number
  failures: VppFailure[]
}

export interface VppServiceLimits {
  maxAssets: number
  maxSerialNumbers: number
  maxRevokeSerialNumbers: number
}

export type VppErrorCode =
  'token_expired' | 'token_revoked' | 'token_rejected' | 'throttled' | 'not_enough_licences' | 'bad_request' | 'server_error' | 'unreachable' | 'bad_response'

export class VppError extends Error {
  override readonly name = 'VppError'
  constructor(
    readonly code: VppErrorCode,
    message: string,
    readonly details: { status?: number; errorNumber?: number; retryAfterSeconds?: number } = {},
  ) {
    super(message)
  }
}

export interface VppClientOptions {
  /** Up to and including `/mdm/v2`. */
  baseUrl: string
  sToken: string
  timeoutMs?: number
  /** Attempts for 429/503, counting the first (default 4). */
  attempts?: number
  /** Injectable so tests do not wait on the wall clock. */
  sleep?: (ms: number) => Promise<void>
}

export interface VppClient {
  serviceLimits(): Promise<VppServiceLimits>
  clientConfig(): Promise<VppClientConfig>
  /** Claims the location for this installation (mdmInfo), optionally with a notification endpoint. */
  setClientConfig(config: {
    mdmInfo: VppMdmInfo
    notificationUrl?: string
    notificationAuthToken?: string
    notificationTypes?: string[]
  }): Promise<VppClientConfig>
  /** A page of the location's assets; `adamId` asks for that asset only. */
  assets(pageIndex: number, filter?: { adamId?: string }): Promise<VppPage<VppAsset>>
  assignments(pageIndex: number): Promise<VppPage<VppAssignment>>
  associate(assets: ReadonlyArray<{ adamId: string; pricingParam: string }>, serialNumbers: readonly string[]): Promise<string>
  disassociate(assets: ReadonlyArray<{ adamId: string; pricingParam: string }>, serialNumbers: readonly string[]): Promise<string>
  eventStatus(eventId: string): Promise<VppEventStatus>
  /** Requests sent so far, retries included. */
  requestsSent(): number
}

// Apple's v2 defaults, used when service config does not say.
const defaultLimits: VppServiceLimits = { maxAssets: 25, maxSerialNumbers: 1000, maxRevokeSerialNumbers: 100 }

const expiredNumbers = new Set([9621])
const revokedNumbers = new Set([9625])
const rejectedNumbers = new Set([9601, 9622, 9722])
const notEnoughNumbers = new Set([9709])

const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null)
const count = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0)

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new VppError('bad_response', `${what}: the answer is not a JSON object`)
  return value as Record<string, unknown>
}

function classify(status: number, body: unknown, retryAfter: number | null, what: string): VppError {
  const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {}
  const errorNumber = typeof fields['errorNumber'] === 'number' ? fields['errorNumber'] : undefined
  const message = text(fields['errorMessage']) ?? `HTTP ${status}`
  const details = { status, ...(errorNumber !== undefined ? { errorNumber } : {}), ...(retryAfter !== null ? { retryAfterSeconds: retryAfter } : {}) }
  const say = (meaning: string) => `${what}: ${meaning} (HTTP ${status}${errorNumber !== undefined ? `, Apple error ${errorNumber}` : ''}: ${message})`
  if (errorNumber !== undefined && expiredNumbers.has(errorNumber))
    return new VppError('token_expired', say('the content token expired: download a new one in Apple Business/School Manager and upload it'), details)
  if (errorNumber !== undefined && revokedNumbers.has(errorNumber))
    return new VppError('token_revoked', say('Apple revoked the content token: download a new one and upload it'), details)
  if ((errorNumber !== undefined && rejectedNumbers.has(errorNumber)) || status === 401 || status === 403)
    return new VppError('token_rejected', say('Apple refused the content token'), details)
  if (status === 429 || status === 503)
    return new VppError('throttled', say(`Apple asks to retry after ${retryAfter ?? 'a while'}${retryAfter !== null ? ' s' : ''}`), details)
  if (errorNumber !== undefined && notEnoughNumbers.has(errorNumber)) return new VppError('not_enough_licences', say('not enough licences'), details)
  if (status >= 500) return new VppError('server_error', say('Apple answered with a server error'), details)
  return new VppError('bad_request', say('Apple refused the request'), details)
}

function configOf(body: unknown): VppClientConfig {
  const config = object(body, 'client config')
  const info = config['mdmInfo']
  const mdmInfo =
    typeof info === 'object' && info !== null && typeof (info as VppMdmInfo).id === 'string'
      ? { id: (info as VppMdmInfo).id, name: String((info as VppMdmInfo).name ?? ''), metadata: String((info as VppMdmInfo).metadata ?? '') }
      : null
  return {
    locationName: text(config['locationName']),
    uId: text(config['uId']) ?? (typeof config['uId'] === 'number' ? String(config['uId']) : null),
    countryCode: text(config['countryISO2ACode']),
    tokenExpirationDate: appleDate(config['tokenExpirationDate']),
    mdmInfo,
    clientContext: text(config['clientContext']),
    notificationUrl: text(config['notificationUrl']),
    notificationAuthToken: text(config['notificationAuthToken']),
    notificationTypes: Array.isArray(config['subscribedNotificationTypes'])
      ? config['subscribedNotificationTypes'].filter((type): type is string => typeof type === 'string')
      : [],
  }
}

function pageOf<T>(body: unknown, key: string, what: string, read: (item: Record<string, unknown>) => T | null): VppPage<T> {
  const page = object(body, what)
  const list = page[key] ?? []
  if (!Array.isArray(list)) throw new VppError('bad_response', `${what}: ${key} is not an array`)
  const items: T[] = []
  for (const entry of list) {
    const item = read(object(entry, what))
    if (item !== null) items.push(item)
  }
  const next = page['nextPageIndex']
  return { items, nextPageIndex: typeof next === 'number' && Number.isInteger(next) && next >= 0 ? next : null, totalPages: count(page['totalPages']) }
}

function assetOf(item: Record<string, unknown>): VppAsset | null {
  const adamId = text(item['adamId']) ?? (typeof item['adamId'] === 'number' ? String(item['adamId']) : null)
  if (adamId === null || !/^\d{1,20}$/.test(adamId)) return null
  return {
    adamId,
    pricingParam: text(item['pricingParam']) ?? 'STDQ',
    productType: text(item['productType']) ?? 'App',
    totalCount: count(item['totalCount']),
    assignedCount: count(item['assignedCount']),
    availableCount: count(item['availableCount']),
    retiredCount: count(item['retiredCount']),
    deviceAssignable: item['deviceAssignable'] === true,
    revocable: item['revocable'] === true,
    supportedPlatforms: Array.isArray(item['supportedPlatforms']) ? item['supportedPlatforms'].filter((p): p is string => typeof p === 'string') : [],
  }
}

function assignmentOf(item: Record<string, unknown>): VppAssignment | null {
  const adamId = text(item['adamId']) ?? (typeof item['adamId'] === 'number' ? String(item['adamId']) : null)
  if (adamId === null || !/^\d{1,20}$/.test(adamId)) return null
  return { adamId, pricingParam: text(item['pricingParam']) ?? 'STDQ', serialNumber: text(item['serialNumber']), clientUserId: text(item['clientUserId']) }
}

function failureOf(value: unknown): VppFailure {
  const failure = object(value, 'event status failure')
  const info = typeof failure['errorInfo'] === 'object' && failure['errorInfo'] !== null ? (failure['errorInfo'] as Record<string, unknown>) : {}
  const serials = Array.isArray(info['serialNumbers']) ? info['serialNumbers'].filter((s): s is string => typeof s === 'string') : []
  const assets = Array.isArray(info['assets'])
    ? info['assets'].flatMap((a: unknown) => {
        const asset = typeof a === 'object' && a !== null ? (a as Record<string, unknown>) : {}
        const adamId = text(asset['adamId'])
        return adamId ? [{ adamId, pricingParam: text(asset['pricingParam']) ?? 'STDQ' }] : []
      })
    : []
  return {
    errorNumber: typeof failure['errorNumber'] === 'number' ? failure['errorNumber'] : 0,
    errorMessage: text(failure['errorMessage']) ?? 'unknown failure',
    serialNumbers: serials,
    assets,
  }
}

export function createVppClient(options: VppClientOptions): VppClient {
  const base = options.baseUrl.replace(/\/+$/, '')
  const timeoutMs = options.timeoutMs ?? 30_000
  const attempts = Math.max(1, options.attempts ?? 4)
  const sleep = options.sleep ?? ((ms: number) => delay(ms))
  let sent = 0

  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const what = `${method} ${path.split('?')[0]}`
    for (let attempt = 1; ; attempt++) {
      let response: Response
      sent++
      try {
        response = await fetch(`${base}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${options.sToken}`,
            accept: 'application/json',
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(timeoutMs),
        })
      } catch (error) {
        // Once more at once: a kept-alive connection the server closed while idle fails the
        // first request on it. Associating or disassociating twice is harmless at Apple (an
        // assignment that exists already counts as done).
        if (attempt === 1 && !(error instanceof Error && error.name === 'TimeoutError')) continue
        throw new VppError('unreachable', `${what}: Apple's Apps and Books service at ${base} is unreachable: ${(error as Error).message}`)
      }
      const raw = await response.text()
      let parsed: unknown = undefined
      try {
        parsed = raw === '' ? {} : JSON.parse(raw)
      } catch {
        parsed = undefined
      }
      if (response.status === 200) {
        if (parsed === undefined) throw new VppError('bad_response', `${what}: the answer is not JSON`)
        // Apple may answer 200 with an error body.
        if (typeof (parsed as { errorNumber?: unknown }).errorNumber === 'number') throw classify(400, parsed, null, what)
        return parsed
      }
      const retryAfter = retryAfterSeconds(response.headers.get('retry-after'), new Date())
      const error = classify(response.status, parsed, retryAfter, what)
      if (error.code !== 'throttled' || attempt >= attempts) throw error
      await sleep(retryAfter !== null ? retryAfter * 1000 : 1000 * 2 ** (attempt - 1))
    }
  }

  const eventIdOf = (body: unknown, what: string): string => {
    const id = object(body, what)['eventId']
    if (typeof id !== 'string' || id === '') throw new VppError('bad_response', `${what}: no eventId in the answer`)
    return id
  }

  return {
    async serviceLimits() {
      const config = object(await call('GET', '/service/config'), 'service config')
      const limits = typeof config['limits'] === 'object' && config['limits'] !== null ? (config['limits'] as Record<string, unknown>) : {}
      const pick = (key: keyof VppServiceLimits) => count(limits[key]) || defaultLimits[key]
      return { maxAssets: pick('maxAssets'), maxSerialNumbers: pick('maxSerialNumbers'), maxRevokeSerialNumbers: pick('maxRevokeSerialNumbers') }
    },
    async clientConfig() {
      return configOf(await call('GET', '/client/config'))
    },
    async setClientConfig(config) {
      return configOf(await call('POST', '/client/config', config))
    },
    async assets(pageIndex, filter = {}) {
      const only = filter.adamId !== undefined ? `&adamId=${encodeURIComponent(filter.adamId)}` : ''
      return pageOf(await call('GET', `/assets?pageIndex=${pageIndex}${only}`), 'assets', 'GET /assets', assetOf)
    },
    async assignments(pageIndex) {
      return pageOf(await call('GET', `/assignments?pageIndex=${pageIndex}`), 'assignments', 'GET /assignments', assignmentOf)
    },
    async associate(assets, serialNumbers) {
      return eventIdOf(await call('POST', '/assets/associate', { assets, serialNumbers }), 'POST /assets/associate')
    },
    async disassociate(assets, serialNumbers) {
      return eventIdOf(await call('POST', '/assets/disassociate', { assets, serialNumbers }), 'POST /assets/disassociate')
    },
    async eventStatus(eventId) {
      const status = object(await call('GET', `/status?eventId=${encodeURIComponent(eventId)}`), 'GET /status')
      const eventStatus = status['eventStatus']
      if (eventStatus !== 'PENDING' && eventStatus !== 'COMPLETE' && eventStatus !== 'FAILED')
        throw new VppError('bad_response', 'GET /status: unknown eventStatus')
      return {
        eventStatus,
        eventType: text(status['eventType']),
        numRequested: count(status['numRequested']),
        numCompleted: count(status['numCompleted']),
        failures: Array.isArray(status['failures']) ? status['failures'].map(failureOf) : [],
      }
    },
    requestsSent: () => sent,
  }
}
