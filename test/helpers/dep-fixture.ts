// One test's ADE world: the enrollment world (device CA, push certificate, https public URL)
// wired to a fake ABM/ASM server, with an ABM token whose server token was made the way
// Apple makes it: `openssl smime -encrypt` of the OAuth JSON to the token's certificate.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { apiClient, type ApiResponse } from './api.js'
import { syncThroughJob } from './jobs.js'
import { setupEnrollment, type EnrollmentFixture } from './enrollment-fixture.js'
import { startFakeAbm, type FakeAbm, type FakeAbmCredentials, type FakeAbmOptions } from './fake-abm.js'

export interface DepFixture extends EnrollmentFixture {
  abm: FakeAbm
  call: ReturnType<typeof apiClient>
  /** Creates a token and uploads its server token; returns the token JSON. */
  connectToken(name?: string): Promise<any>
  sync(tokenId: string): Promise<ApiResponse>
}

/** The inner MIME part of Apple's server token, as the .p7m carries it once decrypted. */
export function serverTokenMessage(credentials: FakeAbmCredentials): string {
  return [
    'Content-Type: text/plain;charset=UTF-8',
    'Content-Transfer-Encoding: 7bit',
    '',
    '-----BEGIN MESSAGE-----',
    JSON.stringify(credentials),
    '-----END MESSAGE-----',
    '',
  ].join('\r\n')
}

/** S/MIME EnvelopedData (PKCS#1 v1.5 key transport, AES-256-CBC) by the openssl CLI. */
export function sealServerToken(message: string, certificatePem: string, cipher: 'aes256' | 'des3' = 'aes256'): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-p7m-'))
  try {
    writeFileSync(join(dir, 'cert.pem'), certificatePem)
    writeFileSync(join(dir, 'token.txt'), message)
    return execFileSync('openssl', ['smime', '-encrypt', `-${cipher}`, '-binary', '-in', join(dir, 'token.txt'), join(dir, 'cert.pem')])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function setupDep(
  t: Parameters<typeof setupEnrollment>[0],
  env: Record<string, string> = {},
  abmOptions: FakeAbmOptions = {},
): Promise<DepFixture> {
  const abm = await startFakeAbm(abmOptions)
  t.teardown(() => abm.close())
  const world = await setupEnrollment(t, { ORCHARD_ABM_URL: abm.url, ORCHARD_DEP_SYNC_SECONDS: '0', ...env })
  const call = apiClient(world.app)
  return {
    ...world,
    abm,
    call,
    async connectToken(name = 'Biology MDM server') {
      const created = await call('POST', '/api/v1/dep/tokens', { body: { name } })
      if (created.statusCode !== 201) throw new Error(`token creation failed: ${created.body}`)
      const p7m = sealServerToken(serverTokenMessage(abm.credentials), created.json.certificate_pem)
      const uploaded = await call('PUT', `/api/v1/dep/tokens/${created.json.id}/server-token`, { raw: { payload: p7m, contentType: 'application/pkcs7-mime' } })
      if (uploaded.statusCode !== 200) throw new Error(`server token upload failed: ${uploaded.body}`)
      return uploaded.json
    },
    // Answered 202 with an abm_sync job: its result is the sync report.
    sync: (tokenId) => syncThroughJob(call, `/api/v1/dep/tokens/${tokenId}/sync`),
  }
}
