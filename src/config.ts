// The one place that reads configuration. main.ts passes process.env and argv in;
// everything else receives the frozen Config object.
import { accessSync, constants as fsConstants } from 'node:fs'
import { resolve } from 'node:path'

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof logLevels)[number]

export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
}

export interface Config {
  readonly host: string
  readonly port: number
  /** Base URL devices and clients use to reach us, without a trailing slash. */
  readonly publicUrl: string
  /** postgres:// URL, or null for the embedded PGlite database in dataDir. */
  readonly databaseUrl: string | null
  readonly databasePoolMax: number
  readonly dataDir: string
  readonly logLevel: LogLevel
  readonly apiKeys: readonly string[]
  readonly apnsUrl: string
  readonly tls: TlsFiles | null
  readonly shutdownTimeoutMs: number
  /** What stops slow or idle clients from holding connections (HTTP and TLS alike). */
  readonly connectionLimits: {
    readonly headersTimeoutMs: number
    readonly requestTimeoutMs: number
    readonly keepAliveTimeoutMs: number
    /** 0 = no cap. */
    readonly maxConnections: number
  }
  /** PEM files of the CAs whose certificates identify devices. */
  readonly deviceCaFiles: readonly string[]
  /** Lower-case header in which a TLS proxy forwards the client certificate, or null. */
  readonly clientCertHeader: string | null
  readonly mdmBodyLimit: number
  readonly userAuthenticate: 'allow' | 'decline'
  /** Admin API responses checked against openapi.yaml: strict = a mismatch is a 500. */
  readonly apiResponseValidation: 'strict' | 'log' | 'off'
  /** Deliver webhook events from this process (false: only record them; another instance delivers). */
  readonly webhookWorker: boolean
  /** Warn when a device has refused (NotNow) the same command this many times. */
  readonly notNowAlertAfter: number
  /** Master keys (32 bytes each) that seal secrets at rest; the first seals, all open. */
  readonly secretKeys: readonly Buffer[]
  /** Extra CA (PEM file) trusted for the APNs endpoint: for test servers only. */
  readonly apnsCaFile: string | null
  /** The issuing device CA from files instead of the database, or null. */
  readonly caFiles: TlsFiles | null
  /** A static SCEP challenge (for hand-made profiles), or null: one-time challenges only. */
  readonly scepChallenge: string | null
  readonly identityValidityDays: number
  /** Renew identities this many days before they expire (0 = never). */
  readonly identityRenewalDays: number
  readonly enrollmentChallengeHours: number
  readonly openEnrollment: boolean
  /** Certificate (chain) and key that sign enrollment profiles, or null. */
  readonly profileSigningFiles: TlsFiles | null
  readonly organization: string
  readonly enrollmentProfileIdentifier: string
  /** Base URL of Apple's device assignment (DEP) API, without a trailing slash. */
  readonly abmUrl: string
  /** How often this process syncs ABM/ASM devices, in seconds; 0 = never (another instance does). */
  readonly depSyncSeconds: number
  readonly blueprintCheckHours: number
  /** Destructive commands (EraseDevice, DeleteUser, removing the enrollment profile) to more devices than this need the owner role. */
  readonly destructiveOwnerLimit: number
  /** Check that ADE MachineInfo signers chain to one of adeMachineInfoCaFiles. */
  readonly adeVerifyMachineInfo: boolean
  /** PEM files of the CAs that sign devices' MachineInfo (Apple's device CAs). */
  readonly adeMachineInfoCaFiles: readonly string[]
  /** People calling the admin API with OIDC bearer tokens, or null (API keys only). */
  readonly oidc: {
    readonly issuer: string
    readonly audiences: readonly string[]
    readonly jwksUrl: string | null
    readonly groupsClaim: string
    /** Group name -> the grant it gives (tenantId null: central IT). */
    readonly groupRoles: ReadonlyMap<string, { readonly role: 'owner' | 'admin' | 'helpdesk' | 'auditor'; readonly tenantId: string | null }>
  } | null
  readonly repush: {
    /** A device with pending commands that has not connected for this long is pushed again. */
    readonly afterSeconds: number
    /** Backoff ceiling between re-pushes. */
    readonly maxIntervalSeconds: number
    /** A device silent for longer than this is no longer re-pushed (it is gone or off). */
    readonly giveUpAfterSeconds: number
    /** 0 = no re-push loop in this process. */
    readonly loopIntervalSeconds: number
  }
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** Thrown for `--help`: the caller prints the text and exits 0. */
export class HelpRequested extends Error {
  override readonly name = 'HelpRequested'
}

type RawValues = Partial<Record<OptionKey, string>>

interface OptionSpec {
  readonly key: OptionKey
  readonly env: string
  readonly flag: string
  /** Shown in --help and the README. */
  readonly defaultText: string
  readonly description: string
  /** Values never echoed back in errors or logs. */
  readonly secret?: boolean
}

type OptionKey =
  | 'host'
  | 'port'
  | 'publicUrl'
  | 'databaseUrl'
  | 'databasePoolMax'
  | 'dataDir'
  | 'logLevel'
  | 'apiKeys'
  | 'apnsUrl'
  | 'tlsCertFile'
  | 'tlsKeyFile'
  | 'shutdownTimeoutMs'
  | 'httpHeadersTimeoutMs'
  | 'httpRequestTimeoutMs'
  | 'httpKeepAliveTimeoutMs'
  | 'httpMaxConnections'
  | 'deviceCaFiles'
  | 'clientCertHeader'
  | 'mdmBodyLimit'
  | 'userAuthenticate'
  | 'apiResponseValidation'
  | 'webhookWorker'
  | 'notNowAlertAfter'
  | 'secretKeys'
  | 'apnsCaFile'
  | 'caCertFile'
  | 'caKeyFile'
  | 'scepChallenge'
  | 'identityValidityDays'
  | 'identityRenewalDays'
  | 'enrollmentChallengeHours'
  | 'openEnrollment'
  | 'profileSigningCertFile'
  | 'profileSigningKeyFile'
  | 'organization'
  | 'enrollmentProfileIdentifier'
  | 'abmUrl'
  | 'depSyncSeconds'
  | 'blueprintCheckHours'
  | 'destructiveOwnerLimit'
  | 'adeVerifyMachineInfo'
  | 'adeMachineInfoCaFiles'
  | 'oidcIssuer'
  | 'oidcAudience'
  | 'oidcJwksUrl'
  | 'oidcGroupsClaim'
  | 'oidcGroupRoles'
  | 'repushAfter'
  | 'repushMaxInterval'
  | 'repushGiveUpAfter'
  | 'repushLoopInterval'

export const configOptions: readonly OptionSpec[] = [
  { key: 'host', env: 'ORCHARD_HOST', flag: '--host', defaultText: '127.0.0.1', description: 'Address to listen on (0.0.0.0 for all interfaces; the Docker image sets it).' },
  { key: 'port', env: 'ORCHARD_PORT', flag: '--port', defaultText: '8080', description: 'TCP port to listen on (0 picks a free port).' },
  { key: 'publicUrl', env: 'ORCHARD_PUBLIC_URL', flag: '--public-url', defaultText: 'http(s)://localhost:<port>', description: 'Base URL devices and API clients use to reach Orchard (https in production: devices require it).' },
  { key: 'databaseUrl', env: 'DATABASE_URL', flag: '--database-url', defaultText: '(unset: embedded PGlite)', description: 'postgres:// URL of a PostgreSQL database. Unset = embedded PGlite stored in the data directory.', secret: true },
  { key: 'databasePoolMax', env: 'DATABASE_POOL_MAX', flag: '--database-pool-max', defaultText: '10', description: 'Maximum PostgreSQL connections in the pool (1-1000). Ignored for PGlite, which has one.' },
  { key: 'dataDir', env: 'ORCHARD_DATA_DIR', flag: '--data-dir', defaultText: './data', description: 'Directory for local state: the embedded database lives in <data-dir>/pglite.' },
  { key: 'logLevel', env: 'ORCHARD_LOG_LEVEL', flag: '--log-level', defaultText: 'info', description: `Log level: ${logLevels.join(', ')}.` },
  { key: 'apiKeys', env: 'ORCHARD_API_KEYS', flag: '--api-keys', defaultText: '(none: admin API refuses every request)', description: 'Comma-separated bearer keys for the admin API, each at least 24 characters (e.g. `openssl rand -hex 32`).', secret: true },
  { key: 'apnsUrl', env: 'ORCHARD_APNS_URL', flag: '--apns-url', defaultText: 'production', description: 'APNs endpoint: `production`, `development`, or an https:// URL (e.g. a test server).' },
  { key: 'apnsCaFile', env: 'ORCHARD_APNS_CA_FILE', flag: '--apns-ca-file', defaultText: '(unset: system CAs)', description: 'PEM file of an extra CA to trust for the APNs endpoint (a test APNs server). Not needed for Apple.' },
  { key: 'secretKeys', env: 'ORCHARD_SECRET_KEYS', flag: '--secret-keys', defaultText: '(unset: <data-dir>/secret.key with the embedded database; none on PostgreSQL)', description: 'Comma-separated master keys (64 hex characters or base64 of 32 bytes, e.g. `openssl rand -hex 32`) that encrypt private keys at rest (device CA, push certificates, webhook secrets). The first encrypts; all decrypt (rotation: put the new key first). Every instance on one PostgreSQL database needs the same keys.', secret: true },
  { key: 'repushAfter', env: 'ORCHARD_REPUSH_AFTER_SECONDS', flag: '--repush-after-seconds', defaultText: '300', description: 'A device with pending commands that has not connected for this long is pushed again, with exponential backoff.' },
  { key: 'repushMaxInterval', env: 'ORCHARD_REPUSH_MAX_INTERVAL_SECONDS', flag: '--repush-max-interval-seconds', defaultText: '21600', description: 'Ceiling of the re-push backoff.' },
  { key: 'repushGiveUpAfter', env: 'ORCHARD_REPUSH_GIVE_UP_AFTER_SECONDS', flag: '--repush-give-up-after-seconds', defaultText: '2592000', description: 'Devices silent for longer than this (default 30 days) are not re-pushed any more.' },
  { key: 'repushLoopInterval', env: 'ORCHARD_REPUSH_LOOP_SECONDS', flag: '--repush-loop-seconds', defaultText: '30', description: 'How often this process looks for devices to re-push (0 = never; several replicas share the work safely).' },
  { key: 'tlsCertFile', env: 'ORCHARD_TLS_CERT_FILE', flag: '--tls-cert-file', defaultText: '(unset: plain HTTP)', description: 'PEM certificate (chain) to serve HTTPS directly. Needs ORCHARD_TLS_KEY_FILE.' },
  { key: 'tlsKeyFile', env: 'ORCHARD_TLS_KEY_FILE', flag: '--tls-key-file', defaultText: '(unset)', description: 'PEM private key for ORCHARD_TLS_CERT_FILE.' },
  { key: 'deviceCaFiles', env: 'ORCHARD_DEVICE_CA_FILES', flag: '--device-ca-files', defaultText: '(none)', description: 'Comma-separated PEM files with extra CA certificates whose device identities are trusted (e.g. another MDM\'s SCEP CA after a migration). Orchard\'s own device CA is always trusted.' },
  { key: 'organization', env: 'ORCHARD_ORGANIZATION', flag: '--organization', defaultText: 'Orchard', description: 'Organization name shown in enrollment profiles and in the generated device CA.' },
  { key: 'caCertFile', env: 'ORCHARD_CA_CERT_FILE', flag: '--ca-cert-file', defaultText: '(unset: generated on first start, kept in the database)', description: 'PEM certificate of the CA that issues device identities over SCEP. Needs ORCHARD_CA_KEY_FILE. Unset: Orchard creates its device CA on first start and seals its key with ORCHARD_SECRET_KEYS.' },
  { key: 'caKeyFile', env: 'ORCHARD_CA_KEY_FILE', flag: '--ca-key-file', defaultText: '(unset)', description: 'PEM private key (RSA, or EC P-256/P-384 with a generated RSA RA) of ORCHARD_CA_CERT_FILE.' },
  { key: 'scepChallenge', env: 'ORCHARD_SCEP_CHALLENGE', flag: '--scep-challenge', defaultText: '(unset: one-time challenges only)', description: 'A static SCEP challenge for profiles made by hand (at least 16 characters). Orchard\'s own profiles always carry one-time challenges.', secret: true },
  { key: 'identityValidityDays', env: 'ORCHARD_IDENTITY_VALIDITY_DAYS', flag: '--identity-validity-days', defaultText: '365', description: 'Validity of issued device identity certificates, in days.' },
  { key: 'identityRenewalDays', env: 'ORCHARD_IDENTITY_RENEWAL_DAYS', flag: '--identity-renewal-days', defaultText: '60', description: 'Queue a fresh enrollment profile (InstallProfile) this many days before a device identity expires; 0 = never.' },
  { key: 'enrollmentChallengeHours', env: 'ORCHARD_ENROLLMENT_CHALLENGE_HOURS', flag: '--enrollment-challenge-hours', defaultText: '72', description: 'How long the one-time SCEP challenge in a downloaded enrollment profile stays valid.' },
  { key: 'openEnrollment', env: 'ORCHARD_OPEN_ENROLLMENT', flag: '--open-enrollment', defaultText: 'true', description: '`true`: anyone reaching GET /enroll gets an enrollment profile. `false`: only enrollment links (GET /enroll/<token>) hand out profiles.' },
  { key: 'profileSigningCertFile', env: 'ORCHARD_PROFILE_SIGNING_CERT_FILE', flag: '--profile-signing-cert-file', defaultText: '(unset: profiles unsigned)', description: 'PEM certificate (then its chain) that signs enrollment profiles. Needs ORCHARD_PROFILE_SIGNING_KEY_FILE.' },
  { key: 'profileSigningKeyFile', env: 'ORCHARD_PROFILE_SIGNING_KEY_FILE', flag: '--profile-signing-key-file', defaultText: '(unset)', description: 'PEM private key of ORCHARD_PROFILE_SIGNING_CERT_FILE.' },
  { key: 'enrollmentProfileIdentifier', env: 'ORCHARD_ENROLLMENT_PROFILE_IDENTIFIER', flag: '--enrollment-profile-identifier', defaultText: 'orchard.enrollment', description: 'PayloadIdentifier of enrollment profiles. Identity renewal re-installs the profile with it: do not change it while devices are enrolled.' },
  { key: 'abmUrl', env: 'ORCHARD_ABM_URL', flag: '--abm-url', defaultText: 'https://mdmenrollment.apple.com', description: "Apple's device assignment (ADE/DEP) API of Apple Business/School Manager; an http(s):// URL of a test server otherwise." },
  { key: 'depSyncSeconds', env: 'ORCHARD_DEP_SYNC_SECONDS', flag: '--dep-sync-seconds', defaultText: '900', description: 'How often this process syncs the devices of every ABM/ASM token (one instance at a time per token, by lease); 0 = not in this process.' },
  { key: 'blueprintCheckHours', env: 'ORCHARD_BLUEPRINT_CHECK_HOURS', flag: '--blueprint-check-hours', defaultText: '24', description: 'How often every device with blueprints is asked for its profile and app lists, so drift is repaired; 0 = only on enrollment, changes and sync.' },
  { key: 'adeVerifyMachineInfo', env: 'ORCHARD_ADE_VERIFY_MACHINE_INFO', flag: '--ade-verify-machine-info', defaultText: 'true', description: "`true`: an ADE device's MachineInfo must be signed by a certificate chaining to ORCHARD_ADE_MACHINE_INFO_CA_FILES (ADE enrollment answers 503 until they are set); `false`: the signature is checked, its chain is not." },
  { key: 'adeMachineInfoCaFiles', env: 'ORCHARD_ADE_MACHINE_INFO_CA_FILES', flag: '--ade-machine-info-ca-files', defaultText: '(none)', description: "Comma-separated PEM files with the CAs that issue devices' own identities, for ADE MachineInfo: Apple Root CA and Apple iPhone Device CA (apple.com/certificateauthority; macOS sends no intermediate, so list both). Each is a trust anchor." },
  { key: 'oidcIssuer', env: 'ORCHARD_OIDC_ISSUER', flag: '--oidc-issuer', defaultText: '(unset: API keys only)', description: "Issuer URL of the organisation's OpenID Connect provider: the admin API then also takes its JWTs as bearer tokens (signature from the issuer's JWKS, audience and expiry checked)." },
  { key: 'oidcAudience', env: 'ORCHARD_OIDC_AUDIENCE', flag: '--oidc-audience', defaultText: '(required with ORCHARD_OIDC_ISSUER)', description: 'Comma-separated `aud` values a token must carry one of (the client ID registered for Orchard).' },
  { key: 'oidcJwksUrl', env: 'ORCHARD_OIDC_JWKS_URL', flag: '--oidc-jwks-url', defaultText: '(discovered from the issuer)', description: 'JWKS URL, when the issuer has no /.well-known/openid-configuration.' },
  { key: 'oidcGroupsClaim', env: 'ORCHARD_OIDC_GROUPS_CLAIM', flag: '--oidc-groups-claim', defaultText: 'groups', description: "Token claim with the person's groups: an array of names, or a single name as a string (taken whole, never split)." },
  { key: 'oidcGroupRoles', env: 'ORCHARD_OIDC_GROUP_ROLES', flag: '--oidc-group-roles', defaultText: '(required with ORCHARD_OIDC_ISSUER)', description: 'Comma-separated `group=role` (central IT) or `group=role@tenant` pairs; roles owner (central only), admin, helpdesk, auditor. E.g. `mdm-central=owner,physics-it=admin@physics,physics-desk=helpdesk@physics`. A person holds the grants of all their listed groups; none without one.' },
  { key: 'clientCertHeader', env: 'ORCHARD_CLIENT_CERT_HEADER', flag: '--client-cert-header', defaultText: '(unset: not trusted)', description: 'Header in which a TLS-terminating proxy forwards the device client certificate (RFC 9440 `Client-Cert`, or URL-escaped PEM as nginx sends it). Set it only behind such a proxy.' },
  { key: 'mdmBodyLimit', env: 'ORCHARD_MDM_BODY_LIMIT', flag: '--mdm-body-limit', defaultText: '1048576', description: 'Largest request body a device may send, in bytes (larger: 413).' },
  { key: 'userAuthenticate', env: 'ORCHARD_USER_AUTHENTICATE', flag: '--user-authenticate', defaultText: 'allow', description: 'macOS user channels (UserAuthenticate): `allow` (no AuthToken needed) or `decline` (410: no user channels).' },
  { key: 'apiResponseValidation', env: 'ORCHARD_API_RESPONSE_VALIDATION', flag: '--api-response-validation', defaultText: 'log', description: 'Check admin API responses against openapi.yaml: `log` logs a mismatch, `strict` answers 500 instead (tests), `off` skips the check.' },
  { key: 'webhookWorker', env: 'ORCHARD_WEBHOOK_WORKER', flag: '--webhook-worker', defaultText: 'true', description: 'Deliver webhook events from this process. `false`: events are still recorded in the outbox, and another instance (or a later start) delivers them.' },
  { key: 'destructiveOwnerLimit', env: 'ORCHARD_DESTRUCTIVE_OWNER_LIMIT', flag: '--destructive-owner-limit', defaultText: '10', description: 'Destructive commands (EraseDevice, DeleteUser, RemoveProfile of the enrollment profile) sent to more devices than this in one call need the owner role for every target\'s tenant. Any such command to a filter or to several devices also takes two steps: a dry run, then the call with its confirmation token.' },
  { key: 'notNowAlertAfter', env: 'ORCHARD_NOT_NOW_ALERT_AFTER', flag: '--not-now-alert-after', defaultText: '5', description: 'Log a warning when a device has answered NotNow to the same command this many times (the command stays queued; its NotNow count is kept).' },
  { key: 'shutdownTimeoutMs', env: 'ORCHARD_SHUTDOWN_TIMEOUT_MS', flag: '--shutdown-timeout-ms', defaultText: '10000', description: 'On SIGTERM/SIGINT, how long in-flight requests may take before the process exits anyway (exit code 1).' },
  { key: 'httpHeadersTimeoutMs', env: 'ORCHARD_HTTP_HEADERS_TIMEOUT_MS', flag: '--http-headers-timeout-ms', defaultText: '15000', description: 'Time a client has to send its request line and headers, from connecting (on a kept-alive connection, from its next first byte); then 408 and the connection is closed. Stops slow-header clients and connections that send nothing. With TLS, the handshake gets the same time before it. Checked every min(1 s, a quarter of this), so a client may get up to that much longer.' },
  { key: 'httpRequestTimeoutMs', env: 'ORCHARD_HTTP_REQUEST_TIMEOUT_MS', flag: '--http-request-timeout-ms', defaultText: '60000', description: 'Time a client has to send a whole request, headers and body, from its first byte; then 408 and the connection is closed. Stops slow-body clients; the handler and the response are not limited. 60 s lets a 1 MiB device report through at about 150 kbit/s and a 16 MiB admin upload at about 2.3 Mbit/s. At least ORCHARD_HTTP_HEADERS_TIMEOUT_MS.' },
  { key: 'httpKeepAliveTimeoutMs', env: 'ORCHARD_HTTP_KEEP_ALIVE_TIMEOUT_MS', flag: '--http-keep-alive-timeout-ms', defaultText: '5000', description: 'How long an idle connection stays open after a response for the next request (advertised in `Keep-Alive: timeout=`; Node waits 1 s more). Short by default: devices check in now and then, and idle connections count toward ORCHARD_HTTP_MAX_CONNECTIONS. Behind a load balancer or proxy that reuses connections, set it above that idle timeout (AWS ALB, nginx: 60 s, so 65000), or it may reuse one Orchard is closing (a 502).' },
  { key: 'httpMaxConnections', env: 'ORCHARD_HTTP_MAX_CONNECTIONS', flag: '--http-max-connections', defaultText: '10000', description: 'Most TCP connections (HTTP or TLS, idle ones included) open at once; further ones are closed on arrival, with a warning in the log, while open ones carry on. 0 = no cap. Keep it below the open-file limit of the process (`ulimit -n`).' },
]

const apnsAliases: Record<string, string> = {
  production: 'https://api.push.apple.com',
  development: 'https://api.sandbox.push.apple.com',
}

export const minimumApiKeyLength = 24

export function helpText(): string {
  const lines = ['Usage: orchard [--flag value ...]', '', 'Every flag has an environment variable; flags win.', '']
  for (const o of configOptions) {
    lines.push(`  ${o.flag.padEnd(22)} ${o.env.padEnd(28)} default ${o.defaultText}`)
    lines.push(`  ${''.padEnd(22)} ${o.description}`)
  }
  return lines.join('\n')
}

/**
 * Builds the Config from environment variables and command-line flags (flags win).
 * Throws ConfigError with one line naming the variable or flag and what is wrong.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, argv: readonly string[]): Config {
  const fromFlags = parseFlags(argv)
  const raw: RawValues = {}
  const source: Partial<Record<OptionKey, string>> = {}
  for (const o of configOptions) {
    const flagValue = fromFlags.get(o.flag)
    const envValue = env[o.env]
    if (flagValue !== undefined) {
      raw[o.key] = flagValue
      source[o.key] = o.flag
    } else if (envValue !== undefined && envValue !== '') {
      raw[o.key] = envValue
      source[o.key] = o.env
    }
  }

  const fail = (key: OptionKey, problem: string): never => {
    const spec = configOptions.find((o) => o.key === key)!
    const name = source[key] ?? spec.env
    const value = raw[key]
    const shown = value === undefined || spec.secret ? '' : ` (got ${JSON.stringify(value)})`
    throw new ConfigError(`${name}: ${problem}${shown}`)
  }

  const integer = (key: OptionKey, fallback: number, min: number, max: number): number => {
    const value = raw[key]
    if (value === undefined) return fallback
    if (!/^\d+$/.test(value.trim())) fail(key, `must be a whole number from ${min} to ${max}`)
    const n = Number(value.trim())
    if (n < min || n > max) fail(key, `must be a whole number from ${min} to ${max}`)
    return n
  }

  const host = (raw.host ?? '127.0.0.1').trim()
  if (host === '' || /\s|\//.test(host)) fail('host', 'must be an IP address or host name')

  const port = integer('port', 8080, 0, 65535)

  const filePair = (certKey: OptionKey, keyKey: OptionKey, certEnv: string, keyEnv: string): TlsFiles | null => {
    if (raw[certKey] === undefined && raw[keyKey] === undefined) return null
    if (raw[certKey] === undefined) fail(keyKey, `is set but ${certEnv} is not: set both or neither`)
    if (raw[keyKey] === undefined) fail(certKey, `is set but ${keyEnv} is not: set both or neither`)
    const certFile = resolve(raw[certKey]!.trim())
    const keyFile = resolve(raw[keyKey]!.trim())
    if (!readable(certFile)) fail(certKey, 'file does not exist or is not readable')
    if (!readable(keyFile)) fail(keyKey, 'file does not exist or is not readable')
    return Object.freeze({ certFile, keyFile })
  }
  const tls = filePair('tlsCertFile', 'tlsKeyFile', 'ORCHARD_TLS_CERT_FILE', 'ORCHARD_TLS_KEY_FILE')

  let publicUrl = `${tls ? 'https' : 'http'}://localhost:${port}`
  if (raw.publicUrl !== undefined) {
    let url: URL
    try {
      url = new URL(raw.publicUrl.trim())
    } catch {
      return fail('publicUrl', 'must be an absolute http:// or https:// URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('publicUrl', 'must be an absolute http:// or https:// URL')
    if (url.search !== '' || url.hash !== '') fail('publicUrl', 'must not have a query string or fragment')
    if (url.username !== '' || url.password !== '') fail('publicUrl', 'must not contain credentials')
    publicUrl = url.toString().replace(/\/+$/, '')
  }

  let databaseUrl: string | null = null
  if (raw.databaseUrl !== undefined) {
    let url: URL | undefined
    try {
      url = new URL(raw.databaseUrl.trim())
    } catch {
      fail('databaseUrl', 'must be a postgres:// or postgresql:// URL')
    }
    if (url!.protocol !== 'postgres:' && url!.protocol !== 'postgresql:') fail('databaseUrl', 'must be a postgres:// or postgresql:// URL')
    databaseUrl = raw.databaseUrl.trim()
  }

  const databasePoolMax = integer('databasePoolMax', 10, 1, 1000)

  const dataDir = resolve((raw.dataDir ?? './data').trim())

  const logLevel = (raw.logLevel ?? 'info').trim().toLowerCase()
  if (!(logLevels as readonly string[]).includes(logLevel)) fail('logLevel', `must be one of ${logLevels.join(', ')}`)

  const apiKeys: string[] = []
  if (raw.apiKeys !== undefined) {
    const keys = raw.apiKeys.split(',').map((k) => k.trim())
    keys.forEach((key, index) => {
      if (key.length < minimumApiKeyLength) {
        fail('apiKeys', `key #${index + 1} is ${key.length === 0 ? 'empty' : 'too short'}: each key needs at least ${minimumApiKeyLength} characters`)
      }
      if (/\s/.test(key)) fail('apiKeys', `key #${index + 1} contains white space`)
    })
    apiKeys.push(...new Set(keys))
  }

  let apnsUrl = apnsAliases.production!
  if (raw.apnsUrl !== undefined) {
    const value = raw.apnsUrl.trim()
    const alias = apnsAliases[value.toLowerCase()]
    if (alias !== undefined) {
      apnsUrl = alias
    } else {
      let url: URL | undefined
      try {
        url = new URL(value)
      } catch {
        fail('apnsUrl', 'must be production, development or an https:// URL')
      }
      if (url!.protocol !== 'https:') fail('apnsUrl', 'must be production, development or an https:// URL (APNs speaks HTTP/2 over TLS)')
      if (url!.pathname !== '/' || url!.search !== '') fail('apnsUrl', 'must be a bare origin such as https://host:port, without a path')
      apnsUrl = url!.origin
    }
  }

  const shutdownTimeoutMs = integer('shutdownTimeoutMs', 10_000, 100, 600_000)

  const headersTimeoutMs = integer('httpHeadersTimeoutMs', 15_000, 100, 600_000)
  const requestTimeoutMs = integer('httpRequestTimeoutMs', 60_000, 100, 3_600_000)
  // Node refuses a headers timeout above the request timeout; say so in our terms.
  if (requestTimeoutMs < headersTimeoutMs) fail('httpRequestTimeoutMs', `must be at least ORCHARD_HTTP_HEADERS_TIMEOUT_MS (${headersTimeoutMs})`)
  const connectionLimits = Object.freeze({
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: integer('httpKeepAliveTimeoutMs', 5_000, 100, 3_600_000),
    maxConnections: integer('httpMaxConnections', 10_000, 0, 1_000_000),
  })

  /** A comma-separated list of readable files, resolved. */
  const fileList = (key: OptionKey): string[] => {
    const files: string[] = []
    for (const file of (raw[key] ?? '').split(',').map((f) => f.trim()).filter((f) => f !== '')) {
      const path = resolve(file)
      if (!readable(path)) fail(key, `file ${path} does not exist or is not readable`)
      files.push(path)
    }
    return files
  }
  const deviceCaFiles = fileList('deviceCaFiles')

  let clientCertHeader: string | null = null
  if (raw.clientCertHeader !== undefined) {
    clientCertHeader = raw.clientCertHeader.trim().toLowerCase()
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(clientCertHeader)) fail('clientCertHeader', 'must be an HTTP header name such as Client-Cert')
  }

  const mdmBodyLimit = integer('mdmBodyLimit', 1024 * 1024, 1024, 100 * 1024 * 1024)

  const notNowAlertAfter = integer('notNowAlertAfter', 5, 1, 1_000_000)

  const secretKeys: Buffer[] = []
  if (raw.secretKeys !== undefined) {
    raw.secretKeys.split(',').map((k) => k.trim()).forEach((text, index) => {
      const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : /^[A-Za-z0-9+/]{43}=$/.test(text) ? Buffer.from(text, 'base64') : null
      if (!key || key.length !== 32) fail('secretKeys', `key #${index + 1} must be 64 hex characters or base64 of 32 bytes (openssl rand -hex 32)`)
      secretKeys.push(key!)
    })
  }

  let apnsCaFile: string | null = null
  if (raw.apnsCaFile !== undefined) {
    apnsCaFile = resolve(raw.apnsCaFile.trim())
    if (!readable(apnsCaFile)) fail('apnsCaFile', 'file does not exist or is not readable')
  }

  const repush = Object.freeze({
    afterSeconds: integer('repushAfter', 300, 10, 30 * 86_400),
    maxIntervalSeconds: integer('repushMaxInterval', 21_600, 10, 30 * 86_400),
    giveUpAfterSeconds: integer('repushGiveUpAfter', 30 * 86_400, 60, 365 * 86_400),
    loopIntervalSeconds: integer('repushLoopInterval', 30, 0, 86_400),
  })

  const caFiles = filePair('caCertFile', 'caKeyFile', 'ORCHARD_CA_CERT_FILE', 'ORCHARD_CA_KEY_FILE')
  const profileSigningFiles = filePair('profileSigningCertFile', 'profileSigningKeyFile', 'ORCHARD_PROFILE_SIGNING_CERT_FILE', 'ORCHARD_PROFILE_SIGNING_KEY_FILE')

  let scepChallenge: string | null = null
  if (raw.scepChallenge !== undefined) {
    scepChallenge = raw.scepChallenge
    if (scepChallenge.length < 16) fail('scepChallenge', 'must have at least 16 characters')
    if (scepChallenge.length > 255) fail('scepChallenge', 'must have at most 255 characters')
  }

  const identityValidityDays = integer('identityValidityDays', 365, 1, 3650)
  const identityRenewalDays = integer('identityRenewalDays', 60, 0, 3650)
  if (identityRenewalDays >= identityValidityDays) fail('identityRenewalDays', `must be less than ORCHARD_IDENTITY_VALIDITY_DAYS (${identityValidityDays})`)
  const enrollmentChallengeHours = integer('enrollmentChallengeHours', 72, 1, 24 * 365)

  const openEnrollment = (raw.openEnrollment ?? 'true').trim().toLowerCase()
  if (openEnrollment !== 'true' && openEnrollment !== 'false') fail('openEnrollment', 'must be true or false')

  const organization = (raw.organization ?? 'Orchard').trim()
  if (organization === '' || organization.length > 100) fail('organization', 'must have 1 to 100 characters')

  const enrollmentProfileIdentifier = (raw.enrollmentProfileIdentifier ?? 'orchard.enrollment').trim()
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,150}$/.test(enrollmentProfileIdentifier)) fail('enrollmentProfileIdentifier', 'must be a reverse-DNS style identifier (letters, digits, dots, hyphens)')

  let abmUrl = 'https://mdmenrollment.apple.com'
  if (raw.abmUrl !== undefined) {
    let url: URL | undefined
    try {
      url = new URL(raw.abmUrl.trim())
    } catch {
      fail('abmUrl', 'must be an http:// or https:// URL')
    }
    if (url!.protocol !== 'https:' && url!.protocol !== 'http:') fail('abmUrl', 'must be an http:// or https:// URL')
    if (url!.search !== '' || url!.hash !== '') fail('abmUrl', 'must not have a query string or fragment')
    abmUrl = url!.toString().replace(/\/+$/, '')
  }
  const depSyncSeconds = integer('depSyncSeconds', 900, 0, 7 * 86_400)
  const blueprintCheckHours = integer('blueprintCheckHours', 24, 0, 24 * 90)
  const destructiveOwnerLimit = integer('destructiveOwnerLimit', 10, 0, 1_000_000)
  const adeVerifyMachineInfo = (raw.adeVerifyMachineInfo ?? 'true').trim().toLowerCase()
  if (adeVerifyMachineInfo !== 'true' && adeVerifyMachineInfo !== 'false') fail('adeVerifyMachineInfo', 'must be true or false')
  const adeMachineInfoCaFiles = fileList('adeMachineInfoCaFiles')

  let oidc: Config['oidc'] = null
  if (raw.oidcIssuer !== undefined) {
    let issuer: URL | undefined
    try {
      issuer = new URL(raw.oidcIssuer.trim())
    } catch {
      fail('oidcIssuer', 'must be an https:// URL')
    }
    if (issuer!.protocol !== 'https:' && issuer!.protocol !== 'http:') fail('oidcIssuer', 'must be an https:// URL')
    const audiences = (raw.oidcAudience ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '')
    if (audiences.length === 0) fail('oidcAudience', 'is required with ORCHARD_OIDC_ISSUER (the client ID tokens are issued for)')
    let jwksUrl: string | null = null
    if (raw.oidcJwksUrl !== undefined) {
      try {
        jwksUrl = new URL(raw.oidcJwksUrl.trim()).toString()
      } catch {
        fail('oidcJwksUrl', 'must be an https:// URL')
      }
    }
    type GroupRole = { role: 'owner' | 'admin' | 'helpdesk' | 'auditor'; tenantId: string | null }
    const groupRoles = new Map<string, GroupRole>()
    for (const pair of (raw.oidcGroupRoles ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      const match = /^(.+)=(owner|admin|helpdesk|auditor)(?:@([a-z0-9][a-z0-9-]{0,62}))?$/.exec(pair)
      if (!match || match[1]!.trim() === '') fail('oidcGroupRoles', `"${pair}" is not group=role or group=role@tenant (roles owner, admin, helpdesk, auditor)`)
      const [, group, role, tenantId] = match!
      if (role === 'owner' && tenantId !== undefined) fail('oidcGroupRoles', `"${pair}": owner is a central IT role, without @tenant`)
      groupRoles.set(group!.trim(), Object.freeze({ role: role as GroupRole['role'], tenantId: tenantId ?? null }))
    }
    if (groupRoles.size === 0) fail('oidcGroupRoles', 'is required with ORCHARD_OIDC_ISSUER: map at least one group to a role')
    const groupsClaim = (raw.oidcGroupsClaim ?? 'groups').trim()
    if (groupsClaim === '') fail('oidcGroupsClaim', 'must not be empty')
    // The issuer is compared with `iss` exactly: keep it as given (a trailing slash matters).
    oidc = Object.freeze({ issuer: raw.oidcIssuer.trim(), audiences: Object.freeze(audiences), jwksUrl, groupsClaim, groupRoles })
  } else {
    for (const key of ['oidcAudience', 'oidcJwksUrl', 'oidcGroupRoles'] as const) if (raw[key] !== undefined) fail(key, 'is set but ORCHARD_OIDC_ISSUER is not')
  }

  const userAuthenticate = (raw.userAuthenticate ?? 'allow').trim().toLowerCase()
  if (userAuthenticate !== 'allow' && userAuthenticate !== 'decline') fail('userAuthenticate', 'must be allow or decline')

  const apiResponseValidation = (raw.apiResponseValidation ?? 'log').trim().toLowerCase() as Config['apiResponseValidation']
  if (!['strict', 'log', 'off'].includes(apiResponseValidation)) fail('apiResponseValidation', 'must be strict, log or off')

  const webhookWorker = (raw.webhookWorker ?? 'true').trim().toLowerCase()
  if (webhookWorker !== 'true' && webhookWorker !== 'false') fail('webhookWorker', 'must be true or false')

  return Object.freeze({
    host,
    apiResponseValidation,
    webhookWorker: webhookWorker === 'true',
    port,
    publicUrl,
    databaseUrl,
    databasePoolMax,
    dataDir,
    logLevel: logLevel as LogLevel,
    apiKeys: Object.freeze(apiKeys),
    apnsUrl,
    tls,
    shutdownTimeoutMs,
    connectionLimits,
    deviceCaFiles: Object.freeze(deviceCaFiles),
    clientCertHeader,
    mdmBodyLimit,
    userAuthenticate: userAuthenticate as 'allow' | 'decline',
    notNowAlertAfter,
    secretKeys: Object.freeze(secretKeys),
    apnsCaFile,
    caFiles,
    scepChallenge,
    identityValidityDays,
    identityRenewalDays,
    enrollmentChallengeHours,
    openEnrollment: openEnrollment === 'true',
    profileSigningFiles,
    organization,
    enrollmentProfileIdentifier,
    abmUrl,
    depSyncSeconds,
    blueprintCheckHours,
    destructiveOwnerLimit,
    adeVerifyMachineInfo: adeVerifyMachineInfo === 'true',
    adeMachineInfoCaFiles: Object.freeze(adeMachineInfoCaFiles),
    oidc,
    repush,
  })
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Set(configOptions.map((o) => o.flag))
  const values = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') throw new HelpRequested(helpText())
    if (!arg.startsWith('--')) throw new ConfigError(`${arg}: unexpected argument (flags look like --port 8080; see --help)`)
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    if (!known.has(flag)) throw new ConfigError(`${flag}: unknown flag (see --help)`)
    let value: string | undefined
    if (eq !== -1) {
      value = arg.slice(eq + 1)
    } else {
      value = argv[i + 1]
      if (value === undefined || value.startsWith('--')) throw new ConfigError(`${flag}: needs a value`)
      i++
    }
    if (values.has(flag)) throw new ConfigError(`${flag}: given more than once`)
    values.set(flag, value)
  }
  return values
}

function readable(path: string): boolean {
  try {
    accessSync(path, fsConstants.R_OK)
    return true
  } catch {
    return false
  }
}

/** What is safe to log about the configuration: no keys, no database credentials. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    host: config.host,
    port: config.port,
    public_url: config.publicUrl,
    database: config.databaseUrl ? redactDatabaseUrl(config.databaseUrl) : `pglite:${config.dataDir}/pglite`,
    database_pool_max: config.databasePoolMax,
    log_level: config.logLevel,
    api_keys: config.apiKeys.length,
    apns_url: config.apnsUrl,
    tls: config.tls !== null,
    connection_limits: {
      headers_timeout_ms: config.connectionLimits.headersTimeoutMs,
      request_timeout_ms: config.connectionLimits.requestTimeoutMs,
      keep_alive_timeout_ms: config.connectionLimits.keepAliveTimeoutMs,
      max_connections: config.connectionLimits.maxConnections,
    },
    device_ca_files: config.deviceCaFiles,
    client_cert_header: config.clientCertHeader,
    mdm_body_limit: config.mdmBodyLimit,
    user_authenticate: config.userAuthenticate,
    secret_keys: config.secretKeys.length,
    apns_ca_file: config.apnsCaFile,
    ca_files: config.caFiles,
    scep_challenge: config.scepChallenge !== null,
    identity_validity_days: config.identityValidityDays,
    identity_renewal_days: config.identityRenewalDays,
    enrollment_challenge_hours: config.enrollmentChallengeHours,
    open_enrollment: config.openEnrollment,
    profile_signing: config.profileSigningFiles !== null,
    organization: config.organization,
    abm_url: config.abmUrl,
    dep_sync_seconds: config.depSyncSeconds,
    blueprint_check_hours: config.blueprintCheckHours,
    ade_verify_machine_info: config.adeVerifyMachineInfo,
    ade_machine_info_ca_files: config.adeMachineInfoCaFiles,
    oidc: config.oidc ? { issuer: config.oidc.issuer, audiences: config.oidc.audiences, groups_claim: config.oidc.groupsClaim, groups: [...config.oidc.groupRoles.keys()] } : null,
    repush: config.repush,
  }
}

export function redactDatabaseUrl(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl)
    if (url.password) url.password = '***'
    return url.toString()
  } catch {
    return 'postgres://(unparseable)'
  }
}
