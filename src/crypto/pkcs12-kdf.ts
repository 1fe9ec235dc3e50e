// Key derivation for PKCS#12: the password encodings and the KDF of RFC 7292 Appendix B
// (MAC keys and the legacy PBE schemes), and the PBKDF2 parameters of PBES2 and PBMAC1
// (RFC 8018), with the bounds on what one upload can make us compute.
import { createHash } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { describeOid, invalid, octets, unsupported } from './pkcs12-asn1.js'

/** Bounds what one upload can make us compute (OpenSSL and macOS use 2048). */
const MAX_ITERATIONS = 1_000_000

export interface HashInfo {
  name: string
  /** Output bytes (u of RFC 7292 B.2). */
  u: number
  /** Block bytes (v of RFC 7292 B.2). */
  v: number
}

export const DIGESTS: Record<string, HashInfo> = {
  '1.3.14.3.2.26': { name: 'sha1', u: 20, v: 64 },
  '2.16.840.1.101.3.4.2.4': { name: 'sha224', u: 28, v: 64 },
  '2.16.840.1.101.3.4.2.1': { name: 'sha256', u: 32, v: 64 },
  '2.16.840.1.101.3.4.2.2': { name: 'sha384', u: 48, v: 128 },
  '2.16.840.1.101.3.4.2.3': { name: 'sha512', u: 64, v: 128 },
}

/** HMAC algorithms of PBKDF2's prf and PBMAC1's messageAuthScheme (RFC 8018 Appendix B.1.2). */
export const HMACS: Record<string, HashInfo> = {
  '1.2.840.113549.2.7': DIGESTS['1.3.14.3.2.26']!,
  '1.2.840.113549.2.8': DIGESTS['2.16.840.1.101.3.4.2.4']!,
  '1.2.840.113549.2.9': DIGESTS['2.16.840.1.101.3.4.2.1']!,
  '1.2.840.113549.2.10': DIGESTS['2.16.840.1.101.3.4.2.2']!,
  '1.2.840.113549.2.11': DIGESTS['2.16.840.1.101.3.4.2.3']!,
}

/**
 * The password as RFC 7292 Appendix B.1 feeds it to its KDF: a BMPString (UTF-16BE) with
 * a terminating 00 00. Trap: an empty password has two encodings in the wild, "00 00"
 * (the rule) and zero bytes (OpenSSL's NULL password); the MAC tells which one was used.
 */
export function passwordForms(password: string): Buffer[] {
  const bmp = Buffer.alloc(password.length * 2 + 2)
  // JS strings are UTF-16 already: characters beyond the BMP stay surrogate pairs, as OpenSSL writes them.
  for (let i = 0; i < password.length; i++) bmp.writeUInt16BE(password.charCodeAt(i), i * 2)
  return password === '' ? [bmp, Buffer.alloc(0)] : [bmp]
}

/**
 * The PKCS#12 key derivation function of RFC 7292 Appendix B.2. `id` is the purpose
 * (B.3): 1 = cipher key, 2 = IV, 3 = MAC key. `password` is already BMP-encoded.
 */
export function pkcs12Kdf(hash: string, id: 1 | 2 | 3, password: Buffer, salt: Buffer, iterations: number, length: number): Buffer {
  const info = Object.values(DIGESTS).find((d) => d.name === hash)
  if (!info) throw new RangeError(`no PKCS#12 KDF for hash ${hash}`)
  const { u, v } = info
  const repeatTo = (input: Buffer, size: number) => {
    const out = Buffer.alloc(size)
    for (let i = 0; i < size; i++) out[i] = input[i % input.length]!
    return out
  }
  const diversifier = Buffer.alloc(v, id)
  // Steps 2-4: S and P are the salt and password repeated to whole v-byte blocks (empty stays empty).
  const input = Buffer.concat([repeatTo(salt, v * Math.ceil(salt.length / v)), repeatTo(password, v * Math.ceil(password.length / v))])
  const blocks = Math.ceil(length / u)
  const output: Buffer[] = []
  for (let i = 0; i < blocks; i++) {
    let a = createHash(hash).update(diversifier).update(input).digest()
    for (let r = 1; r < iterations; r++) a = createHash(hash).update(a).digest()
    output.push(a)
    if (i === blocks - 1) break
    // Step 6C: every v-byte block I_j of I becomes (I_j + B + 1) mod 2^(8v), B = A repeated to v bytes.
    const b = repeatTo(a, v)
    for (let j = 0; j < input.length; j += v) {
      let carry = 1
      for (let k = v - 1; k >= 0; k--) {
        const sum = input[j + k]! + b[k]! + carry
        input[j + k] = sum & 0xff
        carry = sum >> 8
      }
    }
  }
  return Buffer.concat(output).subarray(0, length)
}

export function readPbkdf2(kdf: pkijs.AlgorithmIdentifier, what: string): { salt: Buffer; iterations: number; keyLength: number | undefined; prf: HashInfo } {
  let params: pkijs.PBKDF2Params
  try {
    params = new pkijs.PBKDF2Params({ schema: kdf.algorithmParams })
  } catch (error) {
    throw invalid(`${what}: the PBKDF2 parameters do not parse: ${(error as Error).message}`, error)
  }
  // salt is CHOICE { specified OCTET STRING, otherSource AlgorithmIdentifier }; nobody uses otherSource.
  if (!(params.salt instanceof asn1js.OctetString)) throw unsupported(`${what}: PBKDF2 with an otherSource salt`)
  const prfOid = params.prf?.algorithmId ?? '1.2.840.113549.2.7' // DEFAULT hmacWithSHA1 (RFC 8018 Appendix A.2)
  const prf = HMACS[prfOid]
  if (!prf) throw unsupported(`${what}: PBKDF2 with pseudo-random function ${describeOid(prfOid)}`)
  if (params.keyLength !== undefined && (!Number.isSafeInteger(params.keyLength) || params.keyLength < 1 || params.keyLength > 64)) {
    throw invalid(`${what}: PBKDF2 keyLength ${params.keyLength} is out of range`)
  }
  return { salt: octets(params.salt, 'the PBKDF2 salt'), iterations: checkIterations(params.iterationCount, what), keyLength: params.keyLength, prf }
}

export function checkIterations(iterations: number, what: string): number {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw invalid(`${what}: iteration count ${iterations} is not a positive integer`)
  if (iterations > MAX_ITERATIONS) throw invalid(`${what}: iteration count ${iterations} is above the ${MAX_ITERATIONS} this server accepts`)
  return iterations
}
