// Readiness: the database answers and has every migration this code knows.
import type { MigrationStatus } from '../db/migrations.js'

export interface ReadinessReport {
  ready: boolean
  checks: {
    database: string
    migrations: string
    /** Informational: an expiring certificate does not make the server unready. */
    push_certificates?: string
  }
}

export interface ReadinessDeps {
  ping(): Promise<void>
  migrationStatus(): Promise<MigrationStatus>
  /** Push certificates expiring within 30 days (or expired). */
  expiringPushCertificates?(): Promise<Array<{ topic: string; notAfter: Date; daysLeft: number }>>
  /** A check that takes longer counts as failed (a hung database is not ready). */
  timeoutMs: number
}

export function createReadinessCheck(deps: ReadinessDeps): () => Promise<ReadinessReport> {
  return async function checkReadiness() {
    try {
      const status = await withTimeout(
        (async () => {
          await deps.ping()
          return deps.migrationStatus()
        })(),
        deps.timeoutMs,
      )
      const current = status.pending.length === 0
      const checks: ReadinessReport['checks'] = {
        database: 'ok',
        migrations: current ? `current (${status.applied.length} applied)` : `pending: ${status.pending.join(', ')}`,
      }
      if (current && deps.expiringPushCertificates) {
        const expiring = await deps.expiringPushCertificates()
        checks.push_certificates =
          expiring.length === 0
            ? 'ok'
            : expiring
                .map((c) => (c.daysLeft < 0 ? `${c.topic} expired on ${c.notAfter.toISOString().slice(0, 10)}` : `${c.topic} expires in ${c.daysLeft} days`))
                .join('; ')
      }
      return { ready: current, checks }
    } catch (error) {
      return { ready: false, checks: { database: `unavailable: ${(error as Error).message}`, migrations: 'unknown' } }
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
