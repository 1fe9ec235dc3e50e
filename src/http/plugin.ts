// The admin REST API: one encapsulated Fastify plugin whose routes are the operations of
// openapi.yaml. Each operation gets its handler from a map typed by the generated operation
// types (generated/operations.ts); a documented operation without a handler (or a handler
// without an operation) stops the server from starting.
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { OrchardError } from '../errors.js'
import { describeGrants, scopeForRoles, type Principal, type TenantTree } from '../access/access-control.js'
import { storableText, unstorableFields } from '../model/storable-text.js'
import type { AccessScope, AuditActor, Role } from '../model/access.js'
import type { AuditStore } from '../tenancy/audit-store.js'
import { openapiDocument } from './generated/openapi-document.js'
import type { ApiOperationId, Body, OperationId, Params, Query, Replies } from './generated/operations.js'
import { validationFailed } from './problem.js'
import { loadOperations, readOpenapiYaml, withServer, type ApiOperation } from './openapi.js'
import { compileResponseValidator, fieldProblems, unstorableParameters, validatorCompiler } from './validation.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Roles allowed to call an admin API operation; absent = no authentication. */
    allowedRoles?: readonly Role[]
    operationId?: string
    /** Writes whose change is outside our database: audited after the handler. */
    auditOutsideTransaction?: boolean
    /** Installation-wide (settings, webhooks, device CAs): only central IT's grants count. */
    installationWide?: boolean
  }
  interface FastifyRequest {
    /** Who called an admin API operation. */
    principal?: Principal
    /** What the caller may see and act on in this operation. */
    access?: AccessScope
  }
}

/** The admin API operations handlers serve (the plugin serves openapi.yaml itself). */
export type HandledOperationId = Exclude<ApiOperationId, 'getOpenApiDocument'>

/** An operation as Fastify sees it: what validation let through, and the payload of each 2xx status. */
interface OperationRoute<K extends OperationId> {
  Params: Params<K>
  Querystring: Query<K>
  Body: Body<K>
  Reply: Replies<K>
}
export type ApiRequest<K extends OperationId> = FastifyRequest<OperationRoute<K>>
/** `reply.code(status).send(payload)` accepts only the documented 2xx statuses and their payloads. */
export type ApiReply<K extends OperationId> = FastifyReply<OperationRoute<K>>
/** What a handler returns: the 200 payload, or the reply it sent. */
export type HandlerResult<K extends OperationId> = (200 extends keyof Replies<K> ? Replies<K>[200] : never) | ApiReply<K>

export type OperationHandler<K extends HandledOperationId> = (request: ApiRequest<K>, reply: ApiReply<K>) => Promise<HandlerResult<K>>
/** Handlers by operationId; each feature's api.ts gives a part of the map. */
export type OperationHandlers = { [K in HandledOperationId]?: OperationHandler<K> }

/** How the plugin calls a handler (the route's schemas make the request what the handler's type says). */
type RouteHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>

export type ResponseValidation = 'strict' | 'log' | 'off'

export interface ApiRoutesOptions {
  authenticate(token: string): Promise<Principal | undefined>
  tenants: TenantTree
  audit: Pick<AuditStore, 'appendAdminEvent'>
  handlers: OperationHandlers
  /** strict: a response that breaks the contract becomes a 500 (tests); log: logged only. */
  responseValidation: ResponseValidation
  /** The server the served document and Swagger UI name (ORCHARD_PUBLIC_URL); absent: the relative "/". */
  serverUrl?: string | null
}

/** Request content types taken as raw bytes (command plists, configuration profiles). */
const rawContentTypes = [
  'application/x-apple-plist',
  'application/xml',
  'text/xml',
  'application/octet-stream',
  'application/x-apple-aspen-config',
  'application/pkcs7-mime',
]

/** The caller's view of the fleet in this operation (see model/access.ts). */
export function accessOf(request: Pick<FastifyRequest, 'access'>): AccessScope {
  if (!request.access) throw new OrchardError('unauthorized', 'not authenticated')
  return request.access
}

const readMethods = new Set(['GET', 'HEAD'])

/**
 * The audit actor of an authenticated request (undefined before authentication): what a
 * write's audit row names. Reads get none; a read that starts a write (a report job) asks for it.
 */
export function auditActorOf(request: Pick<FastifyRequest, 'principal' | 'id' | 'routeOptions'>): AuditActor | undefined {
  const principal = request.principal
  if (!principal) return undefined
  return {
    principalId: principal.id,
    principalName: principal.name,
    principalSource: principal.source,
    requestId: request.id,
    action: request.routeOptions.config.operationId ?? 'unknown',
    recorded: false,
  }
}

// The one place where roles are checked: the operation's roles (from openapi.yaml) against
// the principal's grants; what remains is the scope every store query is limited to.
async function authenticateRequest(request: FastifyRequest, options: ApiRoutesOptions): Promise<void> {
  const allowed = request.routeOptions.config.allowedRoles
  if (!allowed) return
  const header = request.headers.authorization
  const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  if (!match) throw new OrchardError('unauthorized', 'an Authorization: Bearer <API key> header is required')
  const principal = await options.authenticate(match[1]!)
  if (!principal) throw new OrchardError('unauthorized', 'the API key is not valid (unknown, revoked or expired)')
  request.principal = principal
  request.log = request.log.child({ principal_id: principal.id })
  const actor = readMethods.has(request.method) ? undefined : auditActorOf(request)
  const installationWide = request.routeOptions.config.installationWide === true
  const grants = installationWide ? { ...principal, grants: principal.grants.filter((grant) => grant.tenantId === null) } : principal
  const access = await scopeForRoles(grants, allowed, options.tenants, actor)
  if (!access) {
    const where = installationWide ? ' in central IT (it concerns the whole installation)' : ''
    throw new OrchardError('forbidden', `this operation needs one of the roles ${allowed.join(', ')}${where}; you have ${describeGrants(principal.grants)}`)
  }
  request.access = access
}

/** The tenant an audit row about a failed or outside-the-database write is filed under. */
function auditTenantOf(request: FastifyRequest): string | null {
  const access = request.access
  if (access?.kind === 'tenants') return access.ids[0] ?? null
  if (access?.kind === 'all') return null
  return request.principal?.grants.find((grant) => grant.tenantId !== null)?.tenantId ?? null
}

// Every admin write leaves a row: the store wrote it with the change (success), or it is
// written here: a failed write, or a write whose change is outside our database.
/** Why a write was refused, from the problem document the caller gets: its code and detail. */
function refusalOf(payload: unknown): { code: string; detail: string } | null {
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return null
  try {
    const problem = JSON.parse(payload.toString()) as { code?: unknown; detail?: unknown }
    if (typeof problem.code !== 'string') return null
    return { code: problem.code, detail: typeof problem.detail === 'string' ? storableText(problem.detail.slice(0, 1000)) : '' }
  } catch {
    return null
  }
}

async function auditWrite(request: FastifyRequest, reply: FastifyReply, payload: unknown, options: ApiRoutesOptions): Promise<void> {
  const config = request.routeOptions.config
  const principal = request.principal
  if (!config.allowedRoles || !principal || readMethods.has(request.method)) return
  const actor = request.access?.actor
  const failed = reply.statusCode >= 400
  if (!failed && actor?.recorded) return
  if (!failed && !config.auditOutsideTransaction) {
    request.log.error({ operation_id: config.operationId }, 'admin write not audited by its store: recorded after the handler instead')
  }
  const params = (request.params ?? {}) as Record<string, unknown>
  const target = Object.entries(params).find(([, value]) => typeof value === 'string')
  await options.audit.appendAdminEvent({
    tenantId: auditTenantOf(request),
    principalId: principal.id,
    principalName: principal.name,
    principalSource: principal.source,
    action: config.operationId ?? 'unknown',
    requestId: request.id,
    outcome: failed ? 'failure' : 'success',
    statusCode: reply.statusCode,
    targetType: target ? target[0].replace(/_id$|_uuid$/, '') : null,
    // A refused request's parameters may hold anything: the row records them storably.
    targetId: target ? storableText(String(target[1]).slice(0, 300)) : null,
    deviceId: typeof params['device_id'] === 'string' ? storableText(params['device_id'].slice(0, 300)) : null,
    details: failed ? refusalOf(payload) : { outside_transaction: true, expected: config.auditOutsideTransaction === true },
  })
  if (actor) actor.recorded = true
}

export async function apiRoutes(app: FastifyInstance, options: ApiRoutesOptions): Promise<void> {
  const operations = loadOperations()
  const apiOperations = [...operations.values()].filter((operation) => operation.path.startsWith('/api/'))
  const unhandled = apiOperations.filter((operation) => !(operation.operationId in options.handlers) && operation.operationId !== 'getOpenApiDocument')
  if (unhandled.length) throw new Error(`openapi.yaml operations without a handler: ${unhandled.map((o) => o.operationId).join(', ')}`)
  const unknown = Object.keys(options.handlers).filter((id) => !operations.has(id))
  if (unknown.length) throw new Error(`handlers for operations openapi.yaml does not have: ${unknown.join(', ')}`)
  const served = withServer(readOpenapiYaml(), openapiDocument, options.serverUrl ?? null)
  const openapiYaml = served.yaml

  app.setValidatorCompiler(validatorCompiler)
  app.addContentTypeParser(rawContentTypes, { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  app.addHook('onRequest', async (request) => authenticateRequest(request, options))
  // Decoded input that no column can hold (NUL, unpaired surrogates) is the caller's error,
  // found here once for every operation rather than by the database (raw bodies: the plist decoder).
  app.addHook('preValidation', async (request) => {
    const problems = [
      ...unstorableParameters(request.params),
      ...unstorableParameters(request.query),
      ...(Buffer.isBuffer(request.body) ? [] : unstorableFields(request.body)),
    ]
    if (problems.length > 0) throw validationFailed(problems)
  })
  app.addHook('onSend', async (request, reply, payload) => {
    try {
      await auditWrite(request, reply, payload, options)
    } catch (error) {
      // The change is done (or refused); a lost audit row of a failure is logged, not answered.
      request.log.error({ err: error }, 'cannot write the audit row of an admin write')
    }
    return payload
  })

  const responseValidators = new Map<string, Map<string, ReturnType<typeof compileResponseValidator>>>()
  if (options.responseValidation !== 'off') {
    for (const operation of apiOperations) {
      const byStatus = new Map<string, ReturnType<typeof compileResponseValidator>>()
      for (const [status, schema] of Object.entries(operation.responses)) if (/^2\d\d$/.test(status)) byStatus.set(status, compileResponseValidator(schema))
      responseValidators.set(operation.operationId, byStatus)
    }
    app.addHook('preSerialization', async (request, reply, payload) => {
      const operationId = request.routeOptions.config.operationId
      if (!operationId || reply.statusCode >= 300) return payload
      const validate = responseValidators.get(operationId)?.get(String(reply.statusCode))
      if (!validate) {
        request.log.error({ operation_id: operationId, status_code: reply.statusCode }, 'response status is not documented in openapi.yaml')
        if (options.responseValidation === 'strict') throw new OrchardError('internal', `undocumented response status ${reply.statusCode} for ${operationId}`)
        return payload
      }
      if (!validate(payload)) {
        const problems = fieldProblems(validate.errors ?? [], 'body')
        request.log.error({ operation_id: operationId, errors: problems }, 'response does not match openapi.yaml')
        if (options.responseValidation === 'strict')
          throw new OrchardError('internal', `response of ${operationId} does not match openapi.yaml: ${JSON.stringify(problems)}`)
      }
      return payload
    })
  }

  const serveDocument: RouteHandler = async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(openapiYaml)
  for (const operation of apiOperations) {
    const handler =
      operation.operationId === 'getOpenApiDocument' ? serveDocument : (options.handlers[operation.operationId as HandledOperationId] as RouteHandler)
    registerOperation(app, operation, handler)
  }

  // Swagger UI over the same document; the UI's own assets are not API operations.
  await app.register(fastifySwagger, { mode: 'static', specification: { document: served.document as never } })
  await app.register(fastifySwaggerUi, { routePrefix: '/api/docs', staticCSP: true })
}

function registerOperation(app: FastifyInstance, operation: ApiOperation, handler: RouteHandler): void {
  const body = operation.jsonBody
    ? operation.rawBodyTypes.length
      ? { content: { 'application/json': { schema: operation.jsonBody } } }
      : operation.jsonBody
    : undefined
  app.route({
    method: operation.method,
    url: operation.url,
    ...(operation.bodyLimit ? { bodyLimit: operation.bodyLimit } : {}),
    config: {
      operationId: operation.operationId,
      ...(operation.allowedRoles ? { allowedRoles: operation.allowedRoles } : {}),
      ...(operation.auditOutsideTransaction ? { auditOutsideTransaction: true } : {}),
      ...(operation.installationWide ? { installationWide: true } : {}),
    },
    schema: {
      ...(operation.params ? { params: operation.params } : {}),
      querystring: operation.querystring,
      ...(body ? { body } : {}),
    },
    // An optional JSON body that is absent is validated as an empty object.
    ...(operation.jsonBody && !operation.bodyRequired
      ? {
          preValidation: async (request: FastifyRequest) => {
            if (request.body === undefined || request.body === null) request.body = {}
          },
        }
      : {}),
    handler: async (request, reply) => {
      if (operation.bodyRequired && (request.body === undefined || request.body === null)) {
        throw new OrchardError(
          'validation_failed',
          `this operation needs a request body (${[operation.jsonBody ? 'application/json' : undefined, ...operation.rawBodyTypes].filter(Boolean).join(' or ')})`,
        )
      }
      return handler(request, reply)
    },
  })
}
