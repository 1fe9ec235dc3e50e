// The SCEP client the tests use is the simulator's (src/simulator/scep-client.ts): one copy for
// both. Here: what only tests need, a CertRep built as a server builds one (tests that play or
// fake the server) and ScepHttp transports over fastify's inject and over fetch.
import { randomBytes, type KeyObject } from 'node:crypto'
import { signPkiMessage, type ScepAttributes, type ScepDigest, type ScepFailInfo, type ScepHttp, type ScepPkiStatus } from '../../src/simulator/scep-client.js'

export * from '../../src/simulator/scep-client.js'

/** A CertRep as a server builds one (for tests that play the server, or fake one). */
export interface BuildCertRepOptions {
  pkiStatus: ScepPkiStatus
  failInfo?: ScepFailInfo
  transactionId: string
  /** The request's senderNonce, echoed as recipientNonce. */
  recipientNonce: Buffer
  senderNonce?: Buffer
  /** SUCCESS: the pkcsPKIEnvelope (ContentInfo(EnvelopedData) DER) holding the certs-only reply. */
  envelope?: Buffer
  signerCertificateDer: Buffer
  signerKey: KeyObject
  digest?: ScepDigest
  certificates?: Buffer[]
  corruptSignature?: boolean
}

export function buildCertRep(options: BuildCertRepOptions): Buffer {
  const attributes: ScepAttributes = {
    messageType: 'CertRep',
    transactionId: options.transactionId,
    pkiStatus: options.pkiStatus,
    recipientNonce: options.recipientNonce,
    senderNonce: options.senderNonce ?? randomBytes(16),
  }
  if (options.failInfo) attributes.failInfo = options.failInfo
  return signPkiMessage({
    ...(options.envelope ? { content: options.envelope } : {}),
    signerCertificateDer: options.signerCertificateDer,
    signerKey: options.signerKey,
    attributes,
    digest: options.digest ?? 'sha256',
    ...(options.certificates ? { certificates: options.certificates } : {}),
    ...(options.corruptSignature ? { corruptSignature: true } : {}),
  })
}

/** A ScepHttp over fastify's inject (structurally typed, so this file needs no fastify import). */
export function injectScepHttp(app: {
  inject(options: { method: 'GET' | 'POST'; url: string; payload?: Buffer; headers?: Record<string, string> }): PromiseLike<{
    statusCode: number
    rawPayload: Buffer
    headers: Record<string, string | string[] | number | undefined>
  }>
}): ScepHttp {
  return async (request) => {
    const response = await app.inject({
      method: request.method,
      url: request.url,
      ...(request.body ? { payload: request.body } : {}),
      ...(request.headers ? { headers: request.headers } : {}),
    })
    const contentType = response.headers['content-type']
    return { status: response.statusCode, body: response.rawPayload, contentType: typeof contentType === 'string' ? contentType : undefined }
  }
}

/** A ScepHttp over real HTTP(S) with fetch, relative to `baseUrl`. */
export function fetchScepHttp(baseUrl: string): ScepHttp {
  return async (request) => {
    const response = await fetch(new URL(request.url, baseUrl), {
      method: request.method,
      ...(request.body ? { body: request.body } : {}),
      ...(request.headers ? { headers: request.headers } : {}),
    })
    return { status: response.status, body: Buffer.from(await response.arrayBuffer()), contentType: response.headers.get('content-type') ?? undefined }
  }
}
