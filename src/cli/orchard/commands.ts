// orchard commands send|status|cancel|ls: MDM commands to one device or many. `send` always
// asks the server for a dry run first: the targets it would reach, and whether the command is
// destructive; a destructive one is confirmed (the dry run's count shown) and sent with the
// dry run's confirmation token. A send the server turns into a job is followed.
import { readFileSync } from 'node:fs'
import type { components } from '../generated/admin-api.js'
import { booleanFlag, integerFlag, listFlag, positionals, stringFlag, UsageError, type ParsedArgs } from './args.js'
import { send } from './client.js'
import type { CommandGroup } from './command.js'
import { describeEnqueued, deviceFilter, enqueuedExit, filterFlags, filterUsage, withoutUndefined, type EnqueueResult } from './device-common.js'
import { CliError, exitCodes } from './errors.js'
import { counts, keyValues, table } from './output.js'
import { finishJob } from './progress.js'

type DryRunResult = components['schemas']['DryRunResult']
type EnqueueRequest = components['schemas']['EnqueueRequest']
type TypedCommand = components['schemas']['TypedCommand']

/** `Key=value`: the value as JSON when it parses (true, 3, "x", {...}), else as text. */
function commandKeys(args: ParsedArgs): Record<string, unknown> {
  const keys: Record<string, unknown> = {}
  const body = stringFlag(args, 'body') ?? (stringFlag(args, 'body-file') !== undefined ? readFileSync(stringFlag(args, 'body-file')!, 'utf8') : undefined)
  if (body !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch (error) {
      throw new UsageError(`--body: not JSON (${(error as Error).message})`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError('--body must be a JSON object of the command keys')
    Object.assign(keys, parsed)
  }
  for (const pair of listFlag(args, 'set')) {
    const eq = pair.indexOf('=')
    if (eq < 1) throw new UsageError(`--set ${pair}: expected KEY=VALUE`)
    const text = pair.slice(eq + 1)
    let value: unknown = text
    try {
      value = JSON.parse(text)
    } catch {
      // plain text
    }
    keys[pair.slice(0, eq)] = value
  }
  return keys
}

function targets(args: ParsedArgs): Pick<EnqueueRequest, 'enrollment_ids' | 'filter'> {
  const ids = [...listFlag(args, 'device'), ...listFlag(args, 'enrollment')]
  const filter = deviceFilter(args)
  const filtered = Object.keys(filter).length > 0 || booleanFlag(args, 'all-devices')
  if (ids.length > 0 && filtered) throw new UsageError('give either --device/--enrollment or device filters, not both')
  if (ids.length > 0) return { enrollment_ids: ids }
  if (filtered) return { filter: filter }
  throw new UsageError('no targets: give --device ID (repeatable), --enrollment ID, device filters, or --all-devices')
}

function describeDryRun(dryRun: DryRunResult): string {
  const head = `${dryRun.request_type} would go to ${dryRun.count} channel(s)${dryRun.not_applicable ? `, ${dryRun.not_applicable} cannot run it` : ''}${dryRun.unknown ? `, ${dryRun.unknown} unknown` : ''}`
  const shown = table(
    ['CHANNEL', 'DEVICE', 'SERIAL', 'TENANT', 'KIND'],
    dryRun.targets.map((t) => [t.enrollment_id, t.device_id, t.serial_number, t.tenant_id ?? '(central)', t.kind]),
    '',
  )
  const more = dryRun.count > dryRun.targets.length ? `\n... and ${dryRun.count - dryRun.targets.length} more` : ''
  return `${head}${shown ? `\n${shown}${more}` : ''}${dryRun.destructive ? `\ndestructive: ${dryRun.destructive}` : ''}`
}

/** A bulk command's job ends with its command's UUID; the targets are the command's. */
function describeJobResult(result: unknown): string {
  if (typeof result === 'object' && result !== null && 'targets' in result) return describeEnqueued(result as EnqueueResult)
  const { command_uuid, request_type } = result as components['schemas']['BulkCommandJobResult']
  return `${request_type} ${command_uuid} queued; its targets: orchard commands status ${command_uuid} --targets`
}

type CommandView = components['schemas']['Command']

function describeCommand(command: CommandView): string {
  const { total, ...statuses } = command.targets
  return keyValues([
    ['Command', command.command_uuid],
    ['Request type', command.request_type],
    ['Created', command.created_at],
    ['Expires', command.expires_at],
    ['Priority', command.priority],
    ['Targets', `${total}${counts(statuses) ? ` (${counts(statuses)})` : ''}`],
  ])
}

export const commandsGroup: CommandGroup = {
  summary: 'Send MDM commands and follow them',
  commands: {
    send: {
      summary: 'Send a command to devices (a dry run first; destructive ones are confirmed)',
      usage: `REQUEST_TYPE (--device ID... | --enrollment ID... | ${filterUsage} | --all-devices) [--set KEY=VALUE]... [--body JSON | --body-file FILE] [--priority N] [--expires-at TIME] [--no-push] [--dry-run]`,
      flags: {
        ...filterFlags,
        device: 'list',
        enrollment: 'list',
        'all-devices': 'boolean',
        set: 'list',
        body: 'string',
        'body-file': 'string',
        priority: 'string',
        'expires-at': 'string',
        'no-push': 'boolean',
        'dry-run': 'boolean',
      },
      async run(ctx, args) {
        const [requestType] = positionals(args, ['REQUEST_TYPE'])
        const command = { ...commandKeys(args), request_type: requestType } as TypedCommand
        const request: EnqueueRequest = withoutUndefined({
          ...targets(args),
          command,
          priority: integerFlag(args, 'priority', { min: -100, max: 100 }),
          expires_at: stringFlag(args, 'expires-at'),
          push: booleanFlag(args, 'no-push') ? false : undefined,
        })
        const dryRun = (await send(ctx.api.POST('/api/v1/commands', { body: { ...request, dry_run: true } }))).data as DryRunResult
        if (booleanFlag(args, 'dry-run')) {
          ctx.print(dryRun, () => describeDryRun(dryRun))
          return exitCodes.ok
        }
        if (dryRun.count === 0) throw new CliError(`${describeDryRun(dryRun)}\nnothing sent: no target can take it`, exitCodes.conflict)
        if (dryRun.destructive || dryRun.confirmation_required) {
          ctx.err(describeDryRun(dryRun))
          if (dryRun.owner_required) ctx.err('more devices than ORCHARD_DESTRUCTIVE_OWNER_LIMIT: this needs the owner role')
          await ctx.confirm(`Send ${requestType} to ${dryRun.count} channel(s)?`)
        }
        const token = dryRun.confirmation_required ? { confirmation_token: dryRun.confirmation_token } : {}
        const sent = await send(ctx.api.POST('/api/v1/commands', { body: { ...request, ...token } }))
        if (sent.jobId) return finishJob(ctx, sent.jobId, sent.data, describeJobResult)
        const result = sent.data as EnqueueResult
        ctx.print(result, () => describeEnqueued(result))
        return enqueuedExit(result)
      },
    },
    status: {
      summary: "A command's status counts (--targets: each target)",
      usage: 'COMMAND_UUID [--targets] [--status STATUS] [--limit N]',
      flags: { targets: 'boolean', status: 'string', limit: 'string' },
      async run(ctx, args) {
        const [uuid] = positionals(args, ['COMMAND_UUID'])
        const { data } = await send(ctx.api.GET('/api/v1/commands/{command_uuid}', { params: { path: { command_uuid: uuid! } } }))
        if (!booleanFlag(args, 'targets') && stringFlag(args, 'status') === undefined) {
          ctx.print(data, () => describeCommand(data))
          return
        }
        const query = withoutUndefined({
          status: stringFlag(args, 'status') as components['schemas']['TargetStatus'] | undefined,
          limit: integerFlag(args, 'limit', { min: 1, max: 1000 }),
        })
        const page = (await send(ctx.api.GET('/api/v1/commands/{command_uuid}/targets', { params: { path: { command_uuid: uuid! }, query } }))).data
        ctx.print({ command: data, targets: page }, () =>
          [
            describeCommand(data),
            '',
            table(
              ['CHANNEL', 'STATUS', 'DELIVERED', 'ANSWERED', 'WHY'],
              page.items.map((t) => [t.enrollment_id, t.status, t.last_delivered_at, t.result_at, t.cancel_reason]),
              'no targets',
            ),
          ].join('\n'),
        )
      },
    },
    cancel: {
      summary: 'Cancel a queued command (for every target, or the given channels)',
      usage: 'COMMAND_UUID [--enrollment ID]...',
      flags: { enrollment: 'list' },
      async run(ctx, args) {
        const [uuid] = positionals(args, ['COMMAND_UUID'])
        const ids = listFlag(args, 'enrollment')
        const { data } = await send(
          ctx.api.POST('/api/v1/commands/{command_uuid}/cancel', {
            params: { path: { command_uuid: uuid! } },
            body: ids.length ? { enrollment_ids: ids } : {},
          }),
        )
        ctx.print(
          data,
          () => `${data.command_uuid}: cancelled ${data.cancelled}, in flight ${data.in_flight}, finished ${data.finished}, not targeted ${data.not_targeted}`,
        )
      },
    },
    ls: {
      summary: 'List commands, newest first',
      usage: '[--type REQUEST_TYPE] [--limit N]',
      flags: { type: 'string', limit: 'string' },
      async run(ctx, args) {
        positionals(args, [])
        const query = withoutUndefined({ request_type: stringFlag(args, 'type'), limit: integerFlag(args, 'limit', { min: 1, max: 1000 }) })
        const { data } = await send(ctx.api.GET('/api/v1/commands', { params: { query } }))
        ctx.print(data, () =>
          table(
            ['COMMAND', 'REQUEST TYPE', 'PRIORITY', 'CREATED', 'EXPIRES'],
            data.items.map((c) => [c.command_uuid, c.request_type, c.priority, c.created_at, c.expires_at]),
            'no commands',
          ),
        )
      },
    },
  },
}
