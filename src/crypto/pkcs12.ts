// PKCS#12 (RFC 7292) files as Keychain Access and `openssl pkcs12 -export` write them: the
// certificates and the PKCS#8 private keys inside, after the MAC proved the password. Also
// decrypts a PKCS#8 EncryptedPrivateKeyInfo, the same password-based schemes as a key bag.
//
// Layout, and where its traps are:
//   PFX { version 3, authSafe ContentInfo(data: AuthenticatedSafe), macData }
//   AuthenticatedSafe = ContentInfo[]: each `data` (plain SafeContents) or `encryptedData`
//     (SafeContents encrypted with a password-based scheme)
//   SafeContents = SafeBag[]: certBag, pkcs8ShroudedKeyBag (an EncryptedPrivateKeyInfo),
//     keyBag (plain PKCS#8), or a nested SafeContents
// pkijs/asn1js parse the structure (BER too: Apple writes indefinite lengths); every
// decryption and MAC is node:crypto, synchronous, with our own RFC 7292 Appendix B key
// derivation and RC2, because OpenSSL 3's default provider (Node 20) has no RC2 and
// pkijs cannot decrypt the legacy PBE schemes that older macOS exports use.
import { createDecipheriv, createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { rc2CbcDecrypt } from './rc2.js'

/** invalid: not a readable file; password: a wrong password; unsupported: a scheme or mode this reader lacks. */
export type Pkcs12ErrorCode = 'invalid' | 'password' | 'unsupported'

export class Pkcs12Error extends Error {
  override readonly name = 'Pkcs12Error'
  readonly code: Pkcs12ErrorCode

  constructor(code: Pkcs12ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** Bounds what one upload can make us compute (OpenSSL and macOS use 2048). */
const MAX_ITERATIONS = 1_000_000
const MAX_PKCS12_BYTES = 1024 * 1024
const MAX_NESTING = 4

const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  crlBag: '1.2.840.113549.1.12.10.1.4',
  secretBag: '1.2.840.113549.1.12.10.1.5',
  safeContentsBag: '1.2.840.113549.1.12.10.1.6',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbmac1: '1.2.840.113549.1.5.14',
} as const

const OID_NAMES: Record<string, string> = {
  '1.2.840.113549.1.12.1.1': 'pbeWithSHAAnd128BitRC4',
  '1.2.840.113549.1.12.1.2': 'pbeWithSHAAnd40BitRC4',
  '1.2.840.113549.1.12.1.3': 'pbeWithSHAAnd3-KeyTripleDES-CBC',
  '1.2.840.113549.1.12.1.4': 'pbeWithSHAAnd2-KeyTripleDES-CBC',
  '1.2.840.113549.1.12.1.5': 'pbeWithSHAAnd128BitRC2-CBC',
  '1.2.840.113549.1.12.1.6': 'pbeWithSHAAnd40BitRC2-CBC',
  '1.2.840.113549.1.5.1': 'pbeWithMD2AndDES-CBC',
  '1.2.840.113549.1.5.3': 'pbeWithMD5AndDES-CBC',
  '1.2.840.113549.1.5.4': 'pbeWithMD2AndRC2-CBC',
  '1.2.840.113549.1.5.6': 'pbeWithMD5AndRC2-CBC',
  '1.2.840.113549.1.5.10': 'pbeWithSHA1AndDES-CBC',
  '1.2.840.113549.1.5.11': 'pbeWithSHA1AndRC2-CBC',
  [OID.pbes2]: 'PBES2',
  [OID.pbkdf2]: 'PBKDF2',
  [OID.pbmac1]: 'PBMAC1',
  '1.3.6.1.4.1.11591.4.11': 'scrypt',
  [OID.signedData]: 'signedData',
  [OID.envelopedData]: 'envelopedData',
  '1.2.840.113549.3.2': 'rc2-cbc',
  '1.2.840.113549.3.7': 'des-ede3-cbc',
  '1.3.14.3.2.7': 'des-cbc',
  '2.16.840.1.101.3.4.1.2': 'aes-128-cbc',
  '2.16.840.1.101.3.4.1.22': 'aes-192-cbc',
  '2.16.840.1.101.3.4.1.42': 'aes-256-cbc',
  '2.16.840.1.101.3.4.1.6': 'aes-128-gcm',
  '2.16.840.1.101.3.4.1.46': 'aes-256-gcm',
  '1.2.840.113549.2.5': 'md5',
  '1.3.14.3.2.26': 'sha1',
  '1.2.840.10045.2.1': 'ecPublicKey',
  '1.2.840.113549.1.1.1': 'rsaEncryption',
  '1.3.101.112': 'Ed25519',
}

/** An OID with its name when known, for messages: "PBES2 (1.2.840.113549.1.5.13)". */
export const describeOid = (oid: string) => (OID_NAMES[oid] ? `${OID_NAMES[oid]} (${oid})` : oid)

const invalid = (message: string, cause?: unknown) => new Pkcs12Error('invalid', message, cause === undefined ? undefined : { cause })
const unsupported = (message: string) => new Pkcs12Error('unsupported', message)
const wrongPassword = (message: string, cause?: unknown) => new Pkcs12Error('password', message, cause === undefined ? undefined : { cause })

export interface Pkcs12Contents {
  certificates: Buffer[]
  /** PKCS#8 PrivateKeyInfo DER. */
  keys: Buffer[]
  macVerified: boolean
}

/** The certificates and private keys of a PKCS#12 file; checks the MAC first when there is one. */
export function readPkcs12(bytes: Buffer, password: string): Pkcs12Contents {
  if (bytes.length === 0) throw invalid('the PKCS#12 file is empty')
  if (bytes.length > MAX_PKCS12_BYTES)
    throw invalid(`the PKCS#12 file is ${bytes.length} bytes; a push certificate file is a few kilobytes (at most ${MAX_PKCS12_BYTES})`)
  const head = bytes.subarray(0, 64).toString('latin1')
  if (head.startsWith('-----BEGIN')) throw invalid('this is PEM text, not a PKCS#12 file: upload it as a certificate and a private key instead')
  if (/^\s*MII[A-Za-z0-9+/]/.test(head)) throw invalid('this is base64 text, not a PKCS#12 file: decode it to binary first')
  if (bytes[0] !== 0x30) throw invalid(`not a PKCS#12 file: it starts with byte 0x${bytes[0]!.toString(16).padStart(2, '0')}, not a DER SEQUENCE`)

  let pfx: pkijs.PFX
  try {
    pfx = new pkijs.PFX({ schema: parseBer(bytes, 'the PKCS#12 file') })
  } catch (error) {
    if (error instanceof Pkcs12Error) throw error
    throw invalid(`not a PKCS#12 file: the PFX structure (RFC 7292 §4) does not parse: ${(error as Error).message}`, error)
  }
  if (pfx.version !== 3) throw unsupported(`PKCS#12 version ${pfx.version}; only version 3 (RFC 7292) is supported`)
  const contentType = pfx.authSafe.contentType
  if (contentType === OID.signedData) throw unsupported(`PKCS#12 public-key integrity mode (${describeOid(contentType)}); only password integrity is supported`)
  if (contentType !== OID.data) throw invalid(`the PKCS#12 authSafe has content type ${describeOid(contentType)}, expected data (${OID.data})`)
  const authSafe = octets(pfx.authSafe.content, 'the PKCS#12 authSafe')

  // The MAC proves the password before anything is decrypted (RFC 7292 §4). It also tells
  // which encoding of an empty password the writer used (see passwordForms).
  let password12 = passwordForms(password)[0]!
  const macVerified = pfx.macData !== undefined
  if (pfx.macData) password12 = verifyMac(pfx.macData, authSafe, password)

  let safe: pkijs.AuthenticatedSafe
  try {
    safe = new pkijs.AuthenticatedSafe({ schema: parseBer(authSafe, 'the PKCS#12 AuthenticatedSafe') })
  } catch (error) {
    if (error instanceof Pkcs12Error) throw error
    throw invalid(`the PKCS#12 AuthenticatedSafe does not parse: ${(error as Error).message}`, error)
  }

  const contents: Pkcs12Contents = { certificates: [], keys: [], macVerified }
  safe.safeContents.forEach((info, index) => {
    const what = `PKCS#12 safe #${index + 1}`
    let plain: Buffer
    if (info.contentType === OID.data) {
      plain = octets(info.content, what)
    } else if (info.contentType === OID.encryptedData) {
      let encrypted: pkijs.EncryptedData
      try {
        encrypted = new pkijs.EncryptedData({ schema: info.content })
      } catch (error) {
        throw invalid(`${what}: the EncryptedData does not parse: ${(error as Error).message}`, error)
      }
      const content = encrypted.encryptedContentInfo
      if (!content.encryptedContent) throw invalid(`${what}: the EncryptedData has no encrypted content`)
      plain = decryptPbe(
        content.contentEncryptionAlgorithm,
        Buffer.from(content.getEncryptedContent()),
        password12,
        password,
        `the certificates (${what})`,
        macVerified,
      )
    } else if (info.contentType === OID.envelopedData) {
      throw unsupported(`PKCS#12 public-key privacy mode (${describeOid(info.contentType)}); only password privacy is supported`)
    } else {
      throw unsupported(`${what} has content type ${describeOid(info.contentType)}`)
    }
    let safeContents: pkijs.SafeContents
    try {
      safeContents = new pkijs.SafeContents({ schema: parseBer(plain, what) })
    } catch (error) {
      if (!macVerified && info.contentType === OID.encryptedData) throw wrongPassword('wrong password: the PKCS#12 contents decrypt to garbage', error)
      throw safeBagError(what, error)
    }
    collectBags(safeContents, contents, password12, password, macVerified, what, 0)
  })
  return contents
}

function collectBags(
  safeContents: pkijs.SafeContents,
  into: Pkcs12Contents,
  password12: Buffer,
  password: string,
  macVerified: boolean,
  what: string,
  depth: number,
): void {
  if (depth > MAX_NESTING) throw invalid(`${what}: SafeContents nested deeper than ${MAX_NESTING} levels`)
  for (const bag of safeContents.safeBags) {
    switch (bag.bagId) {
      case OID.certBag: {
        const certBag = bag.bagValue as pkijs.CertBag
        if (certBag.certId !== OID.x509Certificate) continue // SDSI certificates are not ours
        into.certificates.push(octets(certBag.certValue, `${what}: certificate bag`))
        break
      }
      case OID.shroudedKeyBag: {
        const keyBag = bag.bagValue as pkijs.PKCS8ShroudedKeyBag
        into.keys.push(
          decryptPbe(keyBag.encryptionAlgorithm, octets(keyBag.encryptedData, `${what}: key bag`), password12, password, 'the private key', macVerified),
        )
        break
      }
      case OID.keyBag:
        into.keys.push(Buffer.from((bag.bagValue as pkijs.PrivateKeyInfo).toSchema().toBER(false)))
        break
      case OID.safeContentsBag:
        collectBags(bag.bagValue as pkijs.SafeContents, into, password12, password, macVerified, what, depth + 1)
        break
      default:
        break // CRL and secret bags: nothing for us
    }
  }
}

function safeBagError(what: string, error: unknown): Pkcs12Error {
  if (error instanceof Pkcs12Error) return error
  const message = (error as Error).message
  const bagId = /Invalid BAG_ID for SafeBag: (\S+)/.exec(message)?.[1]
  if (bagId) return unsupported(`${what} holds a bag of unknown type ${bagId}`)
  return invalid(`${what}: the SafeContents does not parse: ${message}`, error)
}

/**
 * The PKCS#8 PrivateKeyInfo inside an EncryptedPrivateKeyInfo (RFC 5958 §3; PEM label
 * ENCRYPTED PRIVATE KEY), decrypted with `password`. Nothing checks the password first: a
 * wrong one may decrypt to garbage rather than fail.
 */
export function decryptEncryptedPrivateKeyInfo(der: Buffer, password: string): Buffer {
  const encrypted = parseBer(der, 'the encrypted private key')
  let info: pkijs.PKCS8ShroudedKeyBag
  try {
    info = new pkijs.PKCS8ShroudedKeyBag({ schema: encrypted })
  } catch (error) {
    throw invalid(`the encrypted private key is not an EncryptedPrivateKeyInfo (RFC 5958 §3): ${(error as Error).message}`, error)
  }
  return decryptPbe(info.encryptionAlgorithm, octets(info.encryptedData), passwordForms(password)[0]!, password, 'the private key', false)
}

// --- MAC (RFC 7292 §5 and Appendix B.4; PBMAC1 of RFC 9579) ----------------------------

interface HashInfo {
  name: string
  /** Output bytes (u of RFC 7292 B.2). */
  u: number
  /** Block bytes (v of RFC 7292 B.2). */
  v: number
}

const DIGESTS: Record<string, HashInfo> = {
  '1.3.14.3.2.26': { name: 'sha1', u: 20, v: 64 },
  '2.16.840.1.101.3.4.2.4': { name: 'sha224', u: 28, v: 64 },
  '2.16.840.1.101.3.4.2.1': { name: 'sha256', u: 32, v: 64 },
  '2.16.840.1.101.3.4.2.2': { name: 'sha384', u: 48, v: 128 },
  '2.16.840.1.101.3.4.2.3': { name: 'sha512', u: 64, v: 128 },
}

/** HMAC algorithms of PBKDF2's prf and PBMAC1's messageAuthScheme (RFC 8018 Appendix B.1.2). */
const HMACS: Record<string, HashInfo> = {
  '1.2.840.113549.2.7': DIGESTS['1.3.14.3.2.26']!,
  '1.2.840.113549.2.8': DIGESTS['2.16.840.1.101.3.4.2.4']!,
  '1.2.840.113549.2.9': DIGESTS['2.16.840.1.101.3.4.2.1']!,
  '1.2.840.113549.2.10': DIGESTS['2.16.840.1.101.3.4.2.2']!,
  '1.2.840.113549.2.11': DIGESTS['2.16.840.1.101.3.4.2.3']!,
}

/** Verifies the MAC; returns the password encoding that verified it. */
function verifyMac(macData: pkijs.MacData, authSafe: Buffer, password: string): Buffer {
  const algorithm = macData.mac.digestAlgorithm
  const expected = octets(macData.mac.digest, 'the PKCS#12 MAC')

  if (algorithm.algorithmId === OID.pbmac1) {
    // RFC 9579 §3: HMAC keyed by PBKDF2 over the UTF-8 password; MacData's macSalt and
    // iterations are ignored ("NOT USED", 1).
    const params = sequenceItems(algorithm.algorithmParams, 2, 'the PBMAC1 parameters')
    const kdf = new pkijs.AlgorithmIdentifier({ schema: params[0] })
    const scheme = new pkijs.AlgorithmIdentifier({ schema: params[1] })
    const hmac = HMACS[scheme.algorithmId]
    if (!hmac) throw unsupported(`the PKCS#12 MAC uses PBMAC1 with ${describeOid(scheme.algorithmId)}`)
    if (kdf.algorithmId !== OID.pbkdf2) throw unsupported(`the PKCS#12 MAC uses PBMAC1 with key derivation ${describeOid(kdf.algorithmId)}`)
    const pbkdf2 = readPbkdf2(kdf, 'the PKCS#12 MAC')
    // RFC 9579 §3: keyLength is required here (there is no cipher to imply it).
    if (pbkdf2.keyLength === undefined) throw invalid('the PKCS#12 PBMAC1 parameters have no keyLength (RFC 9579 §3 requires it)')
    const key = pbkdf2Sync(Buffer.from(password, 'utf8'), pbkdf2.salt, pbkdf2.iterations, pbkdf2.keyLength, pbkdf2.prf.name)
    if (!equalMac(createHmac(hmac.name, key).update(authSafe).digest(), expected)) {
      throw wrongPassword('wrong password: the PKCS#12 MAC does not verify (or the file was modified)')
    }
    return passwordForms(password)[0]!
  }

  const digest = DIGESTS[algorithm.algorithmId]
  if (!digest) throw unsupported(`the PKCS#12 MAC uses digest ${describeOid(algorithm.algorithmId)}`)
  const salt = octets(macData.macSalt, 'the PKCS#12 MAC salt')
  const iterations = checkIterations(macData.iterations ?? 1, 'the PKCS#12 MAC') // DEFAULT 1 (RFC 7292 §4)
  for (const form of passwordForms(password)) {
    // Appendix B.4: the HMAC key is derived with ID 3, as long as the hash output.
    const key = pkcs12Kdf(digest.name, 3, form, salt, iterations, digest.u)
    if (equalMac(createHmac(digest.name, key).update(authSafe).digest(), expected)) return form
  }
  throw wrongPassword('wrong password: the PKCS#12 MAC does not verify (or the file was modified)')
}

function equalMac(actual: Buffer, expected: Buffer): boolean {
  return actual.length === expected.length && timingSafeEqual(actual, expected)
}

/**
 * The password as RFC 7292 Appendix B.1 feeds it to its KDF: a BMPString (UTF-16BE) with
 * a terminating 00 00. Trap: an empty password has two encodings in the wild, "00 00"
 * (the rule) and zero bytes (OpenSSL's NULL password); the MAC tells which one was used.
 */
function passwordForms(password: string): Buffer[] {
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

// --- Password-based decryption (RFC 7292 Appendix C; PBES2 of RFC 8018 §6.2) -----------

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
function decryptPbe(algorithm: pkijs.AlgorithmIdentifier, data: Buffer, password12: Buffer, password: string, what: string, macVerified: boolean): Buffer {
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

function readPbkdf2(kdf: pkijs.AlgorithmIdentifier, what: string): { salt: Buffer; iterations: number; keyLength: number | undefined; prf: HashInfo } {
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

function checkIterations(iterations: number, what: string): number {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw invalid(`${what}: iteration count ${iterations} is not a positive integer`)
  if (iterations > MAX_ITERATIONS) throw invalid(`${what}: iteration count ${iterations} is above the ${MAX_ITERATIONS} this server accepts`)
  return iterations
}

// --- asn1js helpers ---------------------------------------------------------------------

function parseBer(bytes: Buffer, what: string): asn1js.AsnType {
  const parsed = asn1js.fromBER(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  if (parsed.offset === -1) throw invalid(`${what} is not valid DER/BER: ${parsed.result.error || 'malformed'}`)
  return parsed.result
}

/** OCTET STRING content, primitive or (BER) constructed. */
function octets(value: unknown, what = 'an OCTET STRING'): Buffer {
  if (!(value instanceof asn1js.OctetString)) throw invalid(`${what} is not an OCTET STRING`)
  return Buffer.from(value.getValue())
}

function integer(value: unknown, what: string): number {
  if (!(value instanceof asn1js.Integer)) throw invalid(`${what} is not an INTEGER`)
  return value.valueBlock.valueDec
}

function sequenceItems(value: unknown, count: number, what: string): asn1js.AsnType[] {
  if (!(value instanceof asn1js.Sequence) || value.valueBlock.value.length !== count) throw invalid(`${what} are not a SEQUENCE of ${count} elements`)
  return value.valueBlock.value
}
