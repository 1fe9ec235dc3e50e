// What the PKCS#12 modules share: the error they throw, the OIDs with their names for
// messages, and small asn1js readers that turn a wrong shape into a Pkcs12Error.
import * as asn1js from 'asn1js'

/** invalid: not a readable file; password: a wrong password; unsupported: a scheme or mode this reader lacks. */
export type Pkcs12ErrorCode = 'invalid' | 'password' | 'unsupported'

export class Pkcs12Error extends Error {
  override readonly name = 'Pkcs12Error'
  readonly code: Pkcs12ErrorCode

  constructor(code: Pkcs12ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

export const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  crlBag: '1.2.840.113549.1.12.10.1.4',
  secretBag: '1.2.840.113549.1.12.10.1.5',
  safeContentsBag: '1.2.840.113549.1.12.10.1.6',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbmac1: '1.2.840.113549.1.5.14',
} as const

const OID_NAMES: Record<string, string> = {
  '1.2.840.113549.1.12.1.1': 'pbeWithSHAAnd128BitRC4',
  '1.2.840.113549.1.12.1.2': 'pbeWithSHAAnd40BitRC4',
  '1.2.840.113549.1.12.1.3': 'pbeWithSHAAnd3-KeyTripleDES-CBC',
  '1.2.840.113549.1.12.1.4': 'pbeWithSHAAnd2-KeyTripleDES-CBC',
  '1.2.840.113549.1.12.1.5': 'pbeWithSHAAnd128BitRC2-CBC',
  '1.2.840.113549.1.12.1.6': 'pbeWithSHAAnd40BitRC2-CBC',
  '1.2.840.113549.1.5.1': 'pbeWithMD2AndDES-CBC',
  '1.2.840.113549.1.5.3': 'pbeWithMD5AndDES-CBC',
  '1.2.840.113549.1.5.4': 'pbeWithMD2AndRC2-CBC',
  '1.2.840.113549.1.5.6': 'pbeWithMD5AndRC2-CBC',
  '1.2.840.113549.1.5.10': 'pbeWithSHA1AndDES-CBC',
  '1.2.840.113549.1.5.11': 'pbeWithSHA1AndRC2-CBC',
  [OID.pbes2]: 'PBES2',
  [OID.pbkdf2]: 'PBKDF2',
  [OID.pbmac1]: 'PBMAC1',
  '1.3.6.1.4.1.11591.4.11': 'scrypt',
  [OID.signedData]: 'signedData',
  [OID.envelopedData]: 'envelopedData',
  '1.2.840.113549.3.2': 'rc2-cbc',
  '1.2.840.113549.3.7': 'des-ede3-cbc',
  '1.3.14.3.2.7': 'des-cbc',
  '2.16.840.1.101.3.4.1.2': 'aes-128-cbc',
  '2.16.840.1.101.3.4.1.22': 'aes-192-cbc',
  '2.16.840.1.101.3.4.1.42': 'aes-256-cbc',
  '2.16.840.1.101.3.4.1.6': 'aes-128-gcm',
  '2.16.840.1.101.3.4.1.46': 'aes-256-gcm',
  '1.2.840.113549.2.5': 'md5',
  '1.3.14.3.2.26': 'sha1',
  '1.2.840.10045.2.1': 'ecPublicKey',
  '1.2.840.113549.1.1.1': 'rsaEncryption',
  '1.3.101.112': 'Ed25519',
}

/** An OID with its name when known, for messages: "PBES2 (1.2.840.113549.1.5.13)". */
export const describeOid = (oid: string) => (OID_NAMES[oid] ? `${OID_NAMES[oid]} (${oid})` : oid)

export const invalid = (message: string, cause?: unknown) => new Pkcs12Error('invalid', message, cause === undefined ? undefined : { cause })
export const unsupported = (message: string) => new Pkcs12Error('unsupported', message)
export const wrongPassword = (message: string, cause?: unknown) => new Pkcs12Error('password', message, cause === undefined ? undefined : { cause })

export function parseBer(bytes: Buffer, what: string): asn1js.AsnType {
  const parsed = asn1js.fromBER(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  if (parsed.offset === -1) throw invalid(`${what} is not valid DER/BER: ${parsed.result.error || 'malformed'}`)
  return parsed.result
}

/** OCTET STRING content, primitive or (BER) constructed. */
export function octets(value: unknown, what = 'an OCTET STRING'): Buffer {
  if (!(value instanceof asn1js.OctetString)) throw invalid(`${what} is not an OCTET STRING`)
  return Buffer.from(value.getValue())
}

export function integer(value: unknown, what: string): number {
  if (!(value instanceof asn1js.Integer)) throw invalid(`${what} is not an INTEGER`)
  return value.valueBlock.valueDec
}

export function sequenceItems(value: unknown, count: number, what: string): asn1js.AsnType[] {
  if (!(value instanceof asn1js.Sequence) || value.valueBlock.value.length !== count) throw invalid(`${what} are not a SEQUENCE of ${count} elements`)
  return value.valueBlock.value
}
