// Handles the eight check-in messages. The certificate binding is checked here for every
// message: Authenticate binds the presenting certificate to the device, everything else
// must come with the certificate bound to its device (user channels use their device's).
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { CheckinMessage } from '../mdm/checkin.js'
import type { Channel } from '../mdm/identity.js'
import { encodePlist, type PlistDict } from '../mdm/plist.js'
import type { IdentityOrigin } from '../storage/enrollment-link-store.js'
import type { EnrollmentStore } from '../storage/enrollment-store.js'
import type { DeclarativeManagementHandler } from './declarative-management.js'
import { emptyReply, plistReply, type DeviceIdentity, type MdmReply } from './mdm-types.js'

/** GetToken: one handler per TokenServiceType, answering the token bytes. */
export type TokenServiceHandler = (channel: Channel, parameters: PlistDict | undefined) => Promise<Buffer>

/** Hooks for later features (push on enrollment, inventory refresh, audit). */
export interface EnrollmentEvents {
  /** The first TokenUpdate after an Authenticate: the channel is newly enrolled. */
  enrolled?(channel: Channel, facts: { awaitingConfiguration: boolean }): void | Promise<void>
  checkedOut?(deviceId: string): void | Promise<void>
  /** Authenticate with a certificate issued to renew this device's identity. */
  identityRenewed?(deviceId: string, identity: { certificateSha256: string; notAfter: Date | null }): void | Promise<void>
}

/** Where identity certificates came from (issued by Orchard's SCEP server), for Authenticate. */
export interface IdentityOrigins {
  lookup(certificateSha256: string): Promise<IdentityOrigin | undefined>
  /** Records a new enrollment's link, group and kind on its device. */
  apply(deviceId: string, origin: IdentityOrigin): Promise<void>
}

export interface CheckinServiceDeps {
  enrollments: EnrollmentStore
  declarativeManagement: DeclarativeManagementHandler
  tokenServices: Readonly<Record<string, TokenServiceHandler>>
  /** UserAuthenticate: 'allow' answers an empty DigestChallenge, 'decline' answers 410. */
  userAuthentication: 'allow' | 'decline'
  events: EnrollmentEvents
  identityOrigins?: IdentityOrigins
  logger: Logger
}

export interface CheckinService {
  handleCheckin(message: CheckinMessage, identity: DeviceIdentity, body: Buffer): Promise<MdmReply>
}

export function createCheckinService(deps: CheckinServiceDeps): CheckinService {
  const log = deps.logger.child({ service: 'checkin' })

  async function requireBinding(channel: Channel, identity: DeviceIdentity): Promise<void> {
    const bound = await deps.enrollments.boundIdentity(channel.deviceId)
    if (bound === undefined) throw new OrchardError('unknown_enrollment', `device ${channel.deviceId} has not authenticated`)
    if (bound !== identity.certificateSha256) {
      throw new OrchardError('identity_rejected', `the certificate is not the one bound to device ${channel.deviceId}`)
    }
  }

  return {
    async handleCheckin(message, identity, body) {
      const channel = message.channel
      const fields = { enrollment_id: channel.enrollmentId, device_id: channel.deviceId, message_type: message.type }

      if (message.type === 'Authenticate') {
        // A certificate issued for this very device (renewal challenge or a renewal signed by
        // its old identity) is an identity renewal, not a new enrollment.
        const origin = await deps.identityOrigins?.lookup(identity.certificateSha256)
        const renewal = origin !== undefined && origin.deviceId === channel.deviceId
        const outcome = await deps.enrollments.authenticate(
          {
            deviceId: channel.deviceId,
            udid: channel.udid,
            userEnrollmentId: channel.userEnrollmentId,
            serialNumber: message.serialNumber,
            imei: message.imei,
            meid: message.meid,
            model: message.model,
            modelName: message.modelName,
            productName: message.productName,
            deviceName: message.deviceName,
            osVersion: message.osVersion,
            buildVersion: message.buildVersion,
            topic: message.topic,
            raw: body,
          },
          { certificateSha256: identity.certificateSha256, notAfter: identity.notAfter },
          { renewal },
        )
        if (!outcome.ok) {
          throw new OrchardError('identity_rejected', `the certificate is already bound to device ${outcome.boundToDeviceId}`)
        }
        if (origin && !renewal) await deps.identityOrigins!.apply(channel.deviceId, origin)
        if (renewal) {
          log.info({ ...fields, identity_sha256: identity.certificateSha256, identity_not_after: identity.notAfter }, 'identity renewed: the device is bound to its new certificate')
          await deps.events.identityRenewed?.(channel.deviceId, { certificateSha256: identity.certificateSha256, notAfter: identity.notAfter ?? null })
        } else log.info({ ...fields, new_device: outcome.newDevice, serial_number: message.serialNumber, enrollment_link_id: origin?.enrollmentLinkId ?? null }, 'device authenticated')
        return emptyReply
      }

      // TokenUpdate checks the binding inside its single statement; the rest here.
      if (message.type !== 'TokenUpdate') await requireBinding(channel, identity)

      switch (message.type) {
        case 'TokenUpdate': {
          const outcome = await deps.enrollments.updateToken({
            enrollmentId: channel.enrollmentId,
            deviceId: channel.deviceId,
            channel: channel.kind,
            userId: channel.userId,
            userShortName: channel.userShortName,
            userLongName: channel.userLongName,
            topic: message.topic,
            token: message.token,
            pushMagic: message.pushMagic,
            unlockToken: message.unlockToken,
            awaitingConfiguration: message.awaitingConfiguration,
          }, identity.certificateSha256)
          if (!outcome.ok) {
            if (outcome.reason === 'identity_mismatch') {
              throw new OrchardError('identity_rejected', `the certificate is not the one bound to device ${channel.deviceId}`)
            }
            throw new OrchardError('unknown_enrollment', `device ${channel.deviceId} has not authenticated`)
          }
          if (outcome.tokenUpdateCount === 1) {
            log.info({ ...fields, channel: channel.kind }, 'enrolled')
            await deps.events.enrolled?.(channel, { awaitingConfiguration: message.awaitingConfiguration })
          } else {
            log.debug(fields, 'token updated')
          }
          return emptyReply
        }
        case 'CheckOut':
          await deps.enrollments.checkOut(channel.deviceId)
          log.info(fields, 'device checked out')
          await deps.events.checkedOut?.(channel.deviceId)
          return emptyReply
        case 'UserAuthenticate':
          if (deps.userAuthentication === 'decline') {
            throw new OrchardError('user_declined', `user channels are declined by configuration (${channel.enrollmentId})`)
          }
          // First request: an empty DigestChallenge means no AuthToken is needed. A second
          // request (with DigestResponse) still gets a token so the login goes on.
          // https://developer.apple.com/documentation/devicemanagement/userauthenticate
          if (message.digestResponse === undefined) return plistReply(encodePlist({ DigestChallenge: '' }))
          return plistReply(encodePlist({ AuthToken: randomBytes(24).toString('base64url') }))
        case 'SetBootstrapToken':
          await deps.enrollments.setBootstrapToken(channel.deviceId, message.bootstrapToken)
          log.info({ ...fields, deleted: !message.bootstrapToken?.length }, 'bootstrap token stored')
          return emptyReply
        case 'GetBootstrapToken': {
          const token = await deps.enrollments.getBootstrapToken(channel.deviceId)
          return plistReply(encodePlist(token ? { BootstrapToken: token } : {}))
        }
        case 'DeclarativeManagement':
          return deps.declarativeManagement.handle(channel, message.endpoint, message.data)
        case 'GetToken': {
          const handler = deps.tokenServices[message.tokenServiceType]
          if (!handler) {
            throw new OrchardError('malformed_message', `GetToken: no token service for TokenServiceType ${JSON.stringify(message.tokenServiceType.slice(0, 100))}`)
          }
          return plistReply(encodePlist({ TokenData: await handler(channel, message.tokenParameters) }))
        }
      }
    },
  }
}
