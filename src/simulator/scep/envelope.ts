// The pkcsPKIEnvelope of SCEP messages (RFC 8894 §3.2.2): CMS EnvelopedData with one RSA key
// transport recipient, content encrypted with DES, 3DES or AES (RFC 5652 §6).
import { constants, createCipheriv, createDecipheriv, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto'
import * as asn1js from 'asn1js'
import {
  CONTEXT,
  ScepOid,
  TAG,
  algorithmIdentifier,
  children,
  ciphers,
  contentBytes,
  contentInfo,
  expectSequence,
  expectSet,
  int,
  integerValue,
  isTag,
  isUniversal,
  octetStringBytes,
  octets,
  oid,
  oidString,
  parseAlgorithm,
  parseContentInfo,
  requireRsa,
  seq,
  toDer,
  type Block,
  type CipherSpec,
  type ScepEncryption,
} from './asn1.js'
import { certificateInfo, identifies, issuerAndSerialNumber } from './certificates.js'

// Symmetric encryption and RSA key transport

/** DES keys carry odd parity in each byte's low bit (FIPS 46-3); ciphers ignore it, but be proper. */
function withDesParity(key: Buffer): Buffer {
  for (let i = 0; i < key.length; i++) {
    const high = key[i]! & 0xfe
    let ones = 0
    for (let b = high; b; b >>= 1) ones += b & 1
    key[i] = high | (ones % 2 === 0 ? 1 : 0)
  }
  return key
}

function cipherKey(spec: CipherSpec, key: Buffer): Buffer {
  return spec.keyLength === 8 ? Buffer.concat([key, key, key]) : key
}

export type ScepEncoding = 'der' | 'ber'

/**
 * pkcsPKIEnvelope: DER (or streaming BER) of ContentInfo(EnvelopedData) with one
 * KeyTransRecipientInfo (issuerAndSerialNumber, rsaEncryption + NULL) and `content` encrypted
 * as id-data with a fresh key and IV (the IV is the OCTET STRING parameter of the algorithm).
 */
export function envelope(content: Buffer, recipientCertificateDer: Buffer, encryption: ScepEncryption = 'aes128', encoding: ScepEncoding = 'der'): Buffer {
  const recipient = certificateInfo(recipientCertificateDer)
  requireRsa(recipient.publicKey, 'the recipient certificate key')
  const spec = ciphers[encryption]
  const key = encryption === 'des' || encryption === 'des3' ? withDesParity(randomBytes(spec.keyLength)) : randomBytes(spec.keyLength)
  const iv = randomBytes(spec.ivLength)
  const cipher = createCipheriv(spec.cipher, cipherKey(spec, key), iv) // PKCS#7 padding, as CMS wants (RFC 5652 §6.3)
  const encrypted = Buffer.concat([cipher.update(content), cipher.final()])
  const encryptedKey = publicEncrypt({ key: recipient.publicKey, padding: constants.RSA_PKCS1_PADDING }, key)

  const keyTransRecipientInfo = seq(
    int(0), // version 0: rid is issuerAndSerialNumber
    issuerAndSerialNumber(recipient),
    algorithmIdentifier(ScepOid.rsaEncryption, 'null'),
    octets(encryptedKey),
  )
  // encryptedContent [0] IMPLICIT OCTET STRING: primitive in DER, 1 KiB segments in BER.
  const encryptedContent =
    encoding === 'der'
      ? new asn1js.Primitive({ idBlock: { tagClass: CONTEXT, tagNumber: 0 }, valueHex: encrypted })
      : indefinite(new asn1js.Constructed({ idBlock: { tagClass: CONTEXT, tagNumber: 0 }, value: segments(encrypted) }))
  const encryptedContentInfo = seq(oid(ScepOid.data), algorithmIdentifier(spec.oid, octets(iv)), encryptedContent)
  // version 0: no originatorInfo, only version-0 KeyTransRecipientInfos, no unprotectedAttrs.
  const envelopedData = seq(int(0), new asn1js.Set({ value: [keyTransRecipientInfo] }), encryptedContentInfo)
  const outer = contentInfo(ScepOid.envelopedData, envelopedData)
  if (encoding === 'ber') for (const block of [outer, outer.valueBlock.value[1]!, envelopedData, encryptedContentInfo]) indefinite(block)
  return toDer(outer)
}

export function indefinite<T extends Block>(block: T): T {
  block.lenBlock.isIndefiniteForm = true
  ;(block.valueBlock as unknown as { isIndefiniteForm: boolean }).isIndefiniteForm = true
  return block
}
export function segments(bytes: Buffer, size = 1024): asn1js.OctetString[] {
  const out: asn1js.OctetString[] = []
  for (let offset = 0; offset < bytes.length; offset += size) out.push(octets(bytes.subarray(offset, offset + size)))
  return out
}

/** RSAES-PKCS1-v1_5 decryption by hand (RSA_NO_PADDING, then strip 00 02 PS 00 M; RFC 8017 §7.2.2). */
function rsaPkcs1Decrypt(privateKey: KeyObject, encrypted: Buffer): Buffer {
  const modulusBits = privateKey.asymmetricKeyDetails?.modulusLength
  if (!modulusBits) throw new Error('recipientKey is not an RSA private key')
  const k = Math.ceil(modulusBits / 8)
  if (encrypted.length > k) throw new Error('encryptedKey is longer than the modulus')
  const padded = encrypted.length < k ? Buffer.concat([Buffer.alloc(k - encrypted.length), encrypted]) : encrypted
  const block = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, padded)
  const em = block.length < k ? Buffer.concat([Buffer.alloc(k - block.length), block]) : block
  const separator = em.indexOf(0, 2)
  if (em[0] !== 0 || em[1] !== 2 || separator < 10) throw new Error('encryptedKey does not decrypt with recipientKey (bad PKCS#1 v1.5 padding)')
  return em.subarray(separator + 1)
}

export interface OpenedEnvelope {
  content: Buffer
  encryption: ScepEncryption
}

/** Decrypts a pkcsPKIEnvelope (ContentInfo(EnvelopedData)) with our RSA key. */
export function openEnvelope(der: Uint8Array, recipientKey: KeyObject, recipientCertificateDer?: Buffer): OpenedEnvelope {
  const fields = expectSequence(parseContentInfo(der, ScepOid.envelopedData, 'pkcsPKIEnvelope'), 'EnvelopedData')
  integerValue(fields[0], 'EnvelopedData.version')
  const rest = isTag(fields[1], CONTEXT, 0) ? fields.slice(2) : fields.slice(1) // skip originatorInfo
  const [recipientInfos, encryptedContentInfo] = rest
  const [contentTypeBlock, algorithmBlock, encryptedContentBlock] = expectSequence(encryptedContentInfo, 'EncryptedContentInfo')
  const contentType = oidString(contentTypeBlock, 'EncryptedContentInfo.contentType')
  if (contentType !== ScepOid.data) throw new Error(`EncryptedContentInfo.contentType is ${contentType}, expected id-data`)
  const algorithm = parseAlgorithm(algorithmBlock, 'contentEncryptionAlgorithm')
  const encryption = (Object.keys(ciphers) as ScepEncryption[]).find((name) => ciphers[name].oid === algorithm.oid)
  if (!encryption) throw new Error(`unsupported content-encryption algorithm ${algorithm.oid}`)
  const spec = ciphers[encryption]
  const iv = octetStringBytes(algorithm.parameters, 'content-encryption IV')
  if (iv.length !== spec.ivLength) throw new Error(`IV of ${iv.length} bytes for ${encryption}`)
  if (!isTag(encryptedContentBlock, CONTEXT, 0)) throw new Error('EncryptedContentInfo has no encryptedContent')
  const encrypted = contentBytes(encryptedContentBlock)

  const recipient = recipientCertificateDer ? certificateInfo(recipientCertificateDer) : undefined
  const errors: string[] = []
  for (const recipientInfo of expectSet(recipientInfos, 'recipientInfos')) {
    if (!isUniversal(recipientInfo, TAG.sequence)) continue // not a KeyTransRecipientInfo
    const [, rid, keyAlgorithm, encryptedKey] = children(recipientInfo, 'KeyTransRecipientInfo')
    if (!rid) continue
    if (recipient && !identifies(rid, recipient)) {
      errors.push('a RecipientInfo names another certificate than ours')
      continue
    }
    const keyEncryption = parseAlgorithm(keyAlgorithm, 'keyEncryptionAlgorithm').oid
    if (keyEncryption !== ScepOid.rsaEncryption) {
      errors.push(`key encryption ${keyEncryption} is not rsaEncryption`)
      continue
    }
    try {
      const key = rsaPkcs1Decrypt(recipientKey, octetStringBytes(encryptedKey, 'encryptedKey'))
      if (key.length !== spec.keyLength) throw new Error(`content-encryption key of ${key.length} bytes for ${encryption}`)
      const decipher = createDecipheriv(spec.cipher, cipherKey(spec, key), iv)
      return { content: Buffer.concat([decipher.update(encrypted), decipher.final()]), encryption }
    } catch (error) {
      errors.push((error as Error).message)
    }
  }
  throw new Error(`no RecipientInfo of the pkcsPKIEnvelope decrypts with our key${errors.length ? `: ${errors.join('; ')}` : ''}`)
}
