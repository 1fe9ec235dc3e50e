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
//
// Split by concern: pkcs12-pbe.ts decrypts, pkcs12-kdf.ts derives keys, pkcs12-asn1.ts holds
// the errors, OIDs and asn1js helpers; this file reads the container and checks its MAC.
import { createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto'
import * as pkijs from 'pkijs'
import { describeOid, invalid, octets, OID, parseBer, Pkcs12Error, sequenceItems, unsupported, wrongPassword } from './pkcs12-asn1.js'
import { checkIterations, DIGESTS, HMACS, passwordForms, pkcs12Kdf, readPbkdf2 } from './pkcs12-kdf.js'
import { decryptPbe } from './pkcs12-pbe.js'

export { describeOid, Pkcs12Error, type Pkcs12ErrorCode } from './pkcs12-asn1.js'
export { pkcs12Kdf } from './pkcs12-kdf.js'

const MAX_PKCS12_BYTES = 1024 * 1024
const MAX_NESTING = 4

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
