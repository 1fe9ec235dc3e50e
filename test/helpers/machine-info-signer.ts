// Makes MachineInfo bodies the way an ADE device does in Setup Assistant: a CMS SignedData
// with the plist *attached* (RFC 5652), signed by the device identity, certificates
// included. Assembled from DER pieces with src/crypto/der-writer.ts and signed with
// node:crypto (synchronous, so private keys are KeyObjects); the tests check every shape
// against pkijs as well as against src/crypto/machine-info.ts.
//
// createAppleLikeDeviceIdentity builds the shape of Apple's chain with pkijs: a root, an
// intermediate "Test iPhone Device CA" and an RSA-2048 device leaf.
import { createHash, createPrivateKey, sign, webcrypto, type KeyObject } from 'node:crypto'
import type * as pkijs from 'pkijs'
import { createCertificate, generateKeyPair, type KeyAlgorithm } from '../../src/crypto/certificates.js'
import { readCertificateFields, readIssuerAndSerialNumber } from '../../src/crypto/der.js'
import * as der from '../../src/crypto/der-writer.js'
import type { DigestAlgorithm } from '../../src/crypto/mdm-signature.js'
import { encodePlist, type PlistDict } from '../../src/mdm/plist.js'

type CryptoKey = webcrypto.CryptoKey

const Oid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  rsaEncryption: '1.2.840.113549.1.1.1',
}

const digestOids: Record<DigestAlgorithm, string> = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
}

const ecdsaOids: Record<DigestAlgorithm, string> = {
  sha1: '1.2.840.10045.4.1',
  sha256: '1.2.840.10045.4.3.2',
  sha384: '1.2.840.10045.4.3.3',
  sha512: '1.2.840.10045.4.3.4',
}

export interface MachineInfoSigner {
  certificateDer: Buffer
  /** A node:crypto key (RSA or EC): signMachineInfo is synchronous. See `toKeyObject` for WebCrypto keys. */
  privateKey: KeyObject
  /** Certificates included after the signer's (intermediates, as a device includes them). */
  chain?: Buffer[]
}

export interface SignMachineInfoOptions {
  /** contentType, signingTime and messageDigest (default true); false: the signature is over the content itself. */
  signedAttributes?: boolean
  digest?: DigestAlgorithm
  /** 'ber': indefinite lengths on the outer structures and the content as a chunked OCTET STRING. */
  encoding?: 'der' | 'ber'
  /** How the SignerInfo names its certificate (default issuerAndSerialNumber). */
  signerIdentifier?: 'issuerAndSerialNumber' | 'subjectKeyIdentifier'
  /** Replaces the included certificates (default: the signer's, then `chain`). */
  certificates?: Buffer[]
  /** Overrides the messageDigest attribute value (negative tests). */
  messageDigest?: Buffer
  /** Overrides the contentType attribute value (negative tests). */
  contentTypeAttribute?: string
  signingTime?: Date
}

/** A WebCrypto private key (what src/crypto/certificates.ts makes) as a node:crypto KeyObject. */
export async function toKeyObject(privateKey: CryptoKey): Promise<KeyObject> {
  return createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', privateKey)), format: 'der', type: 'pkcs8' })
}

/** BER indefinite length: identifier, 0x80, content, end-of-contents. */
const indefinite = (tag: number, ...content: Buffer[]) => Buffer.concat([Buffer.from([tag, 0x80]), ...content, Buffer.from([0, 0])])

function chunkedOctetString(content: Buffer, chunkSize = 100): Buffer {
  const chunks: Buffer[] = []
  for (let offset = 0; offset < content.length; offset += chunkSize) chunks.push(der.octetString(content.subarray(offset, offset + chunkSize)))
  return indefinite(0x24, ...chunks)
}

function signerIdentifier(certificateDer: Buffer, kind: SignMachineInfoOptions['signerIdentifier']): Buffer {
  if (kind === 'subjectKeyIdentifier') {
    const fields = readCertificateFields(certificateDer)
    return der.contextPrimitive(0, fields.subjectKeyIdentifier ?? createHash('sha1').update(fields.subjectPublicKey).digest())
  }
  const { issuer, serialNumber } = readIssuerAndSerialNumber(certificateDer)
  return der.sequence(issuer, der.element(0x02, serialNumber))
}

/** A MachineInfo request body: DER (or BER) ContentInfo around a SignedData with the plist attached. */
export function signMachineInfo(plist: PlistDict | Buffer, signer: MachineInfoSigner, options: SignMachineInfoOptions = {}): Buffer {
  const content = Buffer.isBuffer(plist) ? plist : encodePlist(plist)
  const digest = options.digest ?? 'sha256'
  const key = signer.privateKey
  const ec = key.asymmetricKeyType === 'ec'
  const digestAlgorithm = der.algorithm(digestOids[digest], der.nullValue())
  // Devices name rsaEncryption as the RSA "signature algorithm" and the hash in digestAlgorithm.
  const signatureAlgorithm = ec ? der.algorithm(ecdsaOids[digest]) : der.algorithm(Oid.rsaEncryption, der.nullValue())
  const keyOptions = ec ? { key, dsaEncoding: 'der' as const } : key

  let implicitAttributes: Buffer | undefined
  let signature: Buffer
  if (options.signedAttributes ?? true) {
    const attribute = (oid: string, value: Buffer) => der.sequence(der.oid(oid), der.setOf(value))
    const attributes = der.setOf(
      attribute(Oid.contentType, der.oid(options.contentTypeAttribute ?? Oid.data)),
      attribute(Oid.signingTime, der.time(options.signingTime ?? new Date())),
      attribute(Oid.messageDigest, der.octetString(options.messageDigest ?? createHash(digest).update(content).digest())),
    )
    // RFC 5652 §5.4: signed as a SET, sent as [0] IMPLICIT.
    signature = sign(digest, attributes, keyOptions)
    implicitAttributes = Buffer.from(attributes)
    implicitAttributes[0] = 0xa0
  } else {
    signature = sign(digest, content, keyOptions)
  }

  const bySki = options.signerIdentifier === 'subjectKeyIdentifier'
  const version = der.smallInteger(bySki ? 3 : 1) // RFC 5652 §5.1, §5.3
  const signerInfo = der.sequence(
    version,
    signerIdentifier(signer.certificateDer, options.signerIdentifier),
    digestAlgorithm,
    ...(implicitAttributes ? [implicitAttributes] : []),
    signatureAlgorithm,
    der.octetString(signature),
  )
  const certificates = options.certificates ?? [signer.certificateDer, ...(signer.chain ?? [])]
  const certificateSet = der.contextConstructed(0, ...certificates)
  const signerInfos = der.setOf(signerInfo)
  const digestAlgorithms = der.setOf(digestAlgorithm)

  if (options.encoding === 'ber') {
    const encapsulated = indefinite(0x30, der.oid(Oid.data), indefinite(0xa0, chunkedOctetString(content)))
    const signedData = indefinite(0x30, version, digestAlgorithms, encapsulated, certificateSet, signerInfos)
    return indefinite(0x30, der.oid(Oid.signedData), indefinite(0xa0, signedData))
  }
  const encapsulated = der.sequence(der.oid(Oid.data), der.contextConstructed(0, der.octetString(content)))
  const signedData = der.sequence(version, digestAlgorithms, encapsulated, certificateSet, signerInfos)
  return der.sequence(der.oid(Oid.signedData), der.contextConstructed(0, signedData))
}

export interface TestAuthority {
  certificate: pkijs.Certificate
  certificateDer: Buffer
  /** The WebCrypto key pkijs signs certificates with. */
  cryptoKey: CryptoKey
  privateKey: KeyObject
}

export interface AppleLikeDeviceIdentity {
  /** Plays "Apple Root CA": what verifyMachineInfo trusts. */
  root: TestAuthority
  /** Plays "Apple iPhone Device CA", issued by the root. */
  intermediate: TestAuthority
  /** The device identity, issued by the intermediate; `chain` holds the intermediate. */
  device: MachineInfoSigner & { chain: Buffer[]; certificate: pkijs.Certificate }
}

export interface AppleLikeDeviceIdentityOptions {
  /** The device's key (default rsa-2048, as Apple's device identities). */
  deviceKey?: KeyAlgorithm
  /** Reuse a root and intermediate (generating RSA keys costs tens of milliseconds each). */
  authorities?: Pick<AppleLikeDeviceIdentity, 'root' | 'intermediate'>
  /** Device certificate validity (default: five minutes ago, for two days). */
  notBefore?: Date
  notAfter?: Date
  /** Device certificate common name (default: a UDID-like value). */
  commonName?: string
}

async function authority(commonName: string, algorithm: KeyAlgorithm, issuer?: TestAuthority): Promise<TestAuthority> {
  const keys = await generateKeyPair(algorithm)
  const certificate = await createCertificate({
    subject: { commonName, organization: 'Orchard tests' },
    publicKey: keys.publicKey,
    ...(issuer ? { issuer: { certificate: issuer.certificate, privateKey: issuer.cryptoKey } } : { selfSignKey: keys.privateKey }),
    validDays: 30,
    usage: 'ca',
  })
  return {
    certificate,
    certificateDer: Buffer.from(certificate.toSchema().toBER(false)),
    cryptoKey: keys.privateKey,
    privateKey: await toKeyObject(keys.privateKey),
  }
}

/** A test root, an intermediate "Test iPhone Device CA" it issued, and a device leaf (RSA-2048 unless asked) below. */
export async function createAppleLikeDeviceIdentity(options: AppleLikeDeviceIdentityOptions = {}): Promise<AppleLikeDeviceIdentity> {
  const root = options.authorities?.root ?? (await authority('Test Apple Root CA', 'rsa-2048'))
  const intermediate = options.authorities?.intermediate ?? (await authority('Test iPhone Device CA', 'rsa-2048', root))
  const keys = await generateKeyPair(options.deviceKey ?? 'rsa-2048')
  const certificate = await createCertificate({
    subject: { commonName: options.commonName ?? '00008120-001A2B3C4D5E601E' },
    publicKey: keys.publicKey,
    issuer: { certificate: intermediate.certificate, privateKey: intermediate.cryptoKey },
    validDays: 2,
    ...(options.notBefore ? { notBefore: options.notBefore } : {}),
    ...(options.notAfter ? { notAfter: options.notAfter } : {}),
    usage: 'client',
  })
  return {
    root,
    intermediate,
    device: {
      certificate,
      certificateDer: Buffer.from(certificate.toSchema().toBER(false)),
      privateKey: await toKeyObject(keys.privateKey),
      chain: [intermediate.certificateDer],
    },
  }
}
