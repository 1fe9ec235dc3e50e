// Graceful shutdown on SIGTERM/SIGINT: stop accepting, let in-flight requests finish,
// close the database, exit 0 — or exit 1 when that takes longer than the timeout.
import type { Logger } from 'pino'

export interface ShutdownDeps {
  logger: Logger
  timeoutMs: number
  /** Closes the server and then the database; resolves when both are done. */
  close(): Promise<void>
  exit(code: number): void
}

export function createGracefulShutdown(deps: ShutdownDeps): (reason: string) => Promise<void> {
  let timer: NodeJS.Timeout | undefined
  return async function shutdown(reason: string) {
    if (timer) {
      clearTimeout(timer)
      deps.logger.warn({ reason }, 'second shutdown request: exiting now')
      deps.exit(1)
      return
    }
    deps.logger.info({ reason, timeout_ms: deps.timeoutMs }, 'shutting down')
    timer = setTimeout(() => {
      deps.logger.error({ timeout_ms: deps.timeoutMs }, 'shutdown timed out: exiting with requests still in flight')
      deps.exit(1)
    }, deps.timeoutMs)
    try {
      await deps.close()
      clearTimeout(timer)
      deps.logger.info('shutdown complete')
      deps.exit(0)
    } catch (error) {
      clearTimeout(timer)
      deps.logger.error({ err: error }, 'shutdown failed')
      deps.exit(1)
    }
  }
}
