// MachineInfo (Automated Device Enrollment): during Setup Assistant the device POSTs a CMS
// SignedData with *attached* content (Content-Type application/pkcs7-signature) to the
// enrollment `url` of its DEP profile; the content is an XML plist (UDID, SERIAL, PRODUCT...,
// src/mdm/machine-info.ts) and the signer is the device's Apple-issued identity
// ("Apple iPhone Device CA", chaining to Apple's root). apple-protocol.md §7.
// https://developer.apple.com/documentation/devicemanagement/machineinfo
//
// signed-data.ts reads the CMS with the bounds-checked DER reader (der.ts; BER indefinite
// lengths and chunked OCTET STRINGs are accepted, as Apple encodes CMS with them) and checks
// the signature with node:crypto; here, stricter than Mdm-Signature, no signed attribute
// may repeat. The signature is always checked; the chain to `trustedCas` only when given.
//
// Chain: unlike device-identity.ts (our own CA, one level deep), Apple's device identities
// hang below intermediates, so included certificates are followed up to a trusted CA. Each
// link needs the issuer's name (X509Certificate.checkIssued, which also compares key
// identifiers and keyUsage) and its key (X509Certificate.verify); intermediates must be CAs
// (basicConstraints cA); the signer and intermediates must be valid at `now` unless
// `checkValidity: false`, which real Apple chains need (their intermediates have expired).
// As RFC 5280 §6.1 does for trust anchors (and device-identity.ts), a trusted CA's own
// dates are not checked. pathLenConstraint, name constraints and policies are not evaluated.
//
// Apple's chain: device identity <- "Apple iPhone Device CA" (RSA-1024, SHA-1) <- "Apple
// iPhone Certification Authority" <- "Apple Root CA". iOS includes the intermediates;
// macOS includes only "Apple iPhone Device CA", so trust that CA itself (any trusted CA
// is an anchor) or the chain from macOS ends one certificate short of the root.
import { X509Certificate } from 'node:crypto'
import { DerError, readCertificateFields } from './der.js'
import { SignedDataError, readSignedData, verifySignerSignature, type SignedDataErrorKind, type SignedDataParts } from './signed-data.js'

/** Largest body accepted: a MachineInfo with its certificates is a few KiB. */
export const maxMachineInfoBytes = 256 * 1024

/** Longest path followed from the signer to a trusted CA (intermediates, not counting either end). */
const maxIntermediates = 6

export interface VerifiedMachineInfo {
  /** The signed content: the MachineInfo plist bytes (chunks of a BER OCTET STRING joined). */
  content: Buffer
  /** DER of the signer's certificate. */
  signerCertificateDer: Buffer
  /** DER of every X.509 certificate the CMS includes, in order (the signer's among them). */
  certificatesDer: Buffer[]
  /** True only when the signer chained to one of `trustedCas`; false when none were given. */
  chainVerified: boolean
}

export type MachineInfoErrorReason = 'malformed' | 'bad_signature' | 'untrusted'

/**
 * A MachineInfo body was refused: `malformed` (does not parse as an attached CMS
 * SignedData with one signer and its certificate), `bad_signature` (the signature or
 * messageDigest does not verify, or uses an algorithm we do not support), `untrusted`
 * (the signer does not chain to a trusted CA at `now`). The message is for logs.
 */
export class MachineInfoError extends Error {
  override readonly name = 'MachineInfoError'
  readonly reason: MachineInfoErrorReason

  constructor(reason: MachineInfoErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.reason = reason
  }
}

export interface VerifyMachineInfoOptions {
  /** DER certificates of the trust anchors (Apple Root CA); null: the chain is not checked. */
  trustedCas: readonly Buffer[] | null
  /** The time certificates must be valid at (default: now). */
  now?: Date
  /**
   * Check notBefore/notAfter of the signer and intermediates against `now` (default true).
   * Real Apple chains need false: "Apple iPhone Device CA" expired in 2014, its issuer in
   * 2022, and old device identities are expired too; Apple still signs MachineInfo with them.
   */
  checkValidity?: boolean
}

const malformed = (message: string, cause?: unknown) => new MachineInfoError('malformed', message, cause === undefined ? undefined : { cause })
const untrusted = (message: string) => new MachineInfoError('untrusted', message)

interface ChainCertificate {
  der: Buffer
  x509: X509Certificate
  notBefore: Date
  notAfter: Date
}

/** An included certificate for chain building; undefined when node:crypto or the DER reader cannot read it. */
function chainCertificate(der: Buffer): ChainCertificate | undefined {
  try {
    const fields = readCertificateFields(der)
    return { der, x509: new X509Certificate(der), notBefore: fields.notBefore, notAfter: fields.notAfter }
  } catch {
    return undefined
  }
}

function issuedBy(subject: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return subject.checkIssued(issuer) && subject.verify(issuer.publicKey)
  } catch {
    return false
  }
}

const oneLine = (name: string) => name.split('\n').join(', ')

function validityProblem(certificate: ChainCertificate, now: Date, what: string): string | undefined {
  // RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both inclusive.
  if (now.getTime() < certificate.notBefore.getTime())
    return `${what} "${oneLine(certificate.x509.subject)}" is not valid before ${certificate.notBefore.toISOString()} (now ${now.toISOString()})`
  if (now.getTime() > certificate.notAfter.getTime())
    return `${what} "${oneLine(certificate.x509.subject)}" expired at ${certificate.notAfter.toISOString()} (now ${now.toISOString()})`
  return undefined
}

/** Parsed trust anchors by buffer: callers pass the same configured buffers on every request. */
const parsedAnchors = new WeakMap<Buffer, X509Certificate>()

function parseTrustedCas(trustedCas: readonly Buffer[]): X509Certificate[] {
  return trustedCas.map((der, index) => {
    let parsed = parsedAnchors.get(der)
    if (parsed) return parsed
    try {
      parsed = new X509Certificate(der)
    } catch (error) {
      // Configuration, not device input: not a MachineInfoError.
      throw new Error(`trusted MachineInfo CA ${index + 1} is not a DER X.509 certificate: ${(error as Error).message}`, { cause: error })
    }
    parsedAnchors.set(der, parsed) // keyed by identity: configured buffers are never written to
    return parsed
  })
}

/** Follows included certificates from the signer to a trusted CA; throws `untrusted` with the closest miss. */
function verifyChain(signerDer: Buffer, included: readonly Buffer[], anchors: readonly X509Certificate[], now: Date | null): void {
  const leaf = chainCertificate(signerDer)
  if (!leaf) throw malformed('signer certificate does not parse as X.509')
  const describe = `signer certificate "${oneLine(leaf.x509.subject)}"`
  if (anchors.some((anchor) => anchor.raw.equals(signerDer))) throw untrusted(`${describe} is a trusted CA certificate, not a device identity`)
  const leafProblem = now && validityProblem(leaf, now, 'signer certificate')
  if (leafProblem) throw untrusted(leafProblem)

  const pool = included
    .filter((der) => !der.equals(signerDer))
    .map(chainCertificate)
    .filter((certificate): certificate is ChainCertificate => certificate !== undefined && certificate.x509.ca)
  let problem: string | undefined

  // Depth-first over issuers; `path` holds the certificates above the leaf so far (no loops).
  const search = (current: ChainCertificate, path: ChainCertificate[]): boolean => {
    if (anchors.some((anchor) => issuedBy(current.x509, anchor))) return true
    if (path.length >= maxIntermediates) return false
    for (const candidate of pool) {
      if (path.includes(candidate) || !issuedBy(current.x509, candidate.x509)) continue
      const expired = now && validityProblem(candidate, now, 'intermediate certificate')
      if (expired) {
        problem ??= expired
        continue
      }
      if (search(candidate, [...path, candidate])) return true
    }
    return false
  }
  if (search(leaf, [])) return
  throw untrusted(
    problem ?? `${describe} (issuer "${oneLine(leaf.x509.issuer)}") does not chain to a trusted CA through the ${pool.length} included CA certificate(s)`,
  )
}

/**
 * Verifies a MachineInfo request body: an attached CMS SignedData, one signer whose
 * certificate is included, a valid signature and, with `trustedCas`, a chain to one of
 * them. Throws MachineInfoError and nothing else for any body. An unreadable `trustedCas`
 * entry is a configuration mistake: a plain Error, once a body's signature has verified.
 */
export function verifyMachineInfo(body: Buffer, options: VerifyMachineInfoOptions): VerifiedMachineInfo {
  const now = options.now ?? new Date()
  const trustedCas = options.trustedCas
  const input: unknown = body
  if (!Buffer.isBuffer(input)) throw malformed('the body is not a byte buffer')
  if (input.length === 0) throw malformed('the body is empty')
  if (input.length > maxMachineInfoBytes) throw malformed(`the body has ${input.length} bytes, more than ${maxMachineInfoBytes}`)

  let parts: SignedDataParts & { content: Buffer }
  try {
    parts = readSignedData(input, { content: 'attached', distinctAttributeTypes: true })
    verifySignerSignature(parts, parts.content)
  } catch (error) {
    throw asMachineInfoError(error)
  }
  if (trustedCas !== null) {
    const anchors = parseTrustedCas(trustedCas)
    try {
      verifyChain(parts.signerCertificateDer, parts.certificates, anchors, options.checkValidity === false ? null : now)
    } catch (error) {
      throw asMachineInfoError(error)
    }
  }
  // Copies: slices would keep the whole request body alive in whatever stores them.
  return {
    content: Buffer.from(parts.content),
    signerCertificateDer: Buffer.from(parts.signerCertificateDer),
    certificatesDer: parts.certificates.map((der) => Buffer.from(der)),
    chainVerified: trustedCas !== null,
  }
}

const machineInfoReasons: Readonly<Record<SignedDataErrorKind, MachineInfoErrorReason>> = {
  malformed: 'malformed',
  // Another content type, a detached signature, several signers, no certificates.
  unsupported: 'malformed',
  unsupported_algorithm: 'bad_signature',
  invalid: 'bad_signature',
  certificate_malformed: 'malformed',
}

function asMachineInfoError(error: unknown): MachineInfoError {
  if (error instanceof MachineInfoError) return error
  if (error instanceof SignedDataError) {
    const message = error.kind === 'malformed' && error.cause instanceof DerError ? `not a CMS SignedData: ${error.message}` : error.message
    return new MachineInfoError(machineInfoReasons[error.kind], message, { cause: error })
  }
  return malformed(`unexpected failure reading the CMS: ${String(error)}`, error)
}
