// Enrollment throughput in-process (app.inject, no sockets): profile downloads (each mints a
// one-time challenge) and SCEP PKIOperations (decrypt, check, issue, record, answer), on
// PGlite or PostgreSQL. Client work (RSA key generation, building requests) is done before
// the clock starts. Run: npx tsx scripts/bench-scep.ts [--backend postgres|pglite] [--count 200] [--concurrency 8]
import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { createOrchard } from '../src/main.js'
import { mintPushCertificate } from '../test/helpers/fake-apns.js'
import { buildCsr, buildPkiOperation, generateRsaKey, parseCaCertResponse, parseCertRep, selfSignedCertificate } from '../test/helpers/scep-client.js'
import { createTestCa } from '../test/helpers/test-ca.js'
import { testTopic } from '../test/helpers/simulated-device.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '')
const backend = args.get('backend') ?? 'postgres'
const count = Number(args.get('count') ?? 200)
const concurrency = Number(args.get('concurrency') ?? 8)
process.env['ORCHARD_TEST_BACKEND'] = backend
// Read at import time: imported after the backend is chosen.
const { createTestDatabase } = await import('../test/helpers/database.js')

const cleanups: Array<() => unknown> = []
const database = await createTestDatabase({ teardown: (fn) => void cleanups.push(fn) })
const apiKey = 'bench-api-key-0123456789abcdef'
const config = loadConfig(
  {
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_PUBLIC_URL: 'https://mdm.example.test',
    ORCHARD_API_KEYS: apiKey,
    ORCHARD_REPUSH_LOOP_SECONDS: '0',
    ORCHARD_WEBHOOK_WORKER: 'false',
  },
  [],
)
const { app } = await createOrchard(config, database, pino({ level: 'silent' }))
const push = await mintPushCertificate(await createTestCa('Bench push CA', 'rsa-2048'), testTopic)
await app.inject({
  method: 'POST',
  url: '/api/v1/push-certificates',
  headers: { authorization: `Bearer ${apiKey}` },
  payload: { certificate_pem: push.certificatePem, private_key_pem: push.privateKeyPem },
})

async function timed<T>(label: string, items: T[], run: (item: T) => Promise<void>): Promise<void> {
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await run(items[next++]!)
    }),
  )
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const used = process.cpuUsage(cpu)
  console.log(
    `${label.padEnd(26)} ${(items.length / seconds).toFixed(0).padStart(6)}/s  ${((used.user + used.system) / 1000 / items.length).toFixed(2)} ms CPU each (server process, incl. ${backend === 'pglite' ? 'PGlite' : 'pg client'})`,
  )
}

// 1. Profile downloads: each mints and stores a one-time challenge.
const challenges: string[] = []
await timed(
  'GET /enroll',
  Array.from({ length: count }, (_, i) => i),
  async () => {
    const response = await app.inject({ method: 'GET', url: '/enroll' })
    if (response.statusCode !== 200) throw new Error(`enroll ${response.statusCode}: ${response.body}`)
    challenges.push(/<key>Challenge<\/key>\s*<string>([^<]+)<\/string>/.exec(response.body)![1]!)
  },
)

// 2. PKIOperations, prepared first (RSA key generation dominates a real client).
const caResponse = await app.inject({ method: 'GET', url: '/scep?operation=GetCACert' })
const { recipient } = parseCaCertResponse(caResponse.rawPayload, String(caResponse.headers['content-type']))
console.log(`preparing ${count} requests (RSA-2048 keys)...`)
const requests = challenges.map((challenge) => {
  const key = generateRsaKey()
  const subject = { commonName: 'bench device', organization: 'Bench' }
  const built = buildPkiOperation({
    csrDer: buildCsr({ key, subject, challenge }),
    recipientCertificateDer: recipient,
    signerCertificateDer: selfSignedCertificate(key, subject),
    signerKey: key.privateKey,
  })
  return { der: built.der, key }
})
let verified = 0
await timed('POST /scep PKIOperation', requests, async (request) => {
  const response = await app.inject({
    method: 'POST',
    url: '/scep?operation=PKIOperation',
    payload: request.der,
    headers: { 'content-type': 'application/x-pki-message' },
  })
  if (response.statusCode !== 200) throw new Error(`scep ${response.statusCode}: ${response.body}`)
  if (verified++ < 5 && parseCertRep(response.rawPayload, { recipientKey: request.key.privateKey }).pkiStatus !== 'SUCCESS')
    throw new Error('SCEP did not succeed')
})

console.log(`${backend}, ${count} each, ${concurrency} concurrent, Node ${process.version}`)
await app.close()
for (const cleanup of cleanups.reverse()) await cleanup()
