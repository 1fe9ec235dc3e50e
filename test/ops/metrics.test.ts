import t from 'tap'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

t.test('/metrics exposes request counts and latency per route, pool usage and event-loop lag', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  await app.inject({ method: 'GET', url: '/healthz' })
  await app.inject({ method: 'GET', url: '/healthz' })
  await app.inject({ method: 'GET', url: '/no/such/route/123' })

  const response = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const body = response.body
  t.match(body, 'orchard_http_requests_total{method="GET",route="/healthz",status_code="200"} 2')
  t.match(body, 'orchard_http_requests_total{method="GET",route="unmatched",status_code="404"} 1')
  t.notMatch(body, '/no/such/route', 'raw URLs never become labels')
  t.match(body, /orchard_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/healthz",status_code="200"\} \d+/)
  t.match(body, new RegExp(`orchard_db_pool_connections\\{backend="${database.kind}",state="total"\\} \\d+`))
  t.match(body, new RegExp(`orchard_db_pool_connections\\{backend="${database.kind}",state="waiting"\\} 0`))
  t.match(body, /nodejs_eventloop_lag_seconds \d/)
})
