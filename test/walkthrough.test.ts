// The README's "Try it without an iPad" walkthrough, run as written: its shell blocks are taken
// from README.md and run by bash in a scratch copy of the repository (as a fresh clone), the
// server block in one terminal and the others, in order, in a second one sharing its shell
// variables. The only liberty taken: port 8080 becomes a free port. Between blocks the test
// waits for what the README says to wait for (lines of simulator.log, watched for changes),
// then checks what each block printed: 20 iPads enrolled, the lock acknowledged, the profile
// installed on all 20, the device-days report listing them.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, watch, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createTestDatabase, testBackend } from './helpers/database.js'
import { repoRoot } from './helpers/server-process.js'
import { freePort } from './helpers/http.js'

interface Step {
  name: string
  script: string
}

const expectedSteps = ['server', 'setup', 'simulate', 'lock', 'profile', 'status', 'report', 'stop']

/** The walkthrough's shell blocks, each named by the `<!-- walkthrough: NAME -->` line before it. */
function walkthroughSteps(readme: string): Step[] {
  const start = readme.indexOf('\n## Try it without an iPad')
  if (start === -1) throw new Error('README.md has no "Try it without an iPad" section')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  const steps: Step[] = []
  for (const match of section.matchAll(/(?:<!-- walkthrough: ([a-z-]+) -->\n)?```(\w*)\n([\s\S]*?)\n```/g)) {
    if (!match[1]) throw new Error(`a block of the walkthrough has no <!-- walkthrough: NAME --> line before it:\n${match[3]}`)
    if (match[2] !== 'sh') throw new Error(`walkthrough block ${match[1]} is not a sh block`)
    steps.push({ name: match[1], script: match[3]! })
  }
  return steps
}

/** A scratch copy of the repository, as a fresh clone: src copied (its entry points compare their own path), the rest linked. */
function scratchClone(): string {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-walkthrough-'))
  const skip = new Set(['.git', '.tap', 'data', 'certs', 'dist', 'test', 'src'])
  for (const entry of readdirSync(repoRoot)) if (!skip.has(entry)) symlinkSync(join(repoRoot, entry), join(dir, entry))
  cpSync(join(repoRoot, 'src'), join(dir, 'src'), { recursive: true })
  return dir
}

/** A bash session fed one block at a time (shell variables and jobs carry over, as in a terminal). */
class Terminal {
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<number | null>
  stdout = ''
  stderr = ''
  private readonly listeners = new Set<() => void>()
  private blocks = 0

  constructor(
    private readonly cwd: string,
    env: Record<string, string>,
  ) {
    this.child = spawn('bash', ['--noprofile', '--norc'], { cwd, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)))
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk
      this.notify()
    })
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
      this.notify()
    })
    void this.exited.then(() => this.notify())
    this.child.stdin.write('set -eo pipefail\n')
  }

  notify(): void {
    for (const listener of [...this.listeners]) listener()
  }

  /** Starts a block (from a file, so that what it runs cannot read the rest of the session). */
  start(step: Step): number {
    const file = join(this.cwd, `.walkthrough-${step.name}.sh`)
    writeFileSync(file, `${step.script}\n`)
    const from = this.stdout.length
    this.child.stdin.write(`source ${JSON.stringify(file)}\necho __walkthrough_${++this.blocks}__\n`)
    return from
  }

  /** Runs a block to its end and returns what it printed; rejects if the shell exits (set -e: a command failed). */
  async run(step: Step): Promise<string> {
    const from = this.start(step)
    const marker = `__walkthrough_${this.blocks}__`
    await this.until(() => this.stdout.includes(marker, from), `the end of block ${step.name}`)
    return this.stdout.slice(from, this.stdout.indexOf(marker, from))
  }

  /** Resolves once `ready()` holds, checked on each output of this shell and each `also` event; rejects if the shell exits first. */
  until(ready: () => boolean, what: string, also?: (check: () => void) => () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (ready()) {
          this.listeners.delete(check)
          stopAlso?.()
          resolve()
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          this.listeners.delete(check)
          stopAlso?.()
          reject(new Error(`the shell ended before ${what}\nstdout:\n${this.stdout.slice(-3000)}\nstderr:\n${this.stderr.slice(-3000)}`))
        }
      }
      this.listeners.add(check)
      const stopAlso = also?.(check)
      check()
    })
  }

  /** Ctrl-C to what runs in it, and no more input: the shell ends once that has. */
  async stop(): Promise<void> {
    this.child.stdin.end()
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(-this.child.pid!, 'SIGINT')
      } catch {
        // the group is gone already
      }
    }
    await this.exited
  }
}

/** The tools the walkthrough says it needs besides Node.js, missing from this machine. */
const missingTools = ['bash', 'curl', 'jq', 'openssl'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)

t.test('the README walkthrough works as written', { skip: missingTools.length > 0 && `needs ${missingTools.join(', ')} (not installed here)` }, async (t) => {
  const steps = walkthroughSteps(readFileSync(join(repoRoot, 'README.md'), 'utf8'))
  t.same(
    steps.map((step) => step.name),
    expectedSteps,
    'the walkthrough has its steps, in order',
  )
  const port = await freePort()
  const script = (name: string): Step => {
    const step = steps.find((s) => s.name === name)!
    return { name, script: step.script.replaceAll('localhost:8080', `localhost:${port}`) }
  }

  const dir = scratchClone()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? dir, LANG: 'C.UTF-8', ORCHARD_PORT: String(port) }
  const serverEnv = { ...env }
  // On the Postgres pass the server uses a database of this test's (with a master key, as on Postgres it must).
  if (testBackend === 'postgres')
    Object.assign(serverEnv, { DATABASE_URL: (await createTestDatabase(t)).url!, ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex') })

  // Terminal 1: the server, until it listens.
  const server = new Terminal(dir, serverEnv)
  const admin = new Terminal(dir, env)
  t.teardown(async () => {
    await admin.stop()
    await server.stop()
  })
  server.start(script('server'))
  await server.until(() => /Orchard listening on https:\/\/127\.0\.0\.1:\d+/.test(server.stdout), 'the server listens')

  // Terminal 2: tenant, push certificate, enrollment link.
  const setup = await admin.run(script('setup'))
  t.match(setup, /"id":"demo"/, 'the tenant is created')
  t.match(setup, /"topic":"com\.apple\.mgmt\.External\.[0-9a-f-]+"/, 'the push certificate is uploaded')
  t.match(setup, new RegExp(`^https://localhost:${port}/enroll/[\\w-]+$`, 'm'), 'the enrollment link is printed')

  // simulator.log, re-read whenever the directory changes (and whenever the shell prints).
  const logFile = join(dir, 'simulator.log')
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '')
  const watchLog = (check: () => void) => {
    const watcher = watch(dir, check)
    return () => watcher.close()
  }
  const waitForLog = (ready: (text: string) => boolean, what: string) => admin.until(() => ready(log()), what, watchLog)

  await admin.run(script('simulate'))
  await waitForLog((text) => /^20 devices enrolled\./m.test(text), '"20 devices enrolled" in simulator.log')
  const serials = [...log().matchAll(/^enrolled \d+\/20: (SIM[0-9A-F]+) /gm)].map((m) => m[1]!)
  t.equal(new Set(serials).size, 20, '20 iPads enrolled, each with its own serial number')

  await admin.run(script('lock'))
  await waitForLog((text) => /^SIM[0-9A-F]+ DeviceLock "Please bring me back to the library": Acknowledged$/m.test(text), 'the lock in simulator.log')

  await admin.run(script('profile'))
  const installed = (text: string) => new Set([...text.matchAll(/^(SIM[0-9A-F]+) InstallProfile org\.example\.library-wifi: Acknowledged$/gm)].map((m) => m[1]))
  await waitForLog((text) => installed(text).size === 20, 'the profile installed on 20 iPads in simulator.log')
  t.same([...installed(log())].sort(), [...serials].sort(), 'the profile is installed on every enrolled iPad')

  const status = (await admin.run(script('status')))
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, number>)
  t.match(status, [
    { total: 1, Acknowledged: 1, Pending: 0, Error: 0 },
    { total: 20, Acknowledged: 20, Pending: 0, Error: 0 },
  ])

  const report = (await admin.run(script('report'))).trim().split(/\r?\n/)
  t.equal(report[0], 'tenant_id,device_id,serial_number,device_days,first_day,last_day,kind,model,billed', 'the CSV header')
  const rows = report.slice(1).map((line) => line.split(','))
  t.same(rows.map((row) => row[2]).sort(), [...serials].sort(), 'the report lists the 20 iPads')
  t.ok(
    rows.every((row) => row[0] === 'demo' && row[3] === '1' && row.at(-1) === 'true'),
    'each counts one billed day in the demo tenant',
  )

  await admin.run(script('stop'))
  await waitForLog((text) => /^stopped: 20 devices, \d+ commands answered$/m.test(text), 'the iPads stop')
  t.pass('kill %1 stops the iPads')
})
