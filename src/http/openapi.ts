// The admin API's routes come from openapi.yaml: method, path, validation schemas for
// path, query and body, the response schemas, and the roles allowed to call each operation. So the
// routes cannot drift from the contract; test/openapi.test.ts checks the other direction
// (every route is documented, every operation has a handler).
import { readFileSync } from 'node:fs'
import { roles, type Role } from '../model/access.js'
import { openapiDocument } from './generated/openapi-document.js'

export type JsonSchema = Record<string, unknown>
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface ApiOperation {
  operationId: string
  method: HttpMethod
  /** OpenAPI template, e.g. /api/v1/devices/{device_id}. */
  path: string
  /** The same as a Fastify route, e.g. /api/v1/devices/:device_id. */
  url: string
  /** Roles allowed to call it (`security: [{ apiKey: [roles] }]`); null: no authentication (`security: []`). */
  allowedRoles: readonly Role[] | null
  params?: JsonSchema
  querystring: JsonSchema
  /** Schema of an application/json request body. */
  jsonBody?: JsonSchema
  bodyRequired: boolean
  /** Request content types other than JSON (taken as raw bytes). */
  rawBodyTypes: string[]
  /** `x-audit: outside-transaction`: a write whose change is not in our database (audited after the handler). */
  auditOutsideTransaction: boolean
  /** `x-installation-wide: true`: about the whole installation, so only central IT's roles count. */
  installationWide: boolean
  /** From `x-body-limit`, bytes. */
  bodyLimit?: number
  /** JSON response schemas by status code. */
  responses: Record<string, JsonSchema>
}

interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema?: JsonSchema
  description?: string
}

const methods: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']

/** Replaces every local `$ref` with (a copy of) its target. The document has no cycles. */
export function dereference(node: unknown, root: unknown, seen: readonly string[] = []): unknown {
  if (Array.isArray(node)) return node.map((item) => dereference(item, root, seen))
  if (node === null || typeof node !== 'object') return node
  const ref = (node as { $ref?: unknown }).$ref
  if (typeof ref === 'string') {
    if (!ref.startsWith('#/')) throw new Error(`openapi.yaml: only local references are supported (${ref})`)
    if (seen.includes(ref)) throw new Error(`openapi.yaml: circular reference ${ref}`)
    let target: unknown = root
    for (const part of ref.slice(2).split('/')) {
      target = (target as Record<string, unknown> | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')]
    }
    if (target === undefined) throw new Error(`openapi.yaml: unresolved reference ${ref}`)
    return dereference(target, root, [...seen, ref])
  }
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) out[key] = dereference(value, root, seen)
  return out
}

function objectSchema(parameters: Parameter[]): JsonSchema {
  const properties: Record<string, JsonSchema> = {}
  const required: string[] = []
  for (const parameter of parameters) {
    properties[parameter.name] = parameter.schema ?? {}
    if (parameter.required) required.push(parameter.name)
  }
  // Unknown query parameters are refused: a misspelt filter must not silently list everything.
  return { type: 'object', properties, required, additionalProperties: false }
}

function allowedRolesOf(operation: Record<string, unknown>, document: Record<string, unknown>, name: string): readonly Role[] | null {
  const security = (operation['security'] ?? document['security']) as Array<Record<string, string[]>> | undefined
  if (!security || security.length === 0) return null
  // OpenAPI 3.1: for schemes other than OAuth2/OIDC the array lists the roles required.
  const listed = security[0]?.['apiKey']
  if (!Array.isArray(listed) || listed.length === 0 || !listed.every((role) => (roles as readonly string[]).includes(role))) {
    throw new Error(`openapi.yaml: operation ${name} must name its roles: security: [{ apiKey: [${roles.join('|')}, ...] }]`)
  }
  if (!listed.includes('owner')) throw new Error(`openapi.yaml: operation ${name}: owner may do everything, so it must be listed`)
  return Object.freeze([...listed] as Role[])
}

// One reading per document and process: every app built from it then hands Ajv the same schema
// objects, and Ajv (which caches compiled validators by schema object) compiles each schema
// once. Read again per app, its ~600 validators were compiled anew each time, about 2 s of CPU
// per app (every test builds apps), and each copy stayed in Ajv's cache for good.
const loaded = new WeakMap<object, ReadonlyMap<string, ApiOperation>>()

/** Every operation of the document, by operationId (read once per document). */
export function loadOperations(source: unknown = openapiDocument): ReadonlyMap<string, ApiOperation> {
  if (typeof source === 'object' && source !== null) {
    const known = loaded.get(source)
    if (known) return known
    const operations = readOperations(source)
    // Shared by every app of the process: frozen, so nothing can change one app's schemas under another.
    for (const operation of operations.values()) deepFreeze(operation)
    loaded.set(source, operations)
    return operations
  }
  return readOperations(source)
}

function readOperations(source: unknown): ReadonlyMap<string, ApiOperation> {
  const document = dereference(source, source) as Record<string, unknown>
  const operations = new Map<string, ApiOperation>()
  for (const [path, item] of Object.entries(document['paths'] as Record<string, Record<string, unknown>>)) {
    const shared = (item['parameters'] as Parameter[] | undefined) ?? []
    for (const method of methods) {
      const operation = item[method.toLowerCase()] as Record<string, unknown> | undefined
      if (!operation) continue
      const operationId = operation['operationId']
      if (typeof operationId !== 'string') throw new Error(`openapi.yaml: ${method} ${path} has no operationId`)
      const parameters = [...shared, ...((operation['parameters'] as Parameter[] | undefined) ?? [])]
      const pathParameters = parameters.filter((p) => p.in === 'path')
      const queryParameters = parameters.filter((p) => p.in === 'query')
      const requestBody = operation['requestBody'] as { required?: boolean; content?: Record<string, { schema?: JsonSchema }> } | undefined
      const content = requestBody?.content ?? {}
      const responses: Record<string, JsonSchema> = {}
      for (const [status, response] of Object.entries(
        (operation['responses'] as Record<string, { content?: Record<string, { schema?: JsonSchema }> }>) ?? {},
      )) {
        const schema = response.content?.['application/json']?.schema ?? response.content?.['application/problem+json']?.schema
        if (schema) responses[status] = schema
      }
      operations.set(operationId, {
        operationId,
        method,
        path,
        url: path.replace(/\{(\w+)\}/g, ':$1'),
        allowedRoles: allowedRolesOf(operation, document, operationId),
        ...(pathParameters.length ? { params: objectSchema(pathParameters) } : {}),
        querystring: objectSchema(queryParameters),
        ...(content['application/json']?.schema ? { jsonBody: content['application/json'].schema } : {}),
        bodyRequired: requestBody?.required === true,
        rawBodyTypes: Object.keys(content).filter((type) => type !== 'application/json'),
        auditOutsideTransaction: operation['x-audit'] === 'outside-transaction',
        installationWide: operation['x-installation-wide'] === true,
        ...(typeof operation['x-body-limit'] === 'number' ? { bodyLimit: operation['x-body-limit'] } : {}),
        responses,
      })
    }
  }
  return operations
}

/**
 * openapi.yaml as written, served at GET /api/openapi.yaml: found next to package.json
 * whether we run from src/ (tsx) or dist/src/ (npm run build; the Dockerfile copies it).
 */
export function readOpenapiYaml(): string {
  for (const relative of ['../../openapi.yaml', '../../../openapi.yaml']) {
    let text: string
    try {
      text = readFileSync(new URL(relative, import.meta.url), 'utf8')
    } catch {
      continue // try the next location
    }
    if (text.startsWith('openapi:')) return text
  }
  throw new Error('openapi.yaml not found next to package.json: it must ship with the server (GET /api/openapi.yaml serves it)')
}

/**
 * The document as served (/api/openapi.yaml, Swagger UI): with ORCHARD_PUBLIC_URL as its one
 * server, so "Try it out" calls this installation by the name clients use; unchanged ("/",
 * relative to wherever the document was fetched from) when no public URL is configured.
 */
export function withServer(yaml: string, document: unknown, serverUrl: string | null): { yaml: string; document: unknown } {
  if (serverUrl === null) return { yaml, document }
  const description = 'This Orchard installation (ORCHARD_PUBLIC_URL)'
  const block = /^servers:\n(?:[ -].*\n)+/m
  if (!block.test(yaml)) throw new Error('openapi.yaml: no top-level servers list to replace')
  return {
    yaml: yaml.replace(block, `servers:\n  - url: ${JSON.stringify(serverUrl)}\n    description: ${description}\n`),
    document: { ...(document as Record<string, unknown>), servers: [{ url: serverUrl, description }] },
  }
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return
  Object.freeze(value)
  for (const child of Object.values(value)) deepFreeze(child)
}
