import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { loadConfig } from '../../src/config.js'
import { createOrchard, type Orchard } from '../../src/main.js'
import type { Metrics } from '../../src/ops/metrics.js'
import type { DatabaseHandle } from '../../src/db/database.js'
import { registerJobRunner } from './jobs.js'

/** Tests log nothing unless ORCHARD_TEST_LOG_LEVEL asks for it. */
export function testLogger(): Logger {
  return pino({ level: process.env['ORCHARD_TEST_LOG_LEVEL'] ?? 'silent' })
}

export interface TestApp {
  app: FastifyInstance
  metrics: Metrics
  orchard: Orchard
}

/**
 * The real app, wired by main.ts's createOrchard, over the given test database.
 * `env` holds configuration variables (e.g. ORCHARD_DEVICE_CA_FILES), as in production;
 * `options.logger` replaces the silent test logger (to look at what the app logs).
 */
export async function buildTestApp(
  t: { teardown(fn: () => unknown): void },
  database: DatabaseHandle,
  env: Record<string, string> = {},
  options: { logger?: Logger } = {},
): Promise<TestApp> {
  // The admin API's responses are checked against openapi.yaml: a mismatch fails the test.
  // Tests never reach Apple's software lookup service (test/helpers/fake-os-catalogue.ts does).
  // Inventory at enrollment is off unless a test turns it on (test/fleet/inventory-at-enrollment.test.ts):
  // most tests read a device's queue right after enrolling and would all have to skip it.
  const config = loadConfig(
    { ORCHARD_API_RESPONSE_VALIDATION: 'strict', ORCHARD_OS_CATALOGUE_URL: 'off', ORCHARD_INVENTORY_AT_ENROLLMENT: 'false', ...env },
    [],
  )
  const orchard = await createOrchard(config, database, options.logger ?? testLogger())
  t.teardown(() => orchard.app.close())
  registerJobRunner(orchard.app, orchard.jobs.runner)
  return { app: orchard.app, metrics: orchard.metrics, orchard }
}
