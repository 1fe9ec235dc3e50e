// Client for Apple's device assignment (DEP) API of Apple Business/School Manager: OAuth 1.0a
// `/session`, then JSON calls carrying `X-ADM-Auth-Session`. A 401 (or the 403 "FORBIDDEN"
// some servers answer for a dead session) re-runs `/session` once and retries; a session
// Apple rotates in a response header is used from then on. Apple's error strings become
// AbmError codes that the sync service stores as the token's status.
// https://developer.apple.com/documentation/devicemanagement/device-assignment
import { retryAfterSeconds } from '../retry-after.js'
import { oauth1Authorization, type OAuth1Credentials } from './oauth1.js'

/** X-Server-Protocol-Version: 3 adds op_type/op_date to sync and the newer profile keys. */
const protocolVersion = '3'

export interface AbmDevice {
  serial_number: string
  model?: string
  description?: string
  color?: string
  asset_tag?: string
  os?: string
  device_family?: string
  profile_status?: string
  profile_uuid?: string
  profile_assign_time?: string
  profile_push_time?: string
  device_assigned_date?: string
  device_assigned_by?: string
  op_type?: 'added' | 'modified' | 'deleted'
  op_date?: string
  [key: string]: unknown
}

export interface AbmDevicePage {
  devices: AbmDevice[]
  cursor: string
  fetchedUntil: string | null
  moreToFollow: boolean
}

export type AbmAssignStatus = 'SUCCESS' | 'NOT_ACCESSIBLE' | 'FAILED' | 'THROTTLED'

export interface AbmAssignResult {
  profileUuid: string | null
  devices: Record<string, string>
  retryAfterSeconds: number | null
}

/**
 * POST /device/activationlock: organization-linked Activation Lock of one device. Apple's
 * response_status: SUCCESS, NOT_ACCESSIBLE, ORG_NOT_SUPPORTED, DEVICE_NOT_SUPPORTED,
 * DEVICE_ALREADY_LOCKED or FAILED (retry, then Apple support).
 * https://developer.apple.com/documentation/devicemanagement/activation-lock-devices
 */
export interface AbmActivationLockRequest {
  /** The serial number. */
  device: string
  /** Hex PBKDF2 hash of a server-created bypass code (src/crypto/bypass-code.ts). */
  escrow_key?: string
  lost_message?: string
}

export interface AbmAccount {
  server_name?: string
  server_uuid?: string
  org_name?: string
  [key: string]: unknown
}

export type AbmErrorCode =
  | 'terms_not_signed'
  | 'token_rejected'
  | 'token_expired'
  | 'expired_cursor'
  | 'invalid_cursor'
  | 'exhausted_cursor'
  | 'throttled'
  | 'bad_request'
  | 'server_error'
  | 'unreachable'
  | 'bad_response'

export class AbmError extends Error {
  override readonly name = 'AbmError'
  constructor(
    readonly code: AbmErrorCode,
    message: string,
    readonly details: { status?: number; appleCode?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message)
  }
}

export interface AbmClientOptions {
  baseUrl: string
  credentials: () => Promise<OAuth1Credentials>
  /** Per-request timeout. */
  timeoutMs?: number
  now?: () => Date
}

export interface AbmClient {
  account(): Promise<AbmAccount>
  fetchDevices(cursor: string | null, limit: number): Promise<AbmDevicePage>
  syncDevices(cursor: string, limit: number): Promise<AbmDevicePage>
  deviceDetails(serials: readonly string[]): Promise<Record<string, AbmDevice>>
  defineProfile(profile: Record<string, unknown>): Promise<{ profileUuid: string; devices: Record<string, string> }>
  getProfile(profileUuid: string): Promise<Record<string, unknown>>
  assignProfile(profileUuid: string, serials: readonly string[]): Promise<AbmAssignResult>
  removeProfile(serials: readonly string[]): Promise<Record<string, string>>
  disownDevices(serials: readonly string[]): Promise<Record<string, string>>
  activationLock(request: AbmActivationLockRequest): Promise<{ serialNumber: string; status: string }>
  /** Successful `/session` calls so far (sessions are reused between calls). */
  sessionsStarted(): number
}

/** Apple's error bodies are bare strings (`EXPIRED_CURSOR`), sometimes quoted or JSON. */
function appleErrorCode(body: string): string {
  const match = /[A-Z][A-Z0-9_]{2,}/.exec(body)
  return match ? match[0] : body.trim().slice(0, 100)
}

function classify(status: number, body: string, retryAfter: number | null, what: string): AbmError {
  const appleCode = appleErrorCode(body)
  const details = { status, appleCode, ...(retryAfter !== null ? { retryAfterSeconds: retryAfter } : {}) }
  const say = (text: string) => `${what}: ${text} (HTTP ${status}${appleCode ? ` ${appleCode}` : ''})`
  if (status === 403 && appleCode === 'T_C_NOT_SIGNED')
    return new AbmError('terms_not_signed', say('the Terms and Conditions in Apple Business/School Manager must be accepted by an administrator'), details)
  if (appleCode === 'EXPIRED_CURSOR') return new AbmError('expired_cursor', say('the sync cursor expired (older than 7 days)'), details)
  if (appleCode === 'INVALID_CURSOR') return new AbmError('invalid_cursor', say('Apple does not know the cursor'), details)
  if (appleCode === 'EXHAUSTED_CURSOR') return new AbmError('exhausted_cursor', say('the full fetch is complete'), details)
  if (status === 429 || status === 503)
    return new AbmError('throttled', say(`Apple asks to retry after ${retryAfter ?? 'a while'}${retryAfter !== null ? ' s' : ''}`), details)
  if (appleCode === 'TOKEN_EXPIRED' || appleCode === 'ACCESS_DENIED_TOKEN_EXPIRED')
    return new AbmError('token_expired', say('the server token expired: download a new one from Apple Business/School Manager'), details)
  if (status === 401 || status === 403)
    return new AbmError('token_rejected', say('Apple refused the server token: upload a new one from Apple Business/School Manager'), details)
  if (status >= 500) return new AbmError('server_error', say('Apple answered with a server error'), details)
  return new AbmError('bad_request', say('Apple refused the request'), details)
}

function requireObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AbmError('bad_response', `${what}: the answer is not a JSON object`)
  return value as Record<string, unknown>
}

function stringMap(value: unknown, what: string): Record<string, string> {
  const map = requireObject(value ?? {}, what)
  const out: Record<string, string> = {}
  for (const [serial, status] of Object.entries(map)) out[serial] = typeof status === 'string' ? status : JSON.stringify(status)
  return out
}

function devicePage(body: unknown, what: string): AbmDevicePage {
  const page = requireObject(body, what)
  const devices = page['devices'] ?? []
  if (!Array.isArray(devices)) throw new AbmError('bad_response', `${what}: devices is not an array`)
  for (const device of devices) {
    if (typeof (device as AbmDevice | null)?.serial_number !== 'string') throw new AbmError('bad_response', `${what}: a device has no serial_number`)
  }
  if (typeof page['cursor'] !== 'string') throw new AbmError('bad_response', `${what}: the answer has no cursor`)
  return {
    devices: devices as AbmDevice[],
    cursor: page['cursor'],
    fetchedUntil: typeof page['fetched_until'] === 'string' ? page['fetched_until'] : null,
    moreToFollow: page['more_to_follow'] === true,
  }
}

export function createAbmClient(options: AbmClientOptions): AbmClient {
  const base = options.baseUrl.replace(/\/+$/, '')
  const timeoutMs = options.timeoutMs ?? 30_000
  const now = options.now ?? (() => new Date())
  let session: string | null = null
  let sessions = 0

  async function send(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Response> {
    try {
      return await fetch(`${base}${path}`, {
        method,
        headers: {
          'x-server-protocol-version': protocolVersion,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json;charset=UTF8' } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      })
    } catch (error) {
      throw new AbmError('unreachable', `${method} ${path}: Apple's DEP service at ${base} is unreachable: ${(error as Error).message}`)
    }
  }

  async function startSession(): Promise<string> {
    const url = `${base}/session`
    const authorization = oauth1Authorization('GET', url, await options.credentials(), { realm: 'ADM', timestamp: Math.floor(now().getTime() / 1000) })
    const response = await send('GET', '/session', { authorization })
    const text = await response.text()
    if (response.status !== 200) {
      const error = classify(response.status, text, retryAfterSeconds(response.headers.get('retry-after'), now()), 'GET /session')
      // Any refusal of the OAuth request itself means the token's credentials do not work.
      if (error.code === 'bad_request' && (response.status === 400 || response.status === 401))
        throw new AbmError('token_rejected', error.message, error.details)
      throw error
    }
    let token: unknown
    try {
      token = (JSON.parse(text) as { auth_session_token?: unknown }).auth_session_token
    } catch {
      token = undefined
    }
    if (typeof token !== 'string' || token === '') throw new AbmError('bad_response', 'GET /session: no auth_session_token in the answer')
    sessions++
    return token
  }

  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    const what = `${method} ${path.split('?')[0]}`
    for (let attempt = 1; ; attempt++) {
      if (session === null) session = await startSession()
      const used = session
      const response = await send(method, path, { 'x-adm-auth-session': used }, body)
      const rotated = response.headers.get('x-adm-auth-session')
      if (rotated && rotated !== used) session = rotated
      const text = await response.text()
      const deadSession = response.status === 401 || (response.status === 403 && appleErrorCode(text) === 'FORBIDDEN')
      if (deadSession && attempt === 1) {
        if (session === used) session = null
        continue
      }
      if (response.status !== 200) throw classify(response.status, text, retryAfterSeconds(response.headers.get('retry-after'), now()), what)
      if (text === '') return {}
      try {
        return JSON.parse(text) as unknown
      } catch {
        throw new AbmError('bad_response', `${what}: the answer is not JSON`)
      }
    }
  }

  return {
    async account() {
      return requireObject(await call('GET', '/account'), 'GET /account')
    },
    async fetchDevices(cursor, limit) {
      return devicePage(await call('POST', '/server/devices', { limit, ...(cursor ? { cursor } : {}) }), 'POST /server/devices')
    },
    async syncDevices(cursor, limit) {
      return devicePage(await call('POST', '/devices/sync', { cursor, limit }), 'POST /devices/sync')
    },
    async deviceDetails(serials) {
      const answer = requireObject(await call('POST', '/devices', { devices: serials }), 'POST /devices')
      return requireObject(answer['devices'] ?? {}, 'POST /devices') as Record<string, AbmDevice>
    },
    async defineProfile(profile) {
      const answer = requireObject(await call('POST', '/profile', profile), 'POST /profile')
      if (typeof answer['profile_uuid'] !== 'string' || answer['profile_uuid'] === '')
        throw new AbmError('bad_response', 'POST /profile: no profile_uuid in the answer')
      return { profileUuid: answer['profile_uuid'], devices: stringMap(answer['devices'], 'POST /profile') }
    },
    async getProfile(profileUuid) {
      return requireObject(await call('GET', `/profile?profile_uuid=${encodeURIComponent(profileUuid)}`), 'GET /profile')
    },
    async assignProfile(profileUuid, serials) {
      const answer = requireObject(await call('PUT', '/profile/devices', { profile_uuid: profileUuid, devices: serials }), 'PUT /profile/devices')
      const retry = answer['retry_after_seconds']
      return {
        profileUuid: typeof answer['profile_uuid'] === 'string' ? answer['profile_uuid'] : null,
        devices: stringMap(answer['devices'], 'PUT /profile/devices'),
        retryAfterSeconds: typeof retry === 'number' && Number.isFinite(retry) && retry >= 0 ? retry : null,
      }
    },
    async removeProfile(serials) {
      return stringMap(
        requireObject(await call('DELETE', '/profile/devices', { devices: serials }), 'DELETE /profile/devices')['devices'],
        'DELETE /profile/devices',
      )
    },
    async disownDevices(serials) {
      return stringMap(requireObject(await call('POST', '/devices/disown', { devices: serials }), 'POST /devices/disown')['devices'], 'POST /devices/disown')
    },
    async activationLock(request) {
      const answer = requireObject(await call('POST', '/device/activationlock', request), 'POST /device/activationlock')
      const status = answer['response_status']
      if (typeof status !== 'string' || status === '') throw new AbmError('bad_response', 'POST /device/activationlock: no response_status in the answer')
      return { serialNumber: typeof answer['serial_number'] === 'string' ? answer['serial_number'] : request.device, status }
    },
    sessionsStarted: () => sessions,
  }
}
