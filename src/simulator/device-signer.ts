// A fast Mdm-Signature signer for simulated devices: the CMS SignedData (RFC 5652) is
// assembled from DER pieces prepared once per device, so each request costs one hash and
// one node:crypto signature. (The tests build the same with pkijs and check each against the
// other and against the server's verifier.)
import { createHash, createPrivateKey, KeyObject, sign, webcrypto } from 'node:crypto'
import * as pkijs from 'pkijs'

const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecdsaWithSha1: '1.2.840.10045.4.1',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const bytes: number[] = [parts[0]! * 40 + parts[1]!]
  for (const part of parts.slice(2)) {
    const chunk: number[] = []
    let v = part
    do {
      chunk.unshift(v & 0x7f)
      v = Math.floor(v / 128)
    } while (v > 0)
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80
    bytes.push(...chunk)
  }
  return tlv(0x06, Buffer.from(bytes))
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c)
const set = (...c: Buffer[]) => tlv(0x31, ...c)
const nullValue = Buffer.from([0x05, 0x00])
const integer = (n: number) => tlv(0x02, Buffer.from([n]))

function utcTime(date: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0')
  const text = `${p(date.getUTCFullYear() % 100)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}Z`
  return tlv(0x17, Buffer.from(text, 'ascii'))
}

/** DER SET OF: elements sorted by their encodings (X.690 11.6). */
function setOf(elements: Buffer[]): Buffer {
  return set(...[...elements].sort(Buffer.compare))
}

export interface SignerIdentity {
  certificateDer: Buffer
  privateKey: webcrypto.CryptoKey | KeyObject
  /** The certificate's IssuerAndSerialNumber as DER, when the caller has it (saves parsing the certificate). */
  issuerAndSerial?: Buffer
}

export interface DeviceSignerOptions {
  digest?: 'sha1' | 'sha256'
  /** Sign the body directly instead of signed attributes (some old clients do). */
  signedAttributes?: boolean
}

export type MdmSigner = (body: Buffer) => string

function issuerAndSerialOf(certificateDer: Buffer): Buffer {
  const certificate = pkijs.Certificate.fromBER(certificateDer)
  return seq(Buffer.from(certificate.issuer.toSchema().toBER(false)), Buffer.from(certificate.serialNumber.toBER(false)))
}

export async function createDeviceSigner(identity: SignerIdentity, options: DeviceSignerOptions = {}): Promise<MdmSigner> {
  const digest = options.digest ?? 'sha256'
  const withAttributes = options.signedAttributes ?? true
  const key: KeyObject =
    identity.privateKey instanceof KeyObject
      ? identity.privateKey
      : createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', identity.privateKey)), format: 'der', type: 'pkcs8' })
  const isEc = key.asymmetricKeyType === 'ec'

  // Issuer and serial number of the certificate, as DER, for the SignerIdentifier.
  const issuerAndSerial = identity.issuerAndSerial ?? issuerAndSerialOf(identity.certificateDer)
  const digestAlgorithm = seq(oid(digest === 'sha1' ? OID.sha1 : OID.sha256), nullValue)
  const signatureAlgorithm = isEc ? seq(oid(digest === 'sha1' ? OID.ecdsaWithSha1 : OID.ecdsaWithSha256)) : seq(oid(OID.rsaEncryption), nullValue)

  return function signBody(body: Buffer): string {
    let signedAttrs: Buffer | null = null
    let signature: Buffer
    if (withAttributes) {
      const attributes = [
        seq(oid(OID.contentType), set(oid(OID.data))),
        seq(oid(OID.signingTime), set(utcTime(new Date()))),
        seq(oid(OID.messageDigest), set(tlv(0x04, createHash(digest).update(body).digest()))),
      ]
      const asSet = setOf(attributes)
      // The signature covers the attributes encoded as a SET (RFC 5652 5.4); in the
      // SignerInfo they travel as [0] IMPLICIT.
      signature = sign(digest, asSet, isEc ? { key, dsaEncoding: 'der' } : key)
      signedAttrs = Buffer.concat([Buffer.from([0xa0]), asSet.subarray(1)])
    } else {
      signature = sign(digest, body, isEc ? { key, dsaEncoding: 'der' } : key)
    }
    const signerInfo = seq(integer(1), issuerAndSerial, digestAlgorithm, ...(signedAttrs ? [signedAttrs] : []), signatureAlgorithm, tlv(0x04, signature))
    const signedData = seq(integer(1), set(digestAlgorithm), seq(oid(OID.data)), tlv(0xa0, identity.certificateDer), set(signerInfo))
    return seq(oid(OID.signedData), tlv(0xa0, signedData)).toString('base64')
  }
}
