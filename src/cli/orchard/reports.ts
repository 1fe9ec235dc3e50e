// orchard reports device-days|devices|licences: CSV (the default) or JSON, on stdout or to
// --output FILE. The server writes the CSV; the CLI passes it through.
import { writeFileSync } from 'node:fs'
import { booleanFlag, positionals, requiredFlag, stringFlag, UsageError, type ParsedArgs } from './args.js'
import { send } from './client.js'
import type { CommandGroup } from './command.js'
import type { Context } from './context.js'
import { withoutUndefined } from './device-common.js'

type Format = 'csv' | 'json'

function format(ctx: Context, args: ParsedArgs): Format {
  const chosen = stringFlag(args, 'format') ?? (ctx.json ? 'json' : undefined) ?? (stringFlag(args, 'output')?.endsWith('.json') ? 'json' : 'csv')
  if (chosen !== 'csv' && chosen !== 'json') throw new UsageError('--format must be csv or json')
  return chosen
}

/** Writes the report where it was asked for: --output FILE, else stdout. */
function deliver(ctx: Context, args: ParsedArgs, report: unknown): void {
  const text = typeof report === 'string' ? report : `${JSON.stringify(report, null, 2)}\n`
  const output = stringFlag(args, 'output')
  if (output === undefined || output === '-') {
    ctx.io.stdout.write(text)
    return
  }
  writeFileSync(output, text)
  ctx.err(`wrote ${output} (${Buffer.byteLength(text)} bytes)`)
}

const common = { format: 'string', output: 'string', tenant: 'string' } as const
const commonUsage = '[--tenant T] [--format csv|json] [--output FILE]'

export const reportsGroup: CommandGroup = {
  summary: 'Reports as CSV or JSON: device-days (billing), devices, licences',
  commands: {
    'device-days': {
      summary: 'Device-days per tenant in a period (billing)',
      usage: `--from YYYY-MM-DD --to YYYY-MM-DD [--per-device] [--rows tenants|breakdown|organisations|devices] ${commonUsage}`,
      flags: { ...common, from: 'string', to: 'string', 'per-device': 'boolean', rows: 'string' },
      async run(ctx, args) {
        positionals(args, [])
        const as = format(ctx, args)
        const query = withoutUndefined({
          from: requiredFlag(args, 'from'),
          to: requiredFlag(args, 'to'),
          tenant_id: stringFlag(args, 'tenant'),
          per_device: booleanFlag(args, 'per-device') || undefined,
          rows: stringFlag(args, 'rows') as 'tenants' | undefined,
          format: as,
        })
        const { data } = await send(ctx.api.GET('/api/v1/reports/device-days', { params: { query }, parseAs: as === 'csv' ? 'text' : 'json' }))
        deliver(ctx, args, data)
      },
    },
    devices: {
      summary: 'Device counts per tenant by kind, model, OS version, enrollment and last contact',
      usage: commonUsage,
      flags: common,
      async run(ctx, args) {
        positionals(args, [])
        const as = format(ctx, args)
        const query = withoutUndefined({ tenant_id: stringFlag(args, 'tenant'), format: as })
        const { data } = await send(ctx.api.GET('/api/v1/reports/devices', { params: { query }, parseAs: as === 'csv' ? 'text' : 'json' }))
        deliver(ctx, args, data)
      },
    },
    licences: {
      summary: 'Apps and Books licences per asset, with the devices holding them',
      usage: `[--token VPP_TOKEN_ID] [--adam-id ID] ${commonUsage}`,
      flags: { ...common, token: 'string', 'adam-id': 'string' },
      async run(ctx, args) {
        positionals(args, [])
        const as = format(ctx, args)
        const query = withoutUndefined({
          vpp_token_id: stringFlag(args, 'token'),
          adam_id: stringFlag(args, 'adam-id'),
          tenant_id: stringFlag(args, 'tenant'),
          format: as,
        })
        const { data } = await send(ctx.api.GET('/api/v1/reports/licences', { params: { query }, parseAs: as === 'csv' ? 'text' : 'json' }))
        deliver(ctx, args, data)
      },
    },
  },
}
