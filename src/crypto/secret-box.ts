// Envelope encryption for secrets at rest (push certificate private keys).
//
// Each secret gets a fresh random 256-bit data key that encrypts it with AES-256-GCM; the
// data key is wrapped with a master key (AES-256-GCM too). Only the wrapped data key ever
// meets the master key, and rotating master keys needs no bulk re-encryption: the first
// configured key seals, every configured key opens.
//
// Sealed format, version 1 (all lengths in bytes):
//
//   offset  length  field
//        0       1  format version (1)
//        1       8  master key id: the first 8 bytes of SHA-256(master key)
//        9      12  IV of the data-key wrap
//       21      32  wrapped data key
//       53      16  GCM tag of the wrap
//       69      12  IV of the payload
//       81       n  payload ciphertext
//     81+n      16  GCM tag of the payload
//
// Each GCM operation authenticates, as additional data, every byte written before its IV
// plus the caller's associated data (UTF-8). So a sealed value only opens with the same
// associated data (a key sealed for one row cannot be pasted into another), and changing
// any byte, the version and key id included, fails authentication instead of returning
// garbage. 96-bit random IVs are safe here: each data key encrypts exactly one message,
// and the master key wraps one data key per secret, far below the 2^32 bound of
// NIST SP 800-38D §8.3.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'

export interface SecretBox {
  /** Encrypts `plaintext` under a fresh data key; `associatedData` must be given again to open it. */
  seal(plaintext: Buffer, associatedData?: string): Buffer
  /** Decrypts a value from `seal`; throws SecretBoxError when it does not authenticate. */
  open(sealed: Buffer, associatedData?: string): Buffer
}

export class SecretBoxError extends Error {
  override readonly name = 'SecretBoxError'
}

const VERSION = 1
const KEY_BYTES = 32
const KEY_ID_BYTES = 8
const IV_BYTES = 12
const TAG_BYTES = 16
const WRAP_IV_AT = 1 + KEY_ID_BYTES
const WRAPPED_AT = WRAP_IV_AT + IV_BYTES
const WRAP_TAG_AT = WRAPPED_AT + KEY_BYTES
const PAYLOAD_IV_AT = WRAP_TAG_AT + TAG_BYTES
const PAYLOAD_AT = PAYLOAD_IV_AT + IV_BYTES
const MIN_SEALED = PAYLOAD_AT + TAG_BYTES

interface MasterKey {
  id: Buffer
  key: Buffer
}

/** The id recorded in sealed values: the first 8 bytes of SHA-256 of the master key. */
export function masterKeyId(masterKey: Buffer): string {
  return keyId(masterKey).toString('hex')
}

function keyId(key: Buffer): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, KEY_ID_BYTES)
}

/** `masterKeys`: 32 bytes each; the first seals, all of them open (put a new key first to rotate). */
export function createSecretBox(masterKeys: readonly Buffer[]): SecretBox {
  if (masterKeys.length === 0) throw new SecretBoxError('a secret box needs at least one master key')
  const keys: MasterKey[] = masterKeys.map((key, index) => {
    if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
      throw new SecretBoxError(`master key #${index + 1} must be ${KEY_BYTES} bytes, got ${Buffer.isBuffer(key) ? key.length : typeof key}`)
    }
    const copy = Buffer.from(key)
    return { id: keyId(copy), key: copy }
  })
  const sealing = keys[0]!

  return {
    seal(plaintext, associatedData = '') {
      const ad = Buffer.from(associatedData, 'utf8')
      const dataKey = randomBytes(KEY_BYTES)
      try {
        const header = Buffer.concat([Buffer.of(VERSION), sealing.id])
        const wrapIv = randomBytes(IV_BYTES)
        const wrap = gcmEncrypt(sealing.key, wrapIv, dataKey, Buffer.concat([header, ad]))
        const prefix = Buffer.concat([header, wrapIv, wrap.ciphertext, wrap.tag])
        const payloadIv = randomBytes(IV_BYTES)
        const payload = gcmEncrypt(dataKey, payloadIv, plaintext, Buffer.concat([prefix, ad]))
        return Buffer.concat([prefix, payloadIv, payload.ciphertext, payload.tag])
      } finally {
        dataKey.fill(0)
      }
    },

    open(input, associatedData = '') {
      // PGlite hands bytea back as a plain Uint8Array, node-postgres as a Buffer: take both.
      const bytes: unknown = input
      if (!(bytes instanceof Uint8Array)) throw new SecretBoxError('sealed value must be bytes (Buffer or Uint8Array)')
      const sealed = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      if (sealed.length < MIN_SEALED) {
        throw new SecretBoxError(`sealed value is ${sealed.length} bytes, shorter than the ${MIN_SEALED} of an empty one: not a secret-box value`)
      }
      const version = sealed[0]!
      if (version !== VERSION) throw new SecretBoxError(`sealed value has format version ${version}; this Orchard reads version ${VERSION}`)
      const id = sealed.subarray(1, WRAP_IV_AT)
      // Several keys could share an id only by a 64-bit collision; try each, it costs nothing.
      const candidates = keys.filter((k) => k.id.equals(id))
      if (candidates.length === 0) {
        throw new SecretBoxError(
          `sealed with an unknown master key (id ${id.toString('hex')}); the configured keys have ids ${keys.map((k) => k.id.toString('hex')).join(', ')}`,
        )
      }
      const ad = Buffer.from(associatedData, 'utf8')
      const header = sealed.subarray(0, WRAP_IV_AT)
      const wrapIv = sealed.subarray(WRAP_IV_AT, WRAPPED_AT)
      const wrapped = sealed.subarray(WRAPPED_AT, WRAP_TAG_AT)
      const wrapTag = sealed.subarray(WRAP_TAG_AT, PAYLOAD_IV_AT)
      for (const candidate of candidates) {
        const dataKey = gcmDecrypt(candidate.key, wrapIv, wrapped, wrapTag, Buffer.concat([header, ad]))
        if (!dataKey) continue
        try {
          const plaintext = gcmDecrypt(
            dataKey,
            sealed.subarray(PAYLOAD_IV_AT, PAYLOAD_AT),
            sealed.subarray(PAYLOAD_AT, sealed.length - TAG_BYTES),
            sealed.subarray(sealed.length - TAG_BYTES),
            Buffer.concat([sealed.subarray(0, PAYLOAD_IV_AT), ad]),
          )
          if (plaintext) return plaintext
        } finally {
          dataKey.fill(0)
        }
      }
      throw new SecretBoxError('sealed value does not authenticate: it was modified, or it was sealed with other associated data')
    },
  }
}

function gcmEncrypt(key: Buffer, iv: Buffer, plaintext: Buffer, aad: Buffer): { ciphertext: Buffer; tag: Buffer } {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(aad)
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return { ciphertext, tag: cipher.getAuthTag() }
}

/** null when the tag does not verify. */
function gcmDecrypt(key: Buffer, iv: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer | null {
  // authTagLength pins the tag size: without it GCM would accept a truncated tag.
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  decipher.setAAD(aad)
  decipher.setAuthTag(tag)
  const plaintext = decipher.update(ciphertext)
  try {
    return Buffer.concat([plaintext, decipher.final()])
  } catch {
    plaintext.fill(0)
    return null
  }
}

/**
 * A master key as configured: 64 hex characters, or base64 (standard or URL-safe, padding
 * optional) of 32 bytes. The message never echoes the text: it is a secret.
 */
export function parseMasterKey(text: string): Buffer {
  const trimmed = text.trim()
  let key: Buffer | null = null
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) key = Buffer.from(trimmed, 'hex')
  else if (/^[A-Za-z0-9+/]{43}=?$/.test(trimmed)) key = Buffer.from(trimmed, 'base64')
  else if (/^[A-Za-z0-9_-]{43}=?$/.test(trimmed)) key = Buffer.from(trimmed, 'base64url')
  // 43 base64 characters carry 258 bits: the last 2 must be zero for exactly 32 bytes.
  if (key && key.length === KEY_BYTES && reencodes(trimmed, key)) return key
  throw new SecretBoxError(
    `a master key must be 64 hex characters or base64 of 32 bytes, e.g. from \`openssl rand -hex 32\` (got ${trimmed.length} characters${
      trimmed.length === 0 ? '' : /^[0-9a-fA-F]+$/.test(trimmed) ? ' of hex' : ''
    })`,
  )
}

function reencodes(text: string, key: Buffer): boolean {
  if (text.length === 64) return true
  const canonical = /[-_]/.test(text) ? key.toString('base64url') : key.toString('base64').replace(/=$/, '')
  return canonical === text.replace(/=$/, '')
}
