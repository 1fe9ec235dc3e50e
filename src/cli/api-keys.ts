// `node dist/src/cli/api-keys.js create|list|revoke`: manage admin API keys from a shell,
// against the database the server uses (DATABASE_URL, or the embedded one in
// ORCHARD_DATA_DIR). Configuration comes from the environment only; the arguments are
// this command's own. Exit codes: 0 done, 1 failed, 2 usage or configuration error.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { pino } from 'pino'
import { ConfigError, loadConfig } from '../config.js'
import { OrchardError } from '../errors.js'
import { createApiKeyService, type ApiKeyService, type ApiKeyView } from '../access/api-key-service.js'
import { createApiKeyStore } from '../access/api-key-store.js'
import { openDatabase, type DatabaseHandle } from '../db/database.js'
import { migrateToLatest } from '../db/migrations.js'
import { fullAccess, type Role } from '../model/access.js'

export interface CliOutput {
  write(text: string): unknown
}

export interface CliStreams {
  stdout: CliOutput
  stderr: CliOutput
}

export const apiKeysUsage = `Usage: orchard-api-keys <command> [options]

Commands:
  create --name NAME --role ROLE [--tenant TENANT] [--expires-at TIME]
        Creates a key and prints it once, on stdout; only its SHA-256 is stored.
        ROLE: owner (central IT only), admin, helpdesk or auditor.
        TENANT: the tenant the key belongs to (default: central IT).
        TIME: ISO 8601, e.g. 2027-01-31 or 2027-01-31T12:00:00Z.
  list [--active]
        Lists keys (--active: without revoked ones).
  revoke ID
        Revokes a key. Running servers stop accepting it within 30 seconds.

The database is the server's: DATABASE_URL, or the embedded one in ORCHARD_DATA_DIR
(default ./data). Pending migrations are applied first.`

const defaultCacheTtlSeconds = 30

class UsageError extends Error {
  override readonly name = 'UsageError'
}

type Command =
  | { kind: 'create'; name: string; role: string; tenantId: string | null; expiresAt: Date | null }
  | { kind: 'list'; includeRevoked: boolean }
  | { kind: 'revoke'; id: string }
  | { kind: 'help' }

/** Flags each command takes: true when the flag takes a value. */
const commandFlags: Record<string, Record<string, boolean>> = {
  create: { '--name': true, '--role': true, '--tenant': true, '--expires-at': true },
  list: { '--active': false },
  revoke: {},
}

function parseArguments(argv: readonly string[]): Command {
  if (argv.some((arg) => arg === '--help' || arg === '-h')) return { kind: 'help' }
  const [command, ...rest] = argv
  if (command === undefined) throw new UsageError('a command is required: create, list or revoke')
  const allowed = commandFlags[command]
  if (!allowed) throw new UsageError(`${command}: unknown command (create, list or revoke)`)

  const flags = new Map<string, string>()
  const positionals: string[] = []
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (!arg.startsWith('--')) {
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const flag = eq === -1 ? arg : arg.slice(0, eq)
    const takesValue = allowed[flag]
    if (takesValue === undefined) throw new UsageError(`${command}: unknown option ${flag}`)
    let value = ''
    if (takesValue) {
      if (eq !== -1) {
        value = arg.slice(eq + 1)
      } else {
        const next = rest[i + 1]
        if (next === undefined || next.startsWith('--')) throw new UsageError(`${flag} needs a value`)
        value = next
        i++
      }
    } else if (eq !== -1) {
      throw new UsageError(`${flag} takes no value`)
    }
    if (flags.has(flag)) throw new UsageError(`${flag} is given more than once`)
    flags.set(flag, value)
  }

  if (command === 'revoke') {
    if (positionals.length !== 1) throw new UsageError('revoke needs exactly one key ID')
    return { kind: 'revoke', id: positionals[0]! }
  }
  if (positionals.length > 0) throw new UsageError(`${command}: unexpected argument ${positionals[0]}`)
  if (command === 'list') return { kind: 'list', includeRevoked: !flags.has('--active') }

  const name = flags.get('--name')
  const role = flags.get('--role')
  if (name === undefined) throw new UsageError('create needs --name')
  if (role === undefined) throw new UsageError('create needs --role (owner, admin, helpdesk or auditor)')
  let expiresAt: Date | null = null
  const expiresText = flags.get('--expires-at')
  if (expiresText !== undefined) {
    expiresAt = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(expiresText) ? new Date(expiresText) : null
    if (!expiresAt || Number.isNaN(expiresAt.getTime())) throw new UsageError(`--expires-at: ${JSON.stringify(expiresText)} is not an ISO 8601 date or time`)
  }
  return { kind: 'create', name, role: role.trim(), tenantId: flags.get('--tenant')?.trim() ?? null, expiresAt }
}

const flagForPointer = (pointer: string) =>
  pointer === '/role' ? '--role' : pointer === '/tenant_id' ? '--tenant' : pointer === '/expires_at' ? '--expires-at' : pointer === '/name' ? '--name' : pointer

const time = (date: Date | null) => (date ? date.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-')

function formatTable(keys: readonly ApiKeyView[], now: Date): string {
  const header = ['ID', 'NAME', 'ROLE', 'TENANT', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED']
  const rows = keys.map((k) => [
    k.id,
    k.name,
    k.role,
    k.tenantId ?? '(central)',
    time(k.createdAt),
    time(k.lastUsedAt),
    k.expiresAt && k.expiresAt.getTime() <= now.getTime() ? `${time(k.expiresAt)} (expired)` : time(k.expiresAt),
    time(k.revokedAt),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  return [header, ...rows].map((cells) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')
}

/** The process holding `<dataDir>/pglite.lock`, when it is not this one. */
function embeddedDatabaseHolder(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'pglite.lock'), 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 && pid !== process.pid ? pid : undefined
  } catch {
    return undefined
  }
}

async function runCommand(command: Exclude<Command, { kind: 'help' }>, service: ApiKeyService, io: CliStreams): Promise<number> {
  switch (command.kind) {
    case 'create': {
      // The CLI runs with the database's own authority: central IT.
      const { key, view } = await service.createKey(fullAccess, {
        name: command.name,
        role: command.role as Role,
        tenantId: command.tenantId,
        expiresAt: command.expiresAt,
      })
      io.stdout.write(`${key}\n`)
      io.stderr.write(
        `API key ${view.id} "${view.name}" (${view.role}${view.tenantId ? ` in ${view.tenantId}` : ''}${view.expiresAt ? `, expires ${time(view.expiresAt)}` : ''}) created. ` +
          'Store it now: it is not shown again. Use it as: Authorization: Bearer <key>\n',
      )
      return 0
    }
    case 'list': {
      const keys = await service.listKeys(fullAccess, { includeRevoked: command.includeRevoked })
      io.stdout.write(keys.length === 0 ? 'no API keys\n' : `${formatTable(keys, new Date())}\n`)
      return 0
    }
    case 'revoke': {
      const result = await service.revokeKey(fullAccess, command.id)
      if (result === 'not_found') {
        io.stderr.write(`orchard-api-keys: no API key with ID ${JSON.stringify(command.id)}\n`)
        return 1
      }
      io.stdout.write(result === 'revoked' ? `revoked ${command.id}\n` : `${command.id} was already revoked\n`)
      if (result === 'revoked') io.stderr.write(`Running servers stop accepting it within ${defaultCacheTtlSeconds} seconds.\n`)
      return 0
    }
  }
}

/** Runs the command in `argv` (without node and the script); returns the exit code. */
export async function runApiKeysCli(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: CliStreams): Promise<number> {
  const fail = (message: string, code: number) => {
    io.stderr.write(`orchard-api-keys: ${message}\n`)
    return code
  }

  let command: Command
  try {
    command = parseArguments(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    return fail(`${error.message}\n\n${apiKeysUsage}`, 2)
  }
  if (command.kind === 'help') {
    io.stdout.write(`${apiKeysUsage}\n`)
    return 0
  }

  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(env, [])
  } catch (error) {
    if (error instanceof ConfigError) return fail(`invalid configuration: ${error.message}`, 2)
    throw error
  }
  // Quiet unless asked: stdout carries the key, and "database opened" is noise here.
  const logger = pino({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, base: { service: 'orchard-api-keys' } }, io.stderr)

  let database: DatabaseHandle
  try {
    database = await openDatabase(config, logger)
  } catch (error) {
    const holder = config.databaseUrl === null ? embeddedDatabaseHolder(config.dataDir) : undefined
    if (holder !== undefined) {
      return fail(
        `the running Orchard server (process ${holder}) holds the embedded database in ${config.dataDir}. ` +
          'Manage keys through the admin API instead (POST /api/v1/api-keys with an admin key), or stop the server and run this again.',
        1,
      )
    }
    return fail((error as Error).message, 1)
  }

  try {
    const applied = await migrateToLatest(database.db)
    if (applied.length > 0) io.stderr.write(`applied ${applied.length} pending migration(s): ${applied.join(', ')}\n`)
    const service = createApiKeyService({ store: createApiKeyStore(database.db), configKeys: config.apiKeys, logger })
    return await runCommand(command, service, io)
  } catch (error) {
    if (error instanceof OrchardError && error.code === 'validation_failed') {
      const errors = (error.details?.['errors'] ?? []) as Array<{ pointer: string; detail: string }>
      return fail(errors.map((e) => `${flagForPointer(e.pointer)} ${e.detail}`).join('; ') || error.message, 2)
    }
    return fail((error as Error).message, 1)
  } finally {
    await database.close()
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runApiKeysCli(process.argv.slice(2), process.env, { stdout: process.stdout, stderr: process.stderr })
}
