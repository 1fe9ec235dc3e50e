// The SCEP pkcsPKIEnvelope (RFC 8894 §3.2.2): an EnvelopedData (RFC 5652 §6) with RSA key
// transport, opened when a request arrives and built around the certificates we answer with.
//
// Traps, each met by clients in the field:
// - Old clients encrypt with single DES. OpenSSL 3's default provider has no des-cbc;
//   des-ede3-cbc with the key repeated three times (K|K|K) is exactly DES-CBC.
// - Node 20 refuses privateDecrypt with PKCS#1 v1.5 padding (CVE-2023-46809, the Marvin
//   attack). The content-encryption key is recovered with RSA_NO_PADDING and unpadded
//   here; a bad padding yields a random key (implicit rejection), so every failure looks
//   the same to the client: the content then fails to decrypt.
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto'
import { ChildCursor, childrenOf, decodeElement, decodeOid, DerError, readCertificateFields, readIssuerAndSerialNumber, Tag, type DerElement } from './der.js'
import * as der from './der-writer.js'
import { octets, ScepFailure, ScepOid } from './scep-definitions.js'

export type ContentEncryption = 'des' | 'des3' | 'aes128' | 'aes192' | 'aes256'

const contentEncryptions: Record<ContentEncryption, { oid: string; keyLength: number; ivLength: number; cipher: string }> = {
  des: { oid: '1.3.14.3.2.7', keyLength: 8, ivLength: 8, cipher: 'des-ede3-cbc' },
  des3: { oid: '1.2.840.113549.3.7', keyLength: 24, ivLength: 8, cipher: 'des-ede3-cbc' },
  aes128: { oid: '2.16.840.1.101.3.4.1.2', keyLength: 16, ivLength: 16, cipher: 'aes-128-cbc' },
  aes192: { oid: '2.16.840.1.101.3.4.1.22', keyLength: 24, ivLength: 16, cipher: 'aes-192-cbc' },
  aes256: { oid: '2.16.840.1.101.3.4.1.42', keyLength: 32, ivLength: 16, cipher: 'aes-256-cbc' },
}
const encryptionByOid = new Map(Object.entries(contentEncryptions).map(([name, spec]) => [spec.oid, name as ContentEncryption]))

/** DES keys run through 3DES as K|K|K (EDE with equal keys is single DES). */
function cipherKey(encryption: ContentEncryption, key: Buffer): Buffer {
  return encryption === 'des' ? Buffer.concat([key, key, key]) : key
}

// ---------------------------------------------------------------- opening a request's envelope

export interface EnvelopeRecipient {
  certificateDer: Buffer
  privateKey: KeyObject
}

/** PKCS#1 v1.5 type 2 unpadding with implicit rejection: any failure returns random bytes. */
function unpadKeyTransport(encoded: Buffer, keyLength: number): Buffer {
  const fallback = randomBytes(keyLength)
  if (encoded.length < keyLength + 11 || encoded[0] !== 0x00 || encoded[1] !== 0x02) return fallback
  const separator = encoded.indexOf(0x00, 2)
  if (separator < 10 || encoded.length - separator - 1 !== keyLength) return fallback
  return encoded.subarray(separator + 1)
}

/**
 * Decrypts a pkcsPKIEnvelope addressed to one of `recipients` (CA or RA). Throws
 * ScepFailure: badAlg for an algorithm we do not have, badMessageCheck otherwise.
 */
export function openEnvelope(envelope: Buffer, recipients: readonly EnvelopeRecipient[]): { content: Buffer; encryption: ContentEncryption } {
  try {
    const contentInfo = new ChildCursor(decodeElement(envelope), 'pkcsPKIEnvelope')
    const type = decodeOid(contentInfo.take(Tag.oid, 'contentType'))
    if (type !== ScepOid.envelopedData) throw new ScepFailure('badMessageCheck', `pkcsPKIEnvelope holds ${type}, not envelopedData`)
    const explicit = new ChildCursor(contentInfo.take(Tag.context(0), 'content'), 'content [0]')
    const enveloped = new ChildCursor(explicit.take(Tag.sequence, 'EnvelopedData'), 'EnvelopedData')
    enveloped.take(Tag.integer, 'version')
    enveloped.optional(Tag.context(0)) // originatorInfo
    const recipientInfos = childrenOf(enveloped.take(Tag.set, 'recipientInfos'))
    const encrypted = new ChildCursor(enveloped.take(Tag.sequence, 'encryptedContentInfo'), 'encryptedContentInfo')
    encrypted.take(Tag.oid, 'contentType')
    const algorithm = new ChildCursor(encrypted.take(Tag.sequence, 'contentEncryptionAlgorithm'), 'contentEncryptionAlgorithm')
    const algorithmOid = decodeOid(algorithm.take(Tag.oid, 'algorithm'))
    const encryption = encryptionByOid.get(algorithmOid)
    if (!encryption) throw new ScepFailure('badAlg', `content encryption ${algorithmOid} is not supported (DES, 3DES and AES-CBC are)`)
    const spec = contentEncryptions[encryption]
    const iv = algorithm.take(Tag.octetString, 'iv').value
    if (iv.length !== spec.ivLength) throw new ScepFailure('badMessageCheck', `${encryption} IV has ${iv.length} bytes, expected ${spec.ivLength}`)
    const encryptedContentElement = encrypted.optional(Tag.contextPrimitive(0), Tag.context(0))
    if (!encryptedContentElement) throw new ScepFailure('badMessageCheck', 'the envelope has no encrypted content')
    const encryptedContent = octets(encryptedContentElement, 'encryptedContent')

    for (const info of recipientInfos) {
      // KeyTransRecipientInfo only (a SEQUENCE); key agreement and others are not SCEP's.
      if (info.tag !== Tag.sequence) continue
      const parts = new ChildCursor(info, 'KeyTransRecipientInfo')
      parts.take(Tag.integer, 'version')
      const rid = parts.optional(Tag.sequence, Tag.contextPrimitive(0))
      const keyAlgorithm = decodeOid(new ChildCursor(parts.take(Tag.sequence, 'keyEncryptionAlgorithm'), 'keyEncryptionAlgorithm').take(Tag.oid, 'algorithm'))
      const encryptedKey = parts.take(Tag.octetString, 'encryptedKey').value
      const recipient = rid && recipients.find((candidate) => matchesRecipient(candidate.certificateDer, rid))
      if (!recipient) continue
      if (keyAlgorithm !== ScepOid.rsaEncryption) throw new ScepFailure('badAlg', `key encryption ${keyAlgorithm} is not supported (rsaEncryption is)`)
      const modulusBytes = Math.ceil((recipient.privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8)
      if (encryptedKey.length !== modulusBytes) throw new ScepFailure('badMessageCheck', 'the encrypted key does not have the length of our RSA modulus')
      const padded = privateDecrypt({ key: recipient.privateKey, padding: constants.RSA_NO_PADDING }, encryptedKey)
      const key = unpadKeyTransport(padded, spec.keyLength)
      let content: Buffer
      try {
        const decipher = createDecipheriv(spec.cipher, cipherKey(encryption, key), iv)
        content = Buffer.concat([decipher.update(encryptedContent), decipher.final()])
      } catch {
        throw new ScepFailure('badMessageCheck', 'the envelope does not decrypt with our key')
      }
      return { content, encryption }
    }
    throw new ScepFailure('badMessageCheck', 'the envelope is not encrypted to our CA or RA certificate (fetch GetCACert again)')
  } catch (error) {
    if (error instanceof ScepFailure) throw error
    if (error instanceof DerError) throw new ScepFailure('badMessageCheck', `pkcsPKIEnvelope does not parse: ${error.message}`)
    throw error
  }
}

function matchesRecipient(certificateDer: Buffer, rid: DerElement): boolean {
  if (rid.tag === Tag.sequence) {
    const parts = new ChildCursor(rid, 'issuerAndSerialNumber')
    const issuer = parts.take(Tag.sequence, 'issuer').raw
    const serial = parts.take(Tag.integer, 'serialNumber').value
    const ours = readIssuerAndSerialNumber(certificateDer)
    return ours.issuer.equals(issuer) && ours.serialNumber.equals(serial)
  }
  const fields = readCertificateFields(certificateDer)
  const identifier = fields.subjectKeyIdentifier ?? createHash('sha1').update(fields.subjectPublicKey).digest()
  return identifier.equals(rid.value)
}

// ---------------------------------------------------------------- enveloping an answer

/** The issuerAndSerialNumber (RFC 5652 §10.2.4) naming a certificate. */
export function issuerAndSerialNumber(certificateDer: Buffer): Buffer {
  const { issuer, serialNumber } = readIssuerAndSerialNumber(certificateDer)
  return der.sequence(issuer, der.element(Tag.integer, serialNumber))
}

/** The requester's key, which the answer is encrypted to: RSA key transport only. Throws ScepFailure badAlg. */
export function requesterKey(certificateDer: Buffer): KeyObject {
  const key = createPublicKey({ key: readCertificateFields(certificateDer).subjectPublicKeyInfo, format: 'der', type: 'spki' })
  if (key.asymmetricKeyType !== 'rsa')
    throw new ScepFailure('badAlg', `the requester's key is ${key.asymmetricKeyType}: SCEP answers can only be encrypted to an RSA key`)
  return key
}

/** EnvelopedData (RFC 5652 §6) with one RSA key-transport recipient. */
export function envelope(content: Buffer, recipientCertificateDer: Buffer, encryption: ContentEncryption): Buffer {
  const recipientKey = requesterKey(recipientCertificateDer)
  const spec = contentEncryptions[encryption]
  const key = randomBytes(spec.keyLength)
  const iv = randomBytes(spec.ivLength)
  const cipher = createCipheriv(spec.cipher, cipherKey(encryption, key), iv)
  const encrypted = Buffer.concat([cipher.update(content), cipher.final()])
  // PKCS#1 v1.5 encryption is still allowed (only private decryption was restricted).
  const encryptedKey = publicEncrypt({ key: recipientKey, padding: constants.RSA_PKCS1_PADDING }, key)
  const recipientInfo = der.sequence(
    der.smallInteger(0),
    issuerAndSerialNumber(recipientCertificateDer),
    der.algorithm(ScepOid.rsaEncryption, der.nullValue()),
    der.octetString(encryptedKey),
  )
  const encryptedContentInfo = der.sequence(der.oid(ScepOid.data), der.algorithm(spec.oid, der.octetString(iv)), der.contextPrimitive(0, encrypted))
  return der.sequence(
    der.oid(ScepOid.envelopedData),
    der.contextConstructed(0, der.sequence(der.smallInteger(0), der.setOf(recipientInfo), encryptedContentInfo)),
  )
}
