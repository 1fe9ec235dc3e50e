// Makes Mdm-Signature header values the way devices do: a detached CMS SignedData over the
// raw body, signer certificate embedded, built with pkijs (an implementation independent
// of src/crypto/mdm-signature.ts). For tests and the simulated device.
import { webcrypto } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

type CryptoKey = webcrypto.CryptoKey

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })

const Oid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  subjectKeyIdentifier: '2.5.29.14',
}

export interface Signer {
  certificateDer: Buffer
  privateKey: CryptoKey
}

export interface SignDetachedOptions {
  digest?: 'SHA-1' | 'SHA-256'
  /** contentType, signingTime and messageDigest, as real devices send (default true). */
  signedAttributes?: boolean
  /** The signingTime attribute (default: now). */
  signingTime?: Date
  /** How the SignerInfo names its certificate (default issuerAndSerialNumber, as devices do). */
  signerIdentifier?: 'issuerAndSerialNumber' | 'subjectKeyIdentifier'
  /** 'apple-ber': indefinite lengths on ContentInfo, its [0], SignedData and encapContentInfo, as iOS/macOS encode it. */
  encoding?: 'der' | 'apple-ber'
  /** Certificates to embed (default: the signer's). */
  certificates?: Buffer[]
  /** Replaces the standard signed attributes, for negative tests; gets the digest of the body. */
  attributes?: (messageDigest: ArrayBuffer) => pkijs.Attribute[]
}

/** WebCrypto binds an RSA key to one hash: re-import it for the one asked for. */
async function keyForHash(privateKey: CryptoKey, hash: string): Promise<CryptoKey> {
  const algorithm = privateKey.algorithm as webcrypto.RsaHashedKeyAlgorithm
  if (algorithm.name !== 'RSASSA-PKCS1-v1_5' || algorithm.hash.name === hash) return privateKey
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', privateKey)
  return webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash }, false, ['sign'])
}

async function subjectKeyIdentifier(certificate: pkijs.Certificate): Promise<ArrayBuffer> {
  const extension = certificate.extensions?.find((e) => e.extnID === Oid.subjectKeyIdentifier)
  if (extension) return (asn1js.fromBER(extension.extnValue.valueBlock.valueHexView).result as asn1js.OctetString).valueBlock.valueHexView.slice().buffer
  return webcrypto.subtle.digest('SHA-1', certificate.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView)
}

function standardAttributes(messageDigest: ArrayBuffer, signingTime: Date): pkijs.Attribute[] {
  return [
    new pkijs.Attribute({ type: Oid.contentType, values: [new asn1js.ObjectIdentifier({ value: Oid.data })] }),
    new pkijs.Attribute({ type: Oid.signingTime, values: [new asn1js.UTCTime({ valueDate: signingTime })] }),
    new pkijs.Attribute({ type: Oid.messageDigest, values: [new asn1js.OctetString({ valueHex: messageDigest })] }),
  ]
}

/** Re-encodes the outer structures with indefinite lengths, the shape of Apple's Mdm-Signature. */
export function toAppleBer(der: Buffer): Buffer {
  const parsed = asn1js.fromBER(new Uint8Array(der))
  if (parsed.offset === -1) throw new Error(`not BER: ${parsed.result.error}`)
  const contentInfo = parsed.result as asn1js.Sequence
  const explicit = contentInfo.valueBlock.value[1] as asn1js.Constructed
  const signedData = explicit.valueBlock.value[0] as asn1js.Sequence
  const encapContentInfo = signedData.valueBlock.value[2] as asn1js.Sequence
  for (const block of [contentInfo, explicit, signedData, encapContentInfo]) block.lenBlock.isIndefiniteForm = true
  return Buffer.from(contentInfo.toBER(false))
}

/** Base64 of a detached CMS SignedData over `body`, with the signer certificate embedded. */
export async function signDetached(body: Buffer, signer: Signer, options: SignDetachedOptions = {}): Promise<string> {
  const hash = options.digest ?? 'SHA-256'
  const certificate = pkijs.Certificate.fromBER(signer.certificateDer)
  const bySki = options.signerIdentifier === 'subjectKeyIdentifier'
  const sid = bySki
    ? new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, valueHex: await subjectKeyIdentifier(certificate) })
    : new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber })
  // RFC 5652 §5.3: version 3 with subjectKeyIdentifier, 1 with issuerAndSerialNumber (§5.1 likewise for SignedData).
  const signerInfo = new pkijs.SignerInfo({ version: bySki ? 3 : 1, sid })
  if (options.signedAttributes ?? true) {
    const digest = await webcrypto.subtle.digest(hash, body)
    const attributes = options.attributes ? options.attributes(digest) : standardAttributes(digest, options.signingTime ?? new Date())
    signerInfo.signedAttrs = new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes })
  }
  const signedData = new pkijs.SignedData({
    version: bySki ? 3 : 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: Oid.data }),
    signerInfos: [signerInfo],
    certificates: (options.certificates ?? [signer.certificateDer]).map((der) => pkijs.Certificate.fromBER(der)),
  })
  const body64 = new Uint8Array(body).buffer
  await signedData.sign(await keyForHash(signer.privateKey, hash), 0, hash, body64, engine)
  const contentInfo = new pkijs.ContentInfo({ contentType: Oid.signedData, content: signedData.toSchema(true) })
  const der = Buffer.from(contentInfo.toSchema().toBER(false))
  return (options.encoding === 'apple-ber' ? toAppleBer(der) : der).toString('base64')
}
