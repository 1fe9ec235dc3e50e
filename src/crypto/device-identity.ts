// Is a device's identity certificate one of ours? The certificate comes from the
// Mdm-Signature (mdm-signature.ts) or from the TLS client certificate a proxy forwards
// (parseForwardedClientCertificate below).
//
// Chain: the trusted CAs are trust anchors and the device certificate must be issued
// directly by one of them (issuer Name bytes equal to the CA's subject Name bytes, and
// the CA's key verifies its signature). Intermediates are not followed: Apple devices get
// their identity from our own CA (SCEP/ACME), one level deep. As RFC 5280 §6.1 does for
// trust anchors, the CA certificate's own validity dates are not checked.
import { createHash, verify, X509Certificate, type KeyObject } from 'node:crypto'
import { DerError, formatSimpleName, readCertificateFields, type CertificateFields } from './der.js'
import { IdentityError, LruMap, signatureAlgorithms } from './mdm-signature.js'

export interface DeviceCertificateVerifierOptions {
  /** DER certificates of the CAs that issue device identities. */
  trustedCas: Buffer[]
  now?: () => Date
  /** Chain validations remembered, by certificate SHA-256 (default 10 000). */
  cacheSize?: number
}

export interface VerifiedDeviceCertificate {
  /** Lowercase hex SHA-256 of the DER. */
  sha256: string
  notAfter: Date
  /** Subject as one line, most significant RDN first, e.g. "O=Example, CN=device". */
  subject: string
}

export interface DeviceCertificateVerifier {
  /** Throws IdentityError: certificate_malformed, certificate_untrusted, certificate_expired, certificate_not_yet_valid. */
  verify(certificateDer: Buffer): VerifiedDeviceCertificate
  addTrustedCa(der: Buffer): void
  /** Replaces the trusted CAs (one was removed or added elsewhere); forgets cached validations. */
  replaceTrustedCas(ders: readonly Buffer[]): void
  /** Chain validations done so far (cache misses that reached a signature check). */
  chainValidations(): number
}

interface TrustedCa {
  der: Buffer
  subject: Buffer
  publicKey: KeyObject
}

/** What a successful chain validation leaves behind: later requests only compare dates. */
interface ValidatedCertificate {
  notBefore: Date
  notAfter: Date
  subject: string
}

const defaultCacheSize = 10_000

function oneLineName(name: string): string {
  return name.split('\n').join(', ')
}

function parseCertificate(der: Buffer, what: string): { fields: CertificateFields; x509: () => X509Certificate } {
  try {
    const fields = readCertificateFields(der)
    // Parsing with X509Certificate costs ~0.25 ms: only where the DER fields do not suffice.
    let x509: X509Certificate | undefined
    const parse = () => {
      try {
        return (x509 ??= new X509Certificate(der))
      } catch (error) {
        throw new IdentityError('certificate_malformed', `${what}: does not parse (${(error as Error).message})`, { cause: error })
      }
    }
    return { fields, x509: parse }
  } catch (error) {
    const reason = error instanceof DerError ? error.message : `does not parse (${(error as Error).message})`
    throw new IdentityError('certificate_malformed', `${what}: ${reason}`, { cause: error })
  }
}

function signedBy(fields: CertificateFields, x509: () => X509Certificate, caKey: KeyObject): boolean {
  try {
    // Algorithms that name their hash, on a matching key: node:crypto over the DER fields.
    // Anything else (RSASSA-PSS, a mismatch) is left to X509Certificate.verify.
    const algorithm = signatureAlgorithms[fields.signatureAlgorithm]
    const ec = caKey.asymmetricKeyType === 'ec'
    if (!algorithm?.hash || (algorithm.key === 'ec') !== ec) return x509().verify(caKey)
    return verify(algorithm.hash, fields.tbsCertificate, ec ? { key: caKey, dsaEncoding: 'der' } : caKey, fields.signatureValue)
  } catch {
    return false
  }
}

function nameOf(nameDer: Buffer, fallback: () => string): string {
  try {
    return formatSimpleName(nameDer) ?? oneLineName(fallback())
  } catch {
    return oneLineName(fallback())
  }
}

export function createDeviceCertificateVerifier(options: DeviceCertificateVerifierOptions): DeviceCertificateVerifier {
  const now = options.now ?? (() => new Date())
  const validated = new LruMap<string, ValidatedCertificate>(options.cacheSize ?? defaultCacheSize)
  const trusted: TrustedCa[] = []
  let chainValidationCount = 0

  function addTrustedCa(der: Buffer): void {
    const { fields, x509 } = parseCertificate(der, 'trusted CA certificate')
    trusted.push({ der: Buffer.from(der), subject: Buffer.from(fields.subject), publicKey: x509().publicKey })
  }

  function validateChain(der: Buffer, sha256: string): ValidatedCertificate {
    const { fields, x509 } = parseCertificate(der, `device certificate ${sha256}`)
    const subject = nameOf(fields.subject, () => x509().subject)
    const describe = `device certificate "${subject}" (sha256 ${sha256})`
    if (trusted.some((ca) => ca.der.equals(der)))
      throw new IdentityError('certificate_untrusted', `${describe} is a trusted CA certificate, not a device identity`)
    // Several CAs may share a subject (re-keyed CA): any one whose key verifies will do.
    const candidates = trusted.filter((ca) => ca.subject.equals(fields.issuer))
    if (candidates.length === 0) {
      const selfSigned = fields.issuer.equals(fields.subject) ? ' (self-signed)' : ''
      throw new IdentityError('certificate_untrusted', `${describe}${selfSigned} has issuer "${oneLineName(x509().issuer)}", which is not a trusted CA`)
    }
    chainValidationCount++
    const signedByCa = candidates.some((ca) => signedBy(fields, x509, ca.publicKey))
    if (!signedByCa)
      throw new IdentityError(
        'certificate_untrusted',
        `${describe} names trusted CA "${oneLineName(x509().issuer)}" as issuer, but its signature does not verify with that CA's key`,
      )
    return { notBefore: fields.notBefore, notAfter: fields.notAfter, subject }
  }

  function verify(certificateDer: Buffer): VerifiedDeviceCertificate {
    const sha256 = createHash('sha256').update(certificateDer).digest('hex')
    let entry = validated.get(sha256)
    if (!entry) {
      entry = validateChain(certificateDer, sha256)
      validated.set(sha256, entry)
    }
    // RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both inclusive.
    const time = now()
    if (time.getTime() < entry.notBefore.getTime()) {
      throw new IdentityError(
        'certificate_not_yet_valid',
        `device certificate "${entry.subject}" (sha256 ${sha256}) is not valid before ${entry.notBefore.toISOString()} (now ${time.toISOString()})`,
      )
    }
    if (time.getTime() > entry.notAfter.getTime()) {
      throw new IdentityError(
        'certificate_expired',
        `device certificate "${entry.subject}" (sha256 ${sha256}) expired at ${entry.notAfter.toISOString()} (now ${time.toISOString()})`,
      )
    }
    return { sha256, notAfter: entry.notAfter, subject: entry.subject }
  }

  function replaceTrustedCas(ders: readonly Buffer[]): void {
    const unchanged = ders.length === trusted.length && ders.every((der, index) => trusted[index]!.der.equals(der))
    if (unchanged) return
    trusted.length = 0
    validated.clear()
    for (const der of ders) addTrustedCa(der)
  }

  for (const der of options.trustedCas) addTrustedCa(der)
  return { verify, addTrustedCa, replaceTrustedCas, chainValidations: () => chainValidationCount }
}

const pemPattern = /^-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*)-----END CERTIFICATE-----\s*$/
const base64Pattern = /^[A-Za-z0-9+/]*={0,2}$/

const forwardedMalformed = (message: string, cause?: unknown) =>
  new IdentityError('certificate_malformed', `forwarded client certificate: ${message}`, cause === undefined ? undefined : { cause })

/** Standard base64; `padding: 'optional'` for RFC 8941 byte sequences, whose parsers should not insist on "=". */
function decodeBase64(text: string, padding: 'required' | 'optional'): Buffer {
  const padded = padding === 'optional' && text.length % 4 !== 0 ? text + '='.repeat(4 - (text.length % 4)) : text
  if (padded.length === 0 || padded.length % 4 !== 0 || !base64Pattern.test(padded)) throw forwardedMalformed('not base64')
  const bytes = Buffer.from(padded, 'base64')
  if (bytes.toString('base64') !== padded) throw forwardedMalformed('not canonical base64')
  return bytes
}

/**
 * The DER client certificate a TLS-terminating proxy forwarded in a header:
 * - RFC 9440 `Client-Cert`: a structured-field byte sequence, `:<base64 DER>:`;
 * - nginx `$ssl_client_escaped_cert`: the PEM, URL-escaped (`-----BEGIN%20CERTIFICATE-----%0A...`);
 * - a plain PEM (line breaks may arrive as spaces).
 * Exactly one certificate, the client's own; chains are refused. Nothing here says the
 * certificate is trusted: pass the result to a DeviceCertificateVerifier.
 */
export function parseForwardedClientCertificate(headerValue: string): Buffer {
  const value = headerValue.trim()
  if (value.length === 0) throw forwardedMalformed('header is empty')
  if (value.length > 65_536) throw forwardedMalformed('header is longer than 64 KiB')

  let der: Buffer
  if (value.startsWith(':')) {
    if (value.length < 2 || !value.endsWith(':')) throw forwardedMalformed('RFC 9440 byte sequence must be enclosed in colons')
    der = decodeBase64(value.slice(1, -1), 'optional')
  } else if (value.startsWith('-----BEGIN')) {
    let pem = value
    if (value.includes('%')) {
      // nginx escapes spaces, line breaks and some base64 characters; a PEM never contains "%".
      try {
        pem = decodeURIComponent(value)
      } catch (error) {
        throw forwardedMalformed('invalid URL escape', error)
      }
    }
    const match = pemPattern.exec(pem.trim())
    if (!match) throw forwardedMalformed('expected exactly one PEM "CERTIFICATE" block')
    der = decodeBase64(match[1]!.replace(/\s+/g, ''), 'required')
  } else {
    throw forwardedMalformed('neither an RFC 9440 byte sequence (:base64:) nor a PEM certificate')
  }

  try {
    readCertificateFields(der)
  } catch (error) {
    throw forwardedMalformed(`not an X.509 certificate: ${(error as Error).message}`, error)
  }
  return der
}
