// Client of Apple's escrowKeyUnlock service, which turns Activation Lock off at Apple's
// activation server with a bypass code: POST, the device in the query string (serial,
// productType, imei, imei2, meid), the organization, the requester and the code as an
// application/x-www-form-urlencoded body (orgName, guid, escrowKey), and the MDM push
// certificate as the TLS client identity.
// https://developer.apple.com/documentation/devicemanagement/creating-and-using-bypass-codes
// What Apple's documentation does not say, and is assumed here: 200 means the lock is off;
// any other status is a refusal whose body (text, shown to the admin) says why.
import { request } from 'node:https'
import { rootCertificates } from 'node:tls'

export const escrowKeyUnlockUrl = 'https://deviceservices-external.apple.com/deviceservicesworkers/escrowKeyUnlock'

export interface EscrowKeyUnlockRequest {
  serial: string
  /** The model identifier (iPad13,1): DeviceInformation ProductName. */
  productType: string
  imei?: string | undefined
  imei2?: string | undefined
  meid?: string | undefined
  /** For Apple's audit: the organization. */
  orgName: string
  /** For Apple's audit: who asks (email, login or name). */
  guid: string
  /** The bypass code, as written (XXXXX-XXXXX-XXXX-XXXX-XXXX-XXXX). */
  escrowKey: string
}

export interface TlsIdentity {
  certificatePem: string
  privateKeyPem: string
}

export type EscrowKeyUnlockAnswer = { kind: 'answered'; status: number; body: string } | { kind: 'unreachable'; detail: string }

export interface EscrowKeyUnlockClient {
  unlock(identity: TlsIdentity, unlock: EscrowKeyUnlockRequest): Promise<EscrowKeyUnlockAnswer>
}

export function createEscrowKeyUnlockClient(options: { url: string; ca?: string | undefined; timeoutMs?: number }): EscrowKeyUnlockClient {
  const timeoutMs = options.timeoutMs ?? 30_000
  const ca = options.ca !== undefined ? [...rootCertificates, options.ca] : undefined
  return {
    unlock(identity, unlock) {
      const query = new URLSearchParams({ serial: unlock.serial, productType: unlock.productType })
      for (const key of ['imei', 'imei2', 'meid'] as const) {
        const value = unlock[key]
        if (value) query.set(key, value)
      }
      const form = new URLSearchParams({ orgName: unlock.orgName, guid: unlock.guid, escrowKey: unlock.escrowKey }).toString()
      const target = new URL(options.url)
      target.search = query.toString()
      return new Promise((resolve) => {
        const req = request(
          target,
          {
            method: 'POST',
            cert: identity.certificatePem,
            key: identity.privateKeyPem,
            ...(ca ? { ca } : {}),
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(form), accept: '*/*' },
            timeout: timeoutMs,
          },
          (res) => {
            const chunks: Buffer[] = []
            let size = 0
            res.on('data', (chunk: Buffer) => {
              // Only the start of a long answer is kept: it is shown to the admin, not parsed.
              if (size < 64 * 1024) chunks.push(chunk)
              size += chunk.length
            })
            res.on('end', () => resolve({ kind: 'answered', status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
            res.on('error', (error) => resolve({ kind: 'unreachable', detail: error.message }))
          },
        )
        req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
        req.on('error', (error) => resolve({ kind: 'unreachable', detail: error.message }))
        req.end(form)
      })
    },
  }
}
