// orchard jobs ls|show|wait|cancel|errors: long work the server runs in the background.
import { integerFlag, positionals, stringFlag } from './args.js'
import type { CommandGroup } from './command.js'
import { withoutUndefined } from './device-common.js'
import { jobsApi, type JobState, type JobType } from './job-client.js'
import { table } from './output.js'
import { describeJob, finishJob, progressText } from './progress.js'
import { jobResultCommand } from './reports.js'

export const jobsGroup: CommandGroup = {
  summary: 'Background jobs: syncs, bulk commands, offboarding, reports',
  default: 'ls',
  commands: {
    ls: {
      summary: 'List jobs, newest first',
      usage: '[--state queued|running|succeeded|failed|cancelled] [--type TYPE] [--limit N] [--cursor C]',
      flags: { state: 'string', type: 'string', limit: 'string', cursor: 'string' },
      async run(ctx, args) {
        positionals(args, [])
        const page = await jobsApi(ctx).list(
          withoutUndefined({
            state: stringFlag(args, 'state') as JobState | undefined,
            type: stringFlag(args, 'type') as JobType | undefined,
            limit: integerFlag(args, 'limit', { min: 1, max: 1000 }),
            cursor: stringFlag(args, 'cursor'),
          }),
        )
        ctx.print(page, () =>
          table(
            ['ID', 'TYPE', 'STATE', 'PROGRESS', 'TENANT', 'STARTED BY', 'CREATED', 'FINISHED'],
            page.items.map((j) => [
              j.id,
              j.type,
              j.state,
              progressText(j),
              j.tenant_id ?? '(central)',
              j.started_by?.name ?? 'Orchard',
              j.created_at,
              j.finished_at,
            ]),
            'no jobs',
          ),
        )
      },
    },
    show: {
      summary: 'Show a job',
      usage: 'JOB_ID',
      async run(ctx, args) {
        const [id] = positionals(args, ['JOB_ID'])
        const job = await jobsApi(ctx).get(id!)
        ctx.print(job, () => describeJob(job))
      },
    },
    wait: {
      summary: 'Follow a job to its end (a progress bar on a terminal); exit 1 if it fails',
      usage: 'JOB_ID',
      async run(ctx, args) {
        const [id] = positionals(args, ['JOB_ID'])
        return finishJob(ctx, id!, undefined, (result) => JSON.stringify(result, null, 2))
      },
    },
    result: jobResultCommand,
    cancel: {
      summary: 'Cancel a job (where its kind allows it)',
      usage: 'JOB_ID',
      async run(ctx, args) {
        const [id] = positionals(args, ['JOB_ID'])
        const { data: job, status } = await jobsApi(ctx).cancel(id!)
        ctx.print(job, () => `${describeJob(job)}${status === 202 ? '\nstopping after its current step' : ''}`)
      },
    },
    errors: {
      summary: 'What failed in a job',
      usage: 'JOB_ID [--limit N] [--cursor C]',
      flags: { limit: 'string', cursor: 'string' },
      async run(ctx, args) {
        const [id] = positionals(args, ['JOB_ID'])
        const page = await jobsApi(ctx).errors(
          id!,
          withoutUndefined({ limit: integerFlag(args, 'limit', { min: 1, max: 1000 }), cursor: stringFlag(args, 'cursor') }),
        )
        ctx.print(page, () =>
          table(
            ['#', 'TARGET', 'CODE', 'MESSAGE', 'AT'],
            page.items.map((e) => [e.seq, e.target ?? '(job)', e.code, e.message, e.created_at]),
            'no errors',
          ),
        )
        if (page.next_cursor && !ctx.json) ctx.err(`more: --cursor ${page.next_cursor}`)
      },
    },
  },
}
