// The server-created Activation Lock bypass code of organization-linked Activation Lock, as
// Apple's "Creating and using bypass codes" describes it: 16 random bytes written as 26
// symbols of Apple's alphabet (five bits each, the last one three) in groups 5-5-4-4-4-4,
// and the escrow key sent to Apple: PBKDF2-HMAC-SHA256 of those bytes (salt four zero
// bytes, 50,000 rounds, 32 bytes) in hex. The code, never the key, unlocks the device later,
// so it is kept (sealed) before the key leaves. A code a device generated is another one:
// it is opaque and never goes through escrowKeyOf.
// https://developer.apple.com/documentation/devicemanagement/creating-and-using-bypass-codes
import { pbkdf2, randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const alphabet = '0123456789ACDEFGHJKLMNPQRTUVWXYZ'
/** Symbols a dash precedes. */
const dashesBefore = new Set([5, 10, 14, 18, 22])
const rawLength = 16
const pbkdf2Async = promisify(pbkdf2)

/** The code of 16 bytes: `XXXXX-XXXXX-XXXX-XXXX-XXXX-XXX0`, 31 characters. */
export function encodeBypassCode(raw: Buffer): string {
  if (raw.length !== rawLength) throw new Error(`a bypass code holds ${rawLength} bytes`)
  let out = ''
  for (let bits = 0, symbol = 0; bits < rawLength * 8; symbol++) {
    if (dashesBefore.has(symbol)) out += '-'
    const width = Math.min(5, rawLength * 8 - bits)
    let value = 0
    for (let i = 0; i < width; i++, bits++) value = (value << 1) | ((raw[bits >> 3]! >> (7 - (bits & 7))) & 1)
    out += alphabet[value]
  }
  return out
}

/** The bytes of a code encodeBypassCode wrote; undefined for anything else (wrong length, dash, symbol or final bits). */
export function decodeBypassCode(code: string): Buffer | undefined {
  if (code.length !== 31) return undefined
  const raw = Buffer.alloc(rawLength)
  let bits = 0
  let symbol = 0
  for (const char of code) {
    if (char === '-') {
      if (!dashesBefore.has(symbol)) return undefined
      continue
    }
    const width = Math.min(5, rawLength * 8 - bits)
    const value = alphabet.indexOf(char)
    if (value < 0 || value >= 1 << width || bits >= rawLength * 8) return undefined
    for (let i = width - 1; i >= 0; i--, bits++) raw[bits >> 3] = raw[bits >> 3]! | (((value >> i) & 1) << (7 - (bits & 7)))
    symbol++
  }
  return bits === rawLength * 8 && encodeBypassCode(raw) === code ? raw : undefined
}

/** The escrow key Apple takes for a server-created code (lowercase hex, 64 characters); undefined when `code` is not one. */
export async function escrowKeyOf(code: string): Promise<string | undefined> {
  const raw = decodeBypassCode(code)
  if (!raw) return undefined
  return (await pbkdf2Async(raw, Buffer.alloc(4), 50_000, 32, 'sha256')).toString('hex')
}

/** A new server-created code and its escrow key. */
export async function createServerBypassCode(): Promise<{ code: string; escrowKey: string }> {
  const code = encodeBypassCode(randomBytes(rawLength))
  return { code, escrowKey: (await escrowKeyOf(code))! }
}
