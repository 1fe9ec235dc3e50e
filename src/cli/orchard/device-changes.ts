// orchard devices wipe|offboard|move: the commands that change what a device is. Wipe and
// offboard are destructive: they show what would happen and how many devices, and ask first
// (--yes answers; without a terminal and --yes they do nothing).
import type { components } from '../generated/admin-api.js'
import { booleanFlag, integerFlag, stringFlag, triStateFlag, UsageError, type ParsedArgs } from './args.js'
import { send } from './client.js'
import type { CommandDef } from './command.js'
import { describeAction, findDevice, withoutUndefined, type Device, type LifecycleAction } from './device-common.js'
import { ApiError, exitCodes } from './errors.js'
import { table } from './output.js'
import { finishJob } from './progress.js'

type OffboardingDryRun = components['schemas']['OffboardingDryRun']
type OffboardingResult = components['schemas']['OffboardingResult']

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

function returnToService(args: ParsedArgs): boolean | undefined {
  return triStateFlag(args, 'return-to-service')
}

const wipe: CommandDef = {
  summary: 'Wipe devices the right way for their kind (erase; selective wipe for personal ones)',
  usage: 'DEVICE... [--pin 123456] [--preserve-data-plan] [--disallow-proximity-setup] [--return-to-service true|false]',
  flags: { pin: 'string', 'preserve-data-plan': 'boolean', 'disallow-proximity-setup': 'boolean', 'return-to-service': 'string' },
  async run(ctx, args) {
    if (args.positionals.length === 0) throw new UsageError('missing DEVICE (an ID or serial number; several may be given)')
    // POST .../wipe has no dry run: the preview is each device as the server has it now, and
    // what its kind means (the server decides again when it wipes).
    const devices: Device[] = []
    for (const reference of args.positionals) devices.push(await findDevice(ctx, reference))
    const plan = (device: Device) => (device.kind === 'personal' ? 'selective wipe (work data only)' : 'erase (everything)')
    ctx.err(
      table(
        ['DEVICE', 'SERIAL', 'NAME', 'KIND', 'WIPE'],
        devices.map((d) => [d.id, d.serial_number, d.device_name, d.kind, plan(d)]),
      ),
    )
    await ctx.confirm(`Wipe ${plural(devices.length, 'device')}?`)
    const body = withoutUndefined({
      pin: stringFlag(args, 'pin'),
      preserve_data_plan: booleanFlag(args, 'preserve-data-plan') || undefined,
      disallow_proximity_setup: booleanFlag(args, 'disallow-proximity-setup') || undefined,
      return_to_service: returnToService(args),
    })
    const actions: LifecycleAction[] = []
    let failed: ApiError | undefined
    for (const device of devices) {
      try {
        actions.push((await send(ctx.api.POST('/api/v1/devices/{device_id}/wipe', { params: { path: { device_id: device.id } }, body }))).data)
      } catch (error) {
        if (!(error instanceof ApiError)) throw error
        failed ??= error
        ctx.err(`${device.id}: ${error.message}`)
      }
    }
    ctx.print(actions.length === 1 && devices.length === 1 ? actions[0] : actions, () => actions.map(describeAction).join('\n'))
    return failed ? failed.exitCode : exitCodes.ok
  },
}

function describeDryRun(dryRun: OffboardingDryRun): string {
  return table(
    ['DEVICE', 'SERIAL', 'KIND', 'PLAN', 'WHY'],
    dryRun.targets.map((t) => [t.device_id, t.serial_number, t.kind, t.plan, t.detail]),
    'no devices',
  )
}

function describeOffboarding(result: OffboardingResult): string {
  return table(
    ['DEVICE', 'SERIAL', 'PLAN', 'OUTCOME', 'ACTION'],
    result.devices.map((d) => [d.device_id, d.serial_number, d.plan, d.outcome, d.lifecycle_action_id ?? d.reason]),
    'no devices',
  )
}

const offboard: CommandDef = {
  summary: "Offboard a leaver's devices (by person, or device IDs), each the right way for its kind",
  usage:
    '(DEVICE... | --person EMAIL) [--return-to-service true|false] [--gone-for-days N] [--reason TEXT] [--preserve-data-plan] [--disallow-proximity-setup]',
  flags: {
    person: 'string',
    'return-to-service': 'string',
    'gone-for-days': 'string',
    reason: 'string',
    'preserve-data-plan': 'boolean',
    'disallow-proximity-setup': 'boolean',
  },
  async run(ctx, args) {
    const person = stringFlag(args, 'person')
    if ((person === undefined) === (args.positionals.length === 0)) throw new UsageError('give either DEVICE IDs or --person EMAIL')
    const request = withoutUndefined({
      ...(person !== undefined ? { person } : { device_ids: args.positionals }),
      return_to_service: returnToService(args),
      gone_for_days: integerFlag(args, 'gone-for-days', { min: 7, max: 3650 }),
      reason: stringFlag(args, 'reason'),
      preserve_data_plan: booleanFlag(args, 'preserve-data-plan') || undefined,
      disallow_proximity_setup: booleanFlag(args, 'disallow-proximity-setup') || undefined,
    })
    const dryRun = (await send(ctx.api.POST('/api/v1/offboarding', { body: { ...request, dry_run: true } }))).data as OffboardingDryRun
    ctx.err(describeDryRun(dryRun))
    if (dryRun.count === 0) {
      ctx.print(dryRun, () => 'nothing to offboard')
      return exitCodes.ok
    }
    if (dryRun.owner_required) ctx.err('more devices than ORCHARD_DESTRUCTIVE_OWNER_LIMIT: this needs the owner role')
    await ctx.confirm(`Offboard ${plural(dryRun.count, 'device')}${person ? ` of ${person}` : ''}?`)
    const sent = await send(ctx.api.POST('/api/v1/offboarding', { body: { ...request, confirmation_token: dryRun.confirmation_token } }))
    const render = (result: unknown) => describeOffboarding(result as OffboardingResult)
    if (sent.jobId) return finishJob(ctx, sent.jobId, sent.data, render)
    ctx.print(sent.data, () => render(sent.data))
  },
}

const move: CommandDef = {
  summary: 'Move devices to another tenant',
  usage: 'DEVICE... (--tenant TENANT | --central)',
  flags: { tenant: 'string', central: 'boolean' },
  async run(ctx, args) {
    if (args.positionals.length === 0) throw new UsageError('missing DEVICE')
    const tenant = stringFlag(args, 'tenant')
    if ((tenant === undefined) === !booleanFlag(args, 'central')) throw new UsageError('give either --tenant TENANT or --central')
    const devices = args.positionals
    const { data } = await send(ctx.api.POST('/api/v1/devices/move', { body: { device_ids: devices, tenant_id: tenant ?? null } }))
    ctx.print(data, () =>
      [
        `moved to ${data.tenant_id ?? '(central)'}: ${data.moved.join(', ') || '-'}`,
        data.unchanged.length ? `already there: ${data.unchanged.join(', ')}` : '',
        data.not_found.length ? `not found: ${data.not_found.join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('\n'),
    )
    return data.not_found.length > 0 ? exitCodes.notFound : exitCodes.ok
  },
}

export const deviceChangeCommands: Record<string, CommandDef> = { wipe, offboard, move }
