// Device events as webhook events: check-ins and command reports become outbox rows after the
// message was handled (the device's answer never waits on a receiver), without the secrets a
// device sends; identity conflicts and re-enrollments as device.* events.
import { identityChangeJson, type DeviceEventListeners } from '../device/events.js'
import { plistToJson } from '../mdm/json.js'
import type { PlistDict } from '../mdm/plist.js'
import type { WebhookEventType, WebhookService } from './webhook-service.js'

type Emit = Pick<WebhookService, 'emit' | 'emitBuilt'>

/** Secrets a device sends that must not leave the server. */
const secretKeys = new Set(['Token', 'PushMagic', 'UnlockToken', 'BootstrapToken', 'DigestResponse', 'AuthToken', 'ActivationLockBypassCode'])

function withoutSecrets(raw: PlistDict) {
  const kept: PlistDict = {}
  for (const [key, value] of Object.entries(raw)) if (!secretKeys.has(key)) kept[key] = value
  return plistToJson(kept)
}

const checkinEventTypes: Record<string, WebhookEventType> = {
  Authenticate: 'checkin.authenticate',
  TokenUpdate: 'checkin.token_update',
  CheckOut: 'checkin.checkout',
}

/** The device events that feed webhooks. */
export function webhookDeviceListeners(webhooks: Emit): DeviceEventListeners {
  return {
    reenrolled: [(event) => webhooks.emit('device.reenrolled', { device_id: event.deviceId, ...identityChangeJson(event), reason: event.because })],
    identity_conflict: [
      (event) =>
        webhooks.emit('device.identity_conflict', {
          device_id: event.deviceId,
          tenant_id: event.tenantId,
          ...identityChangeJson(event),
          reason: event.because,
          detail: event.detail,
        }),
    ],
    checkin: [
      ({ messageType, channel, raw }) =>
        webhooks.emitBuilt(checkinEventTypes[messageType] ?? 'checkin.other', () => ({
          message_type: messageType,
          device_id: channel.deviceId,
          enrollment_id: channel.enrollmentId,
          channel: channel.kind,
          message: withoutSecrets(raw),
        })),
    ],
    report: [
      ({ report }) =>
        webhooks.emitBuilt('command.result', () => ({
          device_id: report.channel.deviceId,
          enrollment_id: report.channel.enrollmentId,
          command_uuid: report.commandUuid ?? null,
          status: report.status,
          error_chain: report.errorChain ?? null,
          result: withoutSecrets(report.raw),
        })),
    ],
  }
}
