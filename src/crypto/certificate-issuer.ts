// X.509 certificates the device CA issues (RFC 5280), encoded with der-writer and signed
// with node:crypto keys: the self-signed CA, the SCEP RA certificate, and device identity
// certificates made from a PKCS#10 request's subject and public key.
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { ChildCursor, decodeElement, Tag } from './der.js'
import * as der from './der-writer.js'

const Oid = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
}

/** What the certificate is for; decides basicConstraints, keyUsage and extKeyUsage. */
export type CertificateProfile =
  /** Device CA: keyCertSign + cRLSign, and digitalSignature + keyEncipherment so an RSA CA can also serve SCEP itself. */
  | 'ca'
  /** SCEP registration authority: signs CertRep messages and decrypts requests. */
  | 'ra'
  /** Device identity: TLS client authentication and Mdm-Signature. */
  | 'client'

export interface IssuerKeys {
  /** Name DER of the issuer (the CA's subject). */
  subject: Buffer
  /** SubjectPublicKeyInfo DER of the issuer's key (for the authority key identifier). */
  publicKeySpki: Buffer
  privateKey: KeyObject
}

export interface IssueOptions {
  subject: Buffer
  publicKeySpki: Buffer
  /** Omitted: self-signed with `selfSignKey`. */
  issuer?: IssuerKeys
  selfSignKey?: KeyObject
  notBefore: Date
  notAfter: Date
  profile: CertificateProfile
}

export interface IssuedCertificate {
  der: Buffer
  /** Lower-case hex of the serial number's content octets. */
  serialNumber: string
  sha256: string
}

/** Name with one RDN per attribute: O first, then CN (most significant first). */
export function distinguishedName(parts: { commonName: string; organization?: string }): Buffer {
  const rdn = (type: string, value: string) => der.setOf(der.sequence(der.oid(type), der.utf8String(value)))
  return der.sequence(...(parts.organization ? [rdn(Oid.organization, parts.organization)] : []), rdn(Oid.commonName, parts.commonName))
}

/** The subjectPublicKey bits of a SubjectPublicKeyInfo (for key identifiers, RFC 5280 §4.2.1.2 method 1). */
export function subjectPublicKeyBits(spki: Buffer): Buffer {
  const parts = new ChildCursor(decodeElement(spki), 'SubjectPublicKeyInfo')
  parts.take(Tag.sequence, 'algorithm')
  const bits = parts.take(Tag.bitString, 'subjectPublicKey').value
  parts.end()
  return bits.subarray(1)
}

export function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(subjectPublicKeyBits(spki)).digest()
}

/** The signature algorithm a key signs certificates with, and the hash node:crypto needs. */
function signatureAlgorithmFor(key: KeyObject): { identifier: Buffer; hash: string } {
  if (key.asymmetricKeyType === 'rsa') return { identifier: der.algorithm(Oid.sha256WithRsa, der.nullValue()), hash: 'sha256' }
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve
    if (curve === 'secp384r1') return { identifier: der.algorithm(Oid.ecdsaWithSha384), hash: 'sha384' }
    if (curve === 'prime256v1') return { identifier: der.algorithm(Oid.ecdsaWithSha256), hash: 'sha256' }
    throw new Error(`unsupported EC curve for a CA key: ${curve}`)
  }
  throw new Error(`unsupported CA key type: ${key.asymmetricKeyType}`)
}

/** KeyUsage BIT STRING with DER's trailing-zero rule (X.690 §11.2.2). */
function keyUsageBits(bits: number[]): Buffer {
  let byte = 0
  for (const bit of bits) byte |= 0x80 >> bit
  let unused = 0
  while (unused < 7 && (byte & (1 << unused)) === 0) unused++
  return der.bitString(Buffer.from([byte]), unused)
}

const extension = (id: string, critical: boolean, value: Buffer) =>
  der.sequence(der.oid(id), ...(critical ? [der.booleanValue(true)] : []), der.octetString(value))

function extensionsFor(profile: CertificateProfile, spki: Buffer, issuerSpki: Buffer | undefined): Buffer[] {
  // digitalSignature 0, keyEncipherment 2, keyCertSign 5, cRLSign 6
  const list: Buffer[] = []
  if (profile === 'ca') {
    list.push(extension(Oid.basicConstraints, true, der.sequence(der.booleanValue(true), der.smallInteger(0))))
    list.push(extension(Oid.keyUsage, true, keyUsageBits([0, 2, 5, 6])))
  } else if (profile === 'ra') {
    list.push(extension(Oid.basicConstraints, true, der.sequence()))
    list.push(extension(Oid.keyUsage, true, keyUsageBits([0, 2])))
  } else {
    list.push(extension(Oid.basicConstraints, true, der.sequence()))
    list.push(extension(Oid.keyUsage, true, keyUsageBits([0])))
    list.push(extension(Oid.extKeyUsage, false, der.sequence(der.oid(Oid.clientAuth))))
  }
  list.push(extension(Oid.subjectKeyIdentifier, false, der.octetString(keyIdentifier(spki))))
  if (issuerSpki) list.push(extension(Oid.authorityKeyIdentifier, false, der.sequence(der.contextPrimitive(0, keyIdentifier(issuerSpki)))))
  return list
}

export function randomSerialNumber(): Buffer {
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x40 // positive, 16 content octets, no leading zero
  return serial
}

export function issueCertificate(options: IssueOptions): IssuedCertificate {
  const signingKey = options.issuer?.privateKey ?? options.selfSignKey
  if (!signingKey) throw new Error('issueCertificate needs an issuer or a self-sign key')
  if (options.notAfter.getTime() <= options.notBefore.getTime()) throw new Error('notAfter must be after notBefore')
  const { identifier, hash } = signatureAlgorithmFor(signingKey)
  const serial = randomSerialNumber()
  const issuerName = options.issuer?.subject ?? options.subject
  const tbs = der.sequence(
    der.contextConstructed(0, der.smallInteger(2)),
    der.unsignedInteger(serial),
    identifier,
    issuerName,
    der.sequence(der.time(options.notBefore), der.time(options.notAfter)),
    options.subject,
    options.publicKeySpki,
    der.contextConstructed(3, der.sequence(...extensionsFor(options.profile, options.publicKeySpki, options.issuer?.publicKeySpki))),
  )
  const signature = sign(hash, tbs, signingKey)
  const certificate = der.sequence(tbs, identifier, der.bitString(signature))
  return { der: certificate, serialNumber: serial.toString('hex'), sha256: createHash('sha256').update(certificate).digest('hex') }
}

export interface GeneratedAuthority {
  certificateDer: Buffer
  privateKey: KeyObject
}

/** A new self-signed RSA-2048 CA (RSA so that it can decrypt SCEP requests itself). */
export function generateCertificateAuthority(options: { commonName: string; organization?: string; validDays: number; now?: Date }): GeneratedAuthority {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const notBefore = new Date((options.now ?? new Date()).getTime() - 5 * 60_000)
  const issued = issueCertificate({
    subject: distinguishedName(options),
    publicKeySpki: publicKey.export({ type: 'spki', format: 'der' }),
    selfSignKey: privateKey,
    notBefore,
    notAfter: new Date(notBefore.getTime() + options.validDays * 86_400_000),
    profile: 'ca',
  })
  return { certificateDer: issued.der, privateKey }
}

/** The public key of a private key, as SubjectPublicKeyInfo DER. */
export function spkiOf(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' })
}
