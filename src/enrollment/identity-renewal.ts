// Device identity renewal. An identity certificate that expires kills its enrollment
// silently (every request is then refused), so ahead of expiry each device gets an
// InstallProfile with a fresh enrollment profile: same PayloadIdentifier, Topic and URLs,
// a new one-time challenge bound to the device. Installing it re-runs SCEP and
// Authenticate with the new certificate, and the binding moves to it.
// https://developer.apple.com/documentation/devicemanagement/installprofilecommand
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { AccessScope } from '../model/access.js'
import type { ExpiringIdentity, IdentityStore, RenewalCandidate } from './identity-store.js'
import type { Page } from '../db/pagination.js'
import type { CommandDispatcher, DispatchResult } from '../queue/dispatch.js'
import type { EnrollmentService } from './enrollment-service.js'

export interface IdentityRenewalService {
  /** Queues renewals for identities expiring within the lead time; returns how many. */
  renewDue(): Promise<{ queued: number; failed: number }>
  /** Queues a renewal for one device now, whatever its expiry. */
  renewDevice(scope: AccessScope, deviceId: string, options?: { push?: boolean }): Promise<DispatchResult>
  listExpiring(scope: AccessScope, withinDays: number, page: { limit: number; cursor?: string }): Promise<Page<ExpiringIdentity>>
  /**
   * Lets one new identity take over the device's enrollment until `minutes` from now (a
   * re-enrollment that reenrollment-policy.ts would otherwise refuse); audited with `reason`.
   */
  allowReenrollment(scope: AccessScope, deviceId: string, options: { minutes: number; reason: string }): Promise<Date>
}

export interface IdentityRenewalDeps {
  store: IdentityStore
  enrollment: Pick<EnrollmentService, 'renewalProfile'>
  dispatcher: CommandDispatcher
  /** Renew this many days before the identity expires. */
  leadDays: number
  logger: Logger
  /** A renewal that did not complete is queued again after this many days. */
  retryAfterDays?: number
  /** Renewals queued per sweep (the next sweep takes the rest). */
  batchSize?: number
  now?: () => Date
}

const day = 86_400_000

export function createIdentityRenewalService(deps: IdentityRenewalDeps): IdentityRenewalService {
  const log = deps.logger.child({ service: 'identity-renewal' })
  const now = deps.now ?? (() => new Date())
  const retryAfterDays = deps.retryAfterDays ?? 7
  const batchSize = deps.batchSize ?? 500

  async function renew(scope: AccessScope, candidate: RenewalCandidate, push = true): Promise<DispatchResult> {
    const profile = await deps.enrollment.renewalProfile({
      id: candidate.deviceId,
      userEnrollment: candidate.userEnrollment,
      topic: candidate.topic,
      managedAppleId: candidate.managedAppleId,
    })
    const result = await deps.dispatcher.dispatch(scope, {
      targets: { enrollmentIds: [candidate.deviceId] },
      command: { kind: 'built', requestType: 'InstallProfile', keys: { Payload: profile.body } },
      push,
    })
    const target = result.targets[0]
    if (target?.result === 'queued') {
      await deps.store.markRenewalQueued(candidate.deviceId, result.commandUuid, now())
      log.info({ device_id: candidate.deviceId, identity_not_after: candidate.identityNotAfter, command_uuid: result.commandUuid }, 'identity renewal queued')
    } else {
      log.warn({ device_id: candidate.deviceId, target }, 'identity renewal could not be queued')
    }
    return result
  }

  return {
    async renewDue() {
      const at = now()
      const candidates = await deps.store.dueForRenewal(
        at,
        new Date(at.getTime() + deps.leadDays * day),
        new Date(at.getTime() - retryAfterDays * day),
        batchSize,
      )
      // Each candidate is claimed first: replicas sweeping at once queue one renewal per device.
      const retryBefore = new Date(at.getTime() - retryAfterDays * day)
      let queued = 0
      let failed = 0
      for (const candidate of candidates) {
        if (!(await deps.store.claimRenewal(candidate.deviceId, at, retryBefore))) continue
        try {
          const result = await renew({ kind: 'all' }, candidate)
          if (result.targets[0]?.result === 'queued') {
            queued++
            continue
          }
          failed++
        } catch (error) {
          failed++
          log.error({ err: error, device_id: candidate.deviceId }, 'identity renewal failed')
        }
        await deps.store.releaseRenewal(candidate.deviceId, at)
      }
      if (candidates.length > 0) log.info({ queued, failed }, 'identity renewal sweep')
      return { queued, failed }
    },

    async renewDevice(scope, deviceId, options = {}) {
      const candidate = await deps.store.renewalCandidate(scope, deviceId)
      if (!candidate) throw new OrchardError('not_found', `no device ${deviceId} with an identity certificate`)
      if (!candidate.renewable) {
        throw new OrchardError(
          'conflict',
          `device ${deviceId}'s identity was not issued by Orchard's CA: its enrollment profile is not ours to replace; re-enroll the device instead`,
        )
      }
      const result = await renew(scope, candidate, options.push !== false)
      const target = result.targets[0]
      if (target?.result !== 'queued') {
        throw new OrchardError(
          'conflict',
          `the renewal could not be queued for device ${deviceId}: ${target?.result === 'not_applicable' ? target.detail : target?.result}`,
        )
      }
      return result
    },

    listExpiring(scope, withinDays, page) {
      return deps.store.listExpiring(scope, new Date(now().getTime() + withinDays * day), page)
    },

    async allowReenrollment(scope, deviceId, options) {
      const until = new Date(now().getTime() + options.minutes * 60_000)
      if (!(await deps.store.allowReenrollment(scope, deviceId, until, options.reason))) throw new OrchardError('not_found', `no device ${deviceId}`)
      log.warn(
        { device_id: deviceId, until, reason: options.reason, principal_id: scope.actor?.principalId },
        're-enrollment allowed: a new identity may take over the device',
      )
      return until
    },
  }
}
