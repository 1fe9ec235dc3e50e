// Handles the eight check-in messages. The certificate binding is checked here for every
// message: Authenticate binds the presenting certificate to the device, everything else
// must come with the certificate bound to its device (user channels use their device's).
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { OrchardError } from '../errors.js'
import type { CheckinMessage } from '../mdm/checkin.js'
import type { Channel } from '../mdm/identity.js'
import { encodePlist, type PlistDict } from '../mdm/plist.js'
import type { IdentityOrigin } from '../enrollment/enrollment-link-store.js'
import type { EnrollmentStore } from './enrollment-store.js'
import type { DeclarativeManagementHandler } from './declarative-management.js'
import type { DeviceSecrets } from './device-secrets.js'
import { emptyReply, plistReply, type DeviceIdentity, type MdmReply } from './mdm-types.js'
import type { DeviceEvents, IdentityChange } from './events.js'
import { describePath, enrollmentPathOf, judgeAuthenticate } from './reenrollment-policy.js'

/** GetToken: one handler per TokenServiceType, answering the token bytes. */
export type TokenServiceHandler = (channel: Channel, parameters: PlistDict | undefined) => Promise<Buffer>

/** Where identity certificates came from (issued by Orchard's SCEP server), for Authenticate. */
export interface IdentityOrigins {
  lookup(certificateSha256: string): Promise<IdentityOrigin | undefined>
  /**
   * Records where an enrollment came from on its device: for a new device its tenant, link,
   * group and kind; an existing device keeps its tenant and kind. 'foreign_path': the origin
   * belongs to another tenant than the device's, so nothing of it was recorded.
   */
  apply(deviceId: string, origin: IdentityOrigin, options: { newDevice: boolean }): Promise<'applied' | 'foreign_path'>
}

export interface CheckinServiceDeps {
  enrollments: EnrollmentStore
  secrets: Pick<DeviceSecrets, 'sealUnlockToken' | 'setBootstrapToken' | 'getBootstrapToken'>
  declarativeManagement: DeclarativeManagementHandler
  tokenServices: Readonly<Record<string, TokenServiceHandler>>
  /** UserAuthenticate: 'allow' answers an empty DigestChallenge, 'decline' answers 410. */
  userAuthentication: 'allow' | 'decline'
  /** Where what other features must learn leaves the pipeline (events.ts). */
  events: DeviceEvents
  identityOrigins?: IdentityOrigins
  logger: Logger
  now?: () => Date
}

export interface CheckinService {
  handleCheckin(message: CheckinMessage, identity: DeviceIdentity, body: Buffer): Promise<MdmReply>
}

export function createCheckinService(deps: CheckinServiceDeps): CheckinService {
  const log = deps.logger.child({ service: 'checkin' })
  const now = deps.now ?? (() => new Date())

  async function requireBinding(channel: Channel, identity: DeviceIdentity): Promise<void> {
    const bound = await deps.enrollments.boundIdentity(channel.deviceId)
    if (bound === undefined) throw new OrchardError('unknown_enrollment', `device ${channel.deviceId} has not authenticated`)
    if (bound !== identity.certificateSha256) {
      throw new OrchardError('identity_rejected', `the certificate is not the one bound to device ${channel.deviceId}`)
    }
  }

  // Authenticate binds the presented certificate to the device, after judging a claim on an
  // enrollment bound to another certificate (reenrollment-policy.ts). The tenant of an
  // existing device never changes here: only POST /devices/move moves a device.
  async function authenticate(message: Extract<CheckinMessage, { type: 'Authenticate' }>, identity: DeviceIdentity, body: Buffer): Promise<MdmReply> {
    const channel = message.channel
    const fields = { enrollment_id: channel.enrollmentId, device_id: channel.deviceId, message_type: message.type }
    const origin = await deps.identityOrigins?.lookup(identity.certificateSha256)
    const path = enrollmentPathOf(origin)
    const change = (boundSha256: string | null): IdentityChange => ({
      deviceId: channel.deviceId,
      presentedSha256: identity.certificateSha256,
      boundSha256,
      enrollmentPath: describePath(path),
      reportedSerialNumber: message.serialNumber ?? null,
    })
    // Judged on the binding as read; the write happens only if it is still that binding.
    for (let attempt = 1; ; attempt++) {
      const current = await deps.enrollments.bindingOf(channel.deviceId)
      const verdict = judgeAuthenticate(current, {
        deviceId: channel.deviceId,
        identitySha256: identity.certificateSha256,
        reportedSerial: message.serialNumber,
        path,
        now: now(),
      })
      if (!verdict.accept) {
        log.warn(
          {
            ...fields,
            reason: verdict.because,
            identity_sha256: identity.certificateSha256,
            bound_sha256: current!.identitySha256,
            enrollment_path: describePath(path),
            serial_number: message.serialNumber,
          },
          `re-enrollment refused: ${verdict.detail}`,
        )
        await deps.events.emit({
          type: 'identity_conflict',
          ...change(current!.identitySha256),
          because: verdict.because,
          detail: verdict.detail,
          tenantId: current!.tenantId,
        })
        throw new OrchardError(
          'reenrollment_refused',
          `device ${channel.deviceId} is enrolled with another identity certificate: ${verdict.detail}; an admin of its tenant can allow a re-enrollment (POST /api/v1/devices/{id}/allow-reenrollment)`,
        )
      }
      const renewal = verdict.because === 'renewal'
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
        { renewal, expectedIdentity: current?.identitySha256 ?? null },
      )
      if (!outcome.ok && outcome.reason === 'binding_changed' && attempt < 3) continue
      if (!outcome.ok) {
        const detail =
          outcome.reason === 'bound_elsewhere'
            ? `the certificate is already bound to device ${outcome.boundToDeviceId}`
            : `the binding of device ${channel.deviceId} changed while it was being judged`
        throw new OrchardError('identity_rejected', detail)
      }
      if (renewal) {
        log.info(
          { ...fields, identity_sha256: identity.certificateSha256, identity_not_after: identity.notAfter },
          'identity renewed: the device is bound to its new certificate',
        )
        await deps.events.emit({
          type: 'identity_renewed',
          deviceId: channel.deviceId,
          certificateSha256: identity.certificateSha256,
          notAfter: identity.notAfter ?? null,
        })
      } else if (verdict.because !== 'new_device' && verdict.because !== 'same_identity' && verdict.because !== 'unbound') {
        log.info(
          {
            ...fields,
            reason: verdict.because,
            identity_sha256: identity.certificateSha256,
            bound_sha256: current!.identitySha256,
            enrollment_path: describePath(path),
          },
          're-enrollment accepted: the device is bound to a new certificate',
        )
        await deps.events.emit({ type: 'reenrolled', ...change(current!.identitySha256), because: verdict.because })
      } else {
        log.info({ ...fields, new_device: outcome.newDevice, serial_number: message.serialNumber, enrollment_path: describePath(path) }, 'device authenticated')
      }
      if (origin && !renewal) {
        // A device record that never completed an enrollment carries no trust: the path of the
        // enrollment that does complete places it, as for a new device.
        const applied = await deps.identityOrigins!.apply(channel.deviceId, origin, { newDevice: outcome.newDevice || current?.everEnrolled === false })
        if (applied === 'foreign_path') {
          log.warn(
            { ...fields, enrollment_path: describePath(path), tenant_id: current?.tenantId ?? null, path_tenant_id: origin.tenantId },
            'the device enrolled through an enrollment path of another tenant: it stays in its tenant (move it with POST /api/v1/devices/move)',
          )
          await deps.events.emit({
            type: 'foreign_enrollment_path',
            deviceId: channel.deviceId,
            enrollmentPath: describePath(path),
            pathTenantId: origin.tenantId,
            tenantId: current?.tenantId ?? null,
          })
        }
      }
      return emptyReply
    }
  }

  async function answer(message: CheckinMessage, identity: DeviceIdentity, body: Buffer): Promise<MdmReply> {
    const channel = message.channel
    const fields = { enrollment_id: channel.enrollmentId, device_id: channel.deviceId, message_type: message.type }

    if (message.type === 'Authenticate') return authenticate(message, identity, body)

    // TokenUpdate checks the binding inside its single statement; the rest here.
    if (message.type !== 'TokenUpdate') await requireBinding(channel, identity)

    switch (message.type) {
      case 'TokenUpdate': {
        const outcome = await deps.enrollments.updateToken(
          {
            enrollmentId: channel.enrollmentId,
            deviceId: channel.deviceId,
            channel: channel.kind,
            userId: channel.userId,
            userShortName: channel.userShortName,
            userLongName: channel.userLongName,
            topic: message.topic,
            token: message.token,
            pushMagic: message.pushMagic,
            ...(message.unlockToken?.length ? { unlockTokenSealed: deps.secrets.sealUnlockToken(channel.enrollmentId, message.unlockToken) } : {}),
            awaitingConfiguration: message.awaitingConfiguration,
          },
          identity.certificateSha256,
        )
        if (!outcome.ok) {
          if (outcome.reason === 'identity_mismatch') {
            throw new OrchardError('identity_rejected', `the certificate is not the one bound to device ${channel.deviceId}`)
          }
          throw new OrchardError('unknown_enrollment', `device ${channel.deviceId} has not authenticated`)
        }
        if (outcome.tokenUpdateCount === 1) {
          log.info({ ...fields, channel: channel.kind }, 'enrolled')
          await deps.events.emit({ type: 'enrolled', channel, awaitingConfiguration: message.awaitingConfiguration })
        } else {
          log.debug(fields, 'token updated')
        }
        return emptyReply
      }
      case 'CheckOut':
        await deps.enrollments.checkOut(channel.deviceId)
        log.info(fields, 'device checked out')
        await deps.events.emit({ type: 'checked_out', deviceId: channel.deviceId })
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
        await deps.secrets.setBootstrapToken(channel.deviceId, message.bootstrapToken)
        log.info({ ...fields, deleted: !message.bootstrapToken?.length }, 'bootstrap token stored')
        return emptyReply
      case 'GetBootstrapToken': {
        const token = await deps.secrets.getBootstrapToken(channel.deviceId)
        return plistReply(encodePlist(token ? { BootstrapToken: token } : {}))
      }
      case 'DeclarativeManagement':
        return deps.declarativeManagement.handle(channel, message.endpoint, message.data)
      case 'GetToken': {
        const handler = deps.tokenServices[message.tokenServiceType]
        if (!handler) {
          throw new OrchardError(
            'malformed_message',
            `GetToken: no token service for TokenServiceType ${JSON.stringify(message.tokenServiceType.slice(0, 100))}`,
          )
        }
        return plistReply(encodePlist({ TokenData: await handler(channel, message.tokenParameters) }))
      }
    }
  }

  return {
    async handleCheckin(message, identity, body) {
      const reply = await answer(message, identity, body)
      await deps.events.emit({ type: 'checkin', messageType: message.type, channel: message.channel, raw: message.raw })
      return reply
    },
  }
}
