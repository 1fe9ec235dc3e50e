// One test's enrollment world: the real app with its built-in device CA (ORCHARD_SECRET_KEYS
// set), an https public URL, a push certificate uploaded, and helpers to download profiles
// and run SCEP through app.inject().
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { decodePlist, isPlistDict, type PlistDict } from '../../src/mdm/plist.js'
import { profileParts } from '../../src/simulator/enrollment-profile.js'
import { mintPushCertificate } from './fake-apns.js'
import { apiClient } from './api.js'
import { setupMdm, type MdmFixture } from './mdm-fixture.js'
import type { ScepHttp } from './scep-client.js'
import { testTopic } from './simulated-device.js'
import { createTestCa } from './test-ca.js'

export const publicUrl = 'https://mdm.example.test'

export interface EnrollmentFixture extends MdmFixture {
  /** SCEP over app.inject(). */
  scepHttp: ScepHttp
  api(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<{ statusCode: number; json: any }>
  /** GET a profile URL (path), decoding the plist of an unsigned profile. */
  download(path: string): Promise<{ statusCode: number; body: Buffer; headers: Record<string, unknown>; profile?: PlistDict; json?: any }>
}

export async function setupEnrollment(
  t: Parameters<typeof setupMdm>[0],
  env: Record<string, string> = {},
  options: { pushCertificate?: boolean; logger?: Logger } = {},
): Promise<EnrollmentFixture> {
  // Pushes (renewals push at once) go to a closed loopback port: never to Apple, no network.
  const mdm = await setupMdm(
    t,
    {
      ORCHARD_SECRET_KEYS: randomBytes(32).toString('hex'),
      ORCHARD_PUBLIC_URL: publicUrl,
      ORCHARD_REPUSH_LOOP_SECONDS: '0',
      ORCHARD_APNS_URL: 'https://127.0.0.1:9',
      ...env,
    },
    options.logger ? { logger: options.logger } : {},
  )
  const client = apiClient(mdm.app)
  const api: EnrollmentFixture['api'] = (method, url, body) => client(method, url, body === undefined ? {} : { body })
  if (options.pushCertificate !== false) {
    const pushCa = await createTestCa('Test push CA', 'rsa-2048')
    const identity = await mintPushCertificate(pushCa, testTopic)
    const uploaded = await api('POST', '/api/v1/push-certificates', { certificate_pem: identity.certificatePem, private_key_pem: identity.privateKeyPem })
    if (uploaded.statusCode !== 201) throw new Error(`push certificate upload failed: ${JSON.stringify(uploaded.json)}`)
  }
  const scepHttp: ScepHttp = async (request) => {
    const response = await mdm.app.inject({
      method: request.method,
      url: request.url,
      ...(request.body ? { payload: request.body } : {}),
      headers: { ...(request.body ? { 'content-type': 'application/x-pki-message' } : {}), ...request.headers },
    })
    return { status: response.statusCode, body: response.rawPayload, contentType: response.headers['content-type'] as string | undefined }
  }
  const download: EnrollmentFixture['download'] = async (path) => {
    const response = await mdm.app.inject({ method: 'GET', url: path })
    const result: Awaited<ReturnType<EnrollmentFixture['download']>> = { statusCode: response.statusCode, body: response.rawPayload, headers: response.headers }
    const type = String(response.headers['content-type'] ?? '')
    if (type.startsWith('application/problem+json')) result.json = response.json()
    if (response.statusCode === 200 && response.rawPayload.subarray(0, 5).toString() === '<?xml') {
      const decoded = decodePlist(response.rawPayload)
      if (isPlistDict(decoded)) result.profile = decoded
    }
    return result
  }
  return { ...mdm, scepHttp, api, download }
}

export { profileParts }
