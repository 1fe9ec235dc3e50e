import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem, type KeyAlgorithm } from '../../src/crypto/certificates.js'

for (const algorithm of ['ec-p256', 'rsa-2048'] as KeyAlgorithm[]) {
  t.test(`a CA and the certificates it issues (${algorithm})`, async (t) => {
    const caKeys = await generateKeyPair(algorithm)
    const ca = await createCertificate({
      subject: { commonName: 'Test CA', organization: 'Orchard tests' },
      publicKey: caKeys.publicKey,
      selfSignKey: caKeys.privateKey,
      validDays: 30,
      usage: 'ca',
    })
    const caX509 = new X509Certificate(certificateToPem(ca))
    t.equal(caX509.ca, true)
    t.equal(caX509.subject, 'O=Orchard tests\nCN=Test CA')
    t.equal(caX509.issuer, caX509.subject, 'self-signed')
    t.ok(caX509.verify(caX509.publicKey), 'self-signature verifies')
    const days = (Date.parse(caX509.validTo) - Date.parse(caX509.validFrom)) / 86_400_000
    t.equal(Math.round(days), 30)

    const serverKeys = await generateKeyPair(algorithm)
    const server = new X509Certificate(
      certificateToPem(
        await createCertificate({
          subject: { commonName: 'mdm.example.org' },
          publicKey: serverKeys.publicKey,
          issuer: { certificate: ca, privateKey: caKeys.privateKey },
          validDays: 10,
          usage: 'server',
          dnsNames: ['mdm.example.org'],
          ipAddresses: ['127.0.0.1', '::1'],
        }),
      ),
    )
    t.equal(server.ca, false)
    t.ok(server.verify(caX509.publicKey), 'signed by the CA')
    t.ok(server.checkIssued(caX509), 'issuer name matches the CA subject')
    t.equal(server.checkHost('mdm.example.org'), 'mdm.example.org')
    t.equal(server.checkHost('other.example.org'), undefined)
    t.equal(server.checkIP('127.0.0.1'), '127.0.0.1')
    t.equal(server.checkIP('::1'), '::1')
    t.same(server.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth')
    t.not(server.serialNumber, caX509.serialNumber, 'serials are random')

    const keyPem = await privateKeyToPem(serverKeys.privateKey)
    t.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/)
  })
}
