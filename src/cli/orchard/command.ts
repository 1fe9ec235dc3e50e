// How a command is declared: the dispatcher (src/cli/orchard.ts), the help text and the shell
// completion (completion.ts) all read these declarations.
import type { FlagSpec, ParsedArgs } from './args.js'
import type { Context } from './context.js'

export interface CommandDef {
  summary: string
  /** The arguments and options after the command's name, for the usage line. */
  usage?: string
  flags?: FlagSpec
  /** Returns the exit code (0 when nothing is returned). */
  run(ctx: Context, args: ParsedArgs): Promise<number | void>
}

export interface CommandGroup {
  summary: string
  commands: Record<string, CommandDef>
  /** The command `orchard <group>` alone runs (e.g. `orchard tenants` lists them). */
  default?: string
}
