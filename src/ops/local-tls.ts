// A local CA and a server certificate signed by it: HTTPS for trying Orchard on one machine
// (`npm run certs:dev`) and for a first deployment before a real certificate is in place
// (`orchard-init`, the Docker Compose setup). Nothing here is secret to a deployment.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join } from 'node:path'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem } from '../crypto/certificates.js'

export const localTlsFiles = ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem'] as const

/** The four PEM files: the CA (825 days) and a server certificate for `names` (397 days, the most Apple devices accept). */
export async function createLocalTls(names: readonly string[]): Promise<Record<(typeof localTlsFiles)[number], string>> {
  if (names.length === 0) throw new Error('a server certificate needs at least one name')
  const organization = 'Orchard (local CA: replace for production)'
  const caKeys = await generateKeyPair('ec-p256')
  const ca = await createCertificate({
    subject: { commonName: 'Orchard local CA', organization },
    publicKey: caKeys.publicKey,
    selfSignKey: caKeys.privateKey,
    validDays: 825,
    usage: 'ca',
  })
  const serverKeys = await generateKeyPair('ec-p256')
  const server = await createCertificate({
    subject: { commonName: names[0]!, organization },
    publicKey: serverKeys.publicKey,
    issuer: { certificate: ca, privateKey: caKeys.privateKey },
    validDays: 397,
    usage: 'server',
    dnsNames: names.filter((n) => isIP(n) === 0),
    ipAddresses: names.filter((n) => isIP(n) !== 0),
  })
  return {
    'ca.pem': certificateToPem(ca),
    'ca-key.pem': await privateKeyToPem(caKeys.privateKey),
    'server.pem': certificateToPem(server),
    'server-key.pem': await privateKeyToPem(serverKeys.privateKey),
  }
}

/**
 * Writes the local CA and server certificate into `dir`, unless `server.pem` is there already
 * (a real certificate put in its place is never overwritten); true when it wrote them. Keys are 0600.
 */
export async function ensureLocalTls(dir: string, names: readonly string[], options: { replace?: boolean } = {}): Promise<boolean> {
  if (!options.replace && existsSync(join(dir, 'server.pem'))) return false
  mkdirSync(dir, { recursive: true })
  const files = await createLocalTls(names)
  for (const name of localTlsFiles) {
    const file = join(dir, name)
    writeFileSync(file, files[name])
    chmodSync(file, name.endsWith('-key.pem') ? 0o600 : 0o644)
  }
  return true
}
