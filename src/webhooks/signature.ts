// The signature on every webhook delivery (what a receiver checks):
//   orchard-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, `${t}.${body}`)>
// where `key` is the UTF-8 bytes of the whole secret as shown at creation (`whsec_...`
// included) and `body` the exact request body bytes. A receiver recomputes the HMAC,
// compares in constant time, and rejects a `t` too far from its clock (replays). It may
// see several `v1=` entries and accepts the request when any one matches.
// `verifyWebhookSignature` below does all of that.
import { createHmac, timingSafeEqual } from 'node:crypto'

export const SIGNATURE_HEADER = 'orchard-signature'

/** The `orchard-signature` header value for `body` sent at `timestampSeconds`. */
export function signWebhookBody(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return `t=${timestampSeconds},v1=${hmacHex(secret, timestampSeconds, body)}`
}

/**
 * For receivers: true when `header` (the `orchard-signature` value) carries a v1 signature of
 * `body` made with `secret`, at a time within `toleranceSeconds` of `nowSeconds`.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined,
  body: string | Buffer,
  toleranceSeconds: number,
  nowSeconds: number,
): boolean {
  if (!header) return false
  let timestamp: number | undefined
  const signatures: Buffer[] = []
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2)
    if (key === 't' && value && /^\d{1,12}$/.test(value)) timestamp = Number(value)
    else if (key === 'v1' && value && /^[0-9a-f]{64}$/i.test(value)) signatures.push(Buffer.from(value, 'hex'))
  }
  if (timestamp === undefined || signatures.length === 0) return false
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false
  const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex')
  return signatures.some((signature) => timingSafeEqual(signature, expected))
}

function hmacHex(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${timestampSeconds}.`).update(body).digest('hex')
}
