// A self-signed test CA (device identities, push certificates, fake APNs server certificates).
import type { Certificate } from 'pkijs'
import { certificateToPem, createCertificate, generateKeyPair, type KeyAlgorithm, type KeyPair } from '../../src/crypto/certificates.js'

export interface TestCa {
  certificate: Certificate
  privateKey: KeyPair['privateKey']
  pem: string
}

export async function createTestCa(commonName: string, algorithm: KeyAlgorithm = 'ec-p256', validDays = 2): Promise<TestCa> {
  const keys = await generateKeyPair(algorithm)
  const certificate = await createCertificate({
    subject: { commonName, organization: 'Orchard tests' },
    publicKey: keys.publicKey,
    selfSignKey: keys.privateKey,
    validDays,
    usage: 'ca',
  })
  return { certificate, privateKey: keys.privateKey, pem: certificateToPem(certificate) }
}
