// orchard tenants|keys|links: tenants, API keys (through the admin API; `orchard local-keys`
// works on the database directly, for the first key) and enrollment links.
import type { components } from '../generated/admin-api.js'
import { booleanFlag, integerFlag, positionals, requiredFlag, stringFlag, UsageError, type ParsedArgs } from './args.js'
import { send } from './client.js'
import type { CommandGroup } from './command.js'
import { withoutUndefined } from './device-common.js'
import { keyValues, table } from './output.js'

type Tenant = components['schemas']['Tenant']
type ApiKey = components['schemas']['ApiKey']
type EnrollmentLink = components['schemas']['EnrollmentLink']

/** --tenant T or --central (null), or neither (the server's default: your own tenant). */
function tenantChoice(args: ParsedArgs): { tenant_id?: string | null } {
  const tenant = stringFlag(args, 'tenant')
  if (tenant !== undefined && booleanFlag(args, 'central')) throw new UsageError('give --tenant or --central, not both')
  if (booleanFlag(args, 'central')) return { tenant_id: null }
  return tenant !== undefined ? { tenant_id: tenant } : {}
}

const tenantRows = (tenants: readonly Tenant[]) =>
  table(
    ['ID', 'NAME', 'PARENT', 'PRICE/DEVICE-YEAR', 'BILLED KINDS'],
    tenants.map((t) => [t.id, t.name, t.parent_id, t.price_per_device_year, t.billed_kinds?.join(',')]),
    'no tenants',
  )

export const tenantsGroup: CommandGroup = {
  summary: 'Tenants (departments and organisations)',
  default: 'ls',
  commands: {
    ls: {
      summary: 'List the tenants you hold a role in',
      async run(ctx, args) {
        positionals(args, [])
        const { data } = await send(ctx.api.GET('/api/v1/tenants'))
        ctx.print(data, () => tenantRows(data.items))
      },
    },
    show: {
      summary: 'Show a tenant',
      usage: 'TENANT',
      async run(ctx, args) {
        const [id] = positionals(args, ['TENANT'])
        const { data } = await send(ctx.api.GET('/api/v1/tenants/{tenant_id}', { params: { path: { tenant_id: id! } } }))
        ctx.print(data, () => tenantRows([data]))
      },
    },
    create: {
      summary: 'Create a tenant (owner)',
      usage: 'ID --name NAME [--parent ORGANISATION] [--price PRICE_PER_DEVICE_YEAR]',
      flags: { name: 'string', parent: 'string', price: 'string' },
      async run(ctx, args) {
        const [id] = positionals(args, ['ID'])
        const body = withoutUndefined({
          id: id!,
          name: requiredFlag(args, 'name'),
          parent_id: stringFlag(args, 'parent'),
          price_per_device_year: stringFlag(args, 'price'),
        })
        const { data } = await send(ctx.api.POST('/api/v1/tenants', { body }))
        ctx.print(data, () => tenantRows([data]))
      },
    },
  },
}

const keyRows = (keys: readonly ApiKey[]) =>
  table(
    ['ID', 'NAME', 'ROLE', 'TENANT', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED'],
    keys.map((k) => [k.id, k.name, k.role, k.tenant_id ?? '(central)', k.created_at, k.last_used_at, k.expires_at, k.revoked_at]),
    'no API keys',
  )

export const keysGroup: CommandGroup = {
  summary: 'API keys, through the admin API',
  default: 'ls',
  commands: {
    ls: {
      summary: 'List API keys (--all: with revoked ones)',
      usage: '[--all]',
      flags: { all: 'boolean' },
      async run(ctx, args) {
        positionals(args, [])
        const { data } = await send(ctx.api.GET('/api/v1/api-keys', { params: { query: { include_revoked: booleanFlag(args, 'all') } } }))
        ctx.print(data, () => keyRows(data.items))
      },
    },
    show: {
      summary: 'Show an API key (never the key itself)',
      usage: 'KEY_ID',
      async run(ctx, args) {
        const [id] = positionals(args, ['KEY_ID'])
        const { data } = await send(ctx.api.GET('/api/v1/api-keys/{key_id}', { params: { path: { key_id: id! } } }))
        ctx.print(data, () => keyRows([data]))
      },
    },
    create: {
      summary: 'Create an API key; the key is printed once, alone on stdout',
      usage: '--name NAME --role owner|admin|helpdesk|auditor [--tenant T | --central] [--expires-at TIME]',
      flags: { name: 'string', role: 'string', tenant: 'string', central: 'boolean', 'expires-at': 'string' },
      async run(ctx, args) {
        positionals(args, [])
        const body = withoutUndefined({
          name: requiredFlag(args, 'name'),
          role: requiredFlag(args, 'role') as ApiKey['role'],
          ...tenantChoice(args),
          expires_at: stringFlag(args, 'expires-at'),
        })
        const { data } = await send(ctx.api.POST('/api/v1/api-keys', { body }))
        if (ctx.json) ctx.out(JSON.stringify(data, null, 2))
        else {
          ctx.out(data.key)
          ctx.err(
            `API key ${data.id} "${data.name}" (${data.role}${data.tenant_id ? ` in ${data.tenant_id}` : ''}) created. Store it now: it is not shown again.`,
          )
        }
      },
    },
    revoke: {
      summary: 'Revoke an API key',
      usage: 'KEY_ID',
      async run(ctx, args) {
        const [id] = positionals(args, ['KEY_ID'])
        await send(ctx.api.DELETE('/api/v1/api-keys/{key_id}', { params: { path: { key_id: id! } } }))
        ctx.print({ id, revoked: true }, () => `revoked ${id}`)
      },
    },
  },
}

const linkRows = (links: readonly EnrollmentLink[]) =>
  table(
    ['ID', 'NAME', 'TYPE', 'KIND', 'TENANT', 'GROUP', 'USES', 'USABLE', 'URL'],
    links.map((l) => [
      l.id,
      l.name,
      l.enrollment_type,
      l.device_kind,
      l.tenant_id ?? '(central)',
      l.group,
      `${l.uses}${l.max_uses ? `/${l.max_uses}` : ''}`,
      l.usable,
      l.url,
    ]),
    'no enrollment links',
  )

export const linksGroup: CommandGroup = {
  summary: 'Enrollment links',
  default: 'ls',
  commands: {
    ls: {
      summary: 'List enrollment links (--all: with revoked ones)',
      usage: '[--all]',
      flags: { all: 'boolean' },
      async run(ctx, args) {
        positionals(args, [])
        const { data } = await send(ctx.api.GET('/api/v1/enrollment-links', { params: { query: { include_revoked: booleanFlag(args, 'all') } } }))
        ctx.print(data, () => linkRows(data.items))
      },
    },
    show: {
      summary: 'Show an enrollment link',
      usage: 'LINK_ID',
      async run(ctx, args) {
        const [id] = positionals(args, ['LINK_ID'])
        const { data } = await send(ctx.api.GET('/api/v1/enrollment-links/{link_id}', { params: { path: { link_id: id! } } }))
        ctx.print(data, () => keyValues(Object.entries(data).map(([key, value]) => [key, value])))
      },
    },
    create: {
      summary: 'Create an enrollment link; its URL is printed on stdout',
      usage:
        '--name NAME [--type device|user_enrollment] [--kind personal|work|function] [--group G] [--tenant T | --central] [--max-uses N] [--expires-at TIME] [--managed-apple-id ID] [--push-topic TOPIC]',
      flags: {
        name: 'string',
        type: 'string',
        kind: 'string',
        group: 'string',
        tenant: 'string',
        central: 'boolean',
        'max-uses': 'string',
        'expires-at': 'string',
        'managed-apple-id': 'string',
        'push-topic': 'string',
      },
      async run(ctx, args) {
        positionals(args, [])
        const body = withoutUndefined({
          name: requiredFlag(args, 'name'),
          enrollment_type: stringFlag(args, 'type') as EnrollmentLink['enrollment_type'] | undefined,
          device_kind: stringFlag(args, 'kind') as EnrollmentLink['device_kind'] | undefined,
          group: stringFlag(args, 'group'),
          ...tenantChoice(args),
          max_uses: integerFlag(args, 'max-uses', { min: 1, max: 1_000_000 }),
          expires_at: stringFlag(args, 'expires-at'),
          managed_apple_id: stringFlag(args, 'managed-apple-id'),
          push_topic: stringFlag(args, 'push-topic'),
        })
        const { data } = await send(ctx.api.POST('/api/v1/enrollment-links', { body }))
        if (ctx.json) ctx.out(JSON.stringify(data, null, 2))
        else {
          ctx.out(data.url)
          ctx.err(`enrollment link ${data.id} "${data.name}" created`)
        }
      },
    },
    revoke: {
      summary: 'Revoke an enrollment link',
      usage: 'LINK_ID',
      async run(ctx, args) {
        const [id] = positionals(args, ['LINK_ID'])
        await send(ctx.api.DELETE('/api/v1/enrollment-links/{link_id}', { params: { path: { link_id: id! } } }))
        ctx.print({ id, revoked: true }, () => `revoked ${id}`)
      },
    },
  },
}
