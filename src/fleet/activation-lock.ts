// Activation Lock bypass codes of supervised devices. A supervised device generates a code
// that clears Activation Lock (at the device, in Setup Assistant, or through Apple's service);
// the MDM collects it with ActivationLockBypassCode and keeps it, sealed with
// ORCHARD_SECRET_KEYS. The device returns it only for a while after it was generated (within
// 15 days of activation), so it is asked for as soon as the device is known to be supervised:
// at enrollment when that is known already, else after a DeviceInformation answer says
// IsSupervised. Without a master key it is not asked for at all (a code we cannot protect is
// better left on the device), and a code arriving then is dropped.
// https://developer.apple.com/documentation/devicemanagement/activation-lock-bypass-code
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DeviceEventOf } from '../device/events.js'
import { OrchardError } from '../errors.js'
import type { Channel } from '../mdm/identity.js'
import { encodePlist, isPlistDict } from '../mdm/plist.js'
import { fullAccess, type AccessScope } from '../model/access.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { ActivationLockStore, BypassCodeRow } from './activation-lock-store.js'
import type { DeviceDirectory } from './device-directory.js'

/** What GET /devices/{id} shows of the code (never the code). */
export interface BypassCodeStatus {
  held: boolean
  /** Why none is held, or how the last request went; null when held and nothing else to say. */
  detail: string | null
}

export interface ActivationLock {
  /** The `enrolled` device event: asks a supervised device for its code. */
  deviceEnrolled(channel: Channel): Promise<void>
  /** The `command_result` device event: DeviceInformation answers and the code itself. */
  commandResult(event: DeviceEventOf<'command_result'>): Promise<'more' | void>
  status(deviceId: string): Promise<BypassCodeStatus>
  /** The code, opened, for an admin; the read is audited. null: none held. */
  reveal(scope: AccessScope, deviceId: string): Promise<{ code: string | null; receivedAt: Date | null }>
  /** Deletes the code record (audited); false when there was none. */
  forget(scope: AccessScope, deviceId: string): Promise<boolean>
}

export const bypassCodeRequestType = 'ActivationLockBypassCode'
const label = (deviceId: string) => `activation-lock-bypass-code:${deviceId}`
const noKeyDetail = 'no master key (ORCHARD_SECRET_KEYS): the bypass code is not collected, since it cannot be sealed at rest'

export function createActivationLock(deps: {
  store: ActivationLockStore
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  secretBox: SecretBox | null
  /** A code was stored (an ADE device's organization-linked lock becomes due); a failure is logged, never the report's. */
  codeReceived?: (deviceId: string) => Promise<void>
  logger: Logger
}): ActivationLock {
  const { store } = deps
  const log = deps.logger.child({ service: 'activation-lock' })
  let warnedNoKey = false
  const warnNoKey = () => {
    if (warnedNoKey) return
    warnedNoKey = true
    log.warn(`${noKeyDetail}; configure ORCHARD_SECRET_KEYS to keep the Activation Lock bypass codes of supervised devices`)
  }

  /** Queues ActivationLockBypassCode; true when queued. */
  async function request(deviceId: string, push: boolean): Promise<boolean> {
    if (!deps.secretBox) {
      warnNoKey()
      await store.setState(deviceId, 'not_kept', { detail: noKeyDetail })
      return false
    }
    const result = await deps.dispatcher.dispatch(fullAccess, {
      targets: { enrollmentIds: [deviceId] },
      command: { kind: 'built', requestType: bypassCodeRequestType, keys: {} },
      push,
    })
    const target = result.targets[0]
    if (target?.result !== 'queued') {
      const detail = `${bypassCodeRequestType} was not queued: ${target?.result === 'not_applicable' ? target.detail : (target?.result ?? 'no target')}`
      await store.setState(deviceId, 'failed', { detail, commandUuid: null })
      log.info({ device_id: deviceId, result: target?.result }, detail)
      return false
    }
    await store.setState(deviceId, 'requested', { commandUuid: result.commandUuid })
    log.info({ device_id: deviceId, command_uuid: result.commandUuid }, 'Activation Lock bypass code requested')
    return true
  }

  async function received(event: DeviceEventOf<'command_result'>): Promise<void> {
    const fields = { device_id: event.deviceId, command_uuid: event.commandUuid }
    if (event.status !== 'Acknowledged') {
      const chain = event.report['ErrorChain']
      const first = Array.isArray(chain) ? chain.find(isPlistDict) : undefined
      const described = first && [first['USEnglishDescription'], first['LocalizedDescription']].find((text) => typeof text === 'string')
      const why = typeof described === 'string' ? described : ''
      const detail = `the device answered ${event.status}${why ? `: ${why.slice(0, 500)}` : ''}`
      await store.setState(event.deviceId, 'failed', { detail, commandUuid: event.commandUuid })
      log.info({ ...fields, status: event.status }, `no Activation Lock bypass code: ${detail}`)
      return
    }
    const { ActivationLockBypassCode: code, ...rest } = event.report
    // The stored result (GET /commands) must not hold the code in clear: it keeps the answer without it.
    if (code !== undefined) await store.replaceResult(event.enrollmentId, event.commandUuid, encodePlist(rest))
    if (typeof code !== 'string' || code === '') {
      await store.setState(event.deviceId, 'failed', { detail: 'the answer held no ActivationLockBypassCode', commandUuid: event.commandUuid })
      return
    }
    if (!deps.secretBox) {
      warnNoKey()
      await store.setState(event.deviceId, 'not_kept', { detail: noKeyDetail, commandUuid: event.commandUuid })
      return
    }
    await store.storeCode(event.deviceId, deps.secretBox.seal(Buffer.from(code, 'utf8'), label(event.deviceId)), event.commandUuid)
    log.info(fields, 'Activation Lock bypass code received and sealed')
    try {
      await deps.codeReceived?.(event.deviceId)
    } catch (error) {
      log.error({ ...fields, err: error }, 'marking the organization-linked Activation Lock due failed')
    }
  }

  /** A DeviceInformation answer of the device channel saying it is supervised: ask, unless asked already. */
  async function supervisionLearnt(event: DeviceEventOf<'command_result'>): Promise<'more' | void> {
    const responses = event.report['QueryResponses']
    if (!isPlistDict(responses)) return
    const supervised = responses['IsSupervised']
    if (supervised === false) return store.dropAwaiting(event.deviceId)
    if (supervised !== true) return
    const facts = await store.facts(event.deviceId)
    if (!facts || facts.userEnrollment) return
    const state = facts.row?.request_state
    // Asked already (queued, answered, or refused by the device): not again until it enrolls again.
    if (state !== undefined && state !== 'awaiting_supervision' && !(state === 'not_kept' && deps.secretBox)) return
    if (state === undefined && !deps.secretBox) return void warnNoKey()
    return (await request(event.deviceId, false)) ? 'more' : undefined
  }

  const describe = (row: BypassCodeRow | undefined): string | null => {
    if (!row) return deps.secretBox ? 'not requested: the device is not known to be supervised' : noKeyDetail
    switch (row.request_state) {
      case 'received':
        return null
      case 'requested':
        return `${bypassCodeRequestType} queued (command ${row.command_uuid ?? 'unknown'}); waiting for the device's answer`
      case 'awaiting_supervision':
        return 'waiting for a DeviceInformation answer showing whether the device is supervised'
      default:
        return row.detail
    }
  }

  return {
    async deviceEnrolled(channel) {
      if (channel.kind !== 'device') return
      try {
        const facts = await store.facts(channel.deviceId)
        if (!facts || facts.userEnrollment || facts.supervised === false) return
        if (facts.supervised === true) await request(channel.deviceId, true)
        else await store.setState(channel.deviceId, 'awaiting_supervision')
      } catch (error) {
        // The TokenUpdate itself succeeded; a failure here must not make the device retry it.
        log.error({ device_id: channel.deviceId, err: error }, 'requesting the Activation Lock bypass code failed')
      }
    },

    async commandResult(event) {
      if (event.deviceId !== event.enrollmentId) return
      if (event.requestType === bypassCodeRequestType) return received(event)
      if (event.requestType === 'DeviceInformation' && event.status === 'Acknowledged') return supervisionLearnt(event)
    },

    async status(deviceId) {
      const row = (await store.rows([deviceId])).get(deviceId)
      const held = Boolean(row?.code_sealed)
      return { held, detail: held && row?.request_state === 'received' ? null : describe(row) }
    },

    async reveal(scope, deviceId) {
      const read = await store.readForAdmin(scope, deviceId)
      if (!read) throw new OrchardError('not_found', `no device ${deviceId}`)
      const sealed = read.row?.code_sealed
      if (!sealed) return { code: null, receivedAt: null }
      if (!deps.secretBox) throw new OrchardError('not_ready', 'no master key (ORCHARD_SECRET_KEYS): the sealed bypass code cannot be opened')
      log.warn({ device_id: deviceId, principal_id: scope.actor?.principalId }, 'Activation Lock bypass code revealed to an admin')
      return { code: deps.secretBox.open(sealed, label(deviceId)).toString('utf8'), receivedAt: read.row?.code_received_at ?? null }
    },

    async forget(scope, deviceId) {
      const deleted = await store.deleteForAdmin(scope, deviceId)
      if (deleted === undefined) throw new OrchardError('not_found', `no device ${deviceId}`)
      if (deleted) log.warn({ device_id: deviceId, principal_id: scope.actor?.principalId }, 'Activation Lock bypass code record deleted')
      return deleted
    },
  }
}

/** The directory whose getDevice also tells whether a bypass code is held (GET /devices/{id} shows it). */
export function withBypassCodeStatus<D extends Pick<DeviceDirectory, 'getDevice'>>(directory: D, activationLock: Pick<ActivationLock, 'status'>): D {
  return {
    ...directory,
    async getDevice(scope: AccessScope, deviceId: string) {
      const detail = await directory.getDevice(scope, deviceId)
      return { ...detail, activationLockBypassCode: await activationLock.status(deviceId) }
    },
  }
}
