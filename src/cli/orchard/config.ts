// Where the CLI finds its server and token: ORCHARD_URL and ORCHARD_TOKEN, or a named profile
// of the config file ($XDG_CONFIG_HOME/orchard/config.json, else ~/.config/orchard/config.json;
// ORCHARD_CONFIG names another file). The file holds tokens: it is written with mode 0600 in a
// directory of mode 0700.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { CliError, exitCodes } from './errors.js'

export interface Profile {
  url: string
  token?: string
}

export interface ConfigFile {
  current_profile?: string
  profiles: Record<string, Profile>
}

export type Env = Readonly<Record<string, string | undefined>>

export interface Connection {
  url: string
  token: string | undefined
  /** Where they came from, for messages. */
  source: string
}

export function configPath(env: Env): string {
  if (env['ORCHARD_CONFIG']) return env['ORCHARD_CONFIG']
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config')
  return join(base, 'orchard', 'config.json')
}

export function readConfig(path: string): ConfigFile {
  if (!existsSync(path)) return { profiles: {} }
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (error) {
    throw new CliError(`${path}: not JSON (${(error as Error).message})`, exitCodes.usage)
  }
  const file = parsed as Partial<ConfigFile> | null
  if (!file || typeof file !== 'object' || (file.profiles !== undefined && (typeof file.profiles !== 'object' || file.profiles === null)))
    throw new CliError(`${path}: expected {"profiles": {"NAME": {"url": ..., "token": ...}}}`, exitCodes.usage)
  return { ...(file.current_profile ? { current_profile: file.current_profile } : {}), profiles: file.profiles ?? {} }
}

/** Whether others may read the file (a warning, not an error: the owner decides). */
export function looseMode(path: string): boolean {
  try {
    return process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0
  } catch {
    return false
  }
}

export function writeConfig(path: string, config: ConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
  chmodSync(temporary, 0o600)
  renameSync(temporary, path)
}

export function validateUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new CliError(`${JSON.stringify(text)} is not a URL (e.g. https://mdm.example.com)`, exitCodes.usage)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new CliError(`${text}: the URL must be http or https`, exitCodes.usage)
  return text.replace(/\/+$/, '')
}

/**
 * `--profile NAME` (or ORCHARD_PROFILE) picks a profile of the file; otherwise ORCHARD_URL and
 * ORCHARD_TOKEN win over the file's current profile (each on its own); `--url` overrides the URL.
 */
export function resolveConnection(env: Env, options: { profile?: string | undefined; url?: string | undefined }): Connection {
  const path = configPath(env)
  const named = options.profile ?? env['ORCHARD_PROFILE']
  if (named !== undefined) {
    const profile = readConfig(path).profiles[named]
    if (!profile)
      throw new CliError(`no profile ${JSON.stringify(named)} in ${path} (orchard config set-profile ${named} --url URL --token TOKEN)`, exitCodes.usage)
    return { url: validateUrl(options.url ?? profile.url), token: profile.token, source: `profile ${named}` }
  }
  const file = readConfig(path)
  const current = file.current_profile !== undefined ? file.profiles[file.current_profile] : file.profiles['default']
  const url = options.url ?? env['ORCHARD_URL'] ?? current?.url
  if (url === undefined || url === '')
    throw new CliError(
      'no server: set ORCHARD_URL and ORCHARD_TOKEN, or add a profile (orchard config set-profile NAME --url URL --token TOKEN)',
      exitCodes.usage,
    )
  const token = env['ORCHARD_TOKEN'] || current?.token
  const source = env['ORCHARD_URL'] || env['ORCHARD_TOKEN'] ? 'the environment' : `profile ${file.current_profile ?? 'default'}`
  return { url: validateUrl(url), token, source }
}
