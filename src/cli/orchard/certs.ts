// orchard push-certs|abm|vpp: APNs push certificates, ABM/ASM server tokens and Apps and
// Books content tokens, with their expiry and syncs (a sync the server runs as a job is followed).
import { readFileSync } from 'node:fs'
import type { components } from '../generated/admin-api.js'
import { booleanFlag, integerFlag, positionals, stringFlag, UsageError, type ParsedArgs } from './args.js'
import { send, type Sent } from './client.js'
import type { CommandGroup } from './command.js'
import type { Context } from './context.js'
import { withoutUndefined } from './device-common.js'
import { exitCodes } from './errors.js'
import { table } from './output.js'
import type { Job } from './job-client.js'
import { finishJob } from './progress.js'

type PushCertificate = components['schemas']['PushCertificate']
type PushCertificateUpload = components['schemas']['PushCertificateUpload']
type DepToken = components['schemas']['DepToken']
type VppToken = components['schemas']['VppToken']
type DepSyncReport = components['schemas']['DepSyncReport']
type VppSyncReport = components['schemas']['VppSyncReport']

const read = (path: string) => readFileSync(path, 'utf8')
const readSecret = (path: string | undefined) => (path === undefined ? undefined : read(path).replace(/\r?\n$/, ''))

/** --cert FILE --key FILE [--passphrase-file F], or --p12 FILE [--password-file F]. */
function upload(args: ParsedArgs): PushCertificateUpload {
  const p12 = stringFlag(args, 'p12')
  const cert = stringFlag(args, 'cert')
  if ((p12 === undefined) === (cert === undefined)) throw new UsageError('give --cert FILE --key FILE, or --p12 FILE')
  if (p12 !== undefined)
    return withoutUndefined({ pkcs12_base64: readFileSync(p12).toString('base64'), password: readSecret(stringFlag(args, 'password-file')) })
  const key = stringFlag(args, 'key')
  if (key === undefined) throw new UsageError('--cert needs --key FILE (the private key, PEM)')
  return withoutUndefined({ certificate_pem: read(cert!), private_key_pem: read(key), passphrase: readSecret(stringFlag(args, 'passphrase-file')) })
}

const uploadFlags = { cert: 'string', key: 'string', 'passphrase-file': 'string', p12: 'string', 'password-file': 'string' } as const
const uploadUsage = '(--cert FILE --key FILE [--passphrase-file FILE] | --p12 FILE [--password-file FILE])'

const certRows = (certs: readonly PushCertificate[], within?: number) =>
  table(
    ['TOPIC', 'TENANT', 'NOT AFTER', 'DAYS LEFT', 'SUBJECT'],
    certs.map((c) => [
      c.topic,
      c.tenant_id ?? '(central)',
      c.not_after,
      within !== undefined && c.days_left <= within ? `${c.days_left} (renew!)` : c.days_left,
      c.subject,
    ]),
    'no push certificates',
  )

export const pushCertsGroup: CommandGroup = {
  summary: 'APNs push certificates: list, upload, renew, expiry',
  default: 'ls',
  commands: {
    ls: {
      summary: 'List push certificates',
      async run(ctx, args) {
        positionals(args, [])
        const { data } = await send(ctx.api.GET('/api/v1/push-certificates'))
        ctx.print(data, () => certRows(data.push_certificates))
      },
    },
    expiry: {
      summary: 'Certificates by days left; exit 5 when one expires within --within days (default 30)',
      usage: '[--within DAYS]',
      flags: { within: 'string' },
      async run(ctx, args) {
        positionals(args, [])
        const within = integerFlag(args, 'within', { min: 0, max: 3650 }) ?? 30
        const { data } = await send(ctx.api.GET('/api/v1/push-certificates'))
        const sorted = [...data.push_certificates].sort((a, b) => a.days_left - b.days_left)
        const expiring = sorted.filter((c) => c.days_left <= within)
        ctx.print({ within_days: within, expiring, push_certificates: sorted }, () => certRows(sorted, within))
        if (expiring.length > 0 && !ctx.json)
          ctx.err(`${expiring.length} certificate(s) expire within ${within} days: renew at Apple, then orchard push-certs renew TOPIC`)
        return expiring.length > 0 ? exitCodes.conflict : exitCodes.ok
      },
    },
    upload: {
      summary: 'Add the push certificate of a new topic',
      usage: `${uploadUsage} [--tenant T | --central]`,
      flags: { ...uploadFlags, tenant: 'string', central: 'boolean' },
      async run(ctx, args) {
        positionals(args, [])
        const tenant = stringFlag(args, 'tenant')
        const body = { ...upload(args), ...(booleanFlag(args, 'central') ? { tenant_id: null } : tenant !== undefined ? { tenant_id: tenant } : {}) }
        const { data } = await send(ctx.api.POST('/api/v1/push-certificates', { body }))
        ctx.print(data, () => certRows([data]))
      },
    },
    renew: {
      summary: "Renew a topic's push certificate (--force: accept a new topic, devices must re-enroll)",
      usage: `TOPIC ${uploadUsage} [--force]`,
      flags: { ...uploadFlags, force: 'boolean' },
      async run(ctx, args) {
        const [topic] = positionals(args, ['TOPIC'])
        const { data } = await send(
          ctx.api.PUT('/api/v1/push-certificates/{topic}', {
            params: { path: { topic: topic! }, query: { force: booleanFlag(args, 'force') } },
            body: upload(args),
          }),
        )
        ctx.print(data, () => certRows([data]))
      },
    },
  },
}

/** Syncs each token (or every one with --all); a sync run as a job is followed. */
async function syncTokens<R>(
  ctx: Context,
  args: ParsedArgs,
  list: () => Promise<string[]>,
  sync: (id: string) => Promise<Sent<R | Job>>,
  render: (report: R) => string,
): Promise<number> {
  const ids = booleanFlag(args, 'all') ? await list() : args.positionals
  if (ids.length === 0) throw new UsageError(booleanFlag(args, 'all') ? 'no tokens to sync' : 'missing TOKEN_ID (or --all)')
  let exit: number = exitCodes.ok
  for (const id of ids) {
    const sent = await sync(id)
    if (sent.jobId) exit = Math.max(exit, await finishJob(ctx, sent.jobId, sent.data, (result) => render(result as R)))
    else {
      const report = sent.data as R
      ctx.print(report, () => render(report))
      if ((report as { outcome?: string }).outcome === 'failed') exit = exitCodes.error
    }
  }
  return exit
}

const syncLine = (id: string, report: { outcome: string; status: string; status_detail: string | null }, counts: string) =>
  `${id}: ${report.outcome} (${counts}); status ${report.status}${report.status_detail ? `: ${report.status_detail}` : ''}`

export const abmGroup: CommandGroup = {
  summary: 'Apple Business/School Manager server tokens and device sync',
  default: 'tokens',
  commands: {
    tokens: {
      summary: 'List ABM/ASM tokens with status, expiry and devices',
      async run(ctx, args) {
        positionals(args, [])
        const { data } = await send(ctx.api.GET('/api/v1/dep/tokens'))
        ctx.print(data, () =>
          table(
            ['ID', 'NAME', 'TENANT', 'STATUS', 'DAYS LEFT', 'DEVICES', 'LAST SYNC', 'ORGANISATION'],
            data.items.map((t: DepToken) => [t.id, t.name, t.tenant_id ?? '(central)', t.status, t.days_left, t.device_count, t.last_sync_at, t.org_name]),
            'no ABM/ASM tokens',
          ),
        )
      },
    },
    sync: {
      summary: "Sync a token's devices now (--all: every token)",
      usage: 'TOKEN_ID... | --all',
      flags: { all: 'boolean' },
      async run(ctx, args) {
        return syncTokens(
          ctx,
          args,
          async () => (await send(ctx.api.GET('/api/v1/dep/tokens'))).data.items.map((t) => t.id),
          (id) => send(ctx.api.POST('/api/v1/dep/tokens/{token_id}/sync', { params: { path: { token_id: id } } })),
          (r: DepSyncReport) => syncLine(r.token_id, r, `${r.devices} devices, ${r.added} new, ${r.pages} pages`),
        )
      },
    },
  },
}

export const vppGroup: CommandGroup = {
  summary: 'Apps and Books content tokens and licence sync',
  default: 'tokens',
  commands: {
    tokens: {
      summary: 'List content tokens with status, expiry and assets',
      async run(ctx, args) {
        positionals(args, [])
        const { data } = await send(ctx.api.GET('/api/v1/vpp/tokens'))
        ctx.print(data, () =>
          table(
            ['ID', 'NAME', 'TENANT', 'LOCATION', 'STATUS', 'DAYS LEFT', 'ASSETS', 'LAST SYNC'],
            data.items.map((t: VppToken) => [t.id, t.name, t.tenant_id ?? '(central)', t.location_name, t.status, t.days_left, t.asset_count, t.last_sync_at]),
            'no content tokens',
          ),
        )
      },
    },
    sync: {
      summary: "Sync a token's assets and assignments now (--all: every token)",
      usage: 'TOKEN_ID... | --all',
      flags: { all: 'boolean' },
      async run(ctx, args) {
        return syncTokens(
          ctx,
          args,
          async () => (await send(ctx.api.GET('/api/v1/vpp/tokens'))).data.items.map((t) => t.id),
          (id) => send(ctx.api.POST('/api/v1/vpp/tokens/{vpp_token_id}/sync', { params: { path: { vpp_token_id: id } } })),
          (r: VppSyncReport) => syncLine(r.vpp_token_id, r, `${r.assets} assets, ${r.assignments} assignments`),
        )
      },
    },
  },
}
