// `npm run migrate`: apply pending migrations and exit (the server also does this at start).
import { ConfigError, HelpRequested, loadConfig } from './config.js'
import { createLogger } from './logger.js'
import { openDatabase } from './db/database.js'
import { migrateToLatest } from './db/migrations.js'

try {
  const config = loadConfig(process.env, process.argv.slice(2))
  const logger = createLogger({ level: config.logLevel, pretty: process.stdout.isTTY === true })
  const database = await openDatabase(config, logger)
  try {
    const applied = await migrateToLatest(database.db)
    logger.info({ migrations: applied }, applied.length > 0 ? `applied ${applied.length} migration(s)` : 'database already current')
  } finally {
    await database.close()
  }
} catch (error) {
  if (error instanceof HelpRequested) {
    process.stdout.write(`${error.message}\n`)
  } else {
    const prefix = error instanceof ConfigError ? 'invalid configuration: ' : ''
    process.stderr.write(`orchard migrate: ${prefix}${(error as Error).message}\n`)
    process.exitCode = error instanceof ConfigError ? 2 : 1
  }
}
