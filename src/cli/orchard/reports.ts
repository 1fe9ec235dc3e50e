// orchard reports device-days|devices|licences: CSV (the default) or JSON, on stdout or to
// --output FILE. The server writes the CSV; the CLI passes it through. A device-days report
// the server answers with a job (a long period, or --async) is followed to its end, then its
// result is fetched in the same form; `orchard jobs result` fetches it later.
import { writeFileSync } from 'node:fs'
import { booleanFlag, positionals, requiredFlag, stringFlag, UsageError, type ParsedArgs } from './args.js'
import { send } from './client.js'
import type { CommandDef, CommandGroup } from './command.js'
import type { Context } from './context.js'
import { withoutUndefined } from './device-common.js'
import { settledJob } from './progress.js'

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

type Rows = 'tenants' | 'breakdown' | 'organisations' | 'devices'

/** How the device-days report is rendered: the same on the report and on a report job's result. */
function reportShape(ctx: Context, args: ParsedArgs) {
  return withoutUndefined({
    per_device: booleanFlag(args, 'per-device') || undefined,
    rows: stringFlag(args, 'rows') as Rows | undefined,
    format: format(ctx, args),
  })
}

/** A report job's result (GET /api/v1/jobs/{job_id}/result), as CSV text or JSON. */
async function jobResult(ctx: Context, jobId: string, shape: ReturnType<typeof reportShape>): Promise<unknown> {
  const parseAs = shape.format === 'csv' ? 'text' : 'json'
  return (await send(ctx.api.GET('/api/v1/jobs/{job_id}/result', { params: { path: { job_id: jobId }, query: shape }, parseAs }))).data
}

/** A 202's body, which a CSV request reads as text. */
function parsed(data: unknown): unknown {
  if (typeof data !== 'string') return data
  try {
    return JSON.parse(data)
  } catch {
    return undefined
  }
}

/** orchard jobs result: a finished report job's report. */
export const jobResultCommand: CommandDef = {
  summary: "A finished report job's report (CSV or JSON)",
  usage: 'JOB_ID [--per-device] [--rows tenants|breakdown|organisations|devices] [--format csv|json] [--output FILE]',
  flags: { format: 'string', output: 'string', 'per-device': 'boolean', rows: 'string' },
  async run(ctx, args) {
    const [id] = positionals(args, ['JOB_ID'])
    deliver(ctx, args, await jobResult(ctx, id!, reportShape(ctx, args)))
  },
}

export const reportsGroup: CommandGroup = {
  summary: 'Reports as CSV or JSON: device-days (billing), devices, licences',
  commands: {
    'device-days': {
      summary: 'Device-days per tenant in a period (billing)',
      usage: `--from YYYY-MM-DD --to YYYY-MM-DD [--per-device] [--rows tenants|breakdown|organisations|devices] [--async] ${commonUsage}`,
      flags: { ...common, from: 'string', to: 'string', 'per-device': 'boolean', rows: 'string', async: 'boolean' },
      async run(ctx, args) {
        positionals(args, [])
        const shape = reportShape(ctx, args)
        const query = withoutUndefined({ from: requiredFlag(args, 'from'), to: requiredFlag(args, 'to'), tenant_id: stringFlag(args, 'tenant'), ...shape })
        // --async: a job whatever the period (RFC 7240); the server makes one anyway past ORCHARD_REPORT_JOB_DAYS.
        const header = booleanFlag(args, 'async') ? { header: { Prefer: 'respond-async' } } : {}
        const parseAs = shape.format === 'csv' ? 'text' : 'json'
        const sent = await send(ctx.api.GET('/api/v1/reports/device-days', { params: { query, ...header }, parseAs }))
        if (sent.status !== 202 || sent.jobId === undefined) return deliver(ctx, args, sent.data)
        const job = await settledJob(ctx, sent.jobId, parsed(sent.data), `its report, once it succeeded: orchard jobs result ${sent.jobId}`)
        if (job) deliver(ctx, args, await jobResult(ctx, job.id, shape))
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
