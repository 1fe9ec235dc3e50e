// One rule for every operation that queues commands: it takes `push` (default true), and
// push=false queues without waking the device.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { loadOperations } from '../../src/http/openapi.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm } from '../helpers/mdm-fixture.js'

const spec = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, any>> }

t.test('every operation answering queued commands (EnqueueResult) takes push', async (t) => {
  const operations = loadOperations()
  const enqueueing: string[] = []
  for (const item of Object.values(spec.paths)) {
    for (const operation of Object.values(item)) {
      const answers = Object.entries((operation?.responses ?? {}) as Record<string, unknown>).filter(([status]) => /^2\d\d$/.test(status))
      if (!answers.some(([, response]) => /#\/components\/(responses\/Enqueued|schemas\/EnqueueResult)\b/.test(JSON.stringify(response)))) continue
      enqueueing.push(operation.operationId)
    }
  }
  t.ok(enqueueing.length >= 10, `${enqueueing.length} operations queue commands`)
  for (const id of enqueueing) {
    const operation = operations.get(id)!
    const push =
      (operation.querystring['properties'] as Record<string, any>)['push'] ?? (operation.jsonBody?.['properties'] as Record<string, any> | undefined)?.['push']
    t.same(push, { type: 'boolean', default: true }, `${id} takes push (default true)`)
  }
})

t.test('push=false queues without pushing, on every per-device shortcut', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const api = apiClient(mdm.app)
  const device = await mdm.enrolledDevice()
  const base = `/api/v1/devices/${device.udid}`

  const pushed = await api('DELETE', `${base}/profiles/org.example.wifi`)
  t.equal(pushed.statusCode, 201)
  t.not(pushed.json.push, null, 'pushed by default')

  const profile = Buffer.from('<plist version="1.0"><dict/></plist>')
  const calls: Array<[string, Parameters<typeof api>[1], Parameters<typeof api>[2]]> = [
    ['DELETE', `${base}/profiles/org.example.wifi?push=false`, {}],
    ['POST', `${base}/lock?push=false`, { body: { message: 'Call IT' } }],
    ['POST', `${base}/restart?push=false`, {}],
    ['POST', `${base}/profiles?push=false`, { raw: { payload: profile, contentType: 'application/x-apple-aspen-config' } }],
    ['POST', `${base}/clear-passcode?push=false`, {}],
    ['POST', `${base}/commands?push=false`, { body: { request_type: 'ProfileList' } }],
    ['POST', `${base}/erase?push=false`, {}],
  ]
  for (const [method, url, options] of calls) {
    const queued = await api(method as 'POST' | 'DELETE', url, options)
    t.equal(queued.statusCode, 201, `${method} ${url}`)
    t.match(queued.json, { stored: true, targets: [{ enrollment_id: device.udid, result: 'queued' }], push: null }, `${method} ${url} queued, not pushed`)
  }

  const inventory = await api('POST', `${base}/refresh-inventory?push=false`)
  t.equal(inventory.statusCode, 201)
  t.same(
    inventory.json.commands.map((command: { push: unknown }) => command.push),
    [null, null, null, null, null],
    'refresh-inventory: queued, not pushed',
  )
  t.not((await api('POST', `${base}/refresh-inventory`)).json.commands.at(-1).push, null, 'refresh-inventory pushes once by default')

  const refused = await api('POST', `${base}/lock?push=maybe`)
  t.equal(refused.statusCode, 400)
  t.match(refused.json.errors, [{ parameter: 'push' }])
})
