import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { buildApp } from '../../src/app.js'
import { createMetrics, registerDatabaseMetrics, type Metrics } from '../../src/metrics.js'
import { createReadinessCheck } from '../../src/services/readiness.js'
import type { DatabaseHandle } from '../../src/storage/database.js'
import { migrationStatus } from '../../src/storage/migrations.js'

/** Tests log nothing unless ORCHARD_TEST_LOG_LEVEL asks for it. */
export function testLogger(): Logger {
  return pino({ level: process.env['ORCHARD_TEST_LOG_LEVEL'] ?? 'silent' })
}

export interface TestApp {
  app: FastifyInstance
  metrics: Metrics
}

/** The real app, wired as main.ts wires it, over the given test database. */
export async function buildTestApp(t: { teardown(fn: () => unknown): void }, database: DatabaseHandle): Promise<TestApp> {
  const metrics = createMetrics()
  registerDatabaseMetrics(metrics, database.kind, database.poolStats)
  const checkReadiness = createReadinessCheck({
    ping: database.ping,
    migrationStatus: () => migrationStatus(database.db),
    timeoutMs: 5_000,
  })
  const app = await buildApp({ logger: testLogger(), metrics, checkReadiness })
  t.teardown(() => app.close())
  return { app, metrics }
}
