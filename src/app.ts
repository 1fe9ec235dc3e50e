// Builds the Fastify instance with every HTTP surface registered explicitly. It does not
// listen: main.ts does, and tests call app.inject() or listen on port 0.
import { randomUUID } from 'node:crypto'
import fastifySensible from '@fastify/sensible'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { apiRoutes, type ApiRoutesOptions } from './http/plugin.js'
import { legacyProfileRoutes, type LegacyProfileRoutesOptions } from './ddm/index.js'
import { enrollmentRoutes, type EnrollmentRoutesOptions } from './enrollment/routes.js'
import { accountEnrollmentRoutes, type AccountEnrollmentRoutesOptions } from './enrollment/account-routes.js'
import { healthRoutes } from './ops/health.js'
import { mdmRoutes, type MdmRoutesOptions } from './device/routes.js'
import { vppNotificationRoutes, type VppNotificationRoutesOptions } from './apps/routes.js'
import { instrumentRequests, metricsRoutes } from './ops/metrics-route.js'
import FindMyWay from 'find-my-way'
import { createNotFoundHandler, problemErrorHandler } from './http/problem.js'
import type { Metrics } from './ops/metrics.js'
import type { ReadinessReport } from './ops/readiness.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Level of the one-line access log for this route (probes log at debug). */
    accessLogLevel?: 'debug' | 'info'
  }
}

export interface AppDeps {
  logger: Logger
  metrics: Metrics
  checkReadiness(): Promise<ReadinessReport>
  /**
   * PEM certificate and key to serve HTTPS directly; null for plain HTTP. With
   * `requestClientCertificate` a client certificate is asked for (devices' mTLS identity)
   * but not required by TLS: the MDM surface checks it against the device CAs itself.
   */
  tls?: { cert: Buffer; key: Buffer; requestClientCertificate?: boolean } | null
  /** What stops slow or idle clients from holding connections (config.ts documents each). */
  connectionLimits: ConnectionLimits
  /** Largest request body accepted by default, in bytes. */
  bodyLimit?: number
  /** The device-facing MDM endpoints. */
  mdm?: MdmRoutesOptions
  /** The admin REST API (openapi.yaml). */
  api?: ApiRoutesOptions
  /** SCEP and enrollment profile downloads. */
  enrollment?: EnrollmentRoutesOptions
  /** Account-driven enrollment: service discovery, its enrollment endpoints and sign-in. */
  accountEnrollment?: AccountEnrollmentRoutesOptions
  /** Apple's Apps and Books notifications. */
  vppNotifications?: VppNotificationRoutesOptions
  /** Library profiles of legacy-profile declarations, fetched by devices. */
  legacyProfiles?: LegacyProfileRoutesOptions
}

export interface ConnectionLimits {
  readonly headersTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  /** 0 = no cap. */
  readonly maxConnections: number
}

/**
 * Node's limits, given where the HTTP or HTTPS server is created. Node enforces the headers
 * and request timeouts by sweeping connections on an interval, 30 s by default, which would
 * let a slow client stay that much longer: sweep every quarter of the headers timeout, at
 * least every second.
 */
function serverTimeouts(limits: ConnectionLimits) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(25, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
  }
}

/** One access-log line per request, with snake_case keys; none on arrival. */
class AccessLog extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'request_id' })
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      url: request.url,
      route: request.routeOptions.url ?? null,
      status_code: reply.statusCode,
      duration_ms: Math.round(reply.elapsedTime * 100) / 100,
    }
    if (error) request.log.error({ ...line, err: error }, 'request errored')
    else request.log[request.routeOptions.config?.accessLogLevel ?? 'info'](line, 'request completed')
  }
}

const routeTables = new WeakMap<FastifyInstance, Array<{ method: string; url: string }>>()

/** Every method and path the app serves (HEAD and OPTIONS aside), for the contract test. */
export function registeredRoutes(app: FastifyInstance): ReadonlyArray<{ method: string; url: string }> {
  return routeTables.get(app) ?? []
}

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const limits = deps.connectionLimits
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new AccessLog(),
    // Keep a caller's X-Request-Id when it is sane, so logs join up across systems.
    genReqId: (request) => {
      const given = request.headers['x-request-id']
      return typeof given === 'string' && requestIdPattern.test(given) ? given : randomUUID()
    },
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    // The raw enqueue route takes many enrollment IDs in one path segment.
    routerOptions: { maxParamLength: 64 * 1024 },
    // Graceful shutdown: app.close() stops accepting, answers new requests on kept-alive
    // connections with 503, closes idle connections, and waits for in-flight requests.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Fastify copies these two onto the server after creating it (its defaults: 72 s and none).
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    ...(deps.tls
      ? {
          https: {
            cert: deps.tls.cert,
            key: deps.tls.key,
            requestCert: deps.tls.requestClientCertificate === true,
            rejectUnauthorized: false,
            ...serverTimeouts(limits),
            // A client that never finishes the TLS handshake gets no longer than one that never sends headers.
            handshakeTimeout: limits.headersTimeoutMs,
          },
        }
      : { http: serverTimeouts(limits) }),
  }) as unknown as FastifyInstance

  if (limits.maxConnections > 0) {
    // Node closes connections beyond the cap on arrival; warn at most once a minute.
    app.server.maxConnections = limits.maxConnections
    let refused = 0
    let warnedAt = 0
    app.server.on('drop', () => {
      refused++
      if (Date.now() - warnedAt < 60_000) return
      deps.logger.warn({ max_connections: limits.maxConnections, refused_connections: refused }, 'connections refused: the connection cap is reached')
      warnedAt = Date.now()
      refused = 0
    })
  }

  await app.register(fastifySensible)
  app.setErrorHandler(problemErrorHandler)
  // Fastify answers 404 for a known path with another method; a router of every route
  // tells the not-found handler when 405 (with Allow) is the right answer.
  const routeIndex = FindMyWay({ ignoreTrailingSlash: false })
  const indexedMethods = new Set<string>()
  const routes: Array<{ method: string; url: string }> = []
  routeTables.set(app, routes)
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD' || method === 'OPTIONS') continue
      indexedMethods.add(method)
      routes.push({ method, url: route.url })
      try {
        routeIndex.on(method as 'GET', route.url, () => undefined)
      } catch {
        // The same method and path registered twice (e.g. a wildcard): already indexed.
      }
    }
  })
  app.setNotFoundHandler(createNotFoundHandler((path) => [...indexedMethods].filter((method) => routeIndex.find(method as 'GET', path) !== null)))

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  instrumentRequests(app, deps.metrics)

  await app.register(healthRoutes, { checkReadiness: deps.checkReadiness })
  await app.register(metricsRoutes, { metrics: deps.metrics })
  // Each surface is its own encapsulated plugin: its body parsers and error mapping stay inside it.
  if (deps.mdm) await app.register(mdmRoutes, deps.mdm)
  if (deps.enrollment) await app.register(enrollmentRoutes, deps.enrollment)
  if (deps.accountEnrollment) await app.register(accountEnrollmentRoutes, deps.accountEnrollment)
  if (deps.vppNotifications) await app.register(vppNotificationRoutes, deps.vppNotifications)
  if (deps.legacyProfiles) await app.register(legacyProfileRoutes, deps.legacyProfiles)
  if (deps.api) await app.register(apiRoutes, deps.api)
  return app
}
