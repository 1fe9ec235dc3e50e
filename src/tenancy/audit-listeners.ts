// Device events in the device's timeline (audit_events, category device): what the check-in
// pipeline learned, with the billing periods that enrolling and checking out open and close.
import type { DeviceEventListeners } from '../device/events.js'
import { identityChangeJson } from '../device/events.js'
import type { AuditStore } from './audit-store.js'

export function auditDeviceListeners(
  audit: Pick<AuditStore, 'appendDeviceEvent' | 'deviceEnrolled' | 'deviceCheckedOut'>,
  now: () => Date = () => new Date(),
): DeviceEventListeners {
  return {
    enrolled: [
      ({ channel, awaitingConfiguration }) =>
        channel.kind === 'device' && audit.deviceEnrolled(channel.deviceId, now(), { awaiting_configuration: awaitingConfiguration }),
    ],
    checked_out: [({ deviceId }) => audit.deviceCheckedOut(deviceId, now())],
    identity_renewed: [
      ({ deviceId, certificateSha256, notAfter }) =>
        audit.appendDeviceEvent({
          deviceId,
          action: 'identity_renewed',
          details: { identity_sha256: certificateSha256, identity_not_after: notAfter?.toISOString() ?? null },
          at: now(),
        }),
    ],
    reenrolled: [
      (event) =>
        audit.appendDeviceEvent({
          deviceId: event.deviceId,
          action: 'reenrolled',
          details: { ...identityChangeJson(event), reason: event.because },
          at: now(),
        }),
    ],
    identity_conflict: [
      (event) =>
        audit.appendDeviceEvent({
          deviceId: event.deviceId,
          action: 'identity_conflict',
          outcome: 'failure',
          details: { ...identityChangeJson(event), reason: event.because, detail: event.detail },
          at: now(),
        }),
    ],
    foreign_enrollment_path: [
      ({ deviceId, enrollmentPath, pathTenantId }) =>
        audit.appendDeviceEvent({
          deviceId,
          action: 'foreign_enrollment_path',
          details: { enrollment_path: enrollmentPath, path_tenant_id: pathTenantId },
          at: now(),
        }),
    ],
  }
}
