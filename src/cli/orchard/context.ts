// What a command runs with: its streams, environment, global flags, the API client (made on
// first use, so `config` and `completion` need no server) and the confirmation prompt.
import { createInterface } from 'node:readline'
import { booleanFlag, stringFlag, type ParsedArgs } from './args.js'
import { adminClient, type AdminClient, type Transport } from './client.js'
import { resolveConnection, type Connection, type Env } from './config.js'
import { CliError, exitCodes } from './errors.js'

export interface CliOutput {
  write(text: string): unknown
}

export interface CliIo {
  stdout: CliOutput
  stderr: CliOutput
  /** Answers to prompts, --token-stdin. */
  stdin?: NodeJS.ReadableStream
  /** A person at a terminal: prompts may be asked and progress is a bar. */
  isTTY: boolean
}

export interface CliOptions {
  env: Env
  io: CliIo
  /** Replaces globalThis.fetch (tests). */
  fetch?: Transport
  /** Between two polls of a job (default 1000 ms). */
  pollIntervalMs?: number
  /** Waits between polls (tests pass one that does not sleep). */
  sleep?: (ms: number) => Promise<void>
}

export class Context {
  readonly json: boolean
  readonly yes: boolean
  readonly noWait: boolean
  readonly pollIntervalMs: number
  readonly sleep: (ms: number) => Promise<void>
  private client: AdminClient | undefined
  private connectionCache: Connection | undefined

  constructor(
    readonly options: CliOptions,
    private readonly globals: ParsedArgs,
  ) {
    this.json = booleanFlag(globals, 'json')
    this.yes = booleanFlag(globals, 'yes')
    this.noWait = booleanFlag(globals, 'no-wait')
    this.pollIntervalMs = options.pollIntervalMs ?? 1000
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)))
  }

  get env(): Env {
    return this.options.env
  }

  get io(): CliIo {
    return this.options.io
  }

  out(text: string): void {
    this.io.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`)
  }

  err(text: string): void {
    this.io.stderr.write(text.endsWith('\n') ? text : `${text}\n`)
  }

  /** JSON for --json, else what `human` renders. */
  print(data: unknown, human: () => string): void {
    this.out(this.json ? JSON.stringify(data, null, 2) : human())
  }

  connection(): Connection {
    this.connectionCache ??= resolveConnection(this.env, { profile: stringFlag(this.globals, 'profile'), url: stringFlag(this.globals, 'url') })
    return this.connectionCache
  }

  get api(): AdminClient {
    this.client ??= adminClient(this.connection(), this.options.fetch)
    return this.client
  }

  /** One line from stdin ('' at its end). */
  async readLine(prompt: string): Promise<string> {
    const input = this.io.stdin
    if (!input) return ''
    const lines = createInterface({ input, terminal: false })
    this.io.stderr.write(prompt)
    try {
      return await new Promise<string>((resolve) => {
        lines.once('line', resolve)
        lines.once('close', () => resolve(''))
      })
    } finally {
      lines.close()
    }
  }

  /**
   * Asks before something destructive. `--yes` answers for the person; without a terminal and
   * without --yes nothing is done (exit 5), so that a script never hangs on a prompt.
   */
  async confirm(question: string): Promise<void> {
    if (this.yes) return
    if (!this.io.isTTY) throw new CliError(`${question}\nrefused: not a terminal, so nothing was asked; run again with --yes to confirm`, exitCodes.conflict)
    const answer = (await this.readLine(`${question} [y/N] `)).trim().toLowerCase()
    if (answer !== 'y' && answer !== 'yes') throw new CliError('not confirmed: nothing was done', exitCodes.conflict)
  }
}
