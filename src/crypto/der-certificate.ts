// X.509 certificates (RFC 5280 §4.1) read with the DER reader: the fields identity checks
// need, the issuerAndSerialNumber that CMS compares, and a Name as one line for logs.
import {
  ChildCursor,
  childrenOf,
  decodeElement,
  decodeOid,
  decodeTime,
  DerError,
  expectTag,
  integerBytes,
  octetString,
  Tag,
  type DerElement,
} from './der-reader.js'

/** The fields of an X.509 certificate (RFC 5280 §4.1) that identity checks need, as slices of the input. */
export interface CertificateFields {
  /** INTEGER content octets of serialNumber. */
  serialNumber: Buffer
  /** DER of the issuer Name. */
  issuer: Buffer
  /** DER of the subject Name. */
  subject: Buffer
  notBefore: Date
  notAfter: Date
  /** Content of the subjectPublicKey BIT STRING (without the unused-bits octet). */
  subjectPublicKey: Buffer
  /** DER of the whole SubjectPublicKeyInfo (what node:crypto createPublicKey takes as 'spki'). */
  subjectPublicKeyInfo: Buffer
  /** DER of tbsCertificate: the bytes the issuer signed. */
  tbsCertificate: Buffer
  /** OID of the issuer's signature algorithm. */
  signatureAlgorithm: string
  /** Content of the signatureValue BIT STRING (without the unused-bits octet). */
  signatureValue: Buffer
  /** keyIdentifier of the subjectKeyIdentifier extension (2.5.29.14), if present. */
  subjectKeyIdentifier: Buffer | undefined
}

const subjectKeyIdentifierOid = '2.5.29.14'

interface OpenedCertificate {
  /** The cursor stands at serialNumber. */
  fields: ChildCursor
  tbs: DerElement
  signatureAlgorithm: DerElement
  signatureValue: DerElement
}

/** Checks the Certificate and tbsCertificate envelopes. */
function openCertificate(der: Buffer): OpenedCertificate {
  const certificate = decodeElement(der)
  expectTag(certificate, Tag.sequence, 'Certificate')
  // The signature covers the DER of tbsCertificate: a BER certificate cannot be checked.
  if (certificate.indefinite) throw new DerError('Certificate uses indefinite length')
  const outer = new ChildCursor(certificate, 'Certificate')
  const tbs = outer.take(Tag.sequence, 'tbsCertificate')
  const signatureAlgorithm = outer.take(Tag.sequence, 'signatureAlgorithm')
  const signatureValue = outer.take(Tag.bitString, 'signatureValue')
  outer.end()
  if (tbs.indefinite) throw new DerError('tbsCertificate uses indefinite length')
  const fields = new ChildCursor(tbs, 'tbsCertificate')
  fields.optional(Tag.context(0)) // version [0] EXPLICIT, absent for v1
  return { fields, tbs, signatureAlgorithm, signatureValue }
}

function openTbsCertificate(der: Buffer): ChildCursor {
  return openCertificate(der).fields
}

/** Only what CMS issuerAndSerialNumber (RFC 5652 §10.2.4) is compared with: cheap enough for every request. */
export function readIssuerAndSerialNumber(der: Buffer): { issuer: Buffer; serialNumber: Buffer } {
  const fields = openTbsCertificate(der)
  const serialNumber = integerBytes(fields.take(Tag.integer, 'serialNumber'), 'serialNumber')
  fields.take(Tag.sequence, 'signature')
  return { issuer: fields.take(Tag.sequence, 'issuer').raw, serialNumber }
}

export function readCertificateFields(der: Buffer): CertificateFields {
  const opened = openCertificate(der)
  const fields = opened.fields
  const serialNumber = integerBytes(fields.take(Tag.integer, 'serialNumber'), 'serialNumber')
  fields.take(Tag.sequence, 'signature')
  const issuer = fields.take(Tag.sequence, 'issuer').raw
  const validity = new ChildCursor(fields.take(Tag.sequence, 'validity'), 'validity')
  const notBeforeElement = validity.optional(Tag.utcTime, Tag.generalizedTime)
  const notAfterElement = validity.optional(Tag.utcTime, Tag.generalizedTime)
  if (!notBeforeElement || !notAfterElement) throw new DerError('validity: expected notBefore and notAfter times')
  validity.end()
  const subject = fields.take(Tag.sequence, 'subject').raw
  const spkiElement = fields.take(Tag.sequence, 'subjectPublicKeyInfo')
  const spki = new ChildCursor(spkiElement, 'subjectPublicKeyInfo')
  spki.take(Tag.sequence, 'algorithm')
  const publicKeyBits = spki.take(Tag.bitString, 'subjectPublicKey').value
  spki.end()
  if (publicKeyBits.length < 2 || publicKeyBits[0] !== 0) throw new DerError('subjectPublicKey: malformed BIT STRING')
  fields.optional(Tag.contextPrimitive(1), Tag.context(1)) // issuerUniqueID
  fields.optional(Tag.contextPrimitive(2), Tag.context(2)) // subjectUniqueID
  const extensions = fields.optional(Tag.context(3))
  fields.end()

  let subjectKeyIdentifier: Buffer | undefined
  if (extensions) {
    const wrapper = new ChildCursor(extensions, 'extensions')
    const list = wrapper.take(Tag.sequence, 'Extensions')
    wrapper.end()
    for (const extension of childrenOf(list)) {
      const parts = new ChildCursor(expectTag(extension, Tag.sequence, 'Extension'), 'Extension')
      const extnId = decodeOid(parts.take(Tag.oid, 'extnID'))
      parts.optional(Tag.boolean) // critical DEFAULT FALSE
      const extnValue = octetString(parts.take(Tag.octetString, 'extnValue'), 'extnValue')
      parts.end()
      if (extnId === subjectKeyIdentifierOid) {
        subjectKeyIdentifier = octetString(decodeElement(extnValue), 'SubjectKeyIdentifier')
      }
    }
  }

  return {
    serialNumber,
    issuer,
    subject,
    notBefore: decodeTime(notBeforeElement, 'notBefore'),
    notAfter: decodeTime(notAfterElement, 'notAfter'),
    subjectPublicKey: publicKeyBits.subarray(1),
    subjectKeyIdentifier,
    subjectPublicKeyInfo: spkiElement.raw,
    tbsCertificate: opened.tbs.raw,
    signatureAlgorithm: decodeOid(new ChildCursor(opened.signatureAlgorithm, 'signatureAlgorithm').take(Tag.oid, 'algorithm')),
    signatureValue: bitStringContent(opened.signatureValue, 'signatureValue'),
  }
}

function bitStringContent(element: DerElement, what: string): Buffer {
  const bits = element.value
  if (bits.length < 1 || bits[0] !== 0) throw new DerError(`${what}: malformed BIT STRING`)
  return bits.subarray(1)
}

const attributeNames: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.4': 'SN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.42': 'GN',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
}

/**
 * A Name as one line, most significant RDN first ("O=Example, CN=device"), as
 * node:crypto's X509Certificate prints it for plain names; null when a value is not a
 * simple string (callers then ask X509Certificate).
 */
export function formatSimpleName(nameDer: Buffer): string | null {
  const parts: string[] = []
  for (const rdn of childrenOf(expectTag(decodeElement(nameDer), Tag.sequence, 'Name'))) {
    for (const attribute of childrenOf(expectTag(rdn, Tag.set, 'RelativeDistinguishedName'))) {
      const cursor = new ChildCursor(expectTag(attribute, Tag.sequence, 'AttributeTypeAndValue'), 'AttributeTypeAndValue')
      const type = decodeOid(cursor.take(Tag.oid, 'type'))
      const value = cursor.optional(Tag.utf8String, 0x13, 0x16) // UTF8String, PrintableString, IA5String
      if (!value) return null
      cursor.end()
      const text = value.value.toString('utf8')
      // Characters that OpenSSL escapes or that could blur the line: leave those names to it.
      if (!/^[A-Za-z0-9 ._@:'()/-]*$/.test(text) || text.startsWith(' ') || text.endsWith(' ')) return null
      parts.push(`${attributeNames[type] ?? type}=${text}`)
    }
  }
  return parts.join(', ')
}
