// Types shared by the MDM services and the device-facing HTTP surface.

/** Who sent a request: the device identity certificate, verified against our trusted CAs. */
export interface DeviceIdentity {
  /** Lowercase hex SHA-256 of the certificate DER: what enrollments are bound to. */
  certificateSha256: string
  notAfter: Date | null
}

/** What to answer a device: a body (plist or JSON) or the zero-byte 200. */
export interface MdmReply {
  status: number
  body: Buffer | null
  contentType?: string
}

export const emptyReply: MdmReply = Object.freeze({ status: 200, body: null })

export function plistReply(body: Buffer): MdmReply {
  return { status: 200, body, contentType: 'application/xml' }
}

export function jsonReply(value: unknown, status = 200): MdmReply {
  return { status, body: Buffer.from(JSON.stringify(value)), contentType: 'application/json' }
}
