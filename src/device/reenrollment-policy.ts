// Who may bind a new identity certificate to a device that already has one. Without this,
// anyone who opens any enrollment link gets an identity over SCEP and sends Authenticate
// with another device's UDID: the device's queue, and its place in its tenant, would be
// theirs. An Authenticate for an active enrollment bound to another certificate is a
// re-enrollment claim, accepted only on one of the grounds below. Pure: no I/O.
import type { IdentityOrigin } from '../enrollment/enrollment-link-store.js'
import type { DeviceBinding } from './enrollment-store.js'

/** How the presented identity was obtained, as far as Orchard knows. */
export type EnrollmentPath =
  | { kind: 'link'; linkId: string; tenantId: string | null }
  | { kind: 'ade'; depProfileId: string; serialNumber: string | null; tenantId: string | null }
  | { kind: 'open' }
  | { kind: 'static_challenge' }
  /** Issued to renew the identity of this device. */
  | { kind: 'renewal'; deviceId: string | null }
  /** A certificate Orchard did not issue (a CA of ORCHARD_DEVICE_CA_FILES). */
  | { kind: 'external' }

export type AcceptedBecause =
  | 'new_device'
  | 'same_identity'
  | 'unbound'
  | 'renewal'
  | 'not_active'
  | 'wiped'
  | 'retired'
  | 'checked_out'
  | 'admin_allowed'
  | 'ade_serial'
  | 'own_tenant_path'

export type RefusedBecause = 'serial_mismatch' | 'foreign_tenant_path' | 'no_enrollment_path'

export type ReenrollmentVerdict = { accept: true; because: AcceptedBecause } | { accept: false; because: RefusedBecause; detail: string }

export function enrollmentPathOf(origin: IdentityOrigin | undefined): EnrollmentPath {
  if (!origin) return { kind: 'external' }
  if (origin.authorizedBy === 'renewal' || origin.deviceId !== null) return { kind: 'renewal', deviceId: origin.deviceId }
  if (origin.enrollmentLinkId !== null) return { kind: 'link', linkId: origin.enrollmentLinkId, tenantId: origin.tenantId }
  if (origin.depProfileId !== null) return { kind: 'ade', depProfileId: origin.depProfileId, serialNumber: origin.adeSerialNumber, tenantId: origin.tenantId }
  return origin.authorizedBy === 'static_challenge' ? { kind: 'static_challenge' } : { kind: 'open' }
}

/** A short text for logs and audit rows: link:<id>, ade:<profile>, open, static_challenge, renewal:<device>, external. */
export function describePath(path: EnrollmentPath): string {
  switch (path.kind) {
    case 'link':
      return `link:${path.linkId}`
    case 'ade':
      return `ade:${path.depProfileId}`
    case 'renewal':
      return `renewal:${path.deviceId ?? '?'}`
    default:
      return path.kind
  }
}

/** The tenant whose enrollment path it is (null: central IT); undefined: no tenant's path. */
function pathTenant(path: EnrollmentPath): string | null | undefined {
  switch (path.kind) {
    case 'link':
    case 'ade':
      return path.tenantId
    // Open enrollment and the static challenge are central IT's.
    case 'open':
    case 'static_challenge':
      return null
    default:
      return undefined
  }
}

export interface AuthenticateClaim {
  deviceId: string
  identitySha256: string
  /** The SerialNumber of the Authenticate, if any. */
  reportedSerial: string | undefined
  path: EnrollmentPath
  now: Date
}

export function judgeAuthenticate(current: DeviceBinding | undefined, claim: AuthenticateClaim): ReenrollmentVerdict {
  if (!current) return { accept: true, because: 'new_device' }
  if (current.identitySha256 === claim.identitySha256) return { accept: true, because: 'same_identity' }
  if (current.identitySha256 === null) return { accept: true, because: 'unbound' }
  if (claim.path.kind === 'renewal' && claim.path.deviceId === claim.deviceId) return { accept: true, because: 'renewal' }

  // Other hardware never answers to this UDID. A device whose serial we know must report it.
  if (current.serialNumber !== null && claim.reportedSerial !== current.serialNumber) {
    const reported = claim.reportedSerial === undefined ? 'no SerialNumber' : `SerialNumber ${JSON.stringify(claim.reportedSerial.slice(0, 64))}`
    return { accept: false, because: 'serial_mismatch', detail: `the Authenticate reports ${reported}, the device has ${current.serialNumber}` }
  }
  if (current.lifecycleState === 'wiped') return { accept: true, because: 'wiped' }
  if (current.lifecycleState === 'retired') return { accept: true, because: 'retired' }
  if (!current.active) return { accept: true, because: current.checkedOut ? 'checked_out' : 'not_active' }
  if (current.reenrollmentAllowedUntil !== null && current.reenrollmentAllowedUntil.getTime() > claim.now.getTime())
    return { accept: true, because: 'admin_allowed' }
  const path = claim.path
  if (path.kind === 'ade' && path.serialNumber !== null && path.serialNumber === current.serialNumber) return { accept: true, because: 'ade_serial' }
  const tenant = pathTenant(path)
  if (tenant === undefined) {
    return {
      accept: false,
      because: 'no_enrollment_path',
      detail: `the new certificate came through no enrollment path of the device's tenant (${describePath(path)})`,
    }
  }
  if (tenant !== current.tenantId) {
    return {
      accept: false,
      because: 'foreign_tenant_path',
      detail: `the new certificate came through an enrollment path of another tenant (${describePath(path)})`,
    }
  }
  return { accept: true, because: 'own_tenant_path' }
}
