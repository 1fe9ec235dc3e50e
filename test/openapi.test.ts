import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse, stringify } from 'yaml'
import {
  clientTypesModulePath,
  generateClientTypesModule,
  generateModules,
  generateOperationsModule,
  openapiModulePath,
  operationsModulePath,
} from '../scripts/generate-openapi.js'
import { registeredRoutes } from '../src/app.js'
import { errorCodes } from '../src/errors.js'
import { loadOperations } from '../src/http/openapi.js'
import { requestTypes, validateTypedCommand } from '../src/mdm/command-validation.js'
import { apiClient } from './helpers/api.js'
import { buildTestApp } from './helpers/app.js'
import { createTestDatabase } from './helpers/database.js'
import { testApiKey } from './helpers/mdm-fixture.js'

const yamlText = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')
const spec = parse(yamlText) as {
  openapi: string
  paths: Record<string, Record<string, unknown>>
  components: { schemas: Record<string, any>; securitySchemes: Record<string, { scheme?: string }> }
}

t.test('openapi.yaml is OpenAPI 3.1 with the bearer API key scheme', async (t) => {
  t.equal(spec.openapi, '3.1.0')
  t.equal(spec.components.securitySchemes['apiKey']?.scheme, 'bearer')
})

t.test('the generated modules are up to date with openapi.yaml (run `npm run generate` when this fails)', async (t) => {
  const modules = generateModules(yamlText)
  t.same(Object.keys(modules).sort(), [openapiModulePath, operationsModulePath].sort())
  for (const [path, text] of Object.entries(modules)) t.equal(readFileSync(new URL(`../${path}`, import.meta.url), 'utf8'), text, path)
})

t.test('the CLI client types are up to date with openapi.yaml (run `npm run generate` when this fails)', async (t) => {
  t.equal(readFileSync(new URL(`../${clientTypesModulePath}`, import.meta.url), 'utf8'), await generateClientTypesModule(yamlText), clientTypesModulePath)
})

t.test('operation types follow the JSON Schemas: refs, allOf, oneOf, enum, const, null, closed objects, defaults', async (t) => {
  const document = {
    openapi: '3.1.0',
    paths: {
      '/api/things/{thing_id}': {
        parameters: [{ name: 'thing_id', in: 'path', required: true, schema: { type: 'string' } }],
        put: {
          operationId: 'putThing',
          parameters: [
            { name: 'limit', in: 'query', schema: { type: 'integer', default: 50 } },
            { name: 'cursor', in: 'query', schema: { type: 'string' } },
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { allOf: [{ $ref: '#/components/schemas/Fields' }, { required: ['name'] }] } } },
          },
          responses: {
            '200': {
              description: 'ok',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } }, 'text/csv': { schema: { type: 'string' } } },
            },
            '204': { description: 'none' },
            '404': { description: 'no', content: { 'application/json': { schema: { type: 'object' } } } },
          },
        },
        post: {
          operationId: 'uploadThing',
          requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          responses: {
            '201': { description: 'ok', content: { 'application/json': { schema: { oneOf: [{ $ref: '#/components/schemas/Thing' }, { const: 'later' }] } } } },
          },
        },
      },
    },
    components: {
      schemas: {
        Fields: {
          type: 'object',
          additionalProperties: false,
          properties: {
            name: { type: 'string' },
            tags: { type: 'array', items: { type: 'string' }, default: [] },
            choice: { oneOf: [{ $ref: '#/components/schemas/Kind' }, { type: 'null' }] },
          },
        },
        Kind: { enum: ['a', 'b'] },
        Thing: {
          type: 'object',
          required: ['id', 'note', 'extra'],
          properties: {
            id: { type: 'string' },
            note: { type: ['string', 'null'] },
            extra: { type: 'object', additionalProperties: { type: 'integer' } },
            free: { type: 'object' },
          },
        },
      },
    },
  }
  const text = generateOperationsModule(stringify(document))
  const squeezed = text.replace(/\s+/g, ' ')
  t.match(squeezed, 'params: { thing_id: string }', 'path parameters, shared by the path item')
  t.match(squeezed, 'query: { limit: number cursor?: string }', 'a parameter with a default is present after validation')
  t.match(squeezed, 'body: WithRequired<FieldsIn, "name">', 'allOf with a required-only branch')
  t.match(squeezed, 'export type FieldsIn = { name?: string tags: string[] choice?: Kind | null }', 'defaults fill in request bodies (a variant named ...In)')
  t.notMatch(squeezed, 'export type Fields =', 'no response uses Fields as sent')
  t.match(squeezed, '200: { "application/json": Thing "text/csv": string } 204: {} }', '2xx responses by media type; none for 4xx')
  t.match(squeezed, 'body: Buffer', 'raw bodies are bytes')
  t.match(squeezed, '"application/json": Thing | "later"', 'oneOf and const')
  t.match(squeezed, 'export type Kind = "a" | "b"', 'enum')
  t.match(
    squeezed,
    'export type Thing = { id: string note: string | null extra: { [key: string]: number } free?: { [key: string]: unknown } }',
    'nullable types, maps, free-form objects; objects with properties are closed',
  )
  t.match(squeezed, 'export type ApiOperationId = | "putThing" | "uploadThing"')
})

t.test('routes and contract agree: every documented operation exists and every route is documented', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  await app.ready()
  const operations = [...loadOperations().values()]
  t.ok(operations.length >= 40, `${operations.length} operations`)
  for (const operation of operations) t.ok(app.hasRoute({ method: operation.method, url: operation.url }), `${operation.method} ${operation.path} exists`)
  const documented = new Set(operations.map((o) => `${o.method} ${o.url}`))
  // The device-facing MDM protocol and Apps and Books notifications are Apple's, not ours to
  // document; Swagger UI's own assets are not operations.
  const exempt = (url: string) => url.startsWith('/mdm') || url.startsWith('/vpp/notifications/') || url.startsWith('/api/docs')
  const undocumented = registeredRoutes(app).filter((r) => !exempt(r.url) && !documented.has(`${r.method} ${r.url}`))
  t.same(undocumented, [], 'no route outside openapi.yaml')
})

t.test('every operation names its roles and documents 401/403 when it needs a key', async (t) => {
  for (const operation of loadOperations().values()) {
    if (operation.allowedRoles === null) continue
    const statuses = Object.keys((spec.paths[operation.path]![operation.method.toLowerCase()] as { responses: object }).responses)
    t.ok(statuses.includes('401') && statuses.includes('403'), `${operation.operationId} documents 401 and 403`)
  }
})

t.test('the documented problem codes are exactly the server error codes', async (t) => {
  t.same([...spec.components.schemas['Problem'].properties.code.enum].sort(), Object.keys(errorCodes).sort())
})

t.test('the RequestType enum is the generated command catalogue', async (t) => {
  t.same(spec.components.schemas['RequestType'].enum, [...requestTypes])
  t.equal(requestTypes.length, 66)
})

// Request bodies refuse fields they do not define: a misspelt field (a blueprint's "apps" for
// "applications") is an error naming it, never dropped in silence. A body open on purpose
// says where its keys are checked instead.
const openOnPurpose: Record<string, string> = {
  '#/components/schemas/TypedCommand': "its keys depend on the RequestType: src/mdm/command-validation.ts refuses those Apple's schema does not name",
  '#/components/schemas/ManagedAppConfiguration': 'managed app configuration: the app defines its keys, Orchard passes them on',
  '#/components/schemas/DeclarationPayload': "its keys depend on the declaration's type: src/mdm/declarations.ts refuses those Apple's schema does not name",
  '#/components/schemas/OsCatalogueDocument': "Apple's software lookup document: Apple adds keys; src/updates/pmv-document.ts checks what it reads",
}

type Schema = Record<string, any>

/**
 * Where a request body schema takes properties it does not define: objects without
 * `additionalProperties: false`, unless `unevaluatedProperties: false` closes them (itself, or
 * a schema composing them with allOf/oneOf/anyOf). A map (`additionalProperties: {schema}`) is
 * closed by its value schema.
 */
function openObjects(document: Schema, schema: unknown, where: string, closedAbove = false, seen: readonly string[] = []): string[] {
  if (schema === null || typeof schema !== 'object') return []
  const node = schema as Schema
  if (typeof node['$ref'] === 'string') {
    const ref = node['$ref']
    if (ref in openOnPurpose || seen.includes(ref)) return []
    const target = ref
      .slice(2)
      .split('/')
      .reduce<any>((at, part) => at?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], document)
    return openObjects(document, target, ref, closedAbove, [...seen, ref])
  }
  const types = [node['type']].flat()
  const isObject = types.includes('object') || node['properties'] !== undefined
  const closesBelow = closedAbove || node['unevaluatedProperties'] === false
  const open: string[] = []
  if (isObject && !closesBelow && node['additionalProperties'] !== false && typeof node['additionalProperties'] !== 'object') open.push(where)
  for (const [name, property] of Object.entries((node['properties'] ?? {}) as Record<string, unknown>))
    open.push(...openObjects(document, property, `${where}/properties/${name}`, false, seen))
  if (typeof node['additionalProperties'] === 'object')
    open.push(...openObjects(document, node['additionalProperties'], `${where}/additionalProperties`, false, seen))
  for (const key of ['items', 'prefixItems'] as const) {
    for (const [index, item] of [node[key]].flat().entries())
      open.push(...openObjects(document, item, `${where}/${key}${Array.isArray(node[key]) ? `/${index}` : ''}`, false, seen))
  }
  // unevaluatedProperties sees the properties every branch evaluated: it closes them all.
  for (const key of ['allOf', 'oneOf', 'anyOf'] as const) {
    for (const [index, branch] of ((node[key] ?? []) as unknown[]).entries())
      open.push(...openObjects(document, branch, `${where}/${key}/${index}`, closesBelow, seen))
  }
  return open
}

t.test('every JSON request body refuses fields it does not define', async (t) => {
  const open: string[] = []
  let bodies = 0
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(item as Record<string, any>)) {
      const schema = operation?.requestBody?.content?.['application/json']?.schema
      if (schema === undefined) continue
      bodies++
      open.push(...openObjects(spec, schema, `${method.toUpperCase()} ${path}`))
    }
  }
  t.ok(bodies >= 30, `${bodies} JSON request bodies`)
  t.same(open, [], 'add additionalProperties: false (unevaluatedProperties: false where allOf composes), or list a body open on purpose in openOnPurpose')
})

t.test('the open-object check finds what it must', async (t) => {
  const document = {
    components: {
      schemas: {
        Open: { type: 'object', properties: { a: { type: 'string' } } },
        Closed: { type: 'object', additionalProperties: false, properties: { nested: { type: 'object', properties: {} } } },
        Composed: { type: 'object', properties: { name: { type: 'string' } } },
      },
    },
  }
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
  t.same(openObjects(document, ref('Open'), 'body'), ['#/components/schemas/Open'])
  t.same(openObjects(document, ref('Closed'), 'body'), ['#/components/schemas/Closed/properties/nested'], 'nested objects too')
  t.same(openObjects(document, { type: 'array', items: ref('Open') }, 'body'), ['#/components/schemas/Open'], 'array items too')
  t.same(openObjects(document, { allOf: [ref('Composed'), { type: 'object', properties: { tenant_id: {} } }] }, 'body'), [
    '#/components/schemas/Composed',
    'body/allOf/1',
  ])
  t.same(
    openObjects(document, { allOf: [ref('Composed'), { type: 'object', properties: { tenant_id: {} } }], unevaluatedProperties: false }, 'body'),
    [],
    'unevaluatedProperties closes what allOf composes',
  )
  t.same(
    openObjects(document, { type: 'object', additionalProperties: { type: 'object', properties: {} } }, 'body'),
    ['body/additionalProperties'],
    'the values of a map',
  )
  t.same(openObjects(document, { type: 'object', additionalProperties: true }, 'body'), ['body'])
})

t.test("TypedCommand is open in the schema, and its keys are checked against Apple's", async (t) => {
  t.equal(spec.components.schemas['TypedCommand'].additionalProperties, true)
  const checked = validateTypedCommand({ request_type: 'DeviceLock', Mesage: 'Call IT' })
  t.same(checked, { ok: false, errors: [{ pointer: '/Mesage', detail: 'is not a key of DeviceLock' }] }, 'a misspelt key is refused with a pointer')
})

t.test('a blueprint with "apps" (the field is "applications") is refused with a pointer to /apps', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { ORCHARD_API_KEYS: testApiKey })
  const api = apiClient(app)
  const apps = [{ bundle_id: 'com.example.app', itunes_store_id: 1 }]
  const created = await api('POST', '/api/v1/blueprints', { body: { name: 'With apps', apps } })
  t.equal(created.statusCode, 400)
  t.match(created.json, {
    code: 'validation_failed',
    detail: 'request body field /apps is not a known field',
    errors: [{ pointer: '/apps', detail: 'is not a known field' }],
  })
  const blueprint = await api('POST', '/api/v1/blueprints', { body: { name: 'With applications', applications: apps, tenant_id: null } })
  t.equal(blueprint.statusCode, 201, 'the documented fields, tenant_id included, still pass')
  t.same(blueprint.json.applications, apps)
  const replaced = await api('PUT', `/api/v1/blueprints/${blueprint.json.id}`, { body: { name: 'With apps', apps } })
  t.equal(replaced.statusCode, 400)
  t.match(replaced.json.errors, [{ pointer: '/apps', detail: 'is not a known field' }])
  const nested = await api('POST', '/api/v1/blueprints', {
    body: { name: 'Nested', applications: [{ bundle_id: 'com.example.app', itunes_store_id: 1, version: '2' }] },
  })
  t.match(nested.json.errors, [{ pointer: '/applications/0/version', detail: 'is not a known field' }], 'nested objects name the field too')
})
