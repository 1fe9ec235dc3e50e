// `npm test`: type-check, the formatter check (Prettier), the linter (typescript-eslint) and
// the OpenAPI lint (Redocly), then the whole tap suite on PGlite, then again on Postgres when
// TEST_DATABASE_URL is set or a server answers at 127.0.0.1:5432. Ends with one line
// `N passed, N failed` summed over both passes (a failed check counts as one failure).
// Extra arguments go to tap (test files); then only the type-check runs before them.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const fromRoot = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url))
const tapBin = fromRoot('node_modules/tap/dist/esm/run.mjs')
const tscBin = fromRoot('node_modules/typescript/bin/tsc')
const prettierBin = fromRoot('node_modules/prettier/bin/prettier.cjs')
const eslintBin = fromRoot('node_modules/eslint/bin/eslint.js')
const redoclyBin = fromRoot('node_modules/@redocly/cli/bin/cli.js')
const defaultPostgresUrl = 'postgres://postgres@127.0.0.1:5432/postgres'
const extraArgs = process.argv.slice(2)
const isCi = Boolean(process.env['CI'])

interface PassResult {
  backend: string
  passed: number
  failed: number
  skipped: number
  exitCode: number
}

function run(command: string, args: string[], env: Record<string, string | undefined>, onLine?: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    let pending = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      process.stdout.write(chunk)
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) onLine?.(line)
    })
    child.on('close', (code) => {
      if (pending) onLine?.(pending)
      resolve(code ?? 1)
    })
  })
}

async function tapPass(backend: string, env: Record<string, string>): Promise<PassResult> {
  console.log(`\n### tap on ${backend}\n`)
  let summary = ''
  const exitCode = await run(process.execPath, [tapBin, ...extraArgs], { ...env, ORCHARD_TEST_BACKEND: backend }, (line) => {
    // tap's closing line: # { total: 41, pass: 40, fail: 1, skip: 1 }
    if (/^# \{ total: \d+/.test(line)) summary = line
  })
  const count = (key: string) => Number(new RegExp(`${key}: (\\d+)`).exec(summary)?.[1] ?? 0)
  const result = { backend, passed: count('pass'), failed: count('fail'), skipped: count('skip'), exitCode }
  // A run that died before its summary still counts as a failure.
  if (exitCode !== 0 && result.failed === 0) result.failed = 1
  return result
}

async function postgresUrl(): Promise<string | null> {
  const url = process.env['TEST_DATABASE_URL'] || defaultPostgresUrl
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  try {
    await client.connect()
    await client.query('select 1')
    return url
  } catch (error) {
    const required = Boolean(process.env['TEST_DATABASE_URL']) || isCi
    const message = `Postgres at ${url.replace(/:[^:@/]*@/, ':***@')} does not answer: ${(error as Error).message}`
    if (required) throw new Error(message)
    console.log(`\n### ${message}; skipping the Postgres pass (set TEST_DATABASE_URL or start a server to run it)`)
    return null
  } finally {
    await client.end().catch(() => {})
  }
}

const results: PassResult[] = []
let setupFailures = 0

const checks: Array<{ title: string; args: string[]; env?: Record<string, string>; always?: boolean }> = [
  { title: 'type-check (tsc --noEmit)', args: [tscBin, '-p', fromRoot('tsconfig.json')], always: true },
  {
    title: 'format (prettier --check)',
    args: [prettierBin, '--check', '--log-level', 'warn', 'src/**/*.ts', 'test/**/*.ts', 'scripts/**/*.ts', 'migrations/index.ts'],
  },
  { title: 'lint (eslint)', args: [eslintBin, '--max-warnings', '0', 'src', 'test', 'scripts', 'migrations/index.ts'] },
  // Offline: no telemetry, no update check.
  {
    title: 'OpenAPI lint (redocly)',
    args: [redoclyBin, 'lint', '--lint-config=error', 'openapi.yaml'],
    env: { REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_NOTIFICATIONS: 'true', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  },
]
for (const check of checks) {
  if (extraArgs.length > 0 && !check.always) continue
  console.log(`### ${check.title}`)
  if ((await run(process.execPath, check.args, check.env ?? {})) !== 0) {
    console.log(`${check.title} failed`)
    setupFailures++
  }
}

const backends = (process.env['ORCHARD_TEST_BACKENDS'] ?? 'pglite,postgres').split(',').map((b) => b.trim())
if (backends.includes('pglite')) results.push(await tapPass('pglite', {}))
if (backends.includes('postgres')) {
  try {
    const url = await postgresUrl()
    if (url) results.push(await tapPass('postgres', { TEST_DATABASE_URL: url }))
  } catch (error) {
    console.log(`\n### ${(error as Error).message}`)
    setupFailures++
  }
}

console.log('')
for (const r of results) console.log(`# ${r.backend}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`)
const passed = results.reduce((n, r) => n + r.passed, 0)
const failed = results.reduce((n, r) => n + r.failed, 0) + setupFailures
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed > 0 || results.some((r) => r.exitCode !== 0) ? 1 : 0
