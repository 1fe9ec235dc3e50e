// Admin API: devices (list, one device, forget) and the per-device command shortcuts.
import { OrchardError } from '../errors.js'
import type { PlistDict } from '../mdm/plist.js'
import type { AccessScope } from '../model/access.js'
import type { CommandDispatcher, CommandSource, DispatchResult } from '../queue/dispatch.js'
import { dispatchResultJson } from '../queue/command-json.js'
import type { EnqueueResult } from '../http/generated/operations.js'
import { accessOf, type OperationHandlers } from '../http/plugin.js'
import type { DeviceSecrets } from '../device/device-secrets.js'
import type { DeviceDirectory } from './device-directory.js'
import type { InventoryRefresh } from './inventory-refresh.js'
import { deviceFilterFrom, deviceJson, deviceSummaryJson, eraseInput } from './device-json.js'
import { eraseCommand } from './lifecycle-policy.js'

export interface DeviceHandlerDeps {
  directory: Pick<DeviceDirectory, 'listDevices' | 'getDevice' | 'deleteDevice'>
  dispatcher: CommandDispatcher
  secrets: Pick<DeviceSecrets, 'reveal' | 'unlockTokenFor'>
  inventory: Pick<InventoryRefresh, 'refresh'>
  /** The ReturnToService keys an erase of the device carries, or null (return-to-service.ts); absent: never. */
  returnToService?: (scope: AccessScope, deviceId: string, requested: boolean | undefined) => Promise<PlistDict | null>
}

/** A per-device command operation's request: the device, and how to queue (every such operation takes `push`). */
interface DeviceCommandRequest {
  access?: AccessScope
  params: { device_id: string }
  query: { priority?: number; expires_at?: string; push: boolean }
}

/** Refuses a command one device cannot take, with the problem that says why. */
export function refuse(result: DispatchResult, deviceId: string): never {
  const target = result.targets[0]!
  switch (target.result) {
    case 'queued':
      throw new Error('refuse() called for a queued command')
    case 'unknown_enrollment':
      throw new OrchardError('not_found', `device ${deviceId} is unknown or has not finished enrolling`)
    case 'enrollment_disabled':
      throw new OrchardError('conflict', `device ${deviceId} is not enrolled (it checked out or is re-enrolling)`)
    case 'not_applicable':
      throw new OrchardError('not_applicable', `${result.requestType} cannot go to device ${deviceId}: ${target.detail}`, {
        details: { reason: target.reason },
      })
  }
}

export function deviceHandlers(deps: DeviceHandlerDeps): OperationHandlers {
  /** Queues a command for the device of the path: its result (answered 201), or the problem. */
  async function sendToDevice(request: DeviceCommandRequest, command: CommandSource): Promise<EnqueueResult> {
    const { params, query } = request
    const result = await deps.dispatcher.dispatch(accessOf(request), {
      targets: { enrollmentIds: [params.device_id] },
      command,
      ...(query.priority !== undefined ? { priority: query.priority } : {}),
      expiresAt: query.expires_at !== undefined ? new Date(query.expires_at) : null,
      push: query.push,
    })
    if (result.targets[0]!.result !== 'queued') refuse(result, params.device_id)
    return dispatchResultJson(result)
  }

  const built = (requestType: string, keys: PlistDict = {}): CommandSource => ({ kind: 'built', requestType, keys })

  return {
    async listDevices(request) {
      const { query } = request
      const page = await deps.directory.listDevices(accessOf(request), deviceFilterFrom(query), {
        sort: query.sort,
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
      })
      return { items: page.items.map(deviceSummaryJson), next_cursor: page.nextCursor }
    },

    async getDevice(request) {
      return deviceJson(await deps.directory.getDevice(accessOf(request), request.params.device_id))
    },

    async deleteDevice(request, reply) {
      const deviceId = request.params.device_id
      await deps.directory.deleteDevice(accessOf(request), deviceId)
      request.log.info({ device_id: deviceId }, 'device forgotten')
      return reply.code(204).send()
    },

    async enqueueDeviceCommand(request, reply) {
      return reply.code(201).send(await sendToDevice(request, { kind: 'typed', json: request.body, pointer: '' }))
    },

    async refreshDeviceInventory(request, reply) {
      const deviceId = request.params.device_id
      const { results, push } = await deps.inventory.refresh(accessOf(request), [deviceId], { push: request.query.push })
      const target = results[0]!.targets[0]!
      if (target.result === 'unknown_enrollment' || target.result === 'enrollment_disabled') refuse(results[0]!, deviceId)
      const queued = results.some((r) => r.targets[0]!.result === 'queued')
      if (!queued) {
        const reasons = results.map((r) => {
          const target = r.targets[0]!
          return `${r.requestType}: ${target.result === 'not_applicable' ? target.detail : target.result}`
        })
        throw new OrchardError('not_applicable', `none of the inventory commands can go to device ${deviceId} (${reasons.join('; ')})`)
      }
      // One push woke the device for all of them: the last command shows it.
      return reply.code(201).send({ commands: results.map((r, i) => dispatchResultJson(i === results.length - 1 ? { ...r, push } : r)) })
    },

    async lockDevice(request, reply) {
      const { body } = request
      const keys: PlistDict = {}
      if (body.message !== undefined) keys['Message'] = body.message
      if (body.phone_number !== undefined) keys['PhoneNumber'] = body.phone_number
      if (body.pin !== undefined) keys['PIN'] = body.pin
      return reply.code(201).send(await sendToDevice(request, built('DeviceLock', keys)))
    },

    async eraseDevice(request, reply) {
      const input = eraseInput(request.body)
      const returnToService = deps.returnToService ? await deps.returnToService(accessOf(request), request.params.device_id, input.returnToService) : null
      if (!returnToService && input.returnToService === true)
        throw new OrchardError('not_applicable', `device ${request.params.device_id} cannot return to service`, { details: { reason: 'no_wifi_profile' } })
      const erase = eraseCommand(input, returnToService ?? undefined)
      return reply.code(201).send(await sendToDevice(request, built(erase.requestType, erase.keys)))
    },

    async restartDevice(request, reply) {
      const { notify_user: notifyUser } = request.body
      return reply.code(201).send(await sendToDevice(request, built('RestartDevice', notifyUser !== undefined ? { NotifyUser: notifyUser } : {})))
    },

    async installDeviceProfile(request, reply) {
      const profile = request.body
      if (!Buffer.isBuffer(profile) || profile.length === 0) {
        throw new OrchardError('validation_failed', 'the body must be the .mobileconfig file (Content-Type application/x-apple-aspen-config)')
      }
      return reply.code(201).send(await sendToDevice(request, built('InstallProfile', { Payload: profile })))
    },

    async revealDeviceSecrets(request) {
      const deviceId = request.params.device_id
      const secrets = await deps.secrets.reveal(accessOf(request), deviceId)
      return {
        device_id: deviceId,
        unlock_token: secrets.unlockToken?.toString('base64') ?? null,
        bootstrap_token: secrets.bootstrapToken?.toString('base64') ?? null,
      }
    },

    async clearDevicePasscode(request, reply) {
      const deviceId = request.params.device_id
      const unlockToken = await deps.secrets.unlockTokenFor(accessOf(request), deviceId)
      if (!unlockToken)
        throw new OrchardError(
          'not_applicable',
          `device ${deviceId} has no escrowed UnlockToken (User Enrollment, Shared iPad, or enrolled without ORCHARD_SECRET_KEYS)`,
        )
      return reply.code(201).send(await sendToDevice(request, built('ClearPasscode', { UnlockToken: unlockToken })))
    },

    async removeDeviceProfile(request, reply) {
      return reply.code(201).send(await sendToDevice(request, built('RemoveProfile', { Identifier: request.params.identifier })))
    },
  }
}
