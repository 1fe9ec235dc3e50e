// Finds and checks who sent a device request: the Mdm-Signature header (CMS over the raw
// body), else a client certificate forwarded by a TLS proxy, else our own TLS peer.
// https://developer.apple.com/documentation/devicemanagement/mdm (SignMessage)
import { IdentityError, verifyMdmSignature } from '../crypto/mdm-signature.js'
import { parseForwardedClientCertificate } from '../crypto/device-identity.js'
import { OrchardError } from '../errors.js'
import type { DeviceIdentity } from './mdm-types.js'

export interface CertificateVerifier {
  verify(certificateDer: Buffer): { sha256: string; notAfter: Date }
}

export interface IdentityEvidence {
  /** The Mdm-Signature header. */
  signature?: string
  /** The configured forwarded-certificate header, when the request came through a TLS proxy. */
  forwardedCertificate?: string
  /** DER of the client certificate of our own TLS connection; asked for only when nothing above is there. */
  peerCertificate?: () => Buffer | undefined
}

export type IdentityResolver = (evidence: IdentityEvidence, body: Buffer) => DeviceIdentity

export function createIdentityResolver(verifier: CertificateVerifier): IdentityResolver {
  return function resolveIdentity(evidence, body) {
    try {
      let certificateDer: Buffer
      if (evidence.signature !== undefined) {
        certificateDer = verifyMdmSignature(evidence.signature, body).certificateDer
      } else if (evidence.forwardedCertificate !== undefined) {
        certificateDer = parseForwardedClientCertificate(evidence.forwardedCertificate)
      } else {
        const peer = evidence.peerCertificate?.()
        if (!peer || peer.length === 0) throw new OrchardError('identity_missing', 'no Mdm-Signature header and no client certificate')
        certificateDer = peer
      }
      const verified = verifier.verify(certificateDer)
      return { certificateSha256: verified.sha256, notAfter: verified.notAfter }
    } catch (error) {
      if (error instanceof IdentityError) {
        throw new OrchardError('identity_rejected', `${error.code}: ${error.message}`, { cause: error })
      }
      throw error
    }
  }
}
