// orchard devices ls|show|lock|lost|found (wipe, offboard and move: device-changes.ts).
import { integerFlag, positionals, stringFlag, triStateFlag, UsageError } from './args.js'
import { send } from './client.js'
import type { CommandGroup } from './command.js'
import {
  describeAction,
  describeDevice,
  describeEnqueued,
  deviceFilter,
  deviceRows,
  enqueuedExit,
  filterFlags,
  filterUsage,
  findDevice,
  withoutUndefined,
  type DeviceSummary,
} from './device-common.js'
import { deviceChangeCommands } from './device-changes.js'

export const devicesGroup: CommandGroup = {
  summary: 'List, show and act on devices',
  default: 'ls',
  commands: {
    ls: {
      summary: 'List devices (filters combine with AND)',
      usage: `[--search TEXT] ${filterUsage} [--enrolled true|false] [--sort FIELD] [--limit N] [--cursor C] [--all]`,
      flags: { ...filterFlags, search: 'string', enrolled: 'string', sort: 'string', limit: 'string', cursor: 'string', all: 'boolean' },
      async run(ctx, args) {
        positionals(args, [])
        const search = stringFlag(args, 'search')
        if (search !== undefined && search.length < 2) throw new UsageError('--search needs at least 2 characters')
        const query = {
          ...deviceFilter(args),
          ...(search !== undefined ? { q: search } : {}),
          ...(triStateFlag(args, 'enrolled') !== undefined ? { enrolled: triStateFlag(args, 'enrolled') } : {}),
          ...(stringFlag(args, 'sort') ? { sort: stringFlag(args, 'sort') as 'created_at' } : {}),
          limit: integerFlag(args, 'limit', { min: 1, max: 1000 }) ?? 100,
        }
        const items: DeviceSummary[] = []
        let cursor = stringFlag(args, 'cursor')
        for (;;) {
          const { data } = await send(ctx.api.GET('/api/v1/devices', { params: { query: { ...query, ...(cursor ? { cursor } : {}) } } }))
          items.push(...data.items)
          cursor = data.next_cursor ?? undefined
          if (!cursor || !args.flags.has('all')) break
        }
        ctx.print({ items, next_cursor: cursor ?? null }, () => deviceRows(items))
        if (cursor && !ctx.json) ctx.err(`more devices: --cursor ${cursor} (or --all)`)
      },
    },
    show: {
      summary: 'Show a device with its channels (by ID or serial number)',
      usage: 'DEVICE',
      async run(ctx, args) {
        const [reference] = positionals(args, ['DEVICE'])
        const device = await findDevice(ctx, reference!)
        ctx.print(device, () => describeDevice(device))
      },
    },
    lock: {
      summary: 'Lock a device now (DeviceLock)',
      usage: 'DEVICE [--message TEXT] [--phone NUMBER] [--pin 123456]',
      flags: { message: 'string', phone: 'string', pin: 'string' },
      async run(ctx, args) {
        const [reference] = positionals(args, ['DEVICE'])
        const device = await findDevice(ctx, reference!)
        const body = { message: stringFlag(args, 'message'), phone_number: stringFlag(args, 'phone'), pin: stringFlag(args, 'pin') }
        const { data } = await send(
          ctx.api.POST('/api/v1/devices/{device_id}/lock', { params: { path: { device_id: device.id } }, body: withoutUndefined(body) }),
        )
        ctx.print(data, () => describeEnqueued(data))
        return enqueuedExit(data)
      },
    },
    lost: {
      summary: 'Report a device lost (Lost Mode, or a lock)',
      usage: 'DEVICE [--message TEXT] [--phone NUMBER] [--footnote TEXT]',
      flags: { message: 'string', phone: 'string', footnote: 'string' },
      async run(ctx, args) {
        const [reference] = positionals(args, ['DEVICE'])
        const device = await findDevice(ctx, reference!)
        const body = { message: stringFlag(args, 'message'), phone_number: stringFlag(args, 'phone'), footnote: stringFlag(args, 'footnote') }
        const { data } = await send(
          ctx.api.POST('/api/v1/devices/{device_id}/lost', { params: { path: { device_id: device.id } }, body: withoutUndefined(body) }),
        )
        ctx.print(data, () => describeAction(data))
      },
    },
    found: {
      summary: 'Report a lost device found',
      usage: 'DEVICE',
      async run(ctx, args) {
        const [reference] = positionals(args, ['DEVICE'])
        const device = await findDevice(ctx, reference!)
        const { data } = await send(ctx.api.POST('/api/v1/devices/{device_id}/found', { params: { path: { device_id: device.id } } }))
        ctx.print(data, () => describeAction(data))
      },
    },
    ...deviceChangeCommands,
  },
}
