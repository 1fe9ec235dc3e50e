// Decorators that turn check-ins and command results into webhook events. They wrap the
// core services and forward everything; an event is recorded (outbox) after the message
// was handled, and never changes the device's answer.
import { plistToJson } from '../mdm/json.js'
import type { PlistDict } from '../mdm/plist.js'
import type { CheckinService } from '../device/checkin-service.js'
import type { CommandService } from '../device/command-service.js'
import type { WebhookEventType, WebhookService } from './webhook-service.js'

type Emit = Pick<WebhookService, 'emit'>

/** Secrets a device sends that must not leave the server. */
const secretKeys = new Set(['Token', 'PushMagic', 'UnlockToken', 'BootstrapToken', 'DigestResponse', 'AuthToken'])

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

export function withCheckinEvents(inner: CheckinService, webhooks: Emit): CheckinService {
  return {
    async handleCheckin(message, identity, body) {
      const reply = await inner.handleCheckin(message, identity, body)
      const { channel } = message
      await webhooks.emit(checkinEventTypes[message.type] ?? 'checkin.other', {
        message_type: message.type,
        device_id: channel.deviceId,
        enrollment_id: channel.enrollmentId,
        channel: channel.kind,
        message: withoutSecrets(message.raw),
      })
      return reply
    },
  }
}

export function withCommandResultEvents(inner: CommandService, webhooks: Emit): CommandService {
  return {
    ...inner,
    async handleReport(report, identity, body) {
      const next = await inner.handleReport(report, identity, body)
      if (report.status !== 'Idle') {
        await webhooks.emit('command.result', {
          device_id: report.channel.deviceId,
          enrollment_id: report.channel.enrollmentId,
          command_uuid: report.commandUuid ?? null,
          status: report.status,
          error_chain: report.errorChain ?? null,
          result: withoutSecrets(report.raw),
        })
      }
      return next
    },
  }
}
