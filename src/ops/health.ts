// Liveness and readiness for load balancers and orchestrators.
import type { FastifyInstance } from 'fastify'
import type { ReadinessReport } from './readiness.js'

export interface HealthRoutesOptions {
  checkReadiness(): Promise<ReadinessReport>
}

export async function healthRoutes(app: FastifyInstance, options: HealthRoutesOptions): Promise<void> {
  // Liveness: the process runs its event loop. Never touches the database, so a database
  // outage does not get the process restarted.
  app.get('/healthz', { config: { accessLogLevel: 'debug' } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { config: { accessLogLevel: 'debug' } }, async (_request, reply) => {
    const report = await options.checkReadiness()
    reply.code(report.ready ? 200 : 503)
    return { status: report.ready ? 'ready' : 'not_ready', checks: report.checks }
  })
}
