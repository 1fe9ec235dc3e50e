// Taking Activation Lock off a device (POST /devices/{id}/activation-lock/clear): Apple's
// escrowKeyUnlock service is given a bypass code Orchard holds, with the device's serial
// number, model and IMEIs, authenticated by the MDM push certificate of the device's topic.
// Orchard may hold two codes: the device's own (ActivationLockBypassCode) and, for an ADE
// device it locked to the organization, the server code; Apple's advice is to try one, then
// the other, since which one is active cannot be known. The device need not be enrolled: an
// erased or retired device is the usual case. On request, a device still enrolled is also
// sent ClearActivationLockBypassCode, which removes its own code from it.
// https://developer.apple.com/documentation/devicemanagement/creating-and-using-bypass-codes
import type { Logger } from 'pino'
import type { SecretBox } from '../crypto/secret-box.js'
import type { DeviceEventOf } from '../device/events.js'
import { OrchardError } from '../errors.js'
import { isPlistDict } from '../mdm/plist.js'
import type { AccessScope } from '../model/access.js'
import type { CommandDispatcher } from '../queue/dispatch.js'
import type { ActivationLockAppleStore, UnlockFacts } from './activation-lock-apple-store.js'
import { serverCodeLabel } from './activation-lock-escrow.js'
import type { EscrowKeyUnlockClient, TlsIdentity } from './escrow-key-unlock.js'

export const clearBypassCodeRequestType = 'ClearActivationLockBypassCode'
const deviceCodeLabel = (deviceId: string) => `activation-lock-bypass-code:${deviceId}`

export interface UnlockAttempt {
  code: 'device' | 'server'
  /** Apple's HTTP status; null when the service was not reached. */
  httpStatus: number | null
  detail: string | null
}

export interface ClearReport {
  deviceId: string
  codeUsed: 'device' | 'server'
  attempts: UnlockAttempt[]
  /** ClearActivationLockBypassCode, when asked for: queued, or why not. */
  deviceCommand: { result: string; commandUuid: string | null; detail: string | null } | null
}

export interface ActivationLockClearing {
  clear(scope: AccessScope, deviceId: string, options: { clearDeviceCode: boolean }): Promise<ClearReport>
  /** The ClearActivationLockBypassCode answer of a device. */
  commandResult(event: DeviceEventOf<'command_result'>): Promise<void>
}

/** Digits only: DeviceInformation writes IMEIs with spaces (35 123456 789012 3). */
const digits = (value: unknown): string | undefined => (typeof value === 'string' && /\d/.test(value) ? value.replace(/\D/g, '') : undefined)

/** The device's IMEIs: DeviceInformation IMEI, then a second SIM's (ServiceSubscriptions). */
export function imeisOf(facts: Pick<UnlockFacts, 'imei' | 'deviceInformation'>): { imei?: string; imei2?: string } {
  const record = (value: unknown): Record<string, unknown> | undefined =>
    value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  const subscriptions = record(facts.deviceInformation)?.['ServiceSubscriptions']
  const listed = (Array.isArray(subscriptions) ? subscriptions : [])
    .map((subscription) => digits(record(subscription)?.['IMEI']))
    .filter((imei): imei is string => imei !== undefined)
  const all = [...new Set([digits(facts.imei), ...listed].filter((imei): imei is string => imei !== undefined))]
  return { ...(all[0] ? { imei: all[0] } : {}), ...(all[1] ? { imei2: all[1] } : {}) }
}

/** Apple's answer, short enough for an admin to read. */
const said = (body: string) => body.replace(/\s+/g, ' ').trim().slice(0, 300)

export function createActivationLockClearing(deps: {
  store: ActivationLockAppleStore
  secretBox: SecretBox | null
  unlock: EscrowKeyUnlockClient
  /** The push certificate and key of a topic (Apple authenticates the MDM by it). */
  pushIdentity: (topic: string) => Promise<TlsIdentity | undefined>
  dispatcher: Pick<CommandDispatcher, 'dispatch'>
  /** ORCHARD_ORGANIZATION: Apple's orgName. */
  organization: string
  logger: Logger
  now?: () => Date
}): ActivationLockClearing {
  const { store } = deps
  const now = deps.now ?? (() => new Date())
  const log = deps.logger.child({ service: 'activation-lock-clear' })

  /** The codes held, the one most likely active first: the server code when Apple locked the device with it. */
  function codesOf(facts: UnlockFacts, box: SecretBox): Array<{ code: 'device' | 'server'; value: string }> {
    const row = facts.row
    const codes: Array<{ code: 'device' | 'server'; value: string }> = []
    if (row?.code_sealed) codes.push({ code: 'device', value: box.open(row.code_sealed, deviceCodeLabel(facts.deviceId)).toString('utf8') })
    if (row?.server_code_sealed) codes.push({ code: 'server', value: box.open(row.server_code_sealed, serverCodeLabel(facts.deviceId)).toString('utf8') })
    return row?.escrow_state === 'escrowed' ? codes.reverse() : codes
  }

  async function requireUnlockable(scope: AccessScope, deviceId: string) {
    const facts = await store.unlockFacts(scope, deviceId)
    if (!facts) throw new OrchardError('not_found', `no device ${deviceId}`)
    if (!facts.row?.code_sealed && !facts.row?.server_code_sealed) {
      const why = facts.row?.detail ?? (facts.supervised === false ? 'the device is not supervised' : 'none was collected')
      throw new OrchardError(
        'conflict',
        `Orchard holds no Activation Lock bypass code for device ${deviceId} (${why}): ` +
          'turn Activation Lock off in Apple Business/School Manager, or with the Apple Account on the device',
      )
    }
    if (!deps.secretBox) throw new OrchardError('not_ready', 'no master key (ORCHARD_SECRET_KEYS): the sealed bypass codes cannot be opened')
    if (!facts.serialNumber) throw new OrchardError('not_applicable', `the serial number of device ${deviceId} is not known: Apple's service needs it`)
    if (!facts.productName) {
      throw new OrchardError(
        'not_applicable',
        `the model identifier (DeviceInformation ProductName) of device ${deviceId} is not known: Apple's service needs it`,
      )
    }
    const identity = facts.topic ? await deps.pushIdentity(facts.topic) : undefined
    if (!identity) {
      throw new OrchardError('conflict', `no push certificate for the device's topic (${facts.topic ?? 'none'}): Apple's service authenticates the MDM by it`)
    }
    return { facts, identity, box: deps.secretBox, serialNumber: facts.serialNumber, productType: facts.productName }
  }

  /** ClearActivationLockBypassCode to a supervised device still enrolled; recorded on the row. */
  async function clearOnDevice(scope: AccessScope, facts: UnlockFacts): Promise<NonNullable<ClearReport['deviceCommand']>> {
    const refuse = async (result: string, detail: string) => {
      await store.recordDeviceClear(facts.deviceId, 'failed', null, detail)
      return { result, commandUuid: null, detail }
    }
    if (!facts.enrolled) return refuse('not_enrolled', 'the device is not enrolled: it keeps its code until it is erased')
    if (facts.userEnrollment || facts.supervised === false) return refuse('not_applicable', `${clearBypassCodeRequestType} needs a supervised device`)
    const dispatched = await deps.dispatcher.dispatch(scope, {
      targets: { enrollmentIds: [facts.deviceId] },
      command: { kind: 'built', requestType: clearBypassCodeRequestType, keys: {} },
      push: true,
    })
    const target = dispatched.targets[0]
    if (target?.result !== 'queued')
      return refuse(
        target?.result ?? 'unknown_enrollment',
        target?.result === 'not_applicable' ? target.detail : `${clearBypassCodeRequestType} was not queued`,
      )
    await store.recordDeviceClear(facts.deviceId, 'requested', dispatched.commandUuid, null)
    return { result: 'queued', commandUuid: dispatched.commandUuid, detail: null }
  }

  return {
    async clear(scope, deviceId, options) {
      const { facts, identity, box, serialNumber, productType } = await requireUnlockable(scope, deviceId)
      const fields = { device_id: deviceId, principal_id: scope.actor?.principalId }
      const attempts: UnlockAttempt[] = []
      let used: 'device' | 'server' | undefined
      for (const { code, value } of codesOf(facts, box)) {
        const answer = await deps.unlock.unlock(identity, {
          serial: serialNumber,
          productType,
          ...imeisOf(facts),
          meid: digits(facts.meid),
          orgName: deps.organization,
          guid: scope.actor?.principalName ?? 'orchard',
          escrowKey: value,
        })
        if (answer.kind === 'unreachable') {
          attempts.push({ code, httpStatus: null, detail: `Apple's escrowKeyUnlock service is unreachable: ${answer.detail}` })
          break // the other code would meet the same
        }
        const ok = answer.status === 200
        attempts.push({
          code,
          httpStatus: answer.status,
          detail: ok ? null : `Apple answered ${answer.status}${said(answer.body) ? `: ${said(answer.body)}` : ''}`,
        })
        if (ok) {
          used = code
          break
        }
      }
      if (!used) {
        const detail = attempts.map((attempt) => `${attempt.code} code: ${attempt.detail}`).join('; ')
        await store.recordUnlockFailure(deviceId, detail)
        log.warn({ ...fields, attempts: attempts.length }, `Activation Lock not turned off at Apple: ${detail}`)
        throw new OrchardError('upstream_failed', `Apple did not turn Activation Lock off: ${detail}`, {
          details: { attempts: attempts.map((a) => ({ code: a.code, http_status: a.httpStatus, detail: a.detail })) },
        })
      }
      await store.recordUnlock(scope, facts, {
        at: now(),
        codeUsed: used,
        detail: attempts.length > 1 ? `the ${attempts[0]!.code} code was refused first` : null,
      })
      log.warn({ ...fields, code_used: used }, 'Activation Lock turned off at Apple with a held bypass code')
      const deviceCommand = options.clearDeviceCode ? await clearOnDevice(scope, facts) : null
      return { deviceId, codeUsed: used, attempts, deviceCommand }
    },

    async commandResult(event) {
      if (event.requestType !== clearBypassCodeRequestType || event.deviceId !== event.enrollmentId) return
      if (event.status === 'Acknowledged') return store.recordDeviceClearAnswer(event.deviceId, event.commandUuid, 'cleared', null)
      const chain = event.report['ErrorChain']
      const first = Array.isArray(chain) ? chain.find(isPlistDict) : undefined
      const why = first && [first['USEnglishDescription'], first['LocalizedDescription']].find((text) => typeof text === 'string')
      await store.recordDeviceClearAnswer(
        event.deviceId,
        event.commandUuid,
        'failed',
        `the device answered ${event.status}${typeof why === 'string' ? `: ${why.slice(0, 500)}` : ''}`,
      )
    },
  }
}
