import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { verifyWebhookSignature } from '../../src/webhooks/webhook-service.js'
import { apiClient } from '../helpers/api.js'
import { setupMdm } from '../helpers/mdm-fixture.js'
import { commandIn } from '../helpers/simulated-device.js'

interface Received {
  headers: IncomingMessage['headers']
  body: string
}

async function startReceiver(t: { teardown(fn: () => unknown): void }) {
  const received: Received[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') })
      response.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received }
}

t.test('webhooks need ORCHARD_SECRET_KEYS', async (t) => {
  const mdm = await setupMdm(t)
  const api = apiClient(mdm.app)
  const refused = await api('POST', '/api/v1/webhooks', { body: { url: 'http://127.0.0.1:9/x', event_types: ['*'] } })
  t.equal(refused.statusCode, 409)
  t.match(refused.json.detail, /ORCHARD_SECRET_KEYS/)
})

t.test('check-ins and command results reach a subscribed receiver, signed', async (t) => {
  // Delivery is driven by the test (deliverDue) rather than the background worker.
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('base64'), ORCHARD_WEBHOOK_WORKER: 'false' })
  const api = apiClient(mdm.app)
  const receiver = await startReceiver(t)
  const created = await api('POST', '/api/v1/webhooks', {
    body: { url: receiver.url, event_types: ['checkin.authenticate', 'checkin.token_update', 'command.result'], description: 'SIEM' },
  })
  t.equal(created.statusCode, 201)
  const secret: string = created.json.secret
  t.match(secret, /^whsec_/)
  t.notOk(JSON.stringify((await api('GET', '/api/v1/webhooks')).json).includes(secret), 'the list never shows the secret')
  const other = await api('POST', '/api/v1/webhooks', { body: { url: `${receiver.url}?other`, event_types: ['checkin.checkout'] } })
  t.equal(other.statusCode, 201)

  const device = await mdm.enrolledDevice()
  const uuid = (await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { body: { request_type: 'ProfileList' } })).json.command_uuid
  const response = await device.idle()
  await device.answer(commandIn(response)!.uuid, 'Acknowledged', { ProfileList: [] })
  await mdm.orchard.webhooks.deliverDue()

  const events = receiver.received.map((r) => ({ ...r, event: JSON.parse(r.body) }))
  t.same(
    events.map((e) => e.event.type),
    ['checkin.authenticate', 'checkin.token_update', 'command.result'],
  )
  for (const e of events) {
    t.ok(verifyWebhookSignature(secret, e.headers['orchard-signature'] as string, e.body, 300, Math.floor(Date.now() / 1000)), `${e.event.type} is signed`)
    t.equal(e.headers['orchard-event-type'], e.event.type)
    t.notOk(e.body.includes(device.token.toString('base64')), 'no push token in events')
  }
  t.match(events[0]!.event.data, { message_type: 'Authenticate', device_id: device.udid, message: { SerialNumber: device.serialNumber } })
  t.match(events[2]!.event.data, { command_uuid: uuid, status: 'Acknowledged', enrollment_id: device.udid })

  const deliveries = await api('GET', `/api/v1/webhooks/${created.json.id}/deliveries?limit=2`)
  t.equal(deliveries.json.items.length, 2)
  t.ok(deliveries.json.items.every((d: { status: string }) => d.status === 'delivered'))
  const rest = await api('GET', `/api/v1/webhooks/${created.json.id}/deliveries?limit=2&cursor=${deliveries.json.next_cursor}`)
  t.equal(rest.json.items.length, 1)
  t.equal(rest.json.next_cursor, null)

  const disabled = await api('PATCH', `/api/v1/webhooks/${created.json.id}`, { body: { enabled: false } })
  t.equal(disabled.json.enabled, false)
  const rotated = await api('POST', `/api/v1/webhooks/${created.json.id}/rotate-secret`)
  t.not(rotated.json.secret, secret)
  t.equal((await api('DELETE', `/api/v1/webhooks/${created.json.id}`)).statusCode, 204)
  t.equal((await api('GET', `/api/v1/webhooks/${created.json.id}`)).statusCode, 404)
})

t.test('command results carry no device secret: an Activation Lock bypass code does not leave the server', async (t) => {
  const mdm = await setupMdm(t, { ORCHARD_SECRET_KEYS: randomBytes(32).toString('base64'), ORCHARD_WEBHOOK_WORKER: 'false' })
  const api = apiClient(mdm.app)
  const receiver = await startReceiver(t)
  t.equal((await api('POST', '/api/v1/webhooks', { body: { url: receiver.url, event_types: ['command.result'] } })).statusCode, 201)
  const device = await mdm.enrolledDevice()
  const uuid = (await api('POST', `/api/v1/devices/${device.udid}/commands?push=false`, { body: { request_type: 'ActivationLockBypassCode' } })).json
    .command_uuid
  const code = 'ABCDE-FGHIJ-KLMNO-PQRST-UVWXY'
  await device.answer(commandIn(await device.idle())!.uuid, 'Acknowledged', { ActivationLockBypassCode: code })
  await mdm.orchard.webhooks.deliverDue()
  const events = receiver.received.map((r) => JSON.parse(r.body) as { type: string; data: { command_uuid: string } })
  t.match(events, [{ type: 'command.result', data: { command_uuid: uuid, status: 'Acknowledged' } }])
  t.notOk(
    receiver.received.some((r) => r.body.includes(code)),
    'the code is not in the event',
  )
})
