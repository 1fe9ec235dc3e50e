// orchard config set-profile|use|ls|show|rm: named profiles (a server URL and its token) in
// the config file (config.ts), mode 0600.
import { booleanFlag, positionals, requiredFlag, stringFlag, UsageError } from './args.js'
import type { CommandGroup } from './command.js'
import { configPath, looseMode, readConfig, validateUrl, writeConfig } from './config.js'
import { CliError, exitCodes } from './errors.js'
import { table } from './output.js'

const masked = (token: string | undefined) => (token ? `${token.slice(0, 12)}...` : '-')

export const configGroup: CommandGroup = {
  summary: 'Profiles: server URLs and tokens, in the config file',
  default: 'ls',
  commands: {
    'set-profile': {
      summary: 'Add or change a profile (--use: make it the current one)',
      usage: 'NAME --url URL [--token TOKEN | --token-stdin] [--use]',
      flags: { token: 'string', 'token-stdin': 'boolean', use: 'boolean' },
      async run(ctx, args) {
        const [name] = positionals(args, ['NAME'])
        // --url is a global flag (it overrides a profile's URL elsewhere); here it sets it.
        const url = validateUrl(requiredFlag(args, 'url'))
        if (stringFlag(args, 'token') !== undefined && booleanFlag(args, 'token-stdin')) throw new UsageError('give --token or --token-stdin, not both')
        const token = booleanFlag(args, 'token-stdin') ? (await ctx.readLine('')).trim() : stringFlag(args, 'token')
        const path = configPath(ctx.env)
        const config = readConfig(path)
        const previous = config.profiles[name!]
        config.profiles[name!] = { url, ...((token ?? previous?.token) ? { token: token ?? previous!.token! } : {}) }
        if (booleanFlag(args, 'use') || config.current_profile === undefined) config.current_profile = name!
        writeConfig(path, config)
        ctx.err(`profile ${name} saved in ${path}${config.current_profile === name ? ' (current)' : ''}`)
      },
    },
    use: {
      summary: 'Make a profile the current one',
      usage: 'NAME',
      async run(ctx, args) {
        const [name] = positionals(args, ['NAME'])
        const path = configPath(ctx.env)
        const config = readConfig(path)
        if (!config.profiles[name!]) throw new CliError(`no profile ${JSON.stringify(name)} in ${path}`, exitCodes.notFound)
        config.current_profile = name!
        writeConfig(path, config)
        ctx.err(`current profile: ${name}`)
      },
    },
    ls: {
      summary: 'List profiles (tokens masked)',
      async run(ctx, args) {
        positionals(args, [])
        const path = configPath(ctx.env)
        const config = readConfig(path)
        if (looseMode(path)) ctx.err(`warning: ${path} is readable by others; chmod 600 it`)
        const rows = Object.entries(config.profiles).map(([name, profile]) => [
          name === config.current_profile ? `* ${name}` : `  ${name}`,
          profile.url,
          masked(profile.token),
        ])
        ctx.print(
          {
            path,
            current_profile: config.current_profile ?? null,
            profiles: Object.fromEntries(Object.entries(config.profiles).map(([name, p]) => [name, { url: p.url, token: masked(p.token) }])),
          },
          () => table(['PROFILE', 'URL', 'TOKEN'], rows, `no profiles in ${path}`),
        )
      },
    },
    show: {
      summary: 'Where the CLI would connect now, and from what',
      async run(ctx, args) {
        positionals(args, [])
        const connection = ctx.connection()
        ctx.print({ url: connection.url, token: masked(connection.token), source: connection.source, config_file: configPath(ctx.env) }, () =>
          [`url:    ${connection.url}`, `token:  ${masked(connection.token)}`, `from:   ${connection.source}`, `config: ${configPath(ctx.env)}`].join('\n'),
        )
      },
    },
    rm: {
      summary: 'Remove a profile',
      usage: 'NAME',
      async run(ctx, args) {
        const [name] = positionals(args, ['NAME'])
        const path = configPath(ctx.env)
        const config = readConfig(path)
        if (!config.profiles[name!]) throw new CliError(`no profile ${JSON.stringify(name)} in ${path}`, exitCodes.notFound)
        delete config.profiles[name!]
        if (config.current_profile === name) delete config.current_profile
        writeConfig(path, config)
        ctx.err(`removed profile ${name}`)
      },
    },
  },
}
