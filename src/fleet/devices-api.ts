// Admin API: devices (list, one device, forget) and the per-device command shortcuts.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { OrchardError } from '../errors.js'
import type { PlistDict } from '../mdm/plist.js'
import type { CommandDispatcher, CommandSource, DispatchResult } from '../queue/dispatch.js'
import type { DeviceDirectoryStore, DeviceFilter, DeviceSort } from './device-directory-store.js'
import type { DeviceKind, LifecycleState } from '../model/devices.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import { deviceJson, deviceSummaryJson, dispatchResultJson } from '../http/views.js'
import { eraseCommand } from './lifecycle-policy.js'
import { eraseInput } from './lifecycle-api.js'
import type { DeviceSecrets } from '../device/device-secrets.js'

export interface DeviceHandlerDeps {
  directory: DeviceDirectoryStore
  dispatcher: CommandDispatcher
  secrets: Pick<DeviceSecrets, 'reveal' | 'unlockTokenFor'>
}

interface DeviceListQuery {
  serial_number?: string
  udid?: string
  model?: string
  os_version?: string
  enrolled?: boolean
  user_enrollment?: boolean
  supervised?: boolean
  last_seen_before?: string
  last_seen_after?: string
  tenant_id?: string
  kind?: DeviceKind
  lifecycle_state?: LifecycleState
  sort: DeviceSort
  limit: number
  cursor?: string
}

interface EnqueueQuery {
  priority?: number
  expires_at?: string
  push?: boolean
}

export function deviceFilterFrom(query: Omit<Partial<DeviceListQuery>, 'sort' | 'limit' | 'cursor'>): DeviceFilter {
  return {
    ...(query.serial_number !== undefined ? { serialNumber: query.serial_number } : {}),
    ...(query.udid !== undefined ? { udid: query.udid } : {}),
    ...(query.model !== undefined ? { model: query.model } : {}),
    ...(query.os_version !== undefined ? { osVersion: query.os_version } : {}),
    ...(query.enrolled !== undefined ? { enrolled: query.enrolled } : {}),
    ...(query.user_enrollment !== undefined ? { userEnrollment: query.user_enrollment } : {}),
    ...(query.supervised !== undefined ? { supervised: query.supervised } : {}),
    ...(query.last_seen_before !== undefined ? { lastSeenBefore: new Date(query.last_seen_before) } : {}),
    ...(query.last_seen_after !== undefined ? { lastSeenAfter: new Date(query.last_seen_after) } : {}),
    ...(query.tenant_id !== undefined ? { tenantId: query.tenant_id } : {}),
    ...(query.kind !== undefined ? { kind: query.kind } : {}),
    ...(query.lifecycle_state !== undefined ? { lifecycleState: query.lifecycle_state } : {}),
  }
}

/** One device's outcome as an HTTP answer: 201 when queued, a problem otherwise. */
function singleTargetReply(result: DispatchResult, deviceId: string, reply: FastifyReply) {
  const target = result.targets[0]!
  switch (target.result) {
    case 'queued':
      return reply.code(201).send(dispatchResultJson(result))
    case 'unknown_enrollment':
      throw new OrchardError('not_found', `device ${deviceId} is unknown or has not finished enrolling`)
    case 'enrollment_disabled':
      throw new OrchardError('conflict', `device ${deviceId} is not enrolled (it checked out or is re-enrolling)`)
    case 'not_applicable':
      throw new OrchardError('not_applicable', `${result.requestType} cannot go to device ${deviceId}: ${target.detail}`, { details: { reason: target.reason } })
  }
}

export function deviceHandlers(deps: DeviceHandlerDeps): OperationHandlers {
  async function sendToDevice(request: FastifyRequest, reply: FastifyReply, command: CommandSource, options: EnqueueQuery = {}) {
    const { device_id: deviceId } = request.params as { device_id: string }
    const result = await deps.dispatcher.dispatch(accessOf(request), {
      targets: { enrollmentIds: [deviceId] },
      command,
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      expiresAt: options.expires_at !== undefined ? new Date(options.expires_at) : null,
      push: options.push !== false,
    })
    return singleTargetReply(result, deviceId, reply)
  }

  const built = (requestType: string, keys: PlistDict = {}): CommandSource => ({ kind: 'built', requestType, keys })

  return {
    async listDevices(request) {
      const query = request.query as DeviceListQuery
      const page = await deps.directory.listDevices(accessOf(request), deviceFilterFrom(query), { sort: query.sort, limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) })
      return { items: page.items.map(deviceSummaryJson), next_cursor: page.nextCursor }
    },

    async getDevice(request) {
      const { device_id: deviceId } = request.params as { device_id: string }
      const detail = await deps.directory.getDevice(accessOf(request), deviceId)
      if (!detail) throw new OrchardError('not_found', `no device ${deviceId}`)
      return deviceJson(detail)
    },

    async deleteDevice(request, reply) {
      const { device_id: deviceId } = request.params as { device_id: string }
      if (!(await deps.directory.deleteDevice(accessOf(request), deviceId))) throw new OrchardError('not_found', `no device ${deviceId}`)
      request.log.info({ device_id: deviceId }, 'device forgotten')
      return reply.code(204).send()
    },

    async enqueueDeviceCommand(request, reply) {
      return sendToDevice(request, reply, { kind: 'typed', json: request.body, pointer: '' }, request.query as EnqueueQuery)
    },

    async refreshDeviceInventory(request, reply) {
      const { device_id: deviceId } = request.params as { device_id: string }
      const results = []
      for (const requestType of ['DeviceInformation', 'SecurityInfo', 'InstalledApplicationList', 'ProfileList', 'CertificateList']) {
        // DeviceInformation without Queries returns only a default set: ask for what inventory shows.
        const keys: PlistDict = requestType === 'DeviceInformation' ? { Queries: inventoryQueries } : {}
        const result = await deps.dispatcher.dispatch(accessOf(request), { targets: { enrollmentIds: [deviceId] }, command: built(requestType, keys), push: false })
        const target = result.targets[0]!
        if (target.result === 'unknown_enrollment' || target.result === 'enrollment_disabled') return singleTargetReply(result, deviceId, reply)
        results.push(result)
      }
      const queued = results.some((r) => r.targets[0]!.result === 'queued')
      if (!queued) {
        const reasons = results.map((r) => { const target = r.targets[0]!; return `${r.requestType}: ${target.result === 'not_applicable' ? target.detail : target.result}` })
        throw new OrchardError('not_applicable', `none of the inventory commands can go to device ${deviceId} (${reasons.join('; ')})`)
      }
      // One push wakes the device for all of them.
      const pushed = queued ? await deps.dispatcher.pushOnly(accessOf(request), [deviceId]) : null
      return reply.code(201).send({ commands: results.map((r, i) => dispatchResultJson(i === results.length - 1 ? { ...r, push: pushed } : r)) })
    },

    async lockDevice(request, reply) {
      const body = (request.body ?? {}) as { message?: string; phone_number?: string; pin?: string }
      const keys: PlistDict = {}
      if (body.message !== undefined) keys['Message'] = body.message
      if (body.phone_number !== undefined) keys['PhoneNumber'] = body.phone_number
      if (body.pin !== undefined) keys['PIN'] = body.pin
      return sendToDevice(request, reply, built('DeviceLock', keys))
    },

    async eraseDevice(request, reply) {
      const erase = eraseCommand(eraseInput((request.body ?? {}) as Parameters<typeof eraseInput>[0]))
      return sendToDevice(request, reply, built(erase.requestType, erase.keys))
    },

    async restartDevice(request, reply) {
      const body = (request.body ?? {}) as { notify_user?: boolean }
      return sendToDevice(request, reply, built('RestartDevice', body.notify_user !== undefined ? { NotifyUser: body.notify_user } : {}))
    },

    async installDeviceProfile(request, reply) {
      const profile = request.body
      if (!Buffer.isBuffer(profile) || profile.length === 0) {
        throw new OrchardError('validation_failed', 'the body must be the .mobileconfig file (Content-Type application/x-apple-aspen-config)')
      }
      return sendToDevice(request, reply, built('InstallProfile', { Payload: profile }))
    },

    async revealDeviceSecrets(request) {
      const { device_id: deviceId } = request.params as { device_id: string }
      const secrets = await deps.secrets.reveal(accessOf(request), deviceId)
      return { device_id: deviceId, unlock_token: secrets.unlockToken?.toString('base64') ?? null, bootstrap_token: secrets.bootstrapToken?.toString('base64') ?? null }
    },

    async clearDevicePasscode(request, reply) {
      const { device_id: deviceId } = request.params as { device_id: string }
      const unlockToken = await deps.secrets.unlockTokenFor(accessOf(request), deviceId)
      if (!unlockToken) throw new OrchardError('not_applicable', `device ${deviceId} has no escrowed UnlockToken (User Enrollment, Shared iPad, or enrolled without ORCHARD_SECRET_KEYS)`)
      return sendToDevice(request, reply, built('ClearPasscode', { UnlockToken: unlockToken }))
    },

    async removeDeviceProfile(request, reply) {
      const { identifier } = request.params as { identifier: string }
      return sendToDevice(request, reply, built('RemoveProfile', { Identifier: identifier }))
    },
  }
}

/** DeviceInformation queries for the inventory view. */
const inventoryQueries = [
  'UDID', 'DeviceName', 'OSVersion', 'BuildVersion', 'ModelName', 'Model', 'ProductName', 'SerialNumber', 'IMEI', 'MEID',
  'DeviceCapacity', 'AvailableDeviceCapacity', 'BatteryLevel', 'IsSupervised', 'IsDeviceLocatorServiceEnabled',
  'IsActivationLockEnabled', 'IsCloudBackupEnabled', 'WiFiMAC', 'BluetoothMAC', 'EthernetMAC', 'IsMDMLostModeEnabled',
  'IsMultiUser', 'EASDeviceIdentifier', 'OSUpdateSettings', 'SupplementalBuildVersion', 'SupplementalOSVersionExtra',
]
