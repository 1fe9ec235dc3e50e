// Password-based decryption of PKCS#12 contents and keys: the legacy PKCS#12 PBE schemes
// (RFC 7292 Appendix C; RC2 in our own code, since OpenSSL 3's default provider has none)
// and PBES2 (RFC 8018 §6.2).
import { createDecipheriv, pbkdf2Sync } from 'node:crypto'
import * as pkijs from 'pkijs'
import { describeOid, integer, invalid, octets, OID, Pkcs12Error, sequenceItems, unsupported, wrongPassword } from './pkcs12-asn1.js'
import { checkIterations, pkcs12Kdf, readPbkdf2 } from './pkcs12-kdf.js'
import { rc2CbcDecrypt } from './rc2.js'

interface LegacyPbe {
  keyLength: number
  decrypt(key: Buffer, iv: Buffer, data: Buffer): Buffer
}

const nodeCbc = (cipher: string) => (key: Buffer, iv: Buffer, data: Buffer) => {
  const decipher = createDecipheriv(cipher, key, iv)
  return Buffer.concat([decipher.update(data), decipher.final()])
}

const rc2Cbc = (effectiveBits: number) => (key: Buffer, iv: Buffer, data: Buffer) => unpad(rc2CbcDecrypt(key, effectiveBits, iv, data), 8)

const LEGACY_PBE: Record<string, LegacyPbe> = {
  '1.2.840.113549.1.12.1.3': { keyLength: 24, decrypt: nodeCbc('des-ede3-cbc') },
  '1.2.840.113549.1.12.1.4': { keyLength: 16, decrypt: nodeCbc('des-ede-cbc') },
  '1.2.840.113549.1.12.1.5': { keyLength: 16, decrypt: rc2Cbc(128) },
  '1.2.840.113549.1.12.1.6': { keyLength: 5, decrypt: rc2Cbc(40) },
}

const PBES2_CIPHERS: Record<string, { cipher: string; keyLength: number; ivLength: number }> = {
  '2.16.840.1.101.3.4.1.2': { cipher: 'aes-128-cbc', keyLength: 16, ivLength: 16 },
  '2.16.840.1.101.3.4.1.22': { cipher: 'aes-192-cbc', keyLength: 24, ivLength: 16 },
  '2.16.840.1.101.3.4.1.42': { cipher: 'aes-256-cbc', keyLength: 32, ivLength: 16 },
  '1.2.840.113549.3.7': { cipher: 'des-ede3-cbc', keyLength: 24, ivLength: 8 },
}

class DecryptionFailed extends Error {}

/**
 * Decrypts with a PKCS#12 PBE scheme or PBES2. `password12` is the BMP form (legacy
 * schemes), `password` the text (PBES2 takes its UTF-8 bytes, as OpenSSL and macOS do).
 */
export function decryptPbe(
  algorithm: pkijs.AlgorithmIdentifier,
  data: Buffer,
  password12: Buffer,
  password: string,
  what: string,
  macVerified: boolean,
): Buffer {
  const oid = algorithm.algorithmId
  let run: () => Buffer
  let blockSize = 8
  const legacy = LEGACY_PBE[oid]
  if (legacy) {
    // pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER } (Appendix C)
    const [saltItem, iterationsItem] = sequenceItems(algorithm.algorithmParams, 2, `the ${describeOid(oid)} parameters`)
    const salt = octets(saltItem, `the ${describeOid(oid)} salt`)
    const iterations = checkIterations(integer(iterationsItem, `the ${describeOid(oid)} iteration count`), what)
    run = () => {
      const key = pkcs12Kdf('sha1', 1, password12, salt, iterations, legacy.keyLength)
      const iv = pkcs12Kdf('sha1', 2, password12, salt, iterations, 8)
      return legacy.decrypt(key, iv, data)
    }
  } else if (oid === OID.pbes2) {
    let params: pkijs.PBES2Params
    try {
      params = new pkijs.PBES2Params({ schema: algorithm.algorithmParams })
    } catch (error) {
      throw invalid(`${what}: the PBES2 parameters do not parse: ${(error as Error).message}`, error)
    }
    if (params.keyDerivationFunc.algorithmId !== OID.pbkdf2)
      throw unsupported(`${what} is encrypted with PBES2 key derivation ${describeOid(params.keyDerivationFunc.algorithmId)}`)
    const schemeOid = params.encryptionScheme.algorithmId
    const scheme = PBES2_CIPHERS[schemeOid]
    if (!scheme) throw unsupported(`${what} is encrypted with PBES2 cipher ${describeOid(schemeOid)}`)
    const iv = octets(params.encryptionScheme.algorithmParams, `the ${scheme.cipher} IV`)
    if (iv.length !== scheme.ivLength) throw invalid(`${what}: the ${scheme.cipher} IV is ${iv.length} bytes, expected ${scheme.ivLength}`)
    blockSize = scheme.ivLength
    const pbkdf2 = readPbkdf2(params.keyDerivationFunc, what)
    if (pbkdf2.keyLength !== undefined && pbkdf2.keyLength !== scheme.keyLength) {
      throw invalid(`${what}: PBKDF2 keyLength ${pbkdf2.keyLength} does not fit ${scheme.cipher} (${scheme.keyLength} bytes)`)
    }
    run = () => nodeCbc(scheme.cipher)(pbkdf2Sync(Buffer.from(password, 'utf8'), pbkdf2.salt, pbkdf2.iterations, scheme.keyLength, pbkdf2.prf.name), iv, data)
  } else {
    throw unsupported(`${what} is encrypted with ${describeOid(oid)}, which this server cannot decrypt`)
  }

  // CBC with PKCS#7 padding (RFC 8018 §6.1.1): at least one whole block, always.
  if (data.length === 0 || data.length % blockSize !== 0) {
    throw invalid(`${what}: the ciphertext is ${data.length} bytes, not a whole number of ${blockSize}-byte blocks`)
  }
  try {
    return run()
  } catch (error) {
    if (error instanceof Pkcs12Error) throw error
    // CBC padding that does not check out: with a verified MAC the password is right, so
    // the contents are damaged or were encrypted under another password.
    if (macVerified)
      throw wrongPassword(`${what} does not decrypt with this password, although the MAC verified: the file uses a second password, or is damaged`, error)
    throw wrongPassword(`wrong password: ${what} does not decrypt`, error)
  }
}

function unpad(plain: Buffer, blockSize: number): Buffer {
  const pad = plain[plain.length - 1] ?? 0
  if (pad < 1 || pad > blockSize || pad > plain.length) throw new DecryptionFailed('bad padding')
  for (let i = plain.length - pad; i < plain.length; i++) if (plain[i] !== pad) throw new DecryptionFailed('bad padding')
  return plain.subarray(0, plain.length - pad)
}
