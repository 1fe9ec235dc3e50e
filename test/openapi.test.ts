import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { generateOpenapiModule, openapiModulePath } from '../scripts/generate-openapi.js'
import { registeredRoutes } from '../src/app.js'
import { errorCodes } from '../src/errors.js'
import { loadOperations } from '../src/http/api/openapi.js'
import { requestTypes } from '../src/mdm/command-validation.js'
import { buildTestApp } from './helpers/app.js'
import { createTestDatabase } from './helpers/database.js'

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

t.test('the generated module is up to date with openapi.yaml (run `npm run generate` when this fails)', async (t) => {
  t.equal(readFileSync(new URL(`../${openapiModulePath}`, import.meta.url), 'utf8'), generateOpenapiModule(yamlText))
})

t.test('routes and contract agree: every documented operation exists and every route is documented', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  await app.ready()
  const operations = [...loadOperations().values()]
  t.ok(operations.length >= 40, `${operations.length} operations`)
  for (const operation of operations) t.ok(app.hasRoute({ method: operation.method, url: operation.url }), `${operation.method} ${operation.path} exists`)
  const documented = new Set(operations.map((o) => `${o.method} ${o.url}`))
  // The device-facing MDM protocol is Apple's, not ours to document; Swagger UI's own assets are not operations.
  const exempt = (url: string) => url.startsWith('/mdm') || url.startsWith('/api/docs')
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
