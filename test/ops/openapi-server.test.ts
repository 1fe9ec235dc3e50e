// The served API document and Swagger UI name ORCHARD_PUBLIC_URL as their server, so "Try it
// out" calls this installation; without it, the relative "/" of openapi.yaml.
import t from 'tap'
import { parse } from 'yaml'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

t.test('with ORCHARD_PUBLIC_URL the served document and Swagger UI use it as their server', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { ORCHARD_PUBLIC_URL: 'https://mdm.example.test' })
  const yaml = await app.inject({ method: 'GET', url: '/api/openapi.yaml' })
  t.equal(yaml.statusCode, 200)
  const document = parse(yaml.body) as { servers: Array<{ url: string }>; paths: Record<string, unknown> }
  t.same(
    document.servers.map((server) => server.url),
    ['https://mdm.example.test'],
  )
  t.ok(document.paths['/readyz'], 'the rest of the document is intact')
  const ui = await app.inject({ method: 'GET', url: '/api/docs/json' })
  t.equal(ui.statusCode, 200)
  t.same(
    ui.json<{ servers: Array<{ url: string }> }>().servers.map((server) => server.url),
    ['https://mdm.example.test'],
  )
})

t.test('without ORCHARD_PUBLIC_URL both keep the relative "/"', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  const document = parse((await app.inject({ method: 'GET', url: '/api/openapi.yaml' })).body) as { servers: Array<{ url: string }> }
  t.same(
    document.servers.map((server) => server.url),
    ['/'],
  )
  t.same(
    (await app.inject({ method: 'GET', url: '/api/docs/json' })).json<{ servers: Array<{ url: string }> }>().servers.map((server) => server.url),
    ['/'],
  )
})
