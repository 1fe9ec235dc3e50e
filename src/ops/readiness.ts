// Readiness: whether this instance can serve devices now. Four checks decide it:
//   database      the database answers (within timeoutMs);
//   migrations    it has every migration this code knows;
//   device_ca     an issuing device CA is loaded (without one no device can enroll over SCEP
//                 or renew its identity);
//   secret_keys   every sealed secret in the database opens with ORCHARD_SECRET_KEYS (push
//                 certificate keys, the CA key, ABM/VPP tokens, unlock tokens: sealed rows
//                 and no key, or rows sealed with a key no longer configured, mean Orchard
//                 cannot push, enroll or sync).
// push_certificates and autovacuum are informational: an expiring (or missing) push certificate,
// or autovacuum turned off (the check-in tables bloat), is reported but does not take the
// instance out of a load balancer, where it would help nobody.
import type { MigrationStatus } from '../db/migrations.js'
import type { AutovacuumState, SealedSecretCount } from './readiness-store.js'

export interface ReadinessReport {
  ready: boolean
  /** The blocking checks that failed (empty when ready). */
  failing: BlockingCheck[]
  checks: {
    database: string
    migrations: string
    device_ca: string
    secret_keys: string
    /** Informational: an expiring certificate does not make the server unready. */
    push_certificates?: string
    /** Informational, PostgreSQL only: `on`, or `off:` and where. */
    autovacuum?: string
  }
}

/** The checks whose failure makes the instance unready; the others are informational. */
export const blockingChecks = ['database', 'migrations', 'device_ca', 'secret_keys'] as const
export type BlockingCheck = (typeof blockingChecks)[number]

export interface ReadinessDeps {
  ping(): Promise<void>
  migrationStatus(): Promise<MigrationStatus>
  /** The issuing device CA: its expiry when loaded, else why there is none. */
  deviceCa(): { loaded: true; notAfter: Date } | { loaded: false; reason: string }
  /** Ids (masterKeyId) of the configured ORCHARD_SECRET_KEYS; empty when none is set. */
  masterKeyIds: readonly string[]
  sealedSecretsByKey(): Promise<SealedSecretCount[]>
  /** Push certificates expiring within 30 days (or expired). */
  expiringPushCertificates?(): Promise<Array<{ topic: string; notAfter: Date; daysLeft: number }>>
  /** PostgreSQL: whether autovacuum runs (PGlite has no autovacuum worker to ask about). */
  autovacuum?(): Promise<AutovacuumState>
  /** A check that takes longer counts as failed (a hung database is not ready). */
  timeoutMs: number
}

const notChecked = 'not checked: the database is not ready'

export function createReadinessCheck(deps: ReadinessDeps): () => Promise<ReadinessReport> {
  const deviceCaCheck = (): { ok: boolean; text: string } => {
    const ca = deps.deviceCa()
    if (!ca.loaded) return { ok: false, text: `missing: ${ca.reason}` }
    return { ok: true, text: `ok (expires ${ca.notAfter.toISOString().slice(0, 10)})` }
  }

  const secretKeysCheck = (sealed: SealedSecretCount[]): { ok: boolean; text: string } => {
    const total = sealed.reduce((sum, row) => sum + row.count, 0)
    const keys = deps.masterKeyIds.length
    if (total === 0) return { ok: true, text: `ok (no sealed secrets; ${keys} key${keys === 1 ? '' : 's'} configured)` }
    if (keys === 0) return { ok: false, text: `missing: ${secrets(total)} in the database and no ORCHARD_SECRET_KEYS to open them` }
    const unknown = sealed.filter((row) => !deps.masterKeyIds.includes(row.keyId))
    if (unknown.length > 0) {
      const described = unknown.map((row) => `${row.count} sealed with key ${row.keyId}`).join(', ')
      return { ok: false, text: `missing: ${described}, which ORCHARD_SECRET_KEYS does not hold` }
    }
    return { ok: true, text: `ok (${secrets(total)} open with the configured keys)` }
  }

  return async function checkReadiness() {
    let status: MigrationStatus
    try {
      status = await withTimeout(
        (async () => {
          await deps.ping()
          return deps.migrationStatus()
        })(),
        deps.timeoutMs,
      )
    } catch (error) {
      const ca = deviceCaCheck()
      return {
        ready: false,
        failing: ca.ok ? ['database', 'migrations', 'secret_keys'] : ['database', 'migrations', 'device_ca', 'secret_keys'],
        checks: { database: `unavailable: ${(error as Error).message}`, migrations: 'unknown', device_ca: ca.text, secret_keys: notChecked },
      }
    }
    const current = status.pending.length === 0
    const migrations = current ? `current (${status.applied.length} applied)` : `pending: ${status.pending.join(', ')}`
    const ca = deviceCaCheck()
    if (!current) {
      const failing: BlockingCheck[] = ca.ok ? ['migrations', 'secret_keys'] : ['migrations', 'device_ca', 'secret_keys']
      return { ready: false, failing, checks: { database: 'ok', migrations, device_ca: ca.text, secret_keys: notChecked } }
    }
    try {
      const secrets = secretKeysCheck(await withTimeout(deps.sealedSecretsByKey(), deps.timeoutMs))
      const checks: ReadinessReport['checks'] = { database: 'ok', migrations, device_ca: ca.text, secret_keys: secrets.text }
      if (deps.expiringPushCertificates) checks.push_certificates = describeExpiring(await withTimeout(deps.expiringPushCertificates(), deps.timeoutMs))
      if (deps.autovacuum) checks.autovacuum = describeAutovacuum(await withTimeout(deps.autovacuum(), deps.timeoutMs))
      const failing: BlockingCheck[] = [...(ca.ok ? [] : (['device_ca'] as const)), ...(secrets.ok ? [] : (['secret_keys'] as const))]
      return { ready: failing.length === 0, failing, checks }
    } catch (error) {
      return {
        ready: false,
        failing: ca.ok ? ['database', 'secret_keys'] : ['database', 'device_ca', 'secret_keys'],
        checks: { database: `unavailable: ${(error as Error).message}`, migrations, device_ca: ca.text, secret_keys: notChecked },
      }
    }
  }
}

const secrets = (count: number) => `${count} sealed secret${count === 1 ? '' : 's'}`

function describeExpiring(expiring: Array<{ topic: string; notAfter: Date; daysLeft: number }>): string {
  if (expiring.length === 0) return 'ok'
  return expiring
    .map((c) => (c.daysLeft < 0 ? `${c.topic} expired on ${c.notAfter.toISOString().slice(0, 10)}` : `${c.topic} expires in ${c.daysLeft} days`))
    .join('; ')
}

/** `on`, or `off: …`: every check-in and fleet-wide action leaves dead rows that only (auto)vacuum reclaims. */
export function describeAutovacuum(state: AutovacuumState): string {
  const off = [
    ...(state.server ? [] : ['autovacuum (or track_counts) is off on the server']),
    ...(state.tablesOff.length > 0 ? [`autovacuum_enabled=false on ${state.tablesOff.join(', ')}`] : []),
  ]
  return off.length === 0 ? 'on' : `off: ${off.join('; ')}. Dead rows from check-ins and commands will bloat the database`
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
