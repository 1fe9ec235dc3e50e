import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { readmeWithConfigTable } from '../scripts/readme-config.js'
import { ConfigError, configOptions, describeConfig, HelpRequested, loadConfig } from '../src/config.js'

const goodKey = 'k'.repeat(32)

t.test('defaults need no variables at all', async (t) => {
  const config = loadConfig({}, [])
  t.equal(config.host, '127.0.0.1')
  t.equal(config.port, 8080)
  t.equal(config.publicUrl, 'http://localhost:8080')
  t.equal(config.databaseUrl, null)
  t.equal(config.dataDir, resolve('./data'))
  t.equal(config.logLevel, 'info')
  t.same(config.apiKeys, [])
  t.equal(config.apnsUrl, 'https://api.push.apple.com')
  t.equal(config.tls, null)
  t.equal(config.shutdownTimeoutMs, 10_000)
  t.ok(Object.isFrozen(config), 'config is frozen')
  t.ok(Object.isFrozen(config.apiKeys), 'nested arrays are frozen')
})

t.test('environment variables are read, flags win over them', async (t) => {
  const env = {
    ORCHARD_HOST: '0.0.0.0',
    ORCHARD_PORT: '9000',
    ORCHARD_PUBLIC_URL: 'https://mdm.example.org/',
    DATABASE_URL: 'postgres://u:p@db:5432/orchard',
    DATABASE_POOL_MAX: '25',
    ORCHARD_DATA_DIR: '/var/lib/orchard',
    ORCHARD_LOG_LEVEL: 'DEBUG',
    ORCHARD_API_KEYS: `${goodKey}, ${'x'.repeat(24)}`,
    ORCHARD_APNS_URL: 'development',
    ORCHARD_SHUTDOWN_TIMEOUT_MS: '2500',
  }
  const fromEnv = loadConfig(env, [])
  t.equal(fromEnv.host, '0.0.0.0')
  t.equal(fromEnv.port, 9000)
  t.equal(fromEnv.publicUrl, 'https://mdm.example.org', 'trailing slash removed')
  t.equal(fromEnv.databaseUrl, 'postgres://u:p@db:5432/orchard')
  t.equal(fromEnv.databasePoolMax, 25)
  t.equal(fromEnv.dataDir, '/var/lib/orchard')
  t.equal(fromEnv.logLevel, 'debug')
  t.same(fromEnv.apiKeys, [goodKey, 'x'.repeat(24)])
  t.equal(fromEnv.apnsUrl, 'https://api.sandbox.push.apple.com')
  t.equal(fromEnv.shutdownTimeoutMs, 2500)

  const withFlags = loadConfig(env, ['--port', '9100', '--log-level=warn', '--apns-url', 'https://127.0.0.1:2197'])
  t.equal(withFlags.port, 9100, 'flag beats environment')
  t.equal(withFlags.logLevel, 'warn', '--flag=value form')
  t.equal(withFlags.apnsUrl, 'https://127.0.0.1:2197', 'any https origin, e.g. a test server')
  t.equal(withFlags.host, '0.0.0.0', 'environment still used where no flag is given')
})

t.test('an empty environment variable counts as unset', async (t) => {
  t.equal(loadConfig({ DATABASE_URL: '' }, []).databaseUrl, null)
})

t.test('each wrong value fails with one line naming the variable and the problem', async (t) => {
  const cases: Array<[Record<string, string>, string[], RegExp]> = [
    [{ ORCHARD_PORT: 'http' }, [], /^ORCHARD_PORT: must be a whole number from 0 to 65535 \(got "http"\)$/],
    [{ ORCHARD_PORT: '70000' }, [], /^ORCHARD_PORT: must be a whole number/],
    [{}, ['--port', '-1'], /^--port: must be a whole number from 0 to 65535 \(got "-1"\)$/],
    [{}, ['--port'], /^--port: needs a value$/],
    [{}, ['--port', '--host', 'x'], /^--port: needs a value$/],
    [{}, ['--port', '1.5'], /^--port: must be a whole number/],
    [{ ORCHARD_HOST: 'a b' }, [], /^ORCHARD_HOST: must be an IP address or host name/],
    [{ ORCHARD_PUBLIC_URL: 'mdm.example.org' }, [], /^ORCHARD_PUBLIC_URL: must be an absolute http:\/\/ or https:\/\/ URL/],
    [{ ORCHARD_PUBLIC_URL: 'ftp://mdm.example.org' }, [], /^ORCHARD_PUBLIC_URL: must be an absolute/],
    [{ ORCHARD_PUBLIC_URL: 'https://mdm.example.org/?x=1' }, [], /^ORCHARD_PUBLIC_URL: must not have a query string/],
    [{ DATABASE_URL: 'mysql://db/orchard' }, [], /^DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL$/],
    [{ DATABASE_POOL_MAX: '0' }, [], /^DATABASE_POOL_MAX: must be a whole number from 1 to 1000/],
    [{ ORCHARD_LOG_LEVEL: 'loud' }, [], /^ORCHARD_LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent/],
    [{ ORCHARD_API_KEYS: 'short' }, [], /^ORCHARD_API_KEYS: key #1 is too short: each key needs at least 24 characters$/],
    [{ ORCHARD_API_KEYS: `${goodKey},,${goodKey}` }, [], /^ORCHARD_API_KEYS: key #2 is empty/],
    [{ ORCHARD_APNS_URL: 'http://127.0.0.1:2197' }, [], /^ORCHARD_APNS_URL: must be production, development or an https:\/\/ URL/],
    [{ ORCHARD_APNS_URL: 'https://apns.test/3/device' }, [], /^ORCHARD_APNS_URL: must be a bare origin/],
    [{ ORCHARD_TLS_CERT_FILE: '/nonexistent/cert.pem' }, [], /^ORCHARD_TLS_CERT_FILE: is set but ORCHARD_TLS_KEY_FILE is not/],
    [{ ORCHARD_SHUTDOWN_TIMEOUT_MS: '5' }, [], /^ORCHARD_SHUTDOWN_TIMEOUT_MS: must be a whole number from 100 to 600000/],
    [{ ORCHARD_ABM_URL: 'mdmenrollment.apple.com' }, [], /^ORCHARD_ABM_URL: must be an http:\/\/ or https:\/\/ URL/],
    [{ ORCHARD_ABM_URL: 'https://abm.test/?x=1' }, [], /^ORCHARD_ABM_URL: must not have a query string/],
    [{ ORCHARD_DEP_SYNC_SECONDS: 'often' }, [], /^ORCHARD_DEP_SYNC_SECONDS: must be a whole number from 0 to 604800/],
    [{ ORCHARD_ADE_VERIFY_MACHINE_INFO: 'yes' }, [], /^ORCHARD_ADE_VERIFY_MACHINE_INFO: must be true or false/],
    [
      { ORCHARD_ADE_MACHINE_INFO_CA_FILES: '/nonexistent/apple-root.pem' },
      [],
      /^ORCHARD_ADE_MACHINE_INFO_CA_FILES: file \/nonexistent\/apple-root.pem does not exist/,
    ],
    [{}, ['--nope', '1'], /^--nope: unknown flag/],
    [{}, ['serve'], /^serve: unexpected argument/],
    [{}, ['--port', '1', '--port', '2'], /^--port: given more than once$/],
  ]
  for (const [env, argv, expected] of cases) {
    t.throws(() => loadConfig(env, argv), { name: 'ConfigError', message: expected }, `${JSON.stringify(env)} ${argv.join(' ')}`)
  }
})

t.test('secret values are never echoed in errors or in the logged description', async (t) => {
  const secret = 'hunter2-is-my-password'
  try {
    loadConfig({ ORCHARD_API_KEYS: secret }, [])
    t.fail('should throw')
  } catch (error) {
    t.type(error, ConfigError)
    t.notMatch((error as Error).message, secret)
  }
  try {
    loadConfig({ DATABASE_URL: `mysql://u:${secret}@db/x` }, [])
    t.fail('should throw')
  } catch (error) {
    t.notMatch((error as Error).message, secret)
  }
  const described = JSON.stringify(describeConfig(loadConfig({ DATABASE_URL: `postgres://u:${secret}@db/x`, ORCHARD_API_KEYS: goodKey }, [])))
  t.notMatch(described, secret)
  t.notMatch(described, goodKey)
  t.match(described, 'postgres://u:***@db/x')
})

t.test('TLS files must both be given and be readable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-config-'))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  writeFileSync(cert, 'cert')
  writeFileSync(key, 'key')
  t.throws(() => loadConfig({ ORCHARD_TLS_KEY_FILE: key }, []), { message: /^ORCHARD_TLS_KEY_FILE: is set but ORCHARD_TLS_CERT_FILE is not/ })
  t.throws(() => loadConfig({ ORCHARD_TLS_CERT_FILE: cert, ORCHARD_TLS_KEY_FILE: join(dir, 'missing.pem') }, []), {
    message: /^ORCHARD_TLS_KEY_FILE: file does not exist or is not readable/,
  })
  const config = loadConfig({ ORCHARD_TLS_CERT_FILE: cert, ORCHARD_TLS_KEY_FILE: key, ORCHARD_PORT: '8443' }, [])
  t.same(config.tls, { certFile: cert, keyFile: key })
  t.equal(config.publicUrl, 'https://localhost:8443', 'the default public URL follows TLS')
})

t.test('connection limits: defaults, variables, flags and bounds', async (t) => {
  t.same(loadConfig({}, []).connectionLimits, { headersTimeoutMs: 15_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000, maxConnections: 10_000 })
  const env = {
    ORCHARD_HTTP_HEADERS_TIMEOUT_MS: '300',
    ORCHARD_HTTP_REQUEST_TIMEOUT_MS: '300',
    ORCHARD_HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000',
    ORCHARD_HTTP_MAX_CONNECTIONS: '0',
  }
  const config = loadConfig(env, [])
  t.same(
    config.connectionLimits,
    { headersTimeoutMs: 300, requestTimeoutMs: 300, keepAliveTimeoutMs: 65_000, maxConnections: 0 },
    'equal timeouts are fine; 0 = no cap',
  )
  t.ok(Object.isFrozen(config.connectionLimits))
  t.match(describeConfig(config), {
    connection_limits: { headers_timeout_ms: 300, request_timeout_ms: 300, keep_alive_timeout_ms: 65_000, max_connections: 0 },
  })
  const withFlags = loadConfig(env, ['--http-max-connections', '500', '--http-request-timeout-ms=90000'])
  t.match(withFlags.connectionLimits, { maxConnections: 500, requestTimeoutMs: 90_000, headersTimeoutMs: 300 }, 'flags win')

  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ ORCHARD_HTTP_HEADERS_TIMEOUT_MS: '50' }, /^ORCHARD_HTTP_HEADERS_TIMEOUT_MS: must be a whole number from 100 to 600000 \(got "50"\)$/],
    [{ ORCHARD_HTTP_REQUEST_TIMEOUT_MS: '1m' }, /^ORCHARD_HTTP_REQUEST_TIMEOUT_MS: must be a whole number from 100 to 3600000/],
    [
      { ORCHARD_HTTP_REQUEST_TIMEOUT_MS: '10000' },
      /^ORCHARD_HTTP_REQUEST_TIMEOUT_MS: must be at least ORCHARD_HTTP_HEADERS_TIMEOUT_MS \(15000\) \(got "10000"\)$/,
    ],
    [{ ORCHARD_HTTP_HEADERS_TIMEOUT_MS: '120000' }, /^ORCHARD_HTTP_REQUEST_TIMEOUT_MS: must be at least ORCHARD_HTTP_HEADERS_TIMEOUT_MS \(120000\)$/],
    [{ ORCHARD_HTTP_KEEP_ALIVE_TIMEOUT_MS: '0' }, /^ORCHARD_HTTP_KEEP_ALIVE_TIMEOUT_MS: must be a whole number from 100 to 3600000/],
    [{ ORCHARD_HTTP_MAX_CONNECTIONS: '-1' }, /^ORCHARD_HTTP_MAX_CONNECTIONS: must be a whole number from 0 to 1000000/],
  ]
  for (const [env, expected] of cases) t.throws(() => loadConfig(env, []), { name: 'ConfigError', message: expected }, JSON.stringify(env))
})

t.test('--help lists every option', async (t) => {
  try {
    loadConfig({}, ['--help'])
    t.fail('should throw')
  } catch (error) {
    t.type(error, HelpRequested)
    for (const option of configOptions) {
      t.match((error as Error).message, option.env)
      t.match((error as Error).message, option.flag)
    }
  }
})

t.test('the README configuration table is current (npm run docs rewrites it)', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  t.equal(readme, readmeWithConfigTable(readme))
  for (const option of configOptions) t.match(readme, `| \`${option.env}\``, `${option.env} documented`)
})
