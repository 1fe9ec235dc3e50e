// A fake of Apple's escrowKeyUnlock service (deviceservices-external.apple.com) for tests:
// HTTPS on loopback that asks for the client's certificate (the MDM push certificate: it
// must come from the CA it is told to trust), POST /deviceservicesworkers/escrowKeyUnlock
// with the device in the query string (serial, productType required; imei, imei2, meid) and
// orgName, guid and escrowKey as an application/x-www-form-urlencoded body, as Apple's
// "Creating and using bypass codes" describes it. Apple's activation server is a map of the
// devices that are locked: by a device-generated code (user-linked lock), or by the escrow
// key of a server-created code (organization-linked lock, as ABM's POST /device/activationlock
// receives it); the fake checks a server code the way Apple does, by its PBKDF2 hash.
// Apple documents no answers: this fake answers 200 (empty) when the code unlocks the device,
// 400 with a text reason for a malformed request or a wrong code, 404 for a device it does
// not hold locked, and 403 to a client without a trusted certificate.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { escrowKeyOf } from '../../src/crypto/bypass-code.js'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem } from '../../src/crypto/certificates.js'
import { createTestCa } from './test-ca.js'

export const escrowKeyUnlockPath = '/deviceservicesworkers/escrowKeyUnlock'

export interface FakeUnlockRequest {
  method: string
  path: string
  contentType: string
  query: Record<string, string>
  form: Record<string, string>
  /** UID (the APNs topic) of the client certificate, when it was trusted. */
  clientTopic: string | null
  status: number
}

/** How Apple's activation server holds a device locked. */
export type FakeLock = { kind: 'device-code'; code: string } | { kind: 'escrow-key'; escrowKey: string }

export interface FakeDeviceServices {
  /** The escrowKeyUnlock URL (https://127.0.0.1:<port>/deviceservicesworkers/escrowKeyUnlock). */
  url: string
  /** The CA of the fake's server certificate (ORCHARD_ACTIVATION_LOCK_UNLOCK_CA_FILE). */
  caPem: string
  requests: FakeUnlockRequest[]
  /** Locked devices by serial; a successful unlock removes the entry. */
  locks: Map<string, FakeLock>
  close(): Promise<void>
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

export async function startFakeDeviceServices(options: { clientCaPem: string }): Promise<FakeDeviceServices> {
  const serverCa = await createTestCa(`Fake device services CA ${randomUUID()}`)
  const keys = await generateKeyPair('ec-p256')
  const certificate = await createCertificate({
    subject: { commonName: 'localhost' },
    publicKey: keys.publicKey,
    issuer: { certificate: serverCa.certificate, privateKey: serverCa.privateKey },
    validDays: 2,
    usage: 'server',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  })
  const requests: FakeUnlockRequest[] = []
  const locks = new Map<string, FakeLock>()

  async function answer(
    req: IncomingMessage,
    clientTopic: string | null,
    trusted: boolean,
  ): Promise<{ status: number; body: string; record: FakeUnlockRequest }> {
    const url = new URL(req.url ?? '/', 'https://fake-device-services')
    const raw = await readBody(req)
    const contentType = String(req.headers['content-type'] ?? '')
    const form = contentType.startsWith('application/x-www-form-urlencoded') ? Object.fromEntries(new URLSearchParams(raw)) : {}
    const record: FakeUnlockRequest = {
      method: req.method ?? '',
      path: url.pathname,
      contentType,
      query: Object.fromEntries(url.searchParams),
      form,
      clientTopic,
      status: 0,
    }
    const reply = (status: number, body = '') => ({ status, body, record })
    if (!trusted) return reply(403, 'client certificate required')
    if (url.pathname !== escrowKeyUnlockPath) return reply(404, 'not found')
    if (req.method !== 'POST') return reply(405, 'method not allowed')
    if (!contentType.startsWith('application/x-www-form-urlencoded')) return reply(400, 'expected a form body')
    const serial = url.searchParams.get('serial')
    const productType = url.searchParams.get('productType')
    if (!serial || !productType || !form['orgName'] || !form['guid'] || !form['escrowKey']) return reply(400, 'missing parameter')
    const lock = locks.get(serial)
    if (!lock) return reply(404, 'device not found')
    const matches = lock.kind === 'device-code' ? form['escrowKey'] === lock.code : (await escrowKeyOf(form['escrowKey'])) === lock.escrowKey.toLowerCase()
    if (!matches) return reply(400, 'invalid escrow key')
    locks.delete(serial)
    return reply(200)
  }

  const respond = (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as TLSSocket
    const subject = socket.authorized ? socket.getPeerCertificate().subject : undefined
    const uid = subject?.['UID' as keyof typeof subject]
    answer(req, typeof uid === 'string' ? uid : null, socket.authorized).then(
      ({ status, body, record }) => {
        record.status = status
        requests.push(record)
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' })
        res.end(body)
      },
      (error: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
        res.end(String(error))
      },
    )
  }

  const server = createServer(
    { cert: certificateToPem(certificate), key: await privateKeyToPem(keys.privateKey), requestCert: true, rejectUnauthorized: false, ca: options.clientCaPem },
    respond,
  )
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `https://127.0.0.1:${port}${escrowKeyUnlockPath}`,
    caPem: serverCa.pem,
    requests,
    locks,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
