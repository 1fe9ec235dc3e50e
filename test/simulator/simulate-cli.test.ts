// `simulate`: its usage and exit codes, the push certificate it makes, and simulated devices
// enrolled through a real enrollment link of a server speaking HTTPS with a local CA, answering
// as devices do (a command they do not know with an Error, an erase by going silent) until
// their signal aborts. Waits are on the lines the tool prints.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../helpers/orchard-cli.js'
import { loadConfig } from '../../src/config.js'
import { parsePushCertificatePem } from '../../src/crypto/push-certificate.js'
import { startOrchard } from '../../src/main.js'
import { runSimulateCommand, simulateUsage } from '../../src/simulator/cli.js'
import { testLogger } from '../helpers/app.js'
import { createTestDatabase, testBackend } from '../helpers/database.js'
import { repoRoot } from '../helpers/server-process.js'
import { freePort } from '../helpers/http.js'

/** Output collected, with a way to wait for a line. */
function collector() {
  let text = ''
  const waiters: Array<() => void> = []
  return {
    write(chunk: string) {
      text += chunk
      for (const waiter of waiters.splice(0)) waiter()
    },
    get text() {
      return text
    },
    /** Resolves once `ready(text)` holds, re-checked on each write. */
    until(ready: (text: string) => boolean): Promise<void> {
      return new Promise((resolve) => {
        const check = () => (ready(text) ? resolve() : waiters.push(check))
        check()
      })
    },
  }
}

/** A port free now (the enrollment profile's URLs carry the port, so it must be known before the server starts). */
const run = async (argv: string[], signal?: AbortSignal) => {
  const stdout = collector()
  const stderr = collector()
  const code = await runSimulateCommand(argv, { stdout, stderr, env: {}, ...(signal ? { signal } : {}) })
  return { code, stdout: stdout.text, stderr: stderr.text }
}

t.test('usage and exit codes', async (t) => {
  t.match(await run(['--help']), { code: 0, stdout: simulateUsage })
  t.match(await run([]), { code: 0, stdout: /polls the server \(Idle\) every\s+--poll-seconds/ }, 'the usage says devices poll, as they get no pushes')
  t.match(await run(['enroll', '--count', '3']), { code: 2, stderr: /enroll needs --link URL/ })
  t.match(await run(['enroll', '--link', 'ftp://x/enroll/a', '--count', '3']), { code: 2, stderr: /--link must be an http\(s\) URL/ })
  t.match(await run(['enroll', '--link', 'https://x/enroll/a', '--count', '0']), { code: 2, stderr: /--count must be a whole number from 1 to 10000/ })
  t.match(await run(['enroll', '--link', 'https://x/enroll/a', '--count', '2', '--poll-seconds', 'soon']), { code: 2, stderr: /--poll-seconds/ })
  t.match(await run(['enroll', '--link', 'https://x/enroll/a', '--count', '2', '--colour']), { code: 2, stderr: /unknown option --colour/ })
  t.match(await run(['wipe']), { code: 2, stderr: /wipe: unknown command/ })
  t.match(await run(['push-certificate', '--topic', 'org.example']), { code: 2, stderr: /--topic must start with com\.apple\.mgmt\./ })
})

t.test('the push certificate is one Orchard takes, for the topic asked', async (t) => {
  const { code, stdout } = await run(['push-certificate', '--topic', 'com.apple.mgmt.External.11111111-2222-4333-8444-555555555555'])
  t.equal(code, 0)
  const body = JSON.parse(stdout) as { certificate_pem: string; private_key_pem: string }
  const parsed = parsePushCertificatePem(body.certificate_pem, body.private_key_pem)
  t.equal(parsed.topic, 'com.apple.mgmt.External.11111111-2222-4333-8444-555555555555')
  t.ok(parsed.notAfter.getTime() > Date.now() + 300 * 86_400_000, 'valid for a year')
})

t.test('simulated devices enroll through a link and answer as devices do, until stopped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-simulate-'))
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/dev-certs.ts', '--out', dir], { cwd: repoRoot, stdio: 'pipe' })
  const apiKey = randomBytes(24).toString('hex')
  const env: Record<string, string> = {
    ORCHARD_TLS_CERT_FILE: join(dir, 'server.pem'),
    ORCHARD_TLS_KEY_FILE: join(dir, 'server-key.pem'),
    ORCHARD_PORT: String(await freePort()),
    ORCHARD_DATA_DIR: join(dir, 'data'),
    ORCHARD_API_KEYS: apiKey,
    ORCHARD_APNS_URL: 'https://127.0.0.1:9',
    ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
    ORCHARD_REPUSH_LOOP_SECONDS: '0',
  }
  if (testBackend === 'postgres') env['DATABASE_URL'] = (await createTestDatabase(t)).url!
  const server = await startOrchard(loadConfig(env, []), testLogger())
  t.teardown(() => server.close())
  const ca = readFileSync(join(dir, 'ca.pem'))
  const api = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
      const req = request(
        `${server.address}${path}`,
        {
          method,
          ca,
          agent: false,
          headers: { authorization: `Bearer ${apiKey}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || 'null') }))
        },
      )
      req.on('error', reject)
      req.end(payload)
    })

  const pushCertificate = JSON.parse((await run(['push-certificate'])).stdout) as unknown
  t.equal((await api('POST', '/api/v1/push-certificates', pushCertificate)).status, 201)
  const link = await api('POST', '/api/v1/enrollment-links', { name: 'Simulated', max_uses: 2 })
  t.equal(link.status, 201)

  const stop = new AbortController()
  const stdout = collector()
  const stderr = collector()
  const running = runSimulateCommand(['enroll', '--link', link.json.url, '--count', '2', '--poll-seconds', '1', '--ca-file', join(dir, 'ca.pem')], {
    stdout,
    stderr,
    env: {},
    signal: stop.signal,
  })
  t.teardown(() => stop.abort())
  // Every wait also ends if the tool does (then with what it said).
  const ended = running.then((code) => {
    throw new Error(`simulate ended (${code}): ${stderr.text}`)
  })
  ended.catch(() => {})
  const until = (ready: (text: string) => boolean) => Promise.race([stdout.until(ready), ended])
  await until((text) => /^2 devices enrolled\./m.test(text))
  const serials = [...stdout.text.matchAll(/^enrolled \d\/2: (SIM[0-9A-F]+) \(UDID ([0-9A-F-]+)/gm)].map((m) => ({ serial: m[1]!, udid: m[2]! }))
  t.equal(serials.length, 2, 'one line per device enrolled')
  // The inventory Orchard asks for at enrollment, answered by both.
  for (const type of ['DeviceInformation', 'SecurityInfo', 'InstalledApplicationList', 'ProfileList', 'CertificateList']) {
    await until((text) => serials.every(({ serial }) => text.includes(`${serial} ${type}: Acknowledged`)))
  }
  const [first, second] = serials
  const device = await api('GET', `/api/v1/devices/${first!.udid}`)
  t.match(device.json, { serial_number: first!.serial, model: 'iPad13,1', os_version: '18.1', supervised: false, enrolled: true }, 'the inventory is stored')

  // A command the simulator does not model: an Error with an ErrorChain, as a device answers.
  const media = await api('POST', `/api/v1/devices/${first!.udid}/commands`, { request_type: 'ManagedMediaList' })
  t.equal(media.status, 201)
  await until((text) => text.includes(`${first!.serial} ManagedMediaList: Error (Unsupported command “ManagedMediaList”.)`))
  const targets = await api('GET', `/api/v1/commands/${media.json.command_uuid}/targets`)
  t.match(targets.json.items, [{ status: 'Error', error_chain: [{ ErrorDomain: 'MCMDMErrorDomain', ErrorCode: 12021 }] }])

  // An erased device goes silent; the other keeps answering.
  const erase = await api('POST', `/api/v1/devices/${second!.udid}/erase`, {})
  t.equal(erase.status, 201, 'the erase is queued')
  await until((text) => text.includes(`${second!.serial} erased: it no longer talks to the server`))
  const lock = await api('POST', `/api/v1/devices/${first!.udid}/lock`, { message: 'Found: call IT' })
  await until((text) => text.includes(`${first!.serial} DeviceLock "Found: call IT": Acknowledged`))
  t.match((await api('GET', `/api/v1/commands/${lock.json.command_uuid}`)).json.targets, { Acknowledged: 1 })

  stop.abort()
  t.equal(await running, 0, 'stopping is a clean exit')
  t.match(stdout.text, /^stopped: 2 devices, \d+ commands answered$/m)
  t.equal(stderr.text, '', 'nothing went wrong')
})

t.test('orchard simulate is the same tool, reached through the orchard CLI', async (t) => {
  const help = await runCli(['simulate', '--help'])
  t.equal(help.code, 0, help.stderr)
  t.match(help.stdout, /^Usage: simulate <command>/)
  const wrong = await runCli(['simulate', 'enroll', '--count', '3'])
  t.equal(wrong.code, 2, 'a usage error')
  t.match(wrong.stderr, /^simulate: /)
  const listed = await runCli(['--help'])
  t.match(listed.stdout, /^ {2}simulate +Simulated iPads/m, 'listed in orchard --help')
})
