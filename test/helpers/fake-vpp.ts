// A fake Apple "Apps and Books for Organizations" (VPP) v2 server for tests: plain HTTP on
// loopback, speaking https://vpp.itunes.apple.com/mdm/v2 as Apple documents it (digest with
// sources: /tmp/vpp-protocol.md). Point the client at `${fake.url}/mdm/v2`. Deterministic: no
// timers; events finish on a poll count or on completeEvents(); notifications go out only on
// sendNotifications() (and the TEST_NOTIFICATION that client config sends when it is given a URL).
//
// Choices worth knowing (where Apple's documentation is silent or contradicts itself):
// - Bearer value = the whole .vpptoken file contents (base64). The inner `token`, or any unknown
//   value, is 9622 with HTTP `invalidTokenStatus` (401; Fleet saw Apple answer 200 with the body).
//   Missing or non-Bearer Authorization is 9722. Revoked 9625, expired 9621 (both 401).
// - Validation happens synchronously (400, no event); licences are counted only when the event
//   runs: not enough licences → per-task failure 9709 in the event's `failures`, failSerials
//   inject any other error. Associating an existing assignment, or disassociating a missing one,
//   counts as completed. An event with any failure ends FAILED (numCompleted < numRequested).
// - An asset that the location does not own is a synchronous 9602 with errorInfo.assets.
// - totalPages is at least 1; pageIndex outside [0, totalPages) is 9650, non-numeric is 9602.
// - throttleNext() fires before anything else (service/config included).
// - Client config merges what a POST gives. A notificationUrl (http allowed unless
//   requireHttpsNotificationUrl) is checked with a TEST_NOTIFICATION first; ASSET_MANAGEMENT
//   notifications go only to locations whose notificationTypes include ASSET_MANAGEMENT.
// - location.clientContext (v1's claim) is echoed by client config only when a test sets it.
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  appleDate,
  assetManagementNotifications,
  clientConfigBody,
  DEFAULT_LIMITS,
  ERRORS,
  filterAssets,
  filterAssignments,
  runEvent,
  serviceConfigBody,
  stamp,
  validateClientConfig,
  validateManage,
  versionId,
  vppError,
  vppTokenFile,
  type FakeVppAsset,
  type FakeVppDelivery,
  type FakeVppError,
  type FakeVppEvent,
  type FakeVppLimits,
  type FakeVppLocation,
  type FakeVppRequest,
} from './fake-vpp-state.js'

export * from './fake-vpp-state.js'

export interface FakeVppOptions {
  pageSize?: number // records per page of assets and assignments (default 100)
  limits?: Partial<FakeVppLimits>
  /** Status polls answered PENDING before an event runs (default 1: first poll PENDING, second final; 0: final at once). */
  pollsUntilComplete?: number
  now?: () => Date
  invalidTokenStatus?: number // HTTP status with 9622 (default 401)
  verifyNotificationUrl?: boolean // POST a TEST_NOTIFICATION on client config, 9728 unless 2xx (default true)
  requireHttpsNotificationUrl?: boolean // 9712 for http:// notification URLs (default false: tests use loopback HTTP)
}
export interface FakeVppLocationInit {
  orgName?: string
  locationName?: string
  expDate?: Date
  countryISO2ACode?: string
  assets?: Array<Partial<FakeVppAsset> & { adamId: string }>
}
export interface FakeVpp {
  url: string // 'http://127.0.0.1:<port>'; the API base is `${url}/mdm/v2`
  limits: FakeVppLimits
  pageSize: number
  pollsUntilComplete: number
  locations: Map<string, FakeVppLocation> // by sToken
  events: Map<string, FakeVppEvent>
  requests: FakeVppRequest[] // every request answered, in order
  deliveries: FakeVppDelivery[] // every notification POSTed, in order
  failSerials: Map<string, FakeVppError> // serial → error for its tasks (use vppError(n))
  /** A new location with a fresh sToken (expires in a year unless told). */
  addLocation(init?: FakeVppLocationInit): FakeVppLocation
  /** Adds or replaces an asset: 10 licences, STDQ, App, device-assignable, revocable, iOS+macOS unless told; counts kept consistent. */
  addAsset(location: FakeVppLocation, asset: Partial<FakeVppAsset> & { adamId: string }): FakeVppAsset
  /** Runs PENDING events now (all, or the one named); returns those it ran. */
  completeEvents(eventId?: string): FakeVppEvent[]
  /** The next `count` requests answer 429 (9646) or 503 (9729) with Retry-After. */
  throttleNext(count: number, options?: { status?: 429 | 503; retryAfter?: number }): void
  /** POSTs ASSET_MANAGEMENT notifications for finished, not yet notified events of subscribed locations. */
  sendNotifications(): Promise<FakeVppDelivery[]>
  /** POSTs one notification of any type (e.g. ASSET_COUNT) to the location's notification URL. */
  notify(location: FakeVppLocation, notificationType: string, notification: Record<string, unknown>): Promise<FakeVppDelivery>
  /** Requests answered for this path (e.g. '/mdm/v2/assets', or 'POST /mdm/v2/assets/associate'). */
  requestCount(path: string): number
  close(): Promise<void>
}

interface Reply {
  status: number
  body: unknown
  headers?: Record<string, string>
}
type Body = Record<string, unknown>
interface Ctx {
  loc: FakeVppLocation
  query: URLSearchParams
  body: Body
}

const BASE = '/mdm/v2'
/** Apple's ErrorResponse with the HTTP status of its errorNumber (or the one given). */
const fail = (error: number | FakeVppError, status?: number): Reply => {
  const body = typeof error === 'number' ? vppError(error) : error
  return { status: status ?? ERRORS[body.errorNumber]?.[1] ?? 400, body }
}
const isReply = (v: unknown): v is Reply => typeof v === 'object' && v !== null && 'status' in v && 'body' in v
const isError = (v: unknown): v is FakeVppError => typeof v === 'object' && v !== null && 'errorNumber' in v

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

export async function startFakeVpp(options: FakeVppOptions = {}): Promise<FakeVpp> {
  const now = options.now ?? (() => new Date())
  let throttle = { count: 0, status: 429 as 429 | 503, retryAfter: 1 }
  let locationCount = 0

  const page = <T>(ctx: Ctx, records: T[]): Reply | { items: T[]; paging: Body } => {
    const raw = ctx.query.get('pageIndex') ?? '0'
    if (!/^-?\d+$/.test(raw)) return fail(9602)
    const index = Number(raw)
    const totalPages = Math.max(1, Math.ceil(records.length / fake.pageSize))
    if (index < 0 || index >= totalPages) return fail(9650)
    const items = records.slice(index * fake.pageSize, (index + 1) * fake.pageSize)
    return { items, paging: { currentPageIndex: index, ...(index + 1 < totalPages ? { nextPageIndex: index + 1 } : {}), size: items.length, totalPages } }
  }

  const getAssets = (ctx: Ctx): Reply => {
    const p = page(ctx, filterAssets(ctx.loc, ctx.query))
    if (isReply(p)) return p
    return { status: 200, body: { assets: p.items.map((a) => ({ ...a })), ...p.paging, ...stamp(ctx.loc), versionId: versionId('assets', ctx.loc) } }
  }

  const getAssignments = (ctx: Ctx): Reply => {
    const assignments = filterAssignments(ctx.loc, ctx.query)
    if (isError(assignments)) return fail(assignments)
    const p = page(ctx, assignments)
    if (isReply(p)) return p
    const items = p.items.map(({ version: _version, ...a }) => a)
    return { status: 200, body: { assignments: items, ...p.paging, ...stamp(ctx.loc), versionId: versionId('assignments', ctx.loc) } }
  }

  const manage =
    (eventType: FakeVppEvent['eventType']) =>
    (ctx: Ctx): Reply => {
      const request = validateManage(ctx.loc, fake.limits, ctx.body, eventType)
      if (isError(request)) return fail(request)
      const event: FakeVppEvent = {
        eventId: randomUUID(),
        sToken: ctx.loc.sToken,
        eventType,
        eventStatus: 'PENDING',
        ...request,
        numRequested: request.assets.length * (request.serialNumbers.length + request.clientUserIds.length),
        numCompleted: 0,
        failures: [],
        succeeded: [],
        polls: 0,
        notified: false,
      }
      fake.events.set(event.eventId, event)
      return { status: 200, body: { eventId: event.eventId, ...stamp(ctx.loc) } }
    }

  const status = (ctx: Ctx): Reply => {
    const event = fake.events.get(ctx.query.get('eventId') ?? '')
    if (!event || event.sToken !== ctx.loc.sToken) return fail(9708)
    if (event.eventStatus === 'PENDING' && event.polls++ >= fake.pollsUntilComplete) runEvent(ctx.loc, event, fake.failSerials)
    const { eventStatus, eventType, numCompleted, numRequested, failures } = event
    return { status: 200, body: { eventStatus, eventType, ...(failures.length > 0 ? { failures } : {}), numCompleted, numRequested, ...stamp(ctx.loc) } }
  }

  const post = async (url: string, token: string, body: Record<string, unknown>): Promise<FakeVppDelivery> => {
    const delivery: FakeVppDelivery = { url, authorization: `Bearer ${token}`, body, status: 0 }
    try {
      const headers = { Authorization: delivery.authorization, 'Content-Type': 'application/json' }
      const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) })
      await res.arrayBuffer()
      delivery.status = res.status
    } catch {
      delivery.status = 0
    }
    fake.deliveries.push(delivery)
    return delivery
  }

  const postClientConfig = async ({ body, loc }: Ctx): Promise<Reply> => {
    const change = validateClientConfig(body, fake.limits, options.requireHttpsNotificationUrl ?? false)
    if (isError(change)) return fail(change)
    if (change.notification && (options.verifyNotificationUrl ?? true)) {
      const testBody = { notification: {}, notificationId: randomUUID(), notificationType: 'TEST_NOTIFICATION', uId: loc.uId }
      const test = await post(change.notification.url, change.notification.token, testBody)
      if (test.status < 200 || test.status > 299) return fail(9728)
    }
    if (change.notification) [loc.notificationUrl, loc.notificationAuthToken] = [change.notification.url, change.notification.token]
    if (change.mdmInfo) loc.mdmInfo = change.mdmInfo
    if (change.notificationTypes) loc.subscribedNotificationTypes = change.notificationTypes
    return { status: 200, body: clientConfigBody(loc) }
  }

  type Handler = (ctx: Ctx) => Reply | Promise<Reply>
  const routes: Record<string, Partial<Record<'GET' | 'POST', Handler>>> = {
    'client/config': { GET: (ctx) => ({ status: 200, body: clientConfigBody(ctx.loc) }), POST: postClientConfig },
    assets: { GET: getAssets },
    assignments: { GET: getAssignments },
    'assets/associate': { POST: manage('ASSOCIATE') },
    'assets/disassociate': { POST: manage('DISASSOCIATE') },
    status: { GET: status },
  }

  const answer = async (req: IncomingMessage, url: URL, raw: string): Promise<Reply & { sToken?: string }> => {
    if (throttle.count > 0) {
      throttle.count--
      return { ...fail(throttle.status === 429 ? 9646 : 9729, throttle.status), headers: { 'Retry-After': String(throttle.retryAfter) } }
    }
    const path = url.pathname.replace(/\/+$/, '')
    if (!path.startsWith(`${BASE}/`)) return { status: 404, body: { errorNumber: 9602, errorMessage: 'Not found (fake VPP).' } }
    const name = path.slice(BASE.length + 1)
    if (name === 'service/config') return req.method === 'GET' ? { status: 200, body: serviceConfigBody(`${fake.url}${BASE}`, fake.limits) } : fail(9726)
    const route = routes[name]
    if (!route) return { status: 404, body: { errorNumber: 9602, errorMessage: 'Not found (fake VPP).' } }
    const handler = route[req.method as 'GET' | 'POST']
    if (!handler) return fail(9726)
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')
    if (!m?.[1]) return fail(9722)
    const sToken = m[1]
    const loc = fake.locations.get(sToken)
    if (!loc) return { ...fail(9622, options.invalidTokenStatus ?? 401), sToken }
    if (loc.revoked) return { ...fail(9625), sToken }
    if (loc.expDate.getTime() <= now().getTime()) return { ...fail(9621), sToken }
    let body: Body = {}
    if (req.method === 'POST') {
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return { ...fail(9727), sToken }
      try {
        body = JSON.parse(raw) as Body
      } catch {
        return { ...fail(9602), sToken }
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ...fail(9602), sToken }
    }
    return { ...(await handler({ loc, query: url.searchParams, body })), sToken }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = await readBody(req)
    const url = new URL(req.url ?? '/', 'http://fake-vpp')
    const reply = await answer(req, url, raw)
    let logged: unknown = raw
    try {
      logged = raw === '' ? undefined : JSON.parse(raw)
    } catch {
      /* keep the raw text */
    }
    const errorNumber = (reply.body as { errorNumber?: unknown } | null)?.errorNumber
    fake.requests.push({
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body: logged,
      sToken: reply.sToken,
      status: reply.status,
      ...(typeof errorNumber === 'number' ? { errorNumber } : {}),
    })
    res.writeHead(reply.status, { 'Content-Type': 'application/json;charset=UTF-8', ...reply.headers })
    res.end(JSON.stringify(reply.body))
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ ...vppError(9603), fakeError: String(err) }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  const fake: FakeVpp = {
    url: `http://127.0.0.1:${port}`,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    pageSize: options.pageSize ?? 100,
    pollsUntilComplete: options.pollsUntilComplete ?? 1,
    locations: new Map(),
    events: new Map(),
    requests: [],
    deliveries: [],
    failSerials: new Map(),
    addLocation(init = {}) {
      const n = ++locationCount
      const innerToken = randomUUID()
      const expDate = init.expDate ?? new Date(now().getTime() + 365 * 24 * 3600 * 1000)
      const orgName = init.orgName ?? 'Example Org'
      const loc: FakeVppLocation = {
        sToken: vppTokenFile({ token: Buffer.from(innerToken).toString('base64'), expDate: appleDate(expDate), orgName }),
        innerToken: Buffer.from(innerToken).toString('base64'),
        orgName,
        locationName: init.locationName ?? `Location ${n}`,
        uId: String(2049025000431438 + n),
        countryISO2ACode: init.countryISO2ACode ?? 'US',
        defaultPlatform: 'enterprisestore',
        websiteURL: 'https://business.apple.com',
        expDate,
        revoked: false,
        subscribedNotificationTypes: [],
        assets: [],
        assignments: [],
        registeredUsers: new Set(),
        assetsVersion: 0,
        assignmentsVersion: 0,
      }
      fake.locations.set(loc.sToken, loc)
      for (const asset of init.assets ?? []) fake.addAsset(loc, asset)
      return loc
    },
    addAsset(loc, init) {
      const totalCount = init.totalCount ?? 10
      const assignedCount = init.assignedCount ?? 0
      const retiredCount = init.retiredCount ?? 0
      const asset: FakeVppAsset = {
        pricingParam: 'STDQ',
        productType: 'App',
        deviceAssignable: true,
        revocable: true,
        supportedPlatforms: ['iOS', 'macOS'],
        ...init,
        totalCount,
        assignedCount,
        retiredCount,
        availableCount: init.availableCount ?? totalCount - assignedCount - retiredCount,
      }
      loc.assets = loc.assets.filter((a) => a.adamId !== asset.adamId || a.pricingParam !== asset.pricingParam)
      loc.assets.push(asset)
      loc.assetsVersion++
      return asset
    },
    completeEvents(eventId) {
      const ran: FakeVppEvent[] = []
      for (const event of fake.events.values()) {
        const loc = fake.locations.get(event.sToken)
        if (event.eventStatus !== 'PENDING' || !loc || (eventId !== undefined && event.eventId !== eventId)) continue
        runEvent(loc, event, fake.failSerials)
        ran.push(event)
      }
      return ran
    },
    throttleNext(count, o = {}) {
      throttle = { count, status: o.status ?? 429, retryAfter: o.retryAfter ?? 1 }
    },
    async sendNotifications() {
      const sent: FakeVppDelivery[] = []
      for (const event of fake.events.values()) {
        const loc = fake.locations.get(event.sToken)
        if (event.eventStatus === 'PENDING' || event.notified || !loc?.notificationUrl || !loc.notificationAuthToken) continue
        if (!loc.subscribedNotificationTypes.includes('ASSET_MANAGEMENT')) continue
        event.notified = true
        for (const body of assetManagementNotifications(loc, event, randomUUID)) sent.push(await post(loc.notificationUrl, loc.notificationAuthToken, body))
      }
      return sent
    },
    async notify(loc, notificationType, notification) {
      if (!loc.notificationUrl || !loc.notificationAuthToken) throw new Error('fake VPP: the location has no notification URL and token')
      return post(loc.notificationUrl, loc.notificationAuthToken, { notification, notificationId: randomUUID(), notificationType, uId: loc.uId })
    },
    requestCount(path) {
      const [method, p] = path.includes(' ') ? path.split(' ', 2) : [undefined, path]
      return fake.requests.filter((r) => r.path === p && (method === undefined || r.method === method)).length
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()))
        server.closeAllConnections()
      })
    },
  }
  return fake
}
