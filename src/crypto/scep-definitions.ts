// What the SCEP modules (RFC 8894) share: the OIDs, message types and failInfo codes, the two
// ways a request is refused, and the BER OCTET STRING reader.
//
// Trap: the encrypted content and eContent may arrive as constructed (chunked) OCTET STRINGs.
import { childrenOf, DerError, Tag, type DerElement } from './der.js'
import type { DigestAlgorithm } from './mdm-signature.js'

export const ScepOid = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  challengePassword: '1.2.840.113549.1.9.7',
  rsaEncryption: '1.2.840.113549.1.1.1',
  messageType: '2.16.840.1.113733.1.9.2',
  pkiStatus: '2.16.840.1.113733.1.9.3',
  failInfo: '2.16.840.1.113733.1.9.4',
  senderNonce: '2.16.840.1.113733.1.9.5',
  recipientNonce: '2.16.840.1.113733.1.9.6',
  transactionId: '2.16.840.1.113733.1.9.7',
} as const

/** RFC 8894 §3.2.1.2 messageType values. */
export const ScepMessageType = { CertRep: 3, RenewalReq: 17, PKCSReq: 19, CertPoll: 20, GetCert: 21, GetCRL: 22 } as const

/** RFC 8894 §3.2.1.4 failInfo values. */
export const failInfoCodes = { badAlg: 0, badMessageCheck: 1, badRequest: 2, badTime: 3, badCertId: 4 } as const
export type FailInfo = keyof typeof failInfoCodes

/** The request is readable but refused: answered with a CertRep FAILURE carrying failInfo. */
export class ScepFailure extends Error {
  override readonly name = 'ScepFailure'
  constructor(
    readonly failInfo: FailInfo,
    message: string,
  ) {
    super(message)
  }
}

/** Not even a CertRep can be built (no transactionID, no nonce, no signer): HTTP 400. */
export class ScepMalformed extends Error {
  override readonly name = 'ScepMalformed'
}

/** digestAlgorithm OIDs of the SignerInfo, and back. */
export const digestOids: Record<string, DigestAlgorithm> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}
export const digestOidOf = Object.fromEntries(Object.entries(digestOids).map(([oid, name]) => [name, oid])) as Record<DigestAlgorithm, string>

/** The content octets of an OCTET STRING, primitive or constructed (BER chunks). */
export function octets(element: DerElement, what: string, depth = 0): Buffer {
  if (element.tag === Tag.octetString || element.tag === Tag.contextPrimitive(0)) return element.value
  if ((element.tag === 0x24 || element.tag === Tag.context(0)) && depth < 8) {
    return Buffer.concat(childrenOf(element).map((chunk) => octets(chunk, what, depth + 1)))
  }
  throw new DerError(`${what} is not an OCTET STRING (tag 0x${element.tag.toString(16)})`)
}
