// The process around the app: open the database, migrate, build the app (the composition root
// is passed in), listen; and the command line: configuration errors, --help, signals.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { ConfigError, describeConfig, HelpRequested, loadConfig, type Config } from '../config.js'
import { openDatabase, type DatabaseHandle } from '../db/database.js'
import { withSecretKeyFile } from '../db/secret-key-file.js'
import { migrateToLatest } from '../db/migrations.js'
import { createLogger } from '../logger.js'
import { version } from '../version.js'
import { createGracefulShutdown } from './shutdown.js'

export interface RunningServer {
  app: FastifyInstance
  database: DatabaseHandle
  /** Where the server listens, e.g. http://127.0.0.1:8080. */
  address: string
  /** Stops accepting, waits for in-flight requests, then closes the database. */
  close(): Promise<void>
}

/** What the composition root gives the process: the app, and work to do once before listening. */
export type BuildApp = (config: Config, database: DatabaseHandle, logger: Logger) => Promise<{ app: FastifyInstance; beforeListen(): Promise<void> }>

export async function startServer(givenConfig: Config, logger: Logger, build: BuildApp): Promise<RunningServer> {
  const config = withSecretKeyFile(givenConfig, logger)
  const database = await openDatabase(config, logger)
  try {
    const applied = await migrateToLatest(database.db)
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated')
    const { app, beforeListen } = await build(config, database, logger)
    await beforeListen()
    const address = await app.listen({ host: config.host, port: config.port })
    return {
      app,
      database,
      address,
      async close() {
        await app.close()
        await database.close()
      },
    }
  } catch (error) {
    await database.close()
    throw error
  }
}

/** `npm start`: configuration from the environment and flags, then the server until a signal. */
export async function runServerProcess(start: (config: Config, logger: Logger) => Promise<RunningServer>): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env, process.argv.slice(2))
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${error.message}\n`)
      process.exit(0)
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`orchard: invalid configuration: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }

  const logger = createLogger({ level: config.logLevel, pretty: process.stdout.isTTY === true })
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection')
    process.exit(1)
  })

  let server: RunningServer
  try {
    logger.info({ version, config: describeConfig(config) }, 'starting Orchard')
    server = await start(config, logger)
  } catch (error) {
    logger.fatal({ err: error }, `cannot start: ${(error as Error).message}`)
    process.exit(1)
  }
  logger.info({ address: server.address, public_url: config.publicUrl }, `Orchard listening on ${server.address}`)

  const shutdown = createGracefulShutdown({
    logger,
    timeoutMs: config.shutdownTimeoutMs,
    close: server.close,
    exit: (code) => process.exit(code),
  })
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}
