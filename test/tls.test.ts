// `npm run certs:dev`, then the server started with ORCHARD_TLS_* serves HTTPS.
import { mkdtempSync, readFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { privateKeyToPem } from '../src/crypto/certificates.js'
import { encodePlist } from '../src/mdm/plist.js'
import { startOrchard } from '../src/main.js'
import { testLogger } from './helpers/app.js'
import { createTestDatabase, testBackend } from './helpers/database.js'
import { repoRoot } from './helpers/server-process.js'
import { createDeviceCa, SimulatedDevice } from './helpers/simulated-device.js'

function httpsGet(url: string, ca?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, ...(ca ? { ca } : {}) }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('dev certificates let the server speak HTTPS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-tls-'))
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/dev-certs.ts', '--out', dir], { cwd: repoRoot, stdio: 'pipe' })

  const env: Record<string, string> = {
    ORCHARD_TLS_CERT_FILE: join(dir, 'server.pem'),
    ORCHARD_TLS_KEY_FILE: join(dir, 'server-key.pem'),
    ORCHARD_PORT: '0',
    ORCHARD_DATA_DIR: join(dir, 'data'),
  }
  // On Postgres there is no embedded master key: give one, so the device CA /readyz needs exists.
  if (testBackend === 'postgres') Object.assign(env, { DATABASE_URL: (await createTestDatabase(t)).url!, ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })
  const server = await startOrchard(loadConfig(env, []), testLogger())
  t.teardown(() => server.close())

  t.match(server.address, /^https:\/\/127\.0\.0\.1:\d+$/)
  const ca = readFileSync(join(dir, 'ca.pem'))
  t.equal(await httpsGet(`${server.address}/healthz`, ca), 200)
  t.equal(await httpsGet(`${server.address.replace('127.0.0.1', 'localhost')}/readyz`, ca), 200, 'name in the certificate')
  await t.rejects(httpsGet(`${server.address}/healthz`), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'untrusted without the dev CA')
})

t.test('direct mTLS: a device presenting its identity certificate needs no Mdm-Signature', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-mtls-'))
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/dev-certs.ts', '--out', dir], { cwd: repoRoot, stdio: 'pipe' })
  const deviceCa = await createDeviceCa()
  const env: Record<string, string> = {
    ORCHARD_TLS_CERT_FILE: join(dir, 'server.pem'),
    ORCHARD_TLS_KEY_FILE: join(dir, 'server-key.pem'),
    ORCHARD_PORT: '0',
    ORCHARD_DATA_DIR: join(dir, 'data'),
    ORCHARD_DEVICE_CA_FILES: deviceCa.pemFile,
  }
  if (testBackend === 'postgres') env['DATABASE_URL'] = (await createTestDatabase(t)).url!
  const server = await startOrchard(loadConfig(env, []), testLogger())
  t.teardown(() => server.close())
  const ca = readFileSync(join(dir, 'ca.pem'))

  const device = await SimulatedDevice.create(deviceCa, async () => {
    throw new Error('not used')
  })
  const certPem = `-----BEGIN CERTIFICATE-----\n${device.certificateDer.toString('base64')}\n-----END CERTIFICATE-----\n`
  const keyPem = await privateKeyToPem(device.privateKey)
  const put = (body: Buffer, clientCert: boolean) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        `${server.address}/mdm/checkin`,
        {
          method: 'PUT',
          agent: false,
          ca,
          ...(clientCert ? { cert: certPem, key: keyPem } : {}),
          headers: { 'content-type': 'application/x-apple-aspen-mdm-checkin' },
        },
        (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  const authenticate = encodePlist({ MessageType: 'Authenticate', UDID: device.udid, Topic: device.topic })
  t.equal(await put(authenticate, false), 400, 'no certificate, no signature: refused (400, never 401)')
  t.equal(await put(authenticate, true), 200, 'the TLS client certificate identifies the device')
  const stored = await server.database.db.selectFrom('devices').select('identity_sha256').where('id', '=', device.udid).executeTakeFirstOrThrow()
  t.equal(stored.identity_sha256, createHash('sha256').update(device.certificateDer).digest('hex'), 'bound to that certificate')
})
