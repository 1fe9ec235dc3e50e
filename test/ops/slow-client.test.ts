// Slow and idle clients lose their connection (issue 17): raw sockets against a listening
// app with small limits, over plain HTTP and over TLS. Nothing here measures time: each
// probe waits for the server to close the socket, and tap's own timeout fails a probe the
// server would keep forever.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { connect as connectTcp, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { connect as connectTls } from 'node:tls'
import { pino } from 'pino'
import t from 'tap'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem } from '../../src/crypto/certificates.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/database.js'

const requestTimeoutMs = 500
const smallLimits = {
  ORCHARD_HTTP_HEADERS_TIMEOUT_MS: '300',
  ORCHARD_HTTP_REQUEST_TIMEOUT_MS: String(requestTimeoutMs),
  ORCHARD_HTTP_KEEP_ALIVE_TIMEOUT_MS: '300',
}

const database = await createTestDatabase(t)

/** The real app (createOrchard) with `env`, plus a slow route, listening on a free port. */
async function listen(t: { teardown(fn: () => unknown): void }, env: Record<string, string>, options: { logLines?: string[] } = {}): Promise<number> {
  const logger = options.logLines ? pino({ level: 'warn' }, { write: (line: string) => options.logLines!.push(line) }) : undefined
  const { app } = await buildTestApp(t, database, env, logger ? { logger } : {})
  app.get('/test/slow', async () => {
    await delay(3 * requestTimeoutMs)
    return 'done'
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

/** Writes `request` once the socket is ready; resolves with all it received when it closes. */
function untilClosed(socket: Socket, ready: 'connect' | 'secureConnect', request: string): Promise<string> {
  return new Promise((resolve) => {
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (received += chunk))
    // A connection refused on arrival may end in a reset; 'close' follows either way.
    socket.on('error', () => undefined)
    socket.on('close', () => resolve(received))
    socket.once(ready, () => {
      if (request !== '') socket.write(request)
    })
  })
}

/** Sends one request on an open connection and resolves with the whole response. */
function roundTrip(socket: Socket, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = ''
    const onData = (chunk: Buffer) => {
      received += chunk.toString('utf8')
      const end = received.indexOf('\r\n\r\n')
      const length = /\r\ncontent-length: (\d+)/i.exec(received)
      if (end !== -1 && length && received.length >= end + 4 + Number(length[1])) {
        socket.off('data', onData)
        resolve(received)
      }
    }
    socket.on('data', onData)
    socket.once('close', () => reject(new Error(`connection closed after ${JSON.stringify(received)}`)))
    socket.write(request)
  })
}

const timeout408 = /^HTTP\/1\.1 408 Request Timeout\r\n/
const slowClients = [
  { name: 'a client that connects and sends nothing', request: '', expected: timeout408 },
  { name: 'a client that sends half its headers and stalls', request: 'PUT /mdm/connect HTTP/1.1\r\nHost: mdm.test\r\nContent-Ty', expected: timeout408 },
  {
    name: 'a client that sends its headers and part of its body and stalls',
    request: 'PUT /mdm/connect HTTP/1.1\r\nHost: mdm.test\r\nContent-Type: application/x-apple-aspen-mdm\r\nContent-Length: 1000\r\n\r\n<?xml',
    expected: timeout408,
  },
  {
    name: 'an idle kept-alive connection',
    request: 'GET /healthz HTTP/1.1\r\nHost: mdm.test\r\n\r\n',
    expected: /^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: keep-alive\r\n[\s\S]*\{"status":"ok"\}$/,
  },
  {
    name: 'a request whose handler outlasts the request timeout still gets its answer',
    request: 'GET /test/slow HTTP/1.1\r\nHost: mdm.test\r\nConnection: close\r\n\r\n',
    expected: /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\ndone$/,
  },
]

t.test('plain HTTP: slow and idle clients are disconnected', async (t) => {
  const port = await listen(t, smallLimits)
  await Promise.all(
    slowClients.map(async ({ name, request, expected }) => {
      t.match(await untilClosed(connectTcp(port, '127.0.0.1'), 'connect', request), expected, name)
    }),
  )
})

t.test('TLS: the same limits apply, and to the handshake', async (t) => {
  const keys = await generateKeyPair('ec-p256')
  const certificate = await createCertificate({
    subject: { commonName: 'localhost' },
    publicKey: keys.publicKey,
    selfSignKey: keys.privateKey,
    validDays: 2,
    usage: 'server',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  })
  const dir = mkdtempSync(join(tmpdir(), 'orchard-slow-tls-'))
  writeFileSync(join(dir, 'server.pem'), certificateToPem(certificate))
  writeFileSync(join(dir, 'server-key.pem'), await privateKeyToPem(keys.privateKey))
  const port = await listen(t, { ...smallLimits, ORCHARD_TLS_CERT_FILE: join(dir, 'server.pem'), ORCHARD_TLS_KEY_FILE: join(dir, 'server-key.pem') })

  // The certificate is not what is tested here: trust it blindly.
  const tlsSocket = () => connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false })
  await Promise.all([
    ...slowClients.map(async ({ name, request, expected }) => {
      t.match(await untilClosed(tlsSocket(), 'secureConnect', request), expected, name)
    }),
    (async () => {
      t.equal(await untilClosed(connectTcp(port, '127.0.0.1'), 'connect', ''), '', 'a client that never starts the TLS handshake')
    })(),
  ])
})

t.test('connections beyond the cap are refused while the open ones carry on', async (t) => {
  const logLines: string[] = []
  // Long timeouts: the connections held open must outlive the test.
  const port = await listen(t, { ORCHARD_HTTP_MAX_CONNECTIONS: '3', ORCHARD_HTTP_KEEP_ALIVE_TIMEOUT_MS: '60000' }, { logLines })
  const request = 'GET /healthz HTTP/1.1\r\nHost: mdm.test\r\n\r\n'

  const held: Socket[] = []
  for (let i = 0; i < 3; i++) {
    const socket = connectTcp(port, '127.0.0.1')
    t.teardown(() => socket.destroy())
    await new Promise((resolve) => socket.once('connect', resolve))
    // A full exchange: the server has accepted this connection before the next one comes.
    t.match(await roundTrip(socket, request), /^HTTP\/1\.1 200 OK\r\n/, `connection ${i + 1} is served`)
    held.push(socket)
  }

  t.equal(await untilClosed(connectTcp(port, '127.0.0.1'), 'connect', request), '', 'the fourth connection is closed unanswered')
  const warnings = logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => 'max_connections' in line)
  t.match(warnings, [{ level: 40, max_connections: 3, refused_connections: 1, msg: /connection cap/ }], 'the refusal is logged')

  for (const [i, socket] of held.entries()) {
    t.match(await roundTrip(socket, request), /^HTTP\/1\.1 200 OK\r\n/, `connection ${i + 1} is still served`)
  }
})
