// The fake ABM/ASM's POST /device/activationlock (organization-linked Activation Lock), as
// Apple documents it: a JSON body {device, escrow_key?, lost_message?}, 400
// MALFORMED_REQUEST_BODY when it is not one, else 200 {serial_number, response_status} with
// SUCCESS, NOT_ACCESSIBLE (not a device of this server), DEVICE_ALREADY_LOCKED, or FAILED
// (a serial in failSerials). escrow_key must be the 64 hex characters of the hash.
// https://developer.apple.com/documentation/devicemanagement/activation-lock-devices

export interface FakeActivationLock {
  /** The escrow key sent (null: none, the device locked to the person who created the server in ABM). */
  escrowKey: string | null
  lostMessage: string | null
  lockedAt: string
}

interface Reply {
  status: number
  body: unknown
}

export function activationLockRoute(fake: {
  devices: ReadonlyMap<string, unknown>
  failSerials: ReadonlySet<string>
  activationLocks: Map<string, FakeActivationLock>
  now: () => Date
}): (body: Record<string, unknown>) => Reply {
  return (body) => {
    const { device, escrow_key: escrowKey, lost_message: lostMessage, ...rest } = body
    const malformed =
      typeof device !== 'string' ||
      device === '' ||
      Object.keys(rest).length > 0 ||
      (escrowKey !== undefined && (typeof escrowKey !== 'string' || !/^[0-9a-fA-F]{64}$/.test(escrowKey))) ||
      (lostMessage !== undefined && typeof lostMessage !== 'string')
    if (malformed) return { status: 400, body: 'MALFORMED_REQUEST_BODY' }
    const answer = (status: string): Reply => ({ status: 200, body: { serial_number: device, response_status: status } })
    if (!fake.devices.has(device)) return answer('NOT_ACCESSIBLE')
    if (fake.failSerials.has(device)) return answer('FAILED')
    if (fake.activationLocks.has(device)) return answer('DEVICE_ALREADY_LOCKED')
    fake.activationLocks.set(device, {
      escrowKey: typeof escrowKey === 'string' ? escrowKey.toLowerCase() : null,
      lostMessage: typeof lostMessage === 'string' ? lostMessage : null,
      lockedAt: fake.now().toISOString(),
    })
    return answer('SUCCESS')
  }
}
