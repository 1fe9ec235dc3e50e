// The deployment as deploy/ ships it, run locally: nginx (deploy/nginx/orchard.conf) terminating
// TLS in front of two Orchard replicas on one PostgreSQL database, devices identified by the
// client certificate nginx forwards. One replica is killed (SIGKILL) in the middle of the drain:
// every command must still be delivered and acknowledged exactly once, and no device may see a 401
// (a device that gets one unenrolls itself).
import { spawn } from 'node:child_process'
import { KeyObject, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, watch, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { decodePlist, isPlistDict, type PlistDict } from '../../src/mdm/plist.js'
import { createLocalTls } from '../../src/ops/local-tls.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'
import { repoRoot, spawnOrchard, type ServerProcess } from '../helpers/server-process.js'
import { createDeviceCa, SimulatedDevice, type MdmResponse, type Transport } from '../helpers/simulated-device.js'
import { freePort } from '../helpers/http.js'

const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((path) => existsSync(path))
const skip =
  testBackend !== 'postgres'
    ? 'two replicas need one PostgreSQL database: runs in the PostgreSQL pass'
    : nginx === undefined
      ? 'nginx is not installed (Debian: apt-get install nginx-light; .ci/run installs it)'
      : false

const deviceCount = 40
const commandTypes = ['DeviceInformation', 'ProfileList', 'SecurityInfo', 'InstalledApplicationList', 'CertificateList']
const rounds = 2 // each type queued twice: 10 commands per device
const apiKey = randomBytes(24).toString('hex')

const pemOf = (der: Buffer) => `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`

/** The shipped site configuration with this test's ports and paths; each rewrite must match exactly once. */
function nginxConfigFor(shipped: string, options: { port: number; upstreams: number[]; tlsDir: string }): string {
  const rewrites: Array<[RegExp, string]> = [
    [/^ {4}server 127\.0\.0\.1:8080 (.*);$/m, options.upstreams.map((port) => `    server 127.0.0.1:${port} $1;`).join('\n')],
    [/^ {4}listen 443 ssl http2;$/m, `    listen 127.0.0.1:${options.port} ssl http2;`],
    [/^ {4}listen \[::\]:443 ssl http2;\n/m, ''],
    [/\/etc\/orchard\/tls\/server\.pem;/, `${options.tlsDir}/server.pem;`],
    [/\/etc\/orchard\/tls\/server-key\.pem;/, `${options.tlsDir}/server-key.pem;`],
  ]
  let config = shipped
  for (const [pattern, replacement] of rewrites) {
    const matches = config.match(new RegExp(pattern.source, `${pattern.flags}g`))?.length ?? 0
    if (matches !== 1) throw new Error(`deploy/nginx/orchard.conf: ${pattern} matched ${matches} times, expected once`)
    config = config.replace(pattern, replacement)
  }
  return config
}

/** Starts nginx in the foreground with a private prefix; resolves once it has written its pid file (it listens by then). */
async function startNginx(t: { teardown(fn: () => unknown): void }, dir: string, site: string) {
  const temp = (name: string) => {
    const path = join(dir, name)
    mkdirSync(path, { recursive: true })
    chmodSync(path, 0o777) // workers run as an unprivileged user when nginx starts as root
    return path
  }
  const pidFile = join(dir, 'nginx.pid')
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      'worker_processes 1;',
      `pid ${pidFile};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${temp('body')};`,
      `  proxy_temp_path ${temp('proxy')};`,
      `  fastcgi_temp_path ${temp('fastcgi')};`,
      `  uwsgi_temp_path ${temp('uwsgi')};`,
      `  scgi_temp_path ${temp('scgi')};`,
      site,
      '}',
      '',
    ].join('\n'),
  )
  const written = new Promise<void>((resolve) => {
    const watcher = watch(dir, (_event, name) => {
      if (name === 'nginx.pid' && existsSync(pidFile)) {
        watcher.close()
        resolve()
      }
    })
  })
  const child = spawn(nginx!, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode !== null) return
    child.kill('SIGTERM') // the master stops its workers first; SIGKILL would leave them running
    await exited
  })
  await Promise.race([written, exited.then((code) => Promise.reject(new Error(`nginx exited (${code}): ${stderr}`)))])
  return child
}

/** HTTPS to nginx, presenting the device's identity certificate as a real device does. */
function deviceTransport(port: number, agent: Agent): Transport {
  return (path, body, headers) =>
    new Promise<MdmResponse>((resolve, reject) => {
      // The identity comes from TLS here, not from an Mdm-Signature.
      const { 'mdm-signature': _signature, ...rest } = headers
      const req = request({ host: '127.0.0.1', port, path, method: 'PUT', agent, headers: { ...rest, 'content-length': String(body.length) } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), contentType: res.headers['content-type'] }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(body)
    })
}

function answerFor(requestType: string, device: SimulatedDevice): PlistDict {
  switch (requestType) {
    case 'DeviceInformation':
      return {
        QueryResponses: {
          DeviceName: `iPad ${device.serialNumber}`,
          OSVersion: '18.1',
          BuildVersion: '22B83',
          ProductName: 'iPad13,1',
          SerialNumber: device.serialNumber,
        },
      }
    case 'ProfileList':
      return { ProfileList: [] }
    case 'SecurityInfo':
      return { SecurityInfo: { HardwareEncryptionCaps: 3, PasscodePresent: true, PasscodeCompliant: true, PasscodeCompliantWithProfiles: true } }
    case 'InstalledApplicationList':
      return { InstalledApplicationList: [{ Identifier: 'com.apple.Pages', Name: 'Pages', ShortVersion: '14.0', Version: '14.0', BundleSize: 1000 }] }
    case 'CertificateList':
      return { CertificateList: [] }
    default:
      return {}
  }
}

t.test('two replicas behind nginx: one killed mid-drain, every command acknowledged exactly once, no 401', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-ha-'))
  chmodSync(dir, 0o755)
  const tlsDir = join(dir, 'tls')
  mkdirSync(tlsDir)
  const tls = await createLocalTls(['127.0.0.1', 'localhost'])
  for (const [name, content] of Object.entries(tls)) writeFileSync(join(tlsDir, name), content, { mode: 0o600 })

  const database = await createTestDatabase(t)
  const deviceCa = await createDeviceCa('HA device CA')
  const proxyPort = await freePort()
  const env = {
    DATABASE_URL: database.url!,
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_API_KEYS: apiKey,
    ORCHARD_PUBLIC_URL: `https://127.0.0.1:${proxyPort}`,
    ORCHARD_CLIENT_CERT_HEADER: 'X-Client-Cert',
    ORCHARD_DEVICE_CA_FILES: deviceCa.pemFile,
    ORCHARD_INVENTORY_AT_ENROLLMENT: 'false',
    ORCHARD_INVENTORY_REFRESH_HOURS: '0',
    ORCHARD_REPUSH_LOOP_SECONDS: '0',
    ORCHARD_WEBHOOK_WORKER: 'false',
    ORCHARD_BLUEPRINT_CHECK_HOURS: '0',
    ORCHARD_OS_CATALOGUE_SECONDS: '0',
  }
  const replicas: ServerProcess[] = []
  for (let i = 0; i < 2; i++) {
    const replica = spawnOrchard('src/main.ts', ['--port', '0', '--host', '127.0.0.1'], env)
    t.teardown(() => {
      if (replica.child.exitCode === null) replica.child.kill('SIGKILL')
    })
    replicas.push(replica)
  }
  const ports = await Promise.all(
    replicas.map(async (replica) => Number(new URL(String((await replica.waitForLog(/^Orchard listening on /))['address'])).port)),
  )
  const site = nginxConfigFor(readFileSync(join(repoRoot, 'deploy/nginx/orchard.conf'), 'utf8'), { port: proxyPort, upstreams: ports, tlsDir })
  await startNginx(t, dir, site)

  const adminAgent = new Agent({ keepAlive: true, ca: tls['ca.pem'] })
  t.teardown(() => adminAgent.destroy())
  const api = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
      const req = request(
        {
          host: '127.0.0.1',
          port: proxyPort,
          path,
          method,
          agent: adminAgent,
          headers: { authorization: `Bearer ${apiKey}`, ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}) },
        },
        (res) => {
          let text = ''
          res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as unknown) : null }))
        },
      )
      req.on('error', reject)
      req.end(payload)
    })
  const ready = await api('GET', '/readyz')
  t.equal(ready.status, 200, `ready through the proxy: ${JSON.stringify(ready.json)}`)

  // Devices with identities from a trusted device CA, speaking TLS with them through nginx.
  const stats = { retried: 0, unauthorized: 0, duplicates: 0, acknowledged: 0 }
  const devices = await Promise.all(
    Array.from({ length: deviceCount }, async () => {
      const over: { tls?: Transport } = {} // the agent needs the identity the device is created with
      const device = await SimulatedDevice.create(deviceCa, (path, body, headers) => over.tls!(path, body, headers))
      const agent = new Agent({
        keepAlive: true,
        ca: tls['ca.pem'],
        cert: pemOf(device.certificateDer),
        key: KeyObject.from(device.privateKey).export({ type: 'pkcs8', format: 'pem' }),
      })
      t.teardown(() => agent.destroy())
      over.tls = deviceTransport(proxyPort, agent)
      return device
    }),
  )
  // A device's request as a device retries it: again after a connection error or a gateway error.
  const attempt = async (what: () => Promise<MdmResponse>): Promise<MdmResponse> => {
    for (let tries = 1; ; tries++) {
      try {
        const response = await what()
        if (response.status === 401) stats.unauthorized++
        if (![502, 503, 504].includes(response.status) || tries === 20) return response
      } catch (error) {
        if (tries === 20) throw error
      }
      stats.retried++
    }
  }
  for (const device of devices) {
    for (const step of [() => device.authenticate(), () => device.tokenUpdate()]) {
      const response = await attempt(step)
      t.equal(response.status, 200, `enrolled through the proxy: ${response.body.toString()}`)
    }
  }

  // A client cannot vouch for itself: a certificate sent in the header, without TLS, is dropped by nginx.
  const forged = await new Promise<number>((resolve, reject) => {
    const pem = pemOf(devices[0]!.certificateDer)
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: '/mdm/connect',
        method: 'PUT',
        agent: adminAgent,
        headers: { 'content-type': 'application/x-apple-aspen-mdm', 'x-client-cert': encodeURIComponent(pem) },
      },
      (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      },
    )
    req.on('error', reject)
    req.end(
      Buffer.from(
        `<?xml version="1.0"?><plist version="1.0"><dict><key>UDID</key><string>${devices[0]!.udid}</string><key>Status</key><string>Idle</string></dict></plist>`,
      ),
    )
  })
  t.ok(forged >= 400 && forged < 500 && forged !== 401, `a forged certificate header is not an identity (${forged})`)

  const enrollmentIds = devices.map((device) => device.udid)
  const queued: string[] = []
  for (let round = 0; round < rounds; round++) {
    for (const requestType of commandTypes) {
      const response = await api('POST', '/api/v1/commands', {
        enrollment_ids: enrollmentIds,
        command:
          requestType === 'DeviceInformation'
            ? { request_type: requestType, Queries: ['DeviceName', 'OSVersion', 'BuildVersion', 'ProductName', 'SerialNumber'] }
            : { request_type: requestType },
      })
      t.equal(response.status, 201, JSON.stringify(response.json))
      queued.push((response.json as { command_uuid: string }).command_uuid)
    }
  }
  const total = deviceCount * queued.length
  const killAt = Math.floor(total / 2)

  // The drain: every device asks for work until the queue is empty. Replica 0 dies half-way.
  const victim = replicas[0]!
  let killedAfter = -1
  const delivered = new Map<string, Set<string>>(devices.map((device) => [device.udid, new Set<string>()]))
  await Promise.all(
    devices.map(async (device) => {
      const acknowledged = delivered.get(device.udid)!
      let response = await attempt(() => device.idle())
      while (response.status === 200 && response.body.length > 0) {
        const command = decodePlist(response.body)
        if (!isPlistDict(command) || !isPlistDict(command['Command'])) throw new Error(`not a command: ${response.body.toString()}`)
        const uuid = command['CommandUUID'] as string
        if (acknowledged.has(uuid)) stats.duplicates++
        const keys = answerFor(command['Command']['RequestType'] as string, device)
        response = await attempt(() => device.answer(uuid, 'Acknowledged', keys))
        if (response.status !== 200) break
        acknowledged.add(uuid)
        stats.acknowledged++
        if (stats.acknowledged === killAt) {
          killedAfter = stats.acknowledged
          victim.child.kill('SIGKILL')
        }
      }
      t.equal(response.status, 200, `${device.udid} drained: ${response.status} ${response.body.toString()}`)
    }),
  )
  t.equal(await victim.exited, null, 'replica 0 was killed')
  t.equal(killedAfter, killAt, `killed after ${killAt} of ${total} acknowledgements`)

  t.equal(stats.unauthorized, 0, 'no device saw a 401')
  t.equal(stats.duplicates, 0, 'no command delivered again after its acknowledgement')
  t.equal(stats.acknowledged, total, `${total} acknowledgements, one per command and device`)
  for (const [udid, uuids] of delivered) {
    if (uuids.size !== queued.length) t.fail(`${udid} acknowledged ${uuids.size} of ${queued.length} commands`)
  }
  const rows = await database.db
    .selectFrom('command_targets')
    .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
    .where('command_uuid', 'in', queued)
    .groupBy('status')
    .execute()
  t.same(
    rows.map((row) => ({ status: row.status, n: Number(row.n) })),
    [{ status: 'Acknowledged', n: total }],
    'the server recorded every one as acknowledged',
  )
  const servedBy = (replica: ServerProcess) =>
    replica.logs().filter((line) => line['msg'] === 'request completed' && typeof line['url'] === 'string' && line['url'].startsWith('/mdm/')).length
  t.ok(servedBy(replicas[1]!) > 0, 'the surviving replica served devices')
  t.comment(
    `HA smoke: ${deviceCount} devices, ${queued.length} commands each (${total} deliveries); replica 0 killed after ${killedAfter} acknowledgements; ` +
      `device requests served: replica 0 ${servedBy(victim)}, replica 1 ${servedBy(replicas[1]!)}; retried by devices ${stats.retried}; ` +
      `duplicates ${stats.duplicates}; 401s ${stats.unauthorized}`,
  )
})
