// APNs push certificates as operators upload them: a PEM certificate + PEM private key, or
// a PKCS#12 file exported from macOS Keychain (apple-protocol.md §5; read by pkcs12.ts). The
// result is one shape whatever came in: the push certificate, its key as PKCS#8 PEM, and the topic.
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { ChildCursor, Tag, childrenOf, decodeElement, decodeOid, expectTag, formatSimpleName, readCertificateFields } from './der.js'
import { decryptEncryptedPrivateKeyInfo, describeOid, Pkcs12Error, readPkcs12, type Pkcs12ErrorCode } from './pkcs12.js'

export interface PushCertificate {
  /** The subject's UID attribute, e.g. com.apple.mgmt.External.<UUID>: the apns-topic. */
  topic: string
  /** Upper-case hex, as `openssl x509 -serial` prints it. */
  serialNumber: string
  notBefore: Date
  notAfter: Date
  /** One line, most significant RDN first: "UID=com.apple.mgmt..., CN=APSP:..., C=US". */
  subject: string
  /** The push certificate alone (no intermediates: APNs needs only the leaf). */
  certificatePem: string
  /** PKCS#8 PEM ("BEGIN PRIVATE KEY"), unencrypted: seal it before storing. */
  privateKeyPem: string
  /** Lower-case hex SHA-256 of the certificate DER. */
  sha256: string
}

export type PushCertificateErrorCode =
  'push_certificate_invalid' | 'push_certificate_password' | 'push_certificate_unsupported' | 'push_certificate_key_mismatch' | 'push_certificate_topic'

export class PushCertificateError extends Error {
  override readonly name = 'PushCertificateError'
  readonly code: PushCertificateErrorCode

  constructor(code: PushCertificateErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

const TOPIC_PREFIX = 'com.apple.mgmt.'
const UID_OID = '0.9.2342.19200300.100.1.1'

const invalid = (message: string, cause?: unknown) => new PushCertificateError('push_certificate_invalid', message, cause === undefined ? undefined : { cause })
const unsupported = (message: string) => new PushCertificateError('push_certificate_unsupported', message)
const wrongPassword = (message: string, cause?: unknown) =>
  new PushCertificateError('push_certificate_password', message, cause === undefined ? undefined : { cause })

const PKCS12_ERROR_CODES: Record<Pkcs12ErrorCode, PushCertificateErrorCode> = {
  invalid: 'push_certificate_invalid',
  password: 'push_certificate_password',
  unsupported: 'push_certificate_unsupported',
}

/** Runs a PKCS#12 (or PKCS#8 decryption) step; its errors become PushCertificateErrors with the same message and cause. */
function fromPkcs12<T>(step: () => T): T {
  try {
    return step()
  } catch (error) {
    if (!(error instanceof Pkcs12Error)) throw error
    throw new PushCertificateError(PKCS12_ERROR_CODES[error.code], error.message, Object.hasOwn(error, 'cause') ? { cause: error.cause } : undefined)
  }
}

// ---------------------------------------------------------------------------------------
// Entry points

/**
 * A push certificate from PEM text. `certificatePem` may also hold intermediates (any
 * order); `privateKeyPem` is PKCS#1 (RSA PRIVATE KEY, optionally OpenSSL-encrypted), SEC 1
 * (EC PRIVATE KEY), PKCS#8 (PRIVATE KEY) or encrypted PKCS#8 (ENCRYPTED PRIVATE KEY).
 */
export function parsePushCertificatePem(certificatePem: string, privateKeyPem: string, passphrase?: string): PushCertificate {
  if (typeof certificatePem !== 'string' || typeof privateKeyPem !== 'string') throw invalid('the certificate and the private key must be PEM text')
  const certificateBlocks = pemBlocks(certificatePem, 'the certificate PEM')
  const certificates = certificateBlocks.filter((block) => block.label === 'CERTIFICATE')
  if (certificates.length === 0) {
    if (certificateBlocks.some((block) => KEY_LABELS.has(block.label))) {
      throw invalid('the certificate PEM holds a private key, not a certificate: were the certificate and the key swapped?')
    }
    throw invalid('the certificate PEM has no "-----BEGIN CERTIFICATE-----" block')
  }
  const parsed = certificates.map((block, index) =>
    readCertificate(block.der, certificates.length === 1 ? 'the certificate' : `certificate #${index + 1} of the PEM`),
  )
  const key = privateKeyFromPem(privateKeyPem, passphrase)
  return selectPushCertificate(parsed, [key])
}

/**
 * A push certificate from a PKCS#12 (.p12/.pfx) file, as Keychain Access or `openssl pkcs12
 * -export` write it. Async so that a future version may move the key derivation off the
 * event loop; today it is synchronous work of a few milliseconds.
 */
export async function parsePushCertificatePkcs12(pkcs12: Buffer, password: string): Promise<PushCertificate> {
  if (!(pkcs12 instanceof Uint8Array)) throw invalid('the PKCS#12 file must be given as bytes')
  if (typeof password !== 'string') throw invalid('the PKCS#12 password must be a string')
  const contents = fromPkcs12(() => readPkcs12(Buffer.from(pkcs12.buffer, pkcs12.byteOffset, pkcs12.byteLength), password))
  if (contents.keys.length === 0) {
    throw invalid('the PKCS#12 file holds no private key: export the push certificate together with its private key (in Keychain Access, select both)')
  }
  if (contents.certificates.length === 0) throw invalid('the PKCS#12 file holds no certificate')
  const certificates = contents.certificates.map((der, index) => readCertificate(der, `certificate #${index + 1} of the PKCS#12 file`))
  // Without a MAC nothing proved the password: a key that decrypts to nonsense means a wrong one.
  const garbage = contents.macVerified ? undefined : () => wrongPassword('wrong password: the private key decrypts to garbage')
  const keys = contents.keys.map((der, index) => privateKeyFromPkcs8(der, `private key #${index + 1} of the PKCS#12 file`, garbage))
  return selectPushCertificate(certificates, keys)
}

// ---------------------------------------------------------------------------------------
// Certificates and the choice of the push certificate

interface ParsedCertificate {
  der: Buffer
  x509: X509Certificate
  subject: string
  uids: string[]
  notBefore: Date
  notAfter: Date
}

function readCertificate(der: Buffer, what: string): ParsedCertificate {
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(der)
  } catch (error) {
    throw invalid(`${what} is not an X.509 certificate: ${(error as Error).message}`, error)
  }
  try {
    const fields = readCertificateFields(der)
    return {
      der,
      x509,
      subject: formatSimpleName(fields.subject) ?? x509.subject.split('\n').join(', '),
      uids: subjectUids(fields.subject),
      notBefore: fields.notBefore,
      notAfter: fields.notAfter,
    }
  } catch (error) {
    if (error instanceof PushCertificateError) throw error
    throw invalid(`${what} does not parse: ${(error as Error).message}`, error)
  }
}

/** Every UID attribute of a Name (RFC 4519 §2.39; OID 0.9.2342.19200300.100.1.1). */
function subjectUids(nameDer: Buffer): string[] {
  const uids: string[] = []
  for (const rdn of childrenOf(expectTag(decodeElement(nameDer), Tag.sequence, 'Name'))) {
    for (const attribute of childrenOf(expectTag(rdn, Tag.set, 'RelativeDistinguishedName'))) {
      const cursor = new ChildCursor(expectTag(attribute, Tag.sequence, 'AttributeTypeAndValue'), 'AttributeTypeAndValue')
      if (decodeOid(cursor.take(Tag.oid, 'type')) !== UID_OID) continue
      // UTF8String, PrintableString or IA5String (Apple's portal writes one of these).
      const value = cursor.optional(Tag.utf8String, 0x13, 0x16)
      if (!value) throw new PushCertificateError('push_certificate_topic', 'the UID attribute of the certificate subject is not a string')
      uids.push(value.value.toString('utf8'))
    }
  }
  return uids
}

/**
 * Exactly one certificate whose UID starts with com.apple.mgmt. and whose public key is
 * the private key's; intermediates and other certificates are ignored.
 */
function selectPushCertificate(certificates: ParsedCertificate[], keys: KeyObject[]): PushCertificate {
  const unique = [...new Map(certificates.map((c) => [c.x509.fingerprint256, c])).values()]
  const matches = (certificate: ParsedCertificate, key: KeyObject) => {
    try {
      return certificate.x509.checkPrivateKey(key)
    } catch {
      return false // e.g. an EC key against an RSA certificate
    }
  }
  const pushCertificates = unique.filter((c) => c.uids.some((uid) => uid.startsWith(TOPIC_PREFIX)))

  if (pushCertificates.length === 0) {
    // Talk about the certificate the key belongs to, if any: that is the one uploaded as "the" certificate.
    const owners = unique.filter((c) => keys.some((key) => matches(c, key)))
    const about = owners.length > 0 ? owners : unique
    const withUid = about.find((c) => c.uids.length > 0)
    if (withUid) {
      throw new PushCertificateError(
        'push_certificate_topic',
        `the certificate's UID is "${withUid.uids.join('", "')}", not an MDM push topic: it must start with ${TOPIC_PREFIX} (${withUid.subject}). ` +
          'Upload the MDM push certificate from the Apple Push Certificates Portal.',
      )
    }
    throw new PushCertificateError(
      'push_certificate_topic',
      `the certificate has no UID attribute, so no push topic (${about.map((c) => c.subject).join('; ')}): ` +
        `an Apple MDM push certificate carries its topic (${TOPIC_PREFIX}External.<UUID>) in the subject UID`,
    )
  }

  const paired = pushCertificates.filter((c) => keys.some((key) => matches(c, key)))
  if (paired.length === 0) {
    const owner = unique.find((c) => keys.some((key) => matches(c, key)))
    throw new PushCertificateError(
      'push_certificate_key_mismatch',
      `the private key does not belong to the push certificate ${pushCertificates.map((c) => c.subject).join('; ')}` +
        (owner ? ` (it belongs to ${owner.subject})` : ''),
    )
  }
  if (paired.length > 1) {
    throw invalid(`${paired.length} push certificates match the private key (${paired.map((c) => c.subject).join('; ')}): upload one`)
  }

  const certificate = paired[0]!
  const topics = certificate.uids.filter((uid) => uid.startsWith(TOPIC_PREFIX))
  if (topics.length > 1)
    throw new PushCertificateError('push_certificate_topic', `the certificate has ${topics.length} push topics in its UID attributes: ${topics.join(', ')}`)
  const topic = topics[0]!
  // The topic goes into the apns-topic header and into admin API paths.
  if (!/^com\.apple\.mgmt\.[A-Za-z0-9][A-Za-z0-9._-]*$/.test(topic)) {
    throw new PushCertificateError(
      'push_certificate_topic',
      `the push topic ${JSON.stringify(topic)} has characters a topic cannot have (letters, digits, ".", "_" and "-" only)`,
    )
  }
  const key = keys.find((k) => matches(certificate, k))!
  return {
    topic,
    serialNumber: certificate.x509.serialNumber.toUpperCase(),
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    subject: certificate.subject,
    certificatePem: certificate.x509.toString(),
    privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    sha256: createHash('sha256').update(certificate.der).digest('hex'),
  }
}

// ---------------------------------------------------------------------------------------
// PEM and private keys

interface PemBlock {
  label: string
  /** RFC 1421 headers (Proc-Type, DEK-Info) of OpenSSL's "traditional" encrypted keys. */
  encryptedHeaders: boolean
  der: Buffer
  /** The block alone, line ends normalised: what node:crypto parses. */
  text: string
}

const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY'])

function pemBlocks(text: string, what: string): PemBlock[] {
  const blocks: PemBlock[] = []
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g
  for (const match of text.replace(/\r\n?/g, '\n').matchAll(pattern)) {
    const [whole, label, body, endLabel] = match as unknown as [string, string, string, string]
    if (label !== endLabel) throw invalid(`${what}: a "BEGIN ${label}" block ends with "END ${endLabel}"`)
    const lines = body.split('\n').map((line) => line.trim())
    const headerEnd = lines.findIndex((line) => line.includes(':'))
    let base64Lines = lines
    let encryptedHeaders = false
    if (headerEnd !== -1) {
      // RFC 1421 §4.6: "Name: value" header lines, then an empty line, then the base64.
      const blank = lines.indexOf('', headerEnd)
      encryptedHeaders = lines.some((line) => /^Proc-Type:\s*4,\s*ENCRYPTED$/i.test(line))
      base64Lines = blank === -1 ? [] : lines.slice(blank + 1)
    }
    const base64 = base64Lines.join('')
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 === 1) {
      throw invalid(`${what}: the ${label} block is not valid base64`)
    }
    blocks.push({ label, encryptedHeaders, der: Buffer.from(base64, 'base64'), text: `${whole}\n` })
  }
  if (blocks.length === 0) {
    if (text.trim() === '') throw invalid(`${what} is empty`)
    throw invalid(`${what} has no "-----BEGIN ...-----" block: is it PEM text?`)
  }
  return blocks
}

function privateKeyFromPem(privateKeyPem: string, passphrase: string | undefined): KeyObject {
  const blocks = pemBlocks(privateKeyPem, 'the private key PEM')
  const keys = blocks.filter((block) => KEY_LABELS.has(block.label))
  if (keys.length === 0) {
    const labels = [...new Set(blocks.map((block) => block.label))].join(', ')
    if (labels === 'CERTIFICATE') throw invalid('the private key PEM holds a certificate, not a private key: were the certificate and the key swapped?')
    throw invalid(
      `the private key PEM has no private key block (found ${labels}; expected PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY)`,
    )
  }
  if (keys.length > 1) throw invalid(`the private key PEM holds ${keys.length} private keys; expected one`)
  const block = keys[0]!

  if (block.label === 'ENCRYPTED PRIVATE KEY') {
    if (passphrase === undefined || passphrase === '') throw wrongPassword('the private key is encrypted (ENCRYPTED PRIVATE KEY): a passphrase is needed')
    const der = fromPkcs12(() => decryptEncryptedPrivateKeyInfo(block.der, passphrase))
    return privateKeyFromPkcs8(der, 'the private key', () => wrongPassword('wrong passphrase: the private key decrypts to garbage'))
  }

  if (block.encryptedHeaders) {
    // OpenSSL "traditional" encryption (Proc-Type: 4,ENCRYPTED + DEK-Info): node:crypto reads it.
    if (passphrase === undefined || passphrase === '')
      throw wrongPassword(`the private key is encrypted (${block.label} with DEK-Info): a passphrase is needed`)
    try {
      return createPrivateKey({ key: block.text, format: 'pem', passphrase })
    } catch (error) {
      const message = (error as Error).message
      if (/bad decrypt|wrong password|bad password/i.test(message)) throw wrongPassword('wrong passphrase for the private key', error)
      const cipher = /DEK-Info:\s*([^,\s]+)/.exec(block.text)?.[1] ?? 'unknown'
      if (/unsupported/i.test(message)) throw unsupported(`the private key is encrypted with ${cipher}, which this server cannot decrypt`)
      throw invalid(`the encrypted ${block.label} does not parse: ${message}`, error)
    }
  }

  if (block.label === 'PRIVATE KEY') return privateKeyFromPkcs8(block.der, 'the private key')
  try {
    return createPrivateKey({ key: block.der, format: 'der', type: block.label === 'RSA PRIVATE KEY' ? 'pkcs1' : 'sec1' })
  } catch (error) {
    throw invalid(`the ${block.label} does not parse: ${(error as Error).message}`, error)
  }
}

/**
 * A PrivateKeyInfo (RFC 5958). `garbage` names the error when the bytes came out of a
 * decryption that had no MAC to check the password first: then nonsense means a wrong password.
 */
function privateKeyFromPkcs8(der: Buffer, what: string, garbage?: () => PushCertificateError): KeyObject {
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  } catch (error) {
    // Name the algorithm when the structure is fine but node:crypto does not know the key type.
    let algorithm: string | undefined
    try {
      const info = new ChildCursor(expectTag(decodeElement(der), Tag.sequence, 'PrivateKeyInfo'), 'PrivateKeyInfo')
      info.take(Tag.integer, 'version')
      algorithm = decodeOid(new ChildCursor(info.take(Tag.sequence, 'privateKeyAlgorithm'), 'AlgorithmIdentifier').take(Tag.oid, 'algorithm'))
    } catch {
      if (garbage) throw garbage()
    }
    if (algorithm && !['1.2.840.113549.1.1.1', '1.2.840.10045.2.1'].includes(algorithm)) {
      throw unsupported(`${what} is a ${describeOid(algorithm)} key, which this server cannot use`)
    }
    if (garbage) throw garbage()
    throw invalid(`${what} does not parse as PKCS#8: ${(error as Error).message}`, error)
  }
}
