// What the device commands share: filters, finding a device by ID or serial number, renderings.
import type { components } from '../generated/admin-api.js'
import { stringFlag, triStateFlag, type FlagSpec, type ParsedArgs } from './args.js'
import { send } from './client.js'
import type { Context } from './context.js'
import { ApiError, exitCodes } from './errors.js'
import { keyValues, table } from './output.js'

export type Device = components['schemas']['Device']
export type DeviceSummary = components['schemas']['DeviceSummary']
export type EnqueueResult = components['schemas']['EnqueueResult']
export type LifecycleAction = components['schemas']['LifecycleAction']
type DeviceQuery = NonNullable<components['schemas']['DeviceFilter']> & { q?: string; lifecycle_state?: DeviceSummary['lifecycle_state'] }

/** The device-list filters, shared by `devices ls` and `commands send`. */
export const filterFlags: FlagSpec = {
  tenant: 'string',
  kind: 'string',
  state: 'string',
  model: 'string',
  os: 'string',
  serial: 'string',
  udid: 'string',
  supervised: 'string',
  'user-enrollment': 'string',
  group: 'string',
  'enrollment-group': 'string',
  'last-seen-before': 'string',
  'last-seen-after': 'string',
}

export const filterUsage =
  '[--tenant T] [--kind personal|work|function] [--state active|lost|wipe_pending|wiped|retired] [--model M] [--os VERSION] [--serial S] [--udid U] ' +
  '[--supervised true|false] [--user-enrollment true|false] [--group GROUP_ID] [--enrollment-group G] [--last-seen-before TIME] [--last-seen-after TIME]'

export function deviceFilter(args: ParsedArgs): DeviceQuery {
  const filter: Record<string, unknown> = {}
  const set = (key: string, value: unknown) => {
    if (value !== undefined) filter[key] = value
  }
  set('tenant_id', stringFlag(args, 'tenant'))
  set('kind', stringFlag(args, 'kind'))
  set('lifecycle_state', stringFlag(args, 'state'))
  set('model', stringFlag(args, 'model'))
  set('os_version', stringFlag(args, 'os'))
  set('serial_number', stringFlag(args, 'serial'))
  set('udid', stringFlag(args, 'udid'))
  set('supervised', triStateFlag(args, 'supervised'))
  set('user_enrollment', triStateFlag(args, 'user-enrollment'))
  set('group_id', stringFlag(args, 'group'))
  set('enrollment_group', stringFlag(args, 'enrollment-group'))
  set('last_seen_before', stringFlag(args, 'last-seen-before'))
  set('last_seen_after', stringFlag(args, 'last-seen-after'))
  return filter
}

/** A device by its ID, or else by its serial number (what is on the label). */
export async function findDevice(ctx: Context, reference: string): Promise<Device> {
  try {
    return (await send(ctx.api.GET('/api/v1/devices/{device_id}', { params: { path: { device_id: reference } } }))).data
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error
    const { data } = await send(ctx.api.GET('/api/v1/devices', { params: { query: { serial_number: reference, limit: 2 } } }))
    if (data.items.length !== 1) throw error
    return (await send(ctx.api.GET('/api/v1/devices/{device_id}', { params: { path: { device_id: data.items[0]!.id } } }))).data
  }
}

export function deviceRows(devices: readonly DeviceSummary[]): string {
  return table(
    ['ID', 'SERIAL', 'NAME', 'MODEL', 'OS', 'KIND', 'STATE', 'TENANT', 'ENROLLED', 'LAST SEEN'],
    devices.map((d) => [
      d.id,
      d.serial_number,
      d.device_name,
      d.model_name ?? d.model,
      d.os_version,
      d.kind,
      d.lifecycle_state,
      d.tenant_id ?? '(central)',
      d.enrolled ? 'yes' : 'no',
      d.last_seen_at,
    ]),
    'no devices',
  )
}

export function describeDevice(device: Device): string {
  const summary = keyValues([
    ['ID', device.id],
    ['Serial number', device.serial_number],
    ['Name', device.device_name],
    ['Model', [device.model_name, device.model].filter(Boolean).join(' ')],
    ['OS', [device.platform, device.os_version, device.build_version ? `(${device.build_version})` : null].filter(Boolean).join(' ')],
    ['Kind', device.kind],
    ['State', device.lifecycle_state],
    ['Tenant', device.tenant_id ?? '(central)'],
    ['Enrolled', device.enrolled],
    ['Supervised', device.supervised],
    ['User', device.user_email],
    ['Last seen', device.last_seen_at],
    ['Enrolled since', device.created_at],
    ['Groups', device.groups.map((group) => group.name).join(', ')],
  ])
  const channels = table(
    ['CHANNEL', 'TYPE', 'USER', 'ENROLLED', 'LAST SEEN', 'PUSH TOKEN'],
    device.enrollments.map((e) => [
      e.id,
      e.channel,
      e.user_short_name ?? e.user_id,
      e.enrolled ? 'yes' : 'no',
      e.last_seen_at,
      e.push.token_valid ? 'valid' : 'invalid',
    ]),
    'no channels',
  )
  return `${summary}\n\n${channels}`
}

export function describeEnqueued(result: EnqueueResult): string {
  const queued = result.targets.filter((target) => target.result === 'queued').length
  const head = `${result.request_type} ${result.command_uuid}: queued for ${queued} of ${result.targets.length} target(s)`
  const others = result.targets.filter((target) => target.result !== 'queued')
  return others.length === 0
    ? head
    : `${head}\n${table(
        ['TARGET', 'RESULT', 'WHY'],
        others.map((t) => [t.enrollment_id, t.result, t.detail ?? t.reason]),
      )}`
}

export function describeAction(action: LifecycleAction): string {
  const commands = action.commands.map((command) => `${command.request_type}${command.item ? ` ${command.item}` : ''} (${command.status ?? 'unknown'})`)
  return `${action.action} ${action.id} on ${action.device_id}: ${action.status}${commands.length ? `\n  ${commands.join('\n  ')}` : ''}`
}

/** 0 when the command was queued for some target, else 5. */
export const enqueuedExit = (result: EnqueueResult) => (result.targets.some((target) => target.result === 'queued') ? exitCodes.ok : exitCodes.conflict)

export function withoutUndefined<T extends Record<string, unknown>>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as T
}
