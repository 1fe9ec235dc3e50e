import { randomBytes } from 'node:crypto'
import { chmodSync, linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { parseMasterKey } from '../crypto/secret-box.js'
import { makePrivateDirectory, privateFileMode } from './private-files.js'

/**
 * Where the master key comes from when ORCHARD_SECRET_KEYS is unset: ORCHARD_SECRET_KEY_FILE,
 * or with the embedded database `<data-dir>/secret.key` (so the quick start can seal the device
 * CA and push certificate keys). PostgreSQL without either has no key: a key file per instance
 * would not open the others' secrets, so a file there must be one shared by every instance.
 */
export function secretKeyFileOf(config: Config): string | null {
  if (config.secretKeys.length > 0) return null
  if (config.secretKeyFile !== null) return config.secretKeyFile
  return config.databaseUrl === null ? join(config.dataDir, 'secret.key') : null
}

/** The config with the key file's master key, the file created first with a new random key if missing. */
export function withSecretKeyFile(config: Config, logger: Logger): Config {
  const file = secretKeyFileOf(config)
  if (file === null) return config
  if (createKeyFile(file)) logger.info({ file }, 'created the master key file (set ORCHARD_SECRET_KEYS to manage keys yourself)')
  chmodSync(file, privateFileMode)
  return Object.freeze({ ...config, secretKeys: Object.freeze([parseMasterKey(readFileSync(file, 'utf8').trim())]) })
}

/**
 * Creates the key file unless it exists; true when this call created it. Written whole under a
 * temporary name, then linked into place: link() fails when the name exists, so instances
 * starting together on a shared volume all end up reading the one key, never a half-written file.
 */
export function createKeyFile(file: string): boolean {
  const directory = dirname(file)
  makePrivateDirectory(directory)
  const partial = join(directory, `.secret-key-${process.pid}-${randomBytes(6).toString('hex')}`)
  writeFileSync(partial, `${randomBytes(32).toString('hex')}\n`, { mode: privateFileMode, flag: 'wx' })
  try {
    linkSync(partial, file)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  } finally {
    rmSync(partial, { force: true })
  }
}
