// The CLI follows a job: a fake admin API on loopback answers a sync with 202 and a job that
// moves on each poll, so the test sees every progress line without sleeping (the CLI's sleep
// is injected and records the poll interval instead).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { isolatedHome, runCli } from '../helpers/orchard-cli.js'

interface FakeJob {
  states: Array<Record<string, unknown>>
  polls: number
  errors: Array<Record<string, unknown>>
}

const tokenId = '11111111-1111-4111-8111-111111111111'

function job(id: string, fields: Record<string, unknown>): Record<string, unknown> {
  return {
    id,
    type: 'abm_sync',
    tenant_id: null,
    state: 'running',
    done: 0,
    total: 3,
    outcomes: {},
    started_by: { api_key_id: 'abcdefabcdef', name: 'ops' },
    created_at: '2026-12-06T10:00:00.000Z',
    started_at: '2026-12-06T10:00:01.000Z',
    finished_at: null,
    cancellable: false,
    ...fields,
  }
}

const report = { token_id: tokenId, outcome: 'synced', pages: 3, devices: 250, added: 7, restarted_fetch: false, status: 'ok', status_detail: null }

/** A fake admin API: the sync answers 202 with job `jobId`, whose states `jobs[jobId]` walks through. */
async function fakeApi(t: { teardown(fn: () => unknown): void }, jobs: Record<string, FakeJob>, syncJob: string) {
  const requests: string[] = []
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    requests.push(`${request.method} ${request.url} ${request.headers.authorization ?? ''}`)
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      response.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers })
      response.end(JSON.stringify(body))
    }
    const url = new URL(request.url!, 'http://x')
    let match: RegExpExecArray | null
    if (request.method === 'POST' && url.pathname === `/api/v1/dep/tokens/${tokenId}/sync`) {
      const fake = jobs[syncJob]!
      return reply(202, fake.states[0], { location: `/api/v1/jobs/${syncJob}` })
    }
    if ((match = /^\/api\/v1\/jobs\/([^/]+)$/.exec(url.pathname))) {
      const fake = jobs[match[1]!]
      if (!fake) return reply(404, { type: 'urn:orchard:problem:not_found', title: 'Not found', status: 404, code: 'not_found', detail: 'no job' })
      if (request.method === 'DELETE') return reply(200, { ...fake.states.at(-1), state: 'cancelled', cancellable: false })
      fake.polls++
      return reply(200, fake.states[Math.min(fake.polls, fake.states.length - 1)])
    }
    if ((match = /^\/api\/v1\/jobs\/([^/]+)\/errors$/.exec(url.pathname))) return reply(200, { items: jobs[match[1]!]!.errors, next_cursor: null })
    if (url.pathname === '/api/v1/jobs') return reply(200, { items: Object.values(jobs).map((fake) => fake.states.at(-1)), next_cursor: null })
    reply(404, { type: 'urn:orchard:problem:not_found', title: 'Not found', status: 404, code: 'not_found', detail: `no route ${url.pathname}` })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const env = { ...isolatedHome(), ORCHARD_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ORCHARD_TOKEN: 'orchard_abcdefabcdef_secret' }
  return { env, requests }
}

const succeeding = (id: string): FakeJob => ({
  polls: 0,
  errors: [],
  states: [
    job(id, { state: 'queued', started_at: null, total: null }),
    job(id, { done: 1, outcomes: { synced: 1 } }),
    job(id, { done: 2, outcomes: { synced: 2 } }),
    job(id, { state: 'succeeded', done: 3, outcomes: { synced: 3 }, finished_at: '2026-12-06T10:00:09.000Z', result: report }),
  ],
})

t.test('abm sync answered with a job: plain progress lines until it succeeds, then its result', async (t) => {
  const { env, requests } = await fakeApi(t, { 'job-1': succeeding('job-1') }, 'job-1')
  const run = await runCli(['abm', 'sync', tokenId], { env, pollIntervalMs: 250 })
  t.equal(run.code, 0, run.stderr)
  t.equal(
    run.stderr,
    ['job job-1 queued: 0 done', 'job job-1 running: 1/3 (synced 1)', 'job job-1 running: 2/3 (synced 2)', 'job job-1 succeeded: 3/3 (synced 3)', ''].join(
      '\n',
    ),
    'one plain line each time the job moves',
  )
  t.equal(run.stdout, `${tokenId}: synced (250 devices, 7 new, 3 pages); status ok\n`, 'the sync report, as a synchronous sync prints it')
  t.same(run.sleeps, [250, 250, 250], 'the injected interval between polls; nothing slept')
  t.same(
    requests.map((line) => line.split(' ').slice(0, 2).join(' ')),
    [`POST /api/v1/dep/tokens/${tokenId}/sync`, 'GET /api/v1/jobs/job-1', 'GET /api/v1/jobs/job-1', 'GET /api/v1/jobs/job-1'],
  )
  t.ok(
    requests.every((line) => line.endsWith('Bearer orchard_abcdefabcdef_secret')),
    'every request carries the token',
  )

  const json = await runCli(['abm', 'sync', tokenId, '--json'], { env: { ...env }, pollIntervalMs: 0 })
  t.equal(json.code, 0)
  t.equal(JSON.parse(json.stdout).state, 'succeeded', '--json prints the final job')
})

t.test('on a terminal the progress is one bar redrawn in place', async (t) => {
  const { env } = await fakeApi(t, { 'job-2': succeeding('job-2') }, 'job-2')
  const run = await runCli(['abm', 'sync', tokenId], { env, tty: true })
  t.equal(run.code, 0, run.stderr)
  const frames = run.stderr.split('\r\x1b[K').filter(Boolean)
  t.equal(frames.length, 4)
  t.equal(frames[1], `abm_sync [##########....................] 33% 1/3 (synced 1) running`)
  t.equal(frames[3], `abm_sync [##############################] 100% 3/3 (synced 3) succeeded\n`)
})

t.test('a failed job exits 1 with its errors; --no-wait prints the job; jobs ls, show, cancel', async (t) => {
  const failing: FakeJob = {
    polls: 0,
    errors: [{ seq: 1, target: null, code: 'token_rejected', message: 'Apple refused the server token', created_at: '2026-12-06T10:00:05Z' }],
    states: [job('job-3', {}), job('job-3', { state: 'failed', done: 1, outcomes: { failed: 1 }, finished_at: '2026-12-06T10:00:05.000Z' })],
  }
  const { env } = await fakeApi(t, { 'job-3': failing }, 'job-3')
  const run = await runCli(['abm', 'sync', tokenId], { env })
  t.equal(run.code, 1)
  t.match(
    run.stderr,
    /job job-3 failed: 1\/3 \(failed 1\)\n {2}\(job\): token_rejected: Apple refused the server token\norchard: job job-3 failed: 1\/3 \(failed 1\)\n$/,
  )

  const noWait = await runCli(['abm', 'sync', tokenId, '--no-wait'], { env })
  t.equal(noWait.code, 0)
  t.match(noWait.stdout, /^Job:\s+job-3$/m)
  t.match(noWait.stdout, /follow it with: orchard jobs wait job-3/)
  t.equal(noWait.stderr, '', 'not followed')

  const listed = await runCli(['jobs', 'ls'], { env })
  t.equal(listed.code, 0, listed.stderr)
  t.match(listed.stdout, /^ID\s+TYPE\s+STATE\s+PROGRESS[^\n]*\njob-3\s+abm_sync\s+failed\s+1\/3 \(failed 1\)\s+\(central\)\s+ops/)
  const shown = await runCli(['jobs', 'show', 'job-3', '--json'], { env })
  t.equal(JSON.parse(shown.stdout).id, 'job-3')
  const cancelled = await runCli(['jobs', 'cancel', 'job-3'], { env })
  t.equal(cancelled.code, 0)
  t.match(cancelled.stdout, /^State:\s+cancelled$/m)
  const missing = await runCli(['jobs', 'show', 'job-404'], { env })
  t.equal(missing.code, 3)
  t.equal(missing.stderr, 'orchard: Not found: no job\n')
})
