// A fake Apple Automated Device Enrollment (ABM/ASM "DEP") server for tests: plain HTTP on
// loopback, speaking the wire protocol of https://mdmenrollment.apple.com as Apple documents it
// (https://developer.apple.com/documentation/devicemanagement/device-assignment) (OAuth 1.0a HMAC-SHA1 on GET /session, X-ADM-Auth-Session
// on everything else, plain-string error bodies like Apple's). Deterministic: no timers; the
// clock is injectable and cursors carry their issue time.
//
// Choices worth knowing:
// - POST /devices answers unknown serials as {serial_number, response_status: "NOT_FOUND"};
//   known serials are answered with the plain Device.
// - Cursors are base64url JSON {i: fake id, n: cursor number, t: issued ms, k: fetch|sync,
//   p: last serial fetched, s: sync-event sequence, d: fetch complete}. A cursor from another
//   fake, or garbled, is INVALID_CURSOR. TTL and expireCursors() apply to fetch and sync.
//   A sync cursor given to fetch, or the final fetch cursor, is EXHAUSTED_CURSOR.
// - Per-serial outcomes: throttleSerials (assign/define only) beat failSerials, which beat
//   "not in the org" (NOT_ACCESSIBLE).
// - With rotateSessions every authenticated 2xx answer carries a new X-ADM-Auth-Session and
//   the session used for that request stops working.
// - failNext() matches the path without its query string and fires before any other check.
// - access_token_expiry is not enforced; use rejectToken to make /session refuse the token.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { activationLockRoute, type FakeActivationLock } from './fake-abm-activation-lock.js'

export interface FakeAbmCredentials {
  consumer_key: string
  consumer_secret: string
  access_token: string
  access_secret: string
  access_token_expiry: string
}
export interface FakeAbmDevice {
  serial_number: string
  model: string
  description: string
  color: string
  asset_tag?: string
  os: string
  device_family: string
  profile_status: 'empty' | 'assigned' | 'pushed' | 'removed'
  profile_uuid?: string
  profile_assign_time?: string
  profile_push_time?: string
  device_assigned_date: string
  device_assigned_by: string
}
export interface FakeAbmRequest {
  method: string
  path: string
  body: unknown
  session: string | undefined
  status: number
}
export interface FakeAbmOptions {
  credentials?: Partial<FakeAbmCredentials>
  now?: () => Date
  cursorTtlMs?: number
  rotateSessions?: boolean
  serverName?: string
  orgName?: string
}
export interface FakeAbm {
  url: string // 'http://127.0.0.1:<port>' (no trailing slash)
  credentials: FakeAbmCredentials // random unless given
  devices: Map<string, FakeAbmDevice>
  profiles: Map<string, Record<string, unknown>>
  requests: FakeAbmRequest[] // every request answered, in order
  termsNotSigned: boolean
  rejectToken: boolean
  throttleSerials: Set<string>
  failSerials: Set<string>
  /** Organization-linked Activation Locks (POST /device/activationlock), by serial; delete one to turn it off as ABM's portal does. */
  activationLocks: Map<string, FakeActivationLock>
  retryAfterSeconds: number
  /** Adds devices (generated serials when given a count: 'FAKE' + zero-padded index, iPad models), records 'added' events. Returns them. */
  addDevices(countOrDevices: number | Array<Partial<FakeAbmDevice> & { serial_number: string }>): FakeAbmDevice[]
  modifyDevice(serial: string, changes: Partial<FakeAbmDevice>): void // records 'modified'
  removeDevice(serial: string): void // records 'deleted' (as if unassigned from this MDM server in ABM)
  failNext(path: string, failure: { status: number; body: string; headers?: Record<string, string> }): void
  expireCursors(): void
  /** Invalidates every session (next call gets 401 and must re-run /session). */
  expireSessions(): void
  /** Count of successful GET /session calls. */
  sessionsIssued(): number
  close(): Promise<void>
}

type OpType = 'added' | 'modified' | 'deleted'
interface SyncEvent {
  seq: number
  op_type: OpType
  op_date: string
  device: FakeAbmDevice
}
interface Cursor {
  i: string
  n: number
  t: number
  k: 'fetch' | 'sync'
  p: string
  s: number
  d: boolean
}
interface Reply {
  status: number
  body: unknown
  headers?: Record<string, string>
}
type Body = Record<string, unknown>
type Handler = (body: Body, url: URL) => Reply

const DEFAULT_LIMIT = 100
const MAX_LIMIT = 1000
const TIMESTAMP_SKEW_S = 300

const fail = (code: string, status = 400): Reply => ({ status, body: code })
const ok = (body: unknown): Reply => ({ status: 200, body })

/** RFC 3986 percent-encoding as RFC 5849 §3.6 wants it (unreserved characters kept). */
function pct(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

/** The body's `devices` as a list of serials, or undefined when it is not a non-empty string array. */
function serialList(body: Body): string[] | undefined {
  const list = body['devices']
  if (!Array.isArray(list) || list.length === 0 || !list.every((s): s is string => typeof s === 'string')) return undefined
  return list
}

export async function startFakeAbm(options: FakeAbmOptions = {}): Promise<FakeAbm> {
  const now = options.now ?? (() => new Date())
  const cursorTtlMs = options.cursorTtlMs ?? 7 * 24 * 3600 * 1000
  const instanceId = randomBytes(6).toString('hex')
  const serverUuid = randomUUID().toUpperCase()
  const sessions = new Set<string>()
  const nonces = new Set<string>()
  const events: SyncEvent[] = []
  const failures = new Map<string, Reply[]>()
  let issued = 0
  let nextCursor = 0
  let firstValidCursor = 0
  let generated = 0

  const credentials: FakeAbmCredentials = {
    consumer_key: `CK_${randomBytes(16).toString('hex')}`,
    consumer_secret: `CS_${randomBytes(16).toString('hex')}`,
    access_token: `AT_${randomBytes(24).toString('hex')}`,
    access_secret: `AS_${randomBytes(16).toString('hex')}`,
    access_token_expiry: new Date(now().getTime() + 365 * 24 * 3600 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    ...options.credentials,
  }

  const record = (op_type: OpType, device: FakeAbmDevice): void => {
    events.push({ seq: events.length + 1, op_type, op_date: now().toISOString(), device: { ...device } })
  }
  const currentSeq = (): number => events.length

  const encodeCursor = (c: Omit<Cursor, 'i' | 'n' | 't'>): string =>
    Buffer.from(JSON.stringify({ i: instanceId, n: nextCursor++, t: now().getTime(), ...c })).toString('base64url')

  /** The cursor, or an error reply. */
  const decodeCursor = (value: unknown): Cursor | Reply => {
    let c: Partial<Cursor>
    try {
      if (typeof value !== 'string' || value === '') throw new Error('not a cursor')
      c = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Partial<Cursor>
    } catch {
      return fail('INVALID_CURSOR')
    }
    if (
      typeof c !== 'object' ||
      c === null ||
      c.i !== instanceId ||
      typeof c.n !== 'number' ||
      c.n >= nextCursor ||
      typeof c.t !== 'number' ||
      (c.k !== 'fetch' && c.k !== 'sync') ||
      typeof c.p !== 'string' ||
      typeof c.s !== 'number' ||
      typeof c.d !== 'boolean'
    )
      return fail('INVALID_CURSOR')
    if (c.n < firstValidCursor || now().getTime() - c.t > cursorTtlMs) return fail('EXPIRED_CURSOR')
    return c as Cursor
  }

  /** The request's limit clamped to [1, 1000], or undefined when it is not a number. */
  const limitOf = (body: Body): number | undefined => {
    const limit = body['limit'] ?? DEFAULT_LIMIT
    if (typeof limit !== 'number' || !Number.isFinite(limit)) return undefined
    return Math.min(MAX_LIMIT, Math.max(1, Math.floor(limit)))
  }

  const serialStatus = (serial: string, throttle: boolean): string => {
    if (throttle && fake.throttleSerials.has(serial)) return 'THROTTLED'
    if (fake.failSerials.has(serial)) return 'FAILED'
    return fake.devices.has(serial) ? 'SUCCESS' : 'NOT_ACCESSIBLE'
  }

  /** Assigns the profile to the serials; the per-serial statuses, plus retry_after_seconds when any was throttled. */
  const assignProfile = (profileUuid: string, serials: string[]): { devices: Record<string, string>; retry_after_seconds?: number } => {
    const statuses: Record<string, string> = {}
    for (const serial of serials) {
      const status = serialStatus(serial, true)
      statuses[serial] = status
      const device = fake.devices.get(serial)
      if (status !== 'SUCCESS' || !device) continue
      device.profile_uuid = profileUuid
      device.profile_status = 'assigned'
      device.profile_assign_time = now().toISOString()
      record('modified', device)
    }
    const throttled = Object.values(statuses).includes('THROTTLED')
    return throttled ? { devices: statuses, retry_after_seconds: fake.retryAfterSeconds } : { devices: statuses }
  }

  const deviceWithOp = (e: SyncEvent): Record<string, unknown> => ({ ...e.device, op_type: e.op_type, op_date: e.op_date })

  const accountUrls = [
    ['/session', 'GET'],
    ['/account', 'GET'],
    ['/server/devices', 'POST'],
    ['/devices/sync', 'POST'],
    ['/devices', 'POST'],
    ['/devices/disown', 'POST'],
    ['/profile', 'POST'],
    ['/profile', 'GET'],
    ['/profile/devices', 'POST'],
    ['/profile/devices', 'PUT'],
    ['/profile/devices', 'DELETE'],
    ['/device/activationlock', 'POST'],
  ].map(([uri, method]) => ({
    uri,
    http_method: [method],
    limit: uri === '/server/devices' || uri === '/devices/sync' ? { default: DEFAULT_LIMIT, maximum: MAX_LIMIT } : { default: MAX_LIMIT, maximum: MAX_LIMIT },
  }))

  const assignHandler: Handler = (body) => {
    const profileUuid = body['profile_uuid']
    if (typeof profileUuid !== 'string' || !fake.profiles.has(profileUuid)) return fail('PROFILE_NOT_FOUND')
    const serials = serialList(body)
    if (!serials) return fail('DEVICE_ID_REQUIRED')
    return ok({ profile_uuid: profileUuid, ...assignProfile(profileUuid, serials) })
  }

  const routes = new Map<string, Handler>([
    [
      'GET /account',
      () =>
        ok({
          server_name: options.serverName ?? 'Orchard Test MDM',
          server_uuid: serverUuid,
          admin_id: 'admin@example.org',
          facilitator_id: 'facilitator@example.org',
          org_name: options.orgName ?? 'Example Org',
          org_email: 'it@example.org',
          org_phone: '+1 555 0100',
          org_address: '1 Example Way, Cupertino, CA 95014, USA',
          org_id: '1234567',
          org_id_hash: createHash('sha256').update(instanceId).digest('hex'),
          org_type: 'org',
          org_version: 'v2',
          urls: accountUrls,
        }),
    ],
    [
      'POST /server/devices',
      (body) => {
        const limit = limitOf(body)
        if (limit === undefined) return fail('MALFORMED_REQUEST_BODY')
        let after = ''
        let seq = currentSeq()
        if (body['cursor'] !== undefined) {
          const cursor = decodeCursor(body['cursor'])
          if (!('k' in cursor)) return cursor
          if (cursor.k === 'sync' || cursor.d) return fail('EXHAUSTED_CURSOR')
          after = cursor.p
          seq = cursor.s
        }
        const remaining = [...fake.devices.keys()].filter((serial) => serial > after).sort()
        const page = remaining.slice(0, limit)
        const more = remaining.length > page.length
        const devices = page.map((serial) => ({ ...fake.devices.get(serial) }))
        return ok({
          devices,
          cursor: encodeCursor({ k: 'fetch', p: page.at(-1) ?? after, s: seq, d: !more }),
          fetched_until: now().toISOString(),
          more_to_follow: more,
        })
      },
    ],
    [
      'POST /devices/sync',
      (body) => {
        if (body['cursor'] === undefined || body['cursor'] === '') return fail('CURSOR_REQUIRED')
        const limit = limitOf(body)
        if (limit === undefined) return fail('MALFORMED_REQUEST_BODY')
        const cursor = decodeCursor(body['cursor'])
        if (!('k' in cursor)) return cursor
        const pending = events.slice(cursor.s)
        const page = pending.slice(0, limit)
        const more = pending.length > page.length
        const seq = page.at(-1)?.seq ?? cursor.s
        return ok({
          devices: page.map(deviceWithOp),
          cursor: encodeCursor({ k: 'sync', p: '', s: seq, d: !more }),
          fetched_until: now().toISOString(),
          more_to_follow: more,
        })
      },
    ],
    [
      'POST /devices',
      (body) => {
        const serials = serialList(body)
        if (!serials) return fail('DEVICE_ID_REQUIRED')
        const devices: Record<string, unknown> = {}
        for (const serial of serials) {
          const device = fake.devices.get(serial)
          devices[serial] = device ? { ...device } : { serial_number: serial, response_status: 'NOT_FOUND' }
        }
        return ok({ devices })
      },
    ],
    [
      'POST /devices/disown',
      (body) => {
        const serials = serialList(body)
        if (!serials) return fail('DEVICE_ID_REQUIRED')
        const devices: Record<string, string> = {}
        for (const serial of serials) {
          devices[serial] = serialStatus(serial, false)
          if (devices[serial] === 'SUCCESS') fake.removeDevice(serial)
        }
        return ok({ devices })
      },
    ],
    [
      'POST /profile',
      (body) => {
        if (typeof body['profile_name'] !== 'string' || body['profile_name'] === '') return fail('CONFIG_NAME_REQUIRED')
        if (typeof body['url'] !== 'string' || body['url'] === '') return fail('CONFIG_URL_REQUIRED')
        const serials = body['devices'] === undefined ? [] : serialList(body)
        if (!serials) return fail('MALFORMED_REQUEST_BODY')
        const profileUuid = randomBytes(16).toString('hex').toUpperCase()
        const { devices: _devices, ...profile } = body
        fake.profiles.set(profileUuid, { ...profile, profile_uuid: profileUuid })
        return ok({ profile_uuid: profileUuid, ...assignProfile(profileUuid, serials) })
      },
    ],
    [
      'GET /profile',
      (_body, url) => {
        const profile = fake.profiles.get(url.searchParams.get('profile_uuid') ?? '')
        return profile ? ok(profile) : fail('PROFILE_NOT_FOUND')
      },
    ],
    ['POST /profile/devices', assignHandler],
    ['POST /device/activationlock', (body) => activationLockRoute({ ...fake, now })(body)],
    ['PUT /profile/devices', assignHandler],
    [
      'DELETE /profile/devices',
      (body) => {
        const serials = serialList(body)
        if (!serials) return fail('DEVICE_ID_REQUIRED')
        const devices: Record<string, string> = {}
        for (const serial of serials) {
          const status = serialStatus(serial, false)
          devices[serial] = status
          const device = fake.devices.get(serial)
          if (status !== 'SUCCESS' || !device) continue
          delete device.profile_uuid
          device.profile_status = 'removed'
          record('modified', device)
        }
        return ok({ devices })
      },
    ],
  ])

  /** GET /session: checks the OAuth 1.0a HMAC-SHA1 signature (RFC 5849 §3.4). */
  const session = (req: IncomingMessage, url: URL): Reply => {
    const unauthorized = fail('{"error":"unauthorized"}', 401)
    if (fake.rejectToken) return fail('UNAUTHORIZED', 401)
    const header = req.headers.authorization ?? ''
    if (!/^OAuth\s/i.test(header)) return unauthorized
    const params = new Map<string, string>()
    try {
      for (const m of header.slice(6).matchAll(/([A-Za-z0-9_.~%-]+)\s*=\s*"([^"]*)"/g)) {
        const name = decodeURIComponent(m[1] ?? '')
        if (params.has(name)) return unauthorized
        params.set(name, decodeURIComponent(m[2] ?? ''))
      }
    } catch {
      return unauthorized
    }
    const timestamp = params.get('oauth_timestamp') ?? ''
    const nonce = params.get('oauth_nonce') ?? ''
    const signature = params.get('oauth_signature') ?? ''
    if (
      params.get('oauth_consumer_key') !== credentials.consumer_key ||
      params.get('oauth_token') !== credentials.access_token ||
      params.get('oauth_signature_method') !== 'HMAC-SHA1' ||
      (params.get('oauth_version') ?? '1.0') !== '1.0' ||
      !/^\d+$/.test(timestamp) ||
      Math.abs(now().getTime() / 1000 - Number(timestamp)) > TIMESTAMP_SKEW_S ||
      nonce === '' ||
      nonces.has(nonce)
    )
      return unauthorized
    const pairs = [...params]
      .filter(([name]) => name !== 'oauth_signature' && name !== 'realm')
      .concat([...url.searchParams])
      .map(([name, value]) => [pct(name), pct(value)] as const)
      .sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    const host = (req.headers.host ?? '').toLowerCase().replace(/:80$/, '')
    const base = ['GET', pct(`http://${host}${url.pathname}`), pct(pairs.map(([n, v]) => `${n}=${v}`).join('&'))].join('&')
    const expected = createHmac('sha1', `${pct(credentials.consumer_secret)}&${pct(credentials.access_secret)}`)
      .update(base)
      .digest()
    const given = Buffer.from(signature, 'base64')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return unauthorized
    nonces.add(nonce)
    const token = randomBytes(24).toString('base64url')
    sessions.add(token)
    issued++
    return ok({ auth_session_token: token })
  }

  const answer = async (req: IncomingMessage): Promise<{ reply: Reply; path: string; body: unknown; token: string | undefined }> => {
    const url = new URL(req.url ?? '/', 'http://fake-abm')
    const path = url.pathname
    const raw = await readBody(req)
    const tokenHeader = req.headers['x-adm-auth-session']
    const token = typeof tokenHeader === 'string' ? tokenHeader : undefined
    let body: unknown
    let malformed = false
    if (raw.length > 0 && req.method !== 'GET') {
      try {
        body = JSON.parse(raw)
      } catch {
        body = raw
        malformed = true
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) malformed = true
    }
    const result = (reply: Reply) => ({ reply, path, body, token })
    const queued = failures.get(path)?.shift()
    if (queued) return result(queued)
    const handler = routes.get(`${req.method} ${path}`)
    if (!handler && path !== '/session') return result(fail('NOT_FOUND', 404))
    if (!req.headers['x-server-protocol-version']) return result(fail('PROTOCOL_VERSION_REQUIRED'))
    if (path === '/session') return result(req.method === 'GET' ? session(req, url) : fail('NOT_FOUND', 404))
    if (token === undefined || !sessions.has(token)) return result(fail('UNAUTHORIZED', 401))
    if (fake.termsNotSigned) return result(fail('T_C_NOT_SIGNED', 403))
    if (malformed) return result(fail('MALFORMED_REQUEST_BODY'))
    const reply = handler!((body ?? {}) as Body, url)
    if (options.rotateSessions && reply.status >= 200 && reply.status < 300) {
      const rotated = randomBytes(24).toString('base64url')
      sessions.delete(token)
      sessions.add(rotated)
      reply.headers = { ...reply.headers, 'X-ADM-Auth-Session': rotated }
    }
    return result(reply)
  }

  const respond = (req: IncomingMessage, res: ServerResponse): void => {
    answer(req).then(
      ({ reply, path, body, token }) => {
        const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
        const contentType = typeof reply.body === 'string' ? 'text/plain;charset=UTF8' : 'application/json;charset=UTF8'
        res.writeHead(reply.status, { 'Content-Type': contentType, ...reply.headers })
        res.end(text)
        fake.requests.push({ method: req.method ?? '', path, body, session: token, status: reply.status })
      },
      (error: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain;charset=UTF8' })
        res.end(String(error))
      },
    )
  }

  const server = createServer(respond)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo

  const fake: FakeAbm = {
    url: `http://127.0.0.1:${port}`,
    credentials,
    devices: new Map(),
    profiles: new Map(),
    requests: [],
    termsNotSigned: false,
    rejectToken: false,
    throttleSerials: new Set(),
    failSerials: new Set(),
    activationLocks: new Map(),
    retryAfterSeconds: 60,
    addDevices(countOrDevices) {
      const stamp = now().toISOString()
      const partials =
        typeof countOrDevices === 'number'
          ? Array.from({ length: countOrDevices }, () => {
              let serial: string
              do serial = `FAKE${String(++generated).padStart(8, '0')}`
              while (fake.devices.has(serial))
              return { serial_number: serial }
            })
          : countOrDevices
      return partials.map((partial) => {
        const device: FakeAbmDevice = {
          model: 'iPad (10th generation)',
          description: 'IPAD WI-FI 64GB BLUE',
          color: 'BLUE',
          os: 'iOS',
          device_family: 'iPad',
          profile_status: 'empty',
          device_assigned_date: stamp,
          device_assigned_by: 'admin@example.org',
          ...partial,
        }
        fake.devices.set(device.serial_number, device)
        record('added', device)
        return device
      })
    },
    modifyDevice(serial, changes) {
      const device = fake.devices.get(serial)
      if (!device) throw new Error(`fake ABM: no device ${serial}`)
      Object.assign(device, changes, { serial_number: serial })
      record('modified', device)
    },
    removeDevice(serial) {
      const device = fake.devices.get(serial)
      if (!device) throw new Error(`fake ABM: no device ${serial}`)
      fake.devices.delete(serial)
      record('deleted', device)
    },
    failNext(path, failure) {
      const queue = failures.get(path) ?? []
      queue.push({ status: failure.status, body: failure.body, ...(failure.headers ? { headers: failure.headers } : {}) })
      failures.set(path, queue)
    },
    expireCursors() {
      firstValidCursor = nextCursor
    },
    expireSessions() {
      sessions.clear()
    },
    sessionsIssued: () => issued,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  return fake
}
