import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { errorCodes } from '../src/errors.js'
import { buildTestApp } from './helpers/app.js'
import { createTestDatabase } from './helpers/database.js'

const spec = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as {
  openapi: string
  paths: Record<string, Record<string, unknown>>
  components: { schemas: { Problem: { properties: { code: { enum: string[] } } } }; securitySchemes: Record<string, { scheme?: string }> }
}

t.test('openapi.yaml is OpenAPI 3.1 with the bearer API key scheme', async (t) => {
  t.equal(spec.openapi, '3.1.0')
  t.equal(spec.components.securitySchemes['apiKey']?.scheme, 'bearer')
})

t.test('every documented operation exists in the app', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  await app.ready()
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const method of Object.keys(operations).filter((key) => ['get', 'put', 'post', 'delete', 'patch'].includes(key))) {
      const url = path.replace(/\{(\w+)\}/g, ':$1') // OpenAPI {id} is Fastify :id
      t.ok(app.hasRoute({ method: method.toUpperCase() as 'GET', url }), `${method.toUpperCase()} ${path}`)
    }
  }
})

t.test('the documented problem codes are exactly the server error codes', async (t) => {
  t.same([...spec.components.schemas.Problem.properties.code.enum].sort(), Object.keys(errorCodes).sort())
})
