#!/usr/bin/env node
// `orchard`: the operators' CLI for the admin API (README, "orchard CLI"). Run it as `orchard`
// (the package's bin, dist/src/cli/orchard.js), `npx orchard` in a clone after `npm run build`,
// or `npm run orchard -- ...` from source. runOrchardCli is the whole program with its world
// injected (argv, environment, streams, TTY, fetch, poll interval), so tests run it in-process.
import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { version } from '../version.js'
import { globalFlags, parseArgs, UsageError } from './orchard/args.js'
import { abmGroup, pushCertsGroup, vppGroup } from './orchard/certs.js'
import type { CommandDef, CommandGroup } from './orchard/command.js'
import { commandsGroup } from './orchard/commands.js'
import { bashCompletion, zshCompletion } from './orchard/completion.js'
import { configGroup } from './orchard/config-commands.js'
import { Context, type CliOptions } from './orchard/context.js'
import { devicesGroup } from './orchard/devices.js'
import { CliError, exitCodes } from './orchard/errors.js'
import { jobsGroup } from './orchard/jobs.js'
import { keysGroup, linksGroup, tenantsGroup } from './orchard/admin.js'
import { reportsGroup } from './orchard/reports.js'

export type { CliOptions } from './orchard/context.js'
export { exitCodes } from './orchard/errors.js'

/** The commands that talk to the admin API, by group. */
export const commandGroups: Readonly<Record<string, CommandGroup>> = {
  devices: devicesGroup,
  commands: commandsGroup,
  tenants: tenantsGroup,
  keys: keysGroup,
  links: linksGroup,
  'push-certs': pushCertsGroup,
  abm: abmGroup,
  vpp: vppGroup,
  reports: reportsGroup,
  jobs: jobsGroup,
  config: configGroup,
}

interface ExternalCommand {
  summary: string
  usage: string
  /** Takes its arguments as given (its own parser) and returns the exit code. */
  run(argv: readonly string[], options: CliOptions): Promise<number>
}

/** Commands with their own arguments and no admin API client. */
export const externalCommands: Record<string, ExternalCommand> = {
  simulate: {
    summary: 'Simulated iPads: enroll through a link and answer commands until stopped (try Orchard without a device)',
    usage: 'enroll --link URL --count N [...] | push-certificate  (see orchard simulate --help)',
    async run(argv, options) {
      // Loaded on demand: the simulator (SCEP, CMS) is for trying Orchard out.
      const { runSimulateCommand } = await import('../simulator/cli.js')
      const stop = new AbortController()
      const onSignal = () => stop.abort()
      process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
      try {
        return await runSimulateCommand([...argv], { stdout: options.io.stdout, stderr: options.io.stderr, env: options.env, signal: stop.signal })
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal)
      }
    },
  },
  'local-keys': {
    summary: 'API keys on the database directly (the first key, before the API can be called)',
    usage: 'create|list|revoke ...  (DATABASE_URL or ORCHARD_DATA_DIR; see orchard local-keys --help)',
    async run(argv, options) {
      // Loaded on demand: it opens the database, which no other command needs.
      const { runApiKeysCli } = await import('./api-keys.js')
      return runApiKeysCli(argv, options.env, options.io)
    },
  },
}

const leaves = ['completion', 'help', ...Object.keys(externalCommands)]

function mainUsage(): string {
  const width = Math.max(...[...Object.keys(commandGroups), ...Object.keys(externalCommands)].map((name) => name.length)) + 2
  const lines = [
    ...Object.entries(commandGroups).map(([name, group]) => `  ${name.padEnd(width)}${group.summary}`),
    ...Object.entries(externalCommands).map(([name, command]) => `  ${name.padEnd(width)}${command.summary}`),
    `  ${'completion'.padEnd(width)}Print a shell completion script: orchard completion bash|zsh`,
  ]
  return `Usage: orchard [--profile NAME] [--url URL] [--json] [--yes] [--no-wait] <command> [<subcommand>] [options]

Commands:
${lines.join('\n')}

Server and token: ORCHARD_URL and ORCHARD_TOKEN, or a profile of the config file
($XDG_CONFIG_HOME/orchard/config.json or ~/.config/orchard/config.json): see orchard config.
Output: tables, or JSON with --json. Destructive commands ask first (--yes skips the question).
Exit codes: 0 ok; 1 server error, unreachable, or a job failed; 2 usage or invalid input;
3 not found; 4 unauthenticated or forbidden; 5 conflict, or not confirmed.
orchard <command> --help lists a command's subcommands; orchard <command> <subcommand> --help its options.`
}

function groupUsage(name: string, group: CommandGroup): string {
  const width = Math.max(...Object.keys(group.commands).map((sub) => sub.length)) + 2
  const lines = Object.entries(group.commands).map(([sub, command]) => `  ${sub.padEnd(width)}${command.summary}`)
  return `Usage: orchard ${name} <subcommand> [options]${group.default ? `  (alone: ${group.default})` : ''}\n\n${group.summary}.\n\n${lines.join('\n')}`
}

function commandUsage(name: string, sub: string, command: CommandDef): string {
  return `Usage: orchard ${name} ${sub}${command.usage ? ` ${command.usage}` : ''}\n\n${command.summary}.\nGlobal options: --profile NAME, --url URL, --json, --yes, --no-wait.`
}

/** Moves global options given before the command (`orchard --json devices ls`) after it. */
function splitLeadingGlobals(argv: readonly string[]): { leading: string[]; rest: string[] } {
  const leading: string[] = []
  let i = 0
  while (i < argv.length && argv[i]!.startsWith('-') && argv[i] !== '--help' && argv[i] !== '-h' && argv[i] !== '--version') {
    const arg = argv[i]!
    leading.push(arg)
    const name = arg.replace(/^--?/, '').split('=')[0]!
    if (globalFlags[name] === 'string' && !arg.includes('=') && i + 1 < argv.length) leading.push(argv[++i]!)
    i++
  }
  return { leading, rest: argv.slice(i) }
}

async function dispatch(argv: readonly string[], options: CliOptions): Promise<number> {
  const say = (text: string) => options.io.stdout.write(`${text}\n`)
  const { leading, rest } = splitLeadingGlobals(argv)
  const [name, ...tail] = rest
  if (name === undefined) {
    options.io.stderr.write(`${mainUsage()}\n`)
    return exitCodes.usage
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    say(mainUsage())
    return exitCodes.ok
  }
  if (name === '--version') {
    say(version)
    return exitCodes.ok
  }
  const external = externalCommands[name]
  if (external) return external.run(tail, options)
  if (name === 'completion') {
    const args = parseArgs([...leading, ...tail], {})
    const [shell] = args.positionals
    const tree = { groups: commandGroups, leaves }
    if (shell === 'bash') options.io.stdout.write(bashCompletion(tree))
    else if (shell === 'zsh') options.io.stdout.write(zshCompletion(tree))
    else throw new UsageError('orchard completion bash|zsh')
    return exitCodes.ok
  }
  const group = commandGroups[name]
  if (!group) throw new UsageError(`unknown command ${JSON.stringify(name)} (orchard --help lists them)`)
  let [sub, ...commandArgs] = tail
  if (sub === 'help' || (sub === undefined && !group.default) || ((sub === '--help' || sub === '-h') && commandArgs.length === 0)) {
    say(groupUsage(name, group))
    return sub === undefined ? exitCodes.usage : exitCodes.ok
  }
  if (sub === undefined || sub.startsWith('-')) {
    commandArgs = sub === undefined ? [] : [sub, ...commandArgs]
    sub = group.default!
  }
  const command = group.commands[sub]
  if (!command) throw new UsageError(`unknown subcommand ${name} ${JSON.stringify(sub)} (${Object.keys(group.commands).join(', ')})`)
  const args = parseArgs([...leading, ...commandArgs], command.flags ?? {})
  if (args.flags.get('help') === true) {
    say(commandUsage(name, sub, command))
    return exitCodes.ok
  }
  try {
    return (await command.run(new Context(options, args), args)) ?? exitCodes.ok
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${name} ${sub}: ${error.message}\n${commandUsage(name, sub, command)}`)
    throw error
  }
}

/** Runs `orchard <argv>`; returns the exit code. Errors go to stderr as `orchard: message`. */
export async function runOrchardCli(argv: readonly string[], options: CliOptions): Promise<number> {
  try {
    return await dispatch(argv, options)
  } catch (error) {
    if (error instanceof CliError) {
      options.io.stderr.write(`orchard: ${error.message}\n`)
      return error.exitCode
    }
    options.io.stderr.write(`orchard: unexpected error: ${(error as Error).stack ?? String(error)}\n`)
    return exitCodes.error
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(exitCodes.ok)
  })
  process.exitCode = await runOrchardCli(process.argv.slice(2), {
    env: process.env,
    io: { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY) },
  })
}
