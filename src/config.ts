// The one place that reads configuration. main.ts passes process.env and argv in;
// everything else receives the frozen Config object. The options themselves are declared in
// config-options.ts; this file reads their text, groups the few that belong together and checks
// what no single option can.
import { options, type OptionKey, type OptionValues } from './config-options.js'
import type { ConfigOption } from './config-parsers.js'

export { logLevels, type LogLevel } from './config-options.js'
export { minimumApiKeyLength } from './config-parsers.js'

export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
}

/** Every option's value (config-options.ts) but those assemble() groups into tls, caFiles, oidc, repush... */
export type Config = ReturnType<typeof assemble>

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/** Thrown for `--help`: the caller prints the text and exits 0. */
export class HelpRequested extends Error {
  override readonly name = 'HelpRequested'
}

const optionKeys = Object.keys(options) as OptionKey[]
/** The table indexed by any key name, as `requires` names options. */
const optionByKey: Readonly<Record<string, ConfigOption<unknown>>> = options

/** The options as --help, the README and the tests list them. */
export const configOptions = Object.freeze(
  optionKeys.map((key) => {
    const { env, flag, defaultText, description, secret } = options[key]
    return Object.freeze({ key, env, flag, defaultText, description, secret })
  }),
)

export function helpText(): string {
  const lines = ['Usage: orchard [--flag value ...]', '', 'Every flag has an environment variable; flags win.', '']
  for (const o of configOptions) {
    lines.push(`  ${o.flag.padEnd(22)} ${o.env.padEnd(28)} default ${o.defaultText}`)
    lines.push(`  ${''.padEnd(22)} ${o.description}`)
  }
  return lines.join('\n')
}

type FailOption = (key: OptionKey, problem: string) => never

/**
 * Builds the Config from environment variables and command-line flags (flags win).
 * Throws ConfigError with one line naming the variable or flag and what is wrong.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, argv: readonly string[]): Config {
  const fromFlags = parseFlags(argv)
  // The text of each option that is set, and where it came from (flag or variable).
  const given = new Map<string, { readonly text: string; readonly from: string }>()
  for (const key of optionKeys) {
    const { flag, env: name } = options[key]
    const flagValue = fromFlags.get(flag)
    const envValue = env[name]
    if (flagValue !== undefined) given.set(key, { text: flagValue, from: flag })
    else if (envValue !== undefined && envValue !== '') given.set(key, { text: envValue, from: name })
  }

  const fail: FailOption = (key, problem) => {
    const { env: name, secret } = options[key]
    const value = given.get(key)
    const shown = value === undefined || secret ? '' : ` (got ${JSON.stringify(value.text)})`
    throw new ConfigError(`${value?.from ?? name}: ${problem}${shown}`)
  }

  const values: Record<string, unknown> = {}
  for (const key of optionKeys) {
    const { requires, read } = optionByKey[key]!
    if (requires !== undefined && given.has(key) && !given.has(requires)) {
      const other = optionByKey[requires]!
      const pair = other.requires === key ? ': set both or neither' : ''
      fail(key, `is set but ${other.env} is not${pair}`)
    }
    values[key] = read(given.get(key)?.text, (problem) => fail(key, problem))
  }
  return assemble(values as OptionValues, fail)
}

/** The Config: the options' values, those that belong together grouped; and the checks across options. */
function assemble(values: OptionValues, fail: FailOption) {
  const {
    publicUrl,
    tlsCertFile,
    tlsKeyFile,
    caCertFile,
    caKeyFile,
    profileSigningCertFile,
    profileSigningKeyFile,
    httpHeadersTimeoutMs,
    httpRequestTimeoutMs,
    httpKeepAliveTimeoutMs,
    httpMaxConnections,
    repushAfter,
    repushMaxInterval,
    repushGiveUpAfter,
    repushLoopInterval,
    oidcIssuer,
    oidcAudience,
    oidcJwksUrl,
    oidcGroupsClaim,
    oidcGroupRoles,
    ...plain
  } = values

  // Node refuses a headers timeout above the request timeout; say so in our terms.
  if (httpRequestTimeoutMs < httpHeadersTimeoutMs) {
    fail('httpRequestTimeoutMs', `must be at least ${options.httpHeadersTimeoutMs.env} (${httpHeadersTimeoutMs})`)
  }
  if (plain.identityRenewalDays >= plain.identityValidityDays) {
    fail('identityRenewalDays', `must be less than ${options.identityValidityDays.env} (${plain.identityValidityDays})`)
  }

  // The options of a pair require each other (loadConfig checked): both are set or neither.
  const files = (certFile: string | null, keyFile: string | null): TlsFiles | null =>
    certFile !== null && keyFile !== null ? Object.freeze({ certFile, keyFile }) : null
  const tls = files(tlsCertFile, tlsKeyFile)

  let oidc = null
  if (oidcIssuer !== null) {
    const required = `is required with ${options.oidcIssuer.env}`
    if (oidcAudience.length === 0) fail('oidcAudience', `${required} (the client ID tokens are issued for)`)
    if (oidcGroupRoles.size === 0) fail('oidcGroupRoles', `${required}: map at least one group to a role`)
    if (oidcGroupsClaim === '') fail('oidcGroupsClaim', 'must not be empty')
    oidc = Object.freeze({
      issuer: oidcIssuer,
      audiences: oidcAudience,
      jwksUrl: oidcJwksUrl,
      groupsClaim: oidcGroupsClaim,
      groupRoles: oidcGroupRoles,
    })
  }

  return Object.freeze({
    ...plain,
    /** Base URL devices and clients use to reach us, without a trailing slash. */
    publicUrl: publicUrl ?? `${tls ? 'https' : 'http'}://localhost:${plain.port}`,
    /** ORCHARD_PUBLIC_URL as set, or null (publicUrl is then the localhost default): the served API document's server. */
    publicUrlSet: publicUrl,
    tls,
    /** The issuing device CA from files instead of the database, or null. */
    caFiles: files(caCertFile, caKeyFile),
    /** Certificate (chain) and key that sign enrollment profiles, or null. */
    profileSigningFiles: files(profileSigningCertFile, profileSigningKeyFile),
    /** What stops slow or idle clients from holding connections (HTTP and TLS alike). */
    connectionLimits: Object.freeze({
      headersTimeoutMs: httpHeadersTimeoutMs,
      requestTimeoutMs: httpRequestTimeoutMs,
      keepAliveTimeoutMs: httpKeepAliveTimeoutMs,
      /** 0 = no cap. */
      maxConnections: httpMaxConnections,
    }),
    repush: Object.freeze({
      afterSeconds: repushAfter,
      maxIntervalSeconds: repushMaxInterval,
      giveUpAfterSeconds: repushGiveUpAfter,
      /** 0 = no re-push loop in this process. */
      loopIntervalSeconds: repushLoopInterval,
    }),
    /** People calling the admin API with OIDC bearer tokens, or null (API keys only). */
    oidc,
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
    inventory_at_enrollment: config.inventoryAtEnrollment,
    inventory_refresh_hours: config.inventoryRefreshHours,
    inventory_result_retention_days: config.inventoryResultRetentionDays,
    billing_currency: config.billingCurrency,
    ade_verify_machine_info: config.adeVerifyMachineInfo,
    ade_machine_info_ca_files: config.adeMachineInfoCaFiles,
    oidc: config.oidc && {
      issuer: config.oidc.issuer,
      audiences: config.oidc.audiences,
      groups_claim: config.oidc.groupsClaim,
      groups: [...config.oidc.groupRoles.keys()],
    },
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
