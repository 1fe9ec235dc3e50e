import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { parseMasterKey } from '../crypto/secret-box.js'
import { makePrivateDirectory, privateFileMode } from './private-files.js'

/**
 * The embedded database keeps its master key next to it (`<data-dir>/secret.key`, created
 * once, mode 0600) when ORCHARD_SECRET_KEYS is unset, so the quick start can seal the device
 * CA and push certificate keys. PostgreSQL deployments (several instances) must configure
 * ORCHARD_SECRET_KEYS: a key file per instance would not open the others' secrets.
 */
export function withEmbeddedSecretKey(config: Config, logger: Logger): Config {
  if (config.secretKeys.length > 0 || config.databaseUrl !== null) return config
  const file = join(config.dataDir, 'secret.key')
  if (!existsSync(file)) {
    makePrivateDirectory(config.dataDir)
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: privateFileMode, flag: 'wx' })
    logger.info({ file }, 'created the master key of the embedded database (set ORCHARD_SECRET_KEYS to manage keys yourself)')
  }
  chmodSync(file, privateFileMode)
  return Object.freeze({ ...config, secretKeys: Object.freeze([parseMasterKey(readFileSync(file, 'utf8').trim())]) })
}
