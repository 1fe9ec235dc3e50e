// X.509 certificates with pkijs over node's WebCrypto: key pairs, a self-signed CA, and
// certificates it issues. Used by `npm run certs:dev` now, and by the built-in device CA.
import { createHash, randomBytes, webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

type CryptoKey = webcrypto.CryptoKey

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })

export type KeyAlgorithm = 'ec-p256' | 'rsa-2048'

export interface KeyPair {
  publicKey: CryptoKey
  privateKey: CryptoKey
}

export async function generateKeyPair(algorithm: KeyAlgorithm = 'ec-p256'): Promise<KeyPair> {
  const params =
    algorithm === 'ec-p256'
      ? { name: 'ECDSA', namedCurve: 'P-256' }
      : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
  return await webcrypto.subtle.generateKey(params, true, ['sign', 'verify'])
}

export interface Subject {
  commonName: string
  organization?: string
  /** userId (0.9.2342.19200300.100.1.1): the topic of an APNs push certificate. */
  uid?: string
}

export interface CertificateRequest {
  subject: Subject
  publicKey: CryptoKey
  /** Signer; omitted = self-signed with `selfSignKey`. */
  issuer?: { certificate: pkijs.Certificate; privateKey: CryptoKey }
  selfSignKey?: CryptoKey
  validDays: number
  /** Overrides the start of validity (default: five minutes ago). */
  notBefore?: Date
  /** Overrides the end of validity (default: notBefore + validDays). */
  notAfter?: Date
  /** Server: serverAuth + DNS/IP names. Client: clientAuth. */
  usage: 'ca' | 'server' | 'client'
  dnsNames?: string[]
  ipAddresses?: string[]
}

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  uid: '0.9.2342.19200300.100.1.1',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
}

/** One RDN per attribute (pkijs would put them all in one multi-valued RDN). */
function name(subject: Subject): pkijs.RelativeDistinguishedNames {
  const attributes: Array<[string, string]> = []
  if (subject.uid) attributes.push([OID.uid, subject.uid])
  if (subject.organization) attributes.push([OID.organization, subject.organization])
  attributes.push([OID.commonName, subject.commonName])
  const sequence = new asn1js.Sequence({
    value: attributes.map(
      ([type, value]) => new asn1js.Set({ value: [new pkijs.AttributeTypeAndValue({ type, value: new asn1js.Utf8String({ value }) }).toSchema()] }),
    ),
  })
  return pkijs.RelativeDistinguishedNames.fromBER(sequence.toBER(false))
}

function extension(extnID: string, critical: boolean, value: asn1js.AsnType | { toSchema(): asn1js.AsnType }): pkijs.Extension {
  const schema = 'toSchema' in value ? value.toSchema() : value
  return new pkijs.Extension({ extnID, critical, extnValue: schema.toBER(false) })
}

/** KeyUsage bits (RFC 5280 4.2.1.3), most significant bit first. */
function keyUsage(usage: CertificateRequest['usage']): asn1js.BitString {
  // ca: keyCertSign(5) + cRLSign(6) + digitalSignature(0); server/client: digitalSignature(0) + keyEncipherment(2)
  const byte = usage === 'ca' ? 0b1000_0110 : 0b1010_0000
  const unusedBits = usage === 'ca' ? 1 : 5
  return new asn1js.BitString({ valueHex: new Uint8Array([byte]).buffer, unusedBits })
}

function keyIdentifier(spki: pkijs.PublicKeyInfo): ArrayBuffer {
  const digest = createHash('sha1').update(new Uint8Array(spki.subjectPublicKey.valueBlock.valueHexView)).digest()
  return new Uint8Array(digest).buffer
}

export async function createCertificate(request: CertificateRequest): Promise<pkijs.Certificate> {
  const signingKey = request.issuer?.privateKey ?? request.selfSignKey
  if (!signingKey) throw new Error('createCertificate needs an issuer or a self-sign key')

  const certificate = new pkijs.Certificate()
  certificate.version = 2
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x40 // positive, and no leading zero byte (DER forbids one before a byte < 0x80)
  certificate.serialNumber = new asn1js.Integer({ valueHex: new Uint8Array(serial).buffer })
  certificate.subject = name(request.subject)
  certificate.issuer = request.issuer ? request.issuer.certificate.subject : name(request.subject)
  const notBefore = request.notBefore ?? new Date(Date.now() - 5 * 60_000) // tolerate clocks a little behind
  certificate.notBefore = validityTime(notBefore)
  certificate.notAfter = validityTime(request.notAfter ?? new Date(notBefore.getTime() + request.validDays * 86_400_000))
  await certificate.subjectPublicKeyInfo.importKey(request.publicKey, engine)

  const extensions: pkijs.Extension[] = [
    extension(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: request.usage === 'ca' })),
    extension(OID.keyUsage, true, keyUsage(request.usage)),
    extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyIdentifier(certificate.subjectPublicKeyInfo) })),
  ]
  if (request.issuer) {
    const aki = new pkijs.AuthorityKeyIdentifier({
      keyIdentifier: new asn1js.OctetString({ valueHex: keyIdentifier(request.issuer.certificate.subjectPublicKeyInfo) }),
    })
    extensions.push(extension(OID.authorityKeyIdentifier, false, aki))
  }
  if (request.usage !== 'ca') {
    const purpose = request.usage === 'server' ? OID.serverAuth : OID.clientAuth
    extensions.push(extension(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [purpose] })))
  }
  const altNames: pkijs.GeneralName[] = []
  for (const dns of request.dnsNames ?? []) altNames.push(new pkijs.GeneralName({ type: 2, value: dns }))
  for (const ip of request.ipAddresses ?? []) {
    altNames.push(new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ipBytes(ip) }) }))
  }
  if (altNames.length > 0) extensions.push(extension(OID.subjectAltName, false, new pkijs.GeneralNames({ names: altNames })))
  certificate.extensions = extensions

  await certificate.sign(signingKey, 'SHA-256', engine)
  return certificate
}

/** RFC 5280 §4.1.2.5: UTCTime for 1950-2049, GeneralizedTime outside (asn1js refuses such a UTCTime). */
function validityTime(value: Date): pkijs.Time {
  const year = value.getUTCFullYear()
  return new pkijs.Time({ type: year >= 1950 && year <= 2049 ? 0 : 1, value })
}

function ipBytes(ip: string): ArrayBuffer {
  const family = isIP(ip)
  if (family === 4) return new Uint8Array(ip.split('.').map(Number)).buffer
  if (family === 6) {
    const [head = '', tail = ''] = ip.split('::')
    const parse = (part: string) => (part ? part.split(':').map((h) => parseInt(h, 16)) : [])
    const headWords = parse(head)
    const tailWords = ip.includes('::') ? parse(tail) : []
    const words = [...headWords, ...new Array<number>(8 - headWords.length - tailWords.length).fill(0), ...tailWords]
    const bytes = new Uint8Array(16)
    words.forEach((w, i) => {
      bytes[i * 2] = w >> 8
      bytes[i * 2 + 1] = w & 0xff
    })
    return bytes.buffer
  }
  throw new Error(`not an IP address: ${ip}`)
}

function pem(label: string, der: ArrayBuffer): string {
  const base64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`
}

export function certificateToPem(certificate: pkijs.Certificate): string {
  return pem('CERTIFICATE', certificate.toSchema(true).toBER(false))
}

export async function privateKeyToPem(privateKey: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', privateKey))
}
