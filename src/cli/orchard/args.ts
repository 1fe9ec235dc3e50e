// Argument parsing for the orchard CLI: `--flag value`, `--flag=value`, boolean `--flag`,
// repeatable list flags, `--` ending options. Each command declares its flags; the global
// ones (globalFlags) are accepted everywhere.
import { CliError, exitCodes } from './errors.js'

export type FlagKind = 'string' | 'boolean' | 'list'
export type FlagSpec = Readonly<Record<string, FlagKind>>

export interface ParsedArgs {
  positionals: string[]
  flags: Map<string, string | true | string[]>
}

/** Flags every command takes. */
export const globalFlags: FlagSpec = {
  profile: 'string',
  url: 'string',
  json: 'boolean',
  yes: 'boolean',
  'no-wait': 'boolean',
  help: 'boolean',
}

const shortFlags: Record<string, string> = { '-h': 'help', '-y': 'yes' }

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, exitCodes.usage)
  }
}

export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const all: FlagSpec = { ...globalFlags, ...spec }
  const flags = new Map<string, string | true | string[]>()
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (arg in shortFlags) {
      flags.set(shortFlags[arg]!, true)
      continue
    }
    if (!arg.startsWith('--') || arg === '-') {
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    const kind = all[name]
    if (kind === undefined) throw new UsageError(`unknown option --${name}`)
    if (kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`)
      flags.set(name, true)
      continue
    }
    let value: string
    if (eq !== -1) value = arg.slice(eq + 1)
    else {
      const next = argv[i + 1]
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${name} needs a value`)
      value = next
      i++
    }
    if (kind === 'list') {
      const list = (flags.get(name) as string[] | undefined) ?? []
      list.push(...value.split(',').filter((item) => item !== ''))
      flags.set(name, list)
    } else {
      if (flags.has(name)) throw new UsageError(`--${name} is given more than once`)
      flags.set(name, value)
    }
  }
  return { positionals, flags }
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags.get(name)
  return typeof value === 'string' ? value : undefined
}

export function requiredFlag(args: ParsedArgs, name: string): string {
  const value = stringFlag(args, name)
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`)
  return value
}

export function booleanFlag(args: ParsedArgs, name: string): boolean {
  return args.flags.get(name) === true
}

export function listFlag(args: ParsedArgs, name: string): string[] {
  const value = args.flags.get(name)
  return Array.isArray(value) ? value : []
}

export function integerFlag(args: ParsedArgs, name: string, range: { min: number; max: number }): number | undefined {
  const text = stringFlag(args, name)
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^-?\d+$/.test(text) || value < range.min || value > range.max)
    throw new UsageError(`--${name} must be a whole number from ${range.min} to ${range.max}`)
  return value
}

/** `--flag true|false`: a tri-state filter. */
export function triStateFlag(args: ParsedArgs, name: string): boolean | undefined {
  const text = stringFlag(args, name)
  if (text === undefined) return undefined
  if (text === 'true' || text === 'yes') return true
  if (text === 'false' || text === 'no') return false
  throw new UsageError(`--${name} must be true or false`)
}

/** Exactly `count` positionals, named in the message. */
export function positionals(args: ParsedArgs, names: readonly string[], options: { rest?: boolean } = {}): string[] {
  if (args.positionals.length < names.length) throw new UsageError(`missing ${names.slice(args.positionals.length).join(' ')}`)
  if (!options.rest && args.positionals.length > names.length) throw new UsageError(`unexpected argument ${args.positionals[names.length]}`)
  return args.positionals
}
