// The certificates of the device CA: checking one an operator hands us, naming and
// fingerprinting them, and the RSA registration authority an EC CA needs for SCEP.
import { createHash, createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto'
import { distinguishedName, issueCertificate, spkiOf } from '../crypto/certificate-issuer.js'
import { formatSimpleName, readCertificateFields } from '../crypto/der.js'
import { certificatesFromPem } from '../crypto/pem.js'
import { OrchardError } from '../errors.js'

export const sha256 = (der: Buffer) => createHash('sha256').update(der).digest('hex')

export const toPem = (der: Buffer): string => new X509Certificate(der).toString()

export function subjectOf(der: Buffer): string {
  const fields = readCertificateFields(der)
  return formatSimpleName(fields.subject) ?? new X509Certificate(der).subject.split('\n').join(', ')
}

export const caKeyLabel = (id: string) => `device-ca:${id}`
export const raKeyLabel = (id: string) => `device-ca-ra:${id}`

/** Checks a CA certificate and key an operator hands us; throws OrchardError validation_failed. */
export function checkAuthority(certificatePem: string, privateKeyPem: string | undefined, now: Date): { der: Buffer; key?: KeyObject } {
  let der: Buffer
  try {
    const certificates = certificatesFromPem(certificatePem, 'certificate_pem')
    if (certificates.length !== 1) throw new Error(`expected one certificate, found ${certificates.length}`)
    der = certificates[0]!
  } catch (error) {
    throw new OrchardError('validation_failed', (error as Error).message, {
      details: { errors: [{ pointer: '/certificate_pem', detail: (error as Error).message }] },
    })
  }
  const x509 = new X509Certificate(der)
  const invalid = (pointer: string, detail: string) => new OrchardError('validation_failed', detail, { details: { errors: [{ pointer, detail }] } })
  if (!x509.ca) throw invalid('/certificate_pem', 'the certificate is not a CA certificate (basicConstraints cA is not true)')
  if (new Date(x509.validTo).getTime() < now.getTime())
    throw invalid('/certificate_pem', `the CA certificate expired on ${new Date(x509.validTo).toISOString()}`)
  if (privateKeyPem === undefined) return { der }
  let key: KeyObject
  try {
    key = createPrivateKey(privateKeyPem)
  } catch (error) {
    throw invalid('/private_key_pem', `the private key does not parse (PEM, unencrypted PKCS#1/PKCS#8/SEC1): ${(error as Error).message}`)
  }
  if (!x509.checkPrivateKey(key)) throw invalid('/private_key_pem', 'the private key does not belong to the certificate')
  const type = key.asymmetricKeyType
  const curve = key.asymmetricKeyDetails?.namedCurve
  if (type !== 'rsa' && !(type === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1'))) {
    throw invalid('/private_key_pem', `a ${type}${curve ? ` ${curve}` : ''} key cannot issue device identities (RSA, EC P-256 or P-384 can)`)
  }
  return { der, key }
}

/** An RSA registration authority for a CA whose own key cannot decrypt SCEP requests. */
export function newRegistrationAuthority(caDer: Buffer, caKey: KeyObject, organization: string, now: Date): { certificateDer: Buffer; privateKey: KeyObject } {
  const ra = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const fields = readCertificateFields(caDer)
  const notBefore = new Date(now.getTime() - 5 * 60_000)
  const notAfter = new Date(Math.min(fields.notAfter.getTime(), notBefore.getTime() + 5 * 365 * 86_400_000))
  const issued = issueCertificate({
    subject: distinguishedName({ commonName: `${organization} SCEP RA`, organization: organization }),
    publicKeySpki: spkiOf(ra.privateKey),
    issuer: { subject: fields.subject, publicKeySpki: fields.subjectPublicKeyInfo, privateKey: caKey },
    notBefore,
    notAfter,
    profile: 'ra',
  })
  return { certificateDer: issued.der, privateKey: ra.privateKey }
}
