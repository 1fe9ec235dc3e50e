// RC2 (RFC 2268), for the one place Orchard meets it: pbeWithSHAAnd40BitRC2-CBC, which
// older macOS Keychain exports and `openssl pkcs12 -legacy` use for the certificate bag of
// a PKCS#12 file. OpenSSL 3 moved RC2 to its legacy provider, which Node 20 does not load,
// so `crypto.createDecipheriv('rc2-40-cbc', ...)` is unavailable. Decryption of stored
// files only: nothing in Orchard should ever encrypt with RC2.

/** RFC 2268 §2: a permutation of 0..255 "based on the digits of pi". */
const PITABLE = Buffer.from(
  [
    'd9 78 f9 c4 19 dd b5 ed 28 e9 fd 79 4a a0 d8 9d',
    'c6 7e 37 83 2b 76 53 8e 62 4c 64 88 44 8b fb a2',
    '17 9a 59 f5 87 b3 4f 13 61 45 6d 8d 09 81 7d 32',
    'bd 8f 40 eb 86 b7 7b 0b f0 95 21 22 5c 6b 4e 82',
    '54 d6 65 93 ce 60 b2 1c 73 56 c0 14 a7 8c f1 dc',
    '12 75 ca 1f 3b be e4 d1 42 3d d4 30 a3 3c b6 26',
    '6f bf 0e da 46 69 07 57 27 f2 1d 9b bc 94 43 03',
    'f8 11 c7 f6 90 ef 3e e7 06 c3 d5 2f c8 66 1e d7',
    '08 e8 ea de 80 52 ee f7 84 aa 72 ac 35 4d 6a 2a',
    '96 1a d2 71 5a 15 49 74 4b 9f d0 5e 04 18 a4 ec',
    'c2 e0 41 6e 0f 51 cb cc 24 91 af 50 a1 f4 70 39',
    '99 7c 3a 85 23 b8 b4 7a fc 02 36 5b 25 55 97 31',
    '2d 5d fa 98 e3 8a 92 ae 05 df 29 10 67 6c ba c9',
    'd3 00 e6 cf e1 9e a8 2c 63 16 01 3f 58 e2 89 a9',
    '0d 38 34 1b ab 33 ff b0 bb 48 0c 5f b9 b1 cd 2e',
    'c5 f3 db 47 e5 a5 9c 77 0a a6 20 68 fe 7f c1 ad',
  ]
    .join('')
    .replaceAll(' ', ''),
  'hex',
)

const BLOCK = 8

/** The 64 16-bit subkeys K[0..63] of RFC 2268 §2 for `key` at `effectiveBits` (T1). */
export function rc2ExpandKey(key: Uint8Array, effectiveBits: number): Uint16Array {
  if (key.length < 1 || key.length > 128) throw new RangeError(`RC2 key must be 1 to 128 bytes, got ${key.length}`)
  if (!Number.isInteger(effectiveBits) || effectiveBits < 1 || effectiveBits > 1024) {
    throw new RangeError(`RC2 effective key bits must be 1 to 1024, got ${effectiveBits}`)
  }
  const t = key.length
  // Trap: the effective key length (T1) is a parameter of its own, independent of the key
  // length; PKCS#12's "40-bit RC2" is a 5-byte key *and* T1 = 40.
  const t8 = Math.ceil(effectiveBits / 8)
  const tm = 0xff >> (8 * t8 - effectiveBits)
  const l = new Uint8Array(128)
  l.set(key)
  for (let i = t; i < 128; i++) l[i] = PITABLE[(l[i - 1]! + l[i - t]!) & 0xff]!
  l[128 - t8] = PITABLE[l[128 - t8]! & tm]!
  for (let i = 127 - t8; i >= 0; i--) l[i] = PITABLE[l[i + 1]! ^ l[i + t8]!]!
  const k = new Uint16Array(64)
  for (let i = 0; i < 64; i++) k[i] = l[2 * i]! | (l[2 * i + 1]! << 8)
  return k
}

const SHIFTS = [1, 2, 3, 5] as const

/** Encrypts one 8-byte block in place (RFC 2268 §3). Used by the tests against the RFC's vectors. */
export function rc2EncryptBlock(k: Uint16Array, block: Uint8Array, offset = 0): void {
  const r = readWords(block, offset)
  let j = 0
  const mix = () => {
    for (let i = 0; i < 4; i++) {
      const sum = r[i]! + k[j++]! + (r[(i + 3) & 3]! & r[(i + 2) & 3]!) + (~r[(i + 3) & 3]! & r[(i + 1) & 3]!)
      const word = sum & 0xffff
      r[i] = ((word << SHIFTS[i]!) | (word >>> (16 - SHIFTS[i]!))) & 0xffff
    }
  }
  const mash = () => {
    for (let i = 0; i < 4; i++) r[i] = (r[i]! + k[r[(i + 3) & 3]! & 63]!) & 0xffff
  }
  for (let n = 0; n < 5; n++) mix()
  mash()
  for (let n = 0; n < 6; n++) mix()
  mash()
  for (let n = 0; n < 5; n++) mix()
  writeWords(r, block, offset)
}

/** Decrypts one 8-byte block in place (RFC 2268 §4). */
export function rc2DecryptBlock(k: Uint16Array, block: Uint8Array, offset = 0): void {
  const r = readWords(block, offset)
  let j = 63
  const rmix = () => {
    for (let i = 3; i >= 0; i--) {
      const word = r[i]!
      const rotated = ((word >>> SHIFTS[i]!) | (word << (16 - SHIFTS[i]!))) & 0xffff
      r[i] = (rotated - k[j--]! - (r[(i + 3) & 3]! & r[(i + 2) & 3]!) - (~r[(i + 3) & 3]! & r[(i + 1) & 3]!)) & 0xffff
    }
  }
  const rmash = () => {
    for (let i = 3; i >= 0; i--) r[i] = (r[i]! - k[r[(i + 3) & 3]! & 63]!) & 0xffff
  }
  for (let n = 0; n < 5; n++) rmix()
  rmash()
  for (let n = 0; n < 6; n++) rmix()
  rmash()
  for (let n = 0; n < 5; n++) rmix()
  writeWords(r, block, offset)
}

/**
 * RC2-CBC decryption. Returns the plaintext *with* its padding: the caller removes the
 * PKCS#7 padding (RFC 8018 §6.1.1 step 4) and decides what a bad pad means.
 */
export function rc2CbcDecrypt(key: Uint8Array, effectiveBits: number, iv: Uint8Array, ciphertext: Uint8Array): Buffer {
  if (iv.length !== BLOCK) throw new RangeError(`RC2-CBC IV must be ${BLOCK} bytes, got ${iv.length}`)
  if (ciphertext.length === 0 || ciphertext.length % BLOCK !== 0) {
    throw new RangeError(`RC2-CBC ciphertext must be a non-zero multiple of ${BLOCK} bytes, got ${ciphertext.length}`)
  }
  const k = rc2ExpandKey(key, effectiveBits)
  const out = Buffer.from(ciphertext)
  for (let offset = out.length - BLOCK; offset >= 0; offset -= BLOCK) {
    rc2DecryptBlock(k, out, offset)
    const previous = offset === 0 ? iv : ciphertext.subarray(offset - BLOCK, offset)
    for (let i = 0; i < BLOCK; i++) out[offset + i]! ^= previous[i]!
  }
  k.fill(0)
  return out
}

// The four 16-bit words R[0..3] are little-endian (RFC 2268 §3: "R[0] ... low-order byte first").
function readWords(block: Uint8Array, offset: number): number[] {
  if (offset < 0 || offset + BLOCK > block.length) throw new RangeError('RC2 block out of range')
  return [0, 1, 2, 3].map((i) => block[offset + 2 * i]! | (block[offset + 2 * i + 1]! << 8))
}

function writeWords(r: number[], block: Uint8Array, offset: number): void {
  for (let i = 0; i < 4; i++) {
    block[offset + 2 * i] = r[i]! & 0xff
    block[offset + 2 * i + 1] = r[i]! >>> 8
  }
}
