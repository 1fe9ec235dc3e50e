import t from 'tap'
import { OrchardError } from '../../src/errors.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

// Routes added here exercise the app's one error handler; real routes come with later issues.
async function appWithProbeRoutes(t: Parameters<typeof buildTestApp>[0]) {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  app.post('/probe/json', { bodyLimit: 64 }, async (request) => ({ got: request.body }))
  app.post(
    '/probe/validated',
    { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, count: { type: 'integer' } } } } },
    async () => ({ ok: true }),
  )
  app.get('/probe/conflict', async () => {
    throw new OrchardError('conflict', 'that name is taken')
  })
  app.get('/probe/crash', async () => {
    throw new Error('database password is hunter2')
  })
  return app
}

t.test('errors are RFC 9457 problem+json with a stable code', async (t) => {
  const app = await appWithProbeRoutes(t)

  const notFound = await app.inject({ method: 'GET', url: '/nothing-here?x=1' })
  t.equal(notFound.statusCode, 404)
  t.match(notFound.headers['content-type'], /^application\/problem\+json/)
  t.match(notFound.json(), {
    type: 'urn:orchard:problem:not_found',
    title: 'Not found',
    status: 404,
    code: 'not_found',
    detail: 'no route for GET /nothing-here',
  })
  t.equal(notFound.json().request_id, notFound.headers['x-request-id'])

  const conflict = await app.inject({ method: 'GET', url: '/probe/conflict' })
  t.equal(conflict.statusCode, 409)
  t.match(conflict.json(), { code: 'conflict', detail: 'that name is taken' })

  const badJson = await app.inject({ method: 'POST', url: '/probe/json', headers: { 'content-type': 'application/json' }, payload: '{"a":' })
  t.equal(badJson.statusCode, 400)
  t.match(badJson.json(), { code: 'invalid_json', detail: /not valid JSON/ })

  const tooLarge = await app.inject({
    method: 'POST',
    url: '/probe/json',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ a: 'x'.repeat(100) }),
  })
  t.equal(tooLarge.statusCode, 413)
  t.match(tooLarge.json(), { code: 'payload_too_large' })

  const wrongType = await app.inject({ method: 'POST', url: '/probe/json', headers: { 'content-type': 'application/x-unknown' }, payload: 'x' })
  t.equal(wrongType.statusCode, 415)
  t.match(wrongType.json(), { code: 'unsupported_media_type' })

  const invalid = await app.inject({ method: 'POST', url: '/probe/validated', payload: { count: 'many' } })
  t.equal(invalid.statusCode, 400)
  t.match(invalid.json(), { code: 'validation_failed', errors: [{ pointer: '/name', detail: /required/ }] })
})

t.test('a crash is a 500 that hides its details', async (t) => {
  const app = await appWithProbeRoutes(t)
  const crash = await app.inject({ method: 'GET', url: '/probe/crash' })
  t.equal(crash.statusCode, 500)
  t.match(crash.json(), { code: 'internal', detail: 'internal server error' })
  t.notMatch(crash.body, 'hunter2')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'the server carries on')
})

t.test('a sane X-Request-Id is kept, anything else replaced', async (t) => {
  const app = await appWithProbeRoutes(t)
  const kept = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'upstream-123.abc' } })
  t.equal(kept.headers['x-request-id'], 'upstream-123.abc')
  const replaced = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'bad id\u0007' } })
  t.match(replaced.headers['x-request-id'], /^[0-9a-f-]{36}$/)
})
