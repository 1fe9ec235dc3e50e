// Checks the test SCEP client (test/helpers/scep-client.ts) against OpenSSL's CLI, an
// implementation independent of it: OpenSSL verifies and decrypts every kind of request the
// client builds, and encrypts and packs the replies that the client's parseCertRep opens. A fake
// server (OpenSSL for the CA work) then takes scepEnroll through whole enrollments.
import { spawnSync } from 'node:child_process'
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import * as scep from '../helpers/scep-client.js'

const opensslBin = existsSync('/usr/bin/openssl') ? '/usr/bin/openssl' : 'openssl'
const legacy = ['-provider', 'legacy', '-provider', 'default'] // single DES lives in the legacy provider
const opensslFlag: Record<scep.ScepEncryption, string> = { des: '-des', des3: '-des3', aes128: '-aes128', aes256: '-aes256' }

function openssl(args: string[], input?: Buffer): { status: number; stdout: Buffer; stderr: string } {
  const result = spawnSync(opensslBin, args, { input: input ?? Buffer.alloc(0), maxBuffer: 16 << 20 })
  if (result.error) throw result.error
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr.toString() }
}
function opensslOk(args: string[], input?: Buffer): Buffer {
  const result = openssl(args, input)
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

const pem = (der: Buffer) => new X509Certificate(der).toString()

if (spawnSync(opensslBin, ['version']).status !== 0) {
  t.test('the SCEP client against OpenSSL', { skip: 'the openssl CLI is not available' }, () => {})
} else {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-scep-client-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string) => join(dir, name)

  // A CA and an RA (keyEncipherment) made by OpenSSL.
  opensslOk([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-subj',
    '/O=Orchard tests/CN=SCEP test CA',
    '-days',
    '2',
  ])
  opensslOk(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ra.key'), '-out', file('ra.csr'), '-subj', '/O=Orchard tests/CN=SCEP test RA'])
  writeFileSync(file('ra.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n')
  opensslOk([
    'x509',
    '-req',
    '-in',
    file('ra.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-set_serial',
    '0x0a',
    '-days',
    '2',
    '-extfile',
    file('ra.ext'),
    '-out',
    file('ra.pem'),
  ])
  const caDer = Buffer.from(new X509Certificate(readFileSync(file('ca.pem'))).raw)
  const raDer = Buffer.from(new X509Certificate(readFileSync(file('ra.pem'))).raw)
  const raKey = createPrivateKey(readFileSync(file('ra.key')))

  let serial = 0x100
  /** The CA work a server does, by OpenSSL: issue a certificate for a PKCS#10 request. */
  function issue(csrDer: Buffer): Buffer {
    writeFileSync(file('req.der'), csrDer)
    return opensslOk([
      'x509',
      '-req',
      '-inform',
      'DER',
      '-in',
      file('req.der'),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-set_serial',
      `0x${(serial++).toString(16)}`,
      '-days',
      '1',
      '-outform',
      'DER',
    ])
  }
  /** A certs-only PKCS#7 by OpenSSL (crl2pkcs7), in the order given. */
  function certsOnly(certificates: Buffer[]): Buffer {
    const args = ['crl2pkcs7', '-nocrl', '-outform', 'DER']
    certificates.forEach((der, i) => {
      writeFileSync(file(`chain${i}.pem`), pem(der))
      args.push('-certfile', file(`chain${i}.pem`))
    })
    return opensslOk(args)
  }
  /** A pkcsPKIEnvelope by OpenSSL: ContentInfo(EnvelopedData) of `content` to `recipientDer`. */
  function encryptTo(content: Buffer, recipientDer: Buffer, encryption: scep.ScepEncryption): Buffer {
    writeFileSync(file('recipient.pem'), pem(recipientDer))
    return opensslOk(['cms', '-encrypt', '-binary', '-outform', 'DER', opensslFlag[encryption], ...legacy, file('recipient.pem')], content)
  }

  const subject = { commonName: 'device-1', organization: 'Orchard tests' }
  const clientKey = scep.generateRsaKey()
  const csrDer = scep.buildCsr({ key: clientKey, subject, challenge: 'sekr1t-challenge' })
  const selfSigned = scep.selfSignedCertificate(clientKey, subject)

  t.test('the CSR and the self-signed certificate', async (t) => {
    writeFileSync(file('csr.der'), csrDer)
    const text = opensslOk(['req', '-inform', 'DER', '-in', file('csr.der'), '-verify', '-noout', '-text']).toString()
    t.match(text, /Subject: O = Orchard tests, CN = device-1/)
    t.match(text, /challengePassword\s*:sekr1t-challenge/)
    t.match(opensslOk(['asn1parse', '-inform', 'DER', '-in', file('csr.der')]).toString(), /PRINTABLESTRING\s+:sekr1t-challenge/)

    const utf8 = scep.buildCsr({ key: clientKey, subject, challenge: 'pässwörd' })
    writeFileSync(file('csr-utf8.der'), utf8)
    t.match(opensslOk(['asn1parse', '-inform', 'DER', '-in', file('csr-utf8.der')]).toString(), /UTF8STRING\s+:p/, 'non-printable challenge as UTF8String')
    const forced = scep.buildCsr({ key: clientKey, subject, challenge: 'abc', challengeEncoding: 'utf8' })
    writeFileSync(file('csr-forced.der'), forced)
    t.match(opensslOk(['asn1parse', '-inform', 'DER', '-in', file('csr-forced.der')]).toString(), /UTF8STRING\s+:abc/)
    t.throws(() => scep.buildCsr({ key: clientKey, subject, challenge: 'a@b', challengeEncoding: 'printable' }))
    const plain = scep.buildCsr({ key: clientKey, subject: { commonName: 'x' } })
    writeFileSync(file('csr-plain.der'), plain)
    t.equal(openssl(['req', '-inform', 'DER', '-in', file('csr-plain.der'), '-verify', '-noout']).status, 0, 'no challenge: still a valid CSR')

    const certificate = new X509Certificate(selfSigned)
    t.equal(certificate.subject, 'O=Orchard tests\nCN=device-1')
    t.equal(certificate.issuer, certificate.subject)
    t.ok(certificate.verify(clientKey.publicKey), 'self-signature verifies')
    t.ok(certificate.publicKey.equals(clientKey.publicKey))
    t.equal(certificate.ca, false)
    writeFileSync(file('self.der'), selfSigned)
    t.match(
      opensslOk(['x509', '-inform', 'DER', '-in', file('self.der'), '-noout', '-text']).toString(),
      /Key Usage: critical\s+Digital Signature, Key Encipherment/,
    )
  })

  t.test('PKIOperation requests verify and decrypt with OpenSSL', async (t) => {
    const encryptions: scep.ScepEncryption[] = ['des', 'des3', 'aes128', 'aes256']
    const digests: scep.ScepDigest[] = ['sha1', 'sha256']
    let i = 0
    for (const encryption of encryptions) {
      for (const digest of digests) {
        const signatureAlgorithm = i % 2 === 0 ? 'rsaEncryption' : 'sha-with-rsa'
        const encoding = i % 3 === 2 ? 'ber' : 'der'
        i++
        const label = `${encryption}/${digest}/${signatureAlgorithm}/${encoding}`
        const request = scep.buildPkiOperation({
          csrDer,
          recipientCertificateDer: raDer,
          signerCertificateDer: selfSigned,
          signerKey: clientKey.privateKey,
          encryption,
          digest,
          signatureAlgorithm,
          encoding,
        })
        t.equal(request.senderNonce.length, 16, `${label}: 16-byte senderNonce`)
        t.equal(request.transactionId, scep.defaultTransactionId(csrDer))
        t.match(request.transactionId, /^[0-9A-F]{40}$/)

        const verified = openssl(['cms', '-verify', '-inform', 'DER', '-noverify', '-binary'], request.der)
        t.equal(verified.status, 0, `${label}: OpenSSL verifies the signature ${verified.stderr}`)
        const decrypted = openssl(
          ['cms', '-decrypt', '-inform', 'DER', '-binary', '-recip', file('ra.pem'), '-inkey', file('ra.key'), ...legacy],
          verified.stdout,
        )
        t.equal(decrypted.status, 0, `${label}: OpenSSL decrypts the envelope ${decrypted.stderr}`)
        t.ok(decrypted.stdout.equals(csrDer), `${label}: the envelope holds the CSR`)

        const parsed = scep.parsePkiMessage(request.der)
        t.equal(parsed.messageType, 'PKCSReq')
        t.equal(parsed.transactionId, request.transactionId)
        t.same(parsed.senderNonce, request.senderNonce)
        t.equal(parsed.digest, digest)
        t.ok(parsed.signerCertificateDer.equals(selfSigned))
        t.ok(parsed.signingTime, 'signingTime present')
        const opened = scep.openEnvelope(parsed.content!, raKey, raDer)
        t.equal(opened.encryption, encryption)
        t.ok(opened.content.equals(csrDer))
      }
    }

    const corrupt = scep.buildPkiOperation({
      csrDer,
      recipientCertificateDer: raDer,
      signerCertificateDer: selfSigned,
      signerKey: clientKey.privateKey,
      corruptSignature: true,
    })
    t.not(openssl(['cms', '-verify', '-inform', 'DER', '-noverify', '-binary'], corrupt.der).status, 0, 'OpenSSL rejects a corrupted signature')
    t.throws(() => scep.parsePkiMessage(corrupt.der), /signature does not verify/)

    const renewal = scep.buildPkiOperation({
      csrDer,
      recipientCertificateDer: caDer,
      signerCertificateDer: selfSigned,
      signerKey: clientKey.privateKey,
      messageType: 'RenewalReq',
      transactionId: 'renewal-1',
      digestParameters: 'null',
    })
    t.equal(openssl(['cms', '-verify', '-inform', 'DER', '-noverify', '-binary'], renewal.der).status, 0)
    t.equal(scep.parsePkiMessage(renewal.der).messageType, 'RenewalReq')
    t.match(opensslOk(['asn1parse', '-inform', 'DER'], renewal.der).toString(), /PRINTABLESTRING\s+:17\n/)
  })

  t.test('parseCertRep opens replies encrypted by OpenSSL', async (t) => {
    const issued = issue(csrDer)
    for (const encryption of ['des', 'des3', 'aes128', 'aes256'] as const) {
      const requestNonce = randomBytes(16)
      const envelope = encryptTo(certsOnly([caDer, issued]), selfSigned, encryption)
      const der = scep.buildCertRep({
        pkiStatus: 'SUCCESS',
        transactionId: 'tx-1',
        recipientNonce: requestNonce,
        envelope,
        signerCertificateDer: raDer,
        signerKey: raKey,
        certificates: [raDer, caDer],
      })
      t.equal(openssl(['cms', '-verify', '-inform', 'DER', '-noverify', '-binary'], der).status, 0, `${encryption}: OpenSSL verifies the CertRep`)
      const certRep = scep.parseCertRep(der, {
        recipientKey: clientKey.privateKey,
        trustedSignerCertificates: [caDer, raDer],
        recipientCertificateDer: selfSigned,
        requestPublicKey: clientKey.publicKey,
        expectedTransactionId: 'tx-1',
        expectedRecipientNonce: requestNonce,
      })
      t.equal(certRep.pkiStatus, 'SUCCESS')
      t.equal(certRep.contentEncryption, encryption)
      t.equal(certRep.transactionId, 'tx-1')
      t.same(certRep.recipientNonce, requestNonce)
      t.equal(certRep.senderNonce?.length, 16)
      t.equal(certRep.digest, 'sha256')
      t.ok(certRep.signerCertificateDer.equals(raDer))
      t.equal(certRep.certificates.length, 2)
      t.ok(certRep.certificates[0]!.equals(issued), `${encryption}: the issued certificate comes first`)
      // Without the requested key, the non-CA certificate is taken as the issued one.
      t.ok(scep.parseCertRep(der, { recipientKey: clientKey.privateKey }).certificates[0]!.equals(issued))
    }

    const good = scep.buildCertRep({
      pkiStatus: 'SUCCESS',
      transactionId: 'tx-2',
      recipientNonce: Buffer.alloc(16, 7),
      envelope: encryptTo(certsOnly([issued]), selfSigned, 'aes128'),
      signerCertificateDer: raDer,
      signerKey: raKey,
    })
    t.throws(() => scep.parseCertRep(good, { recipientKey: clientKey.privateKey, trustedSignerCertificates: [caDer] }), /not trusted/)
    t.throws(() => scep.parseCertRep(good, { recipientKey: clientKey.privateKey, expectedTransactionId: 'tx-3' }), /transactionID/)
    t.throws(() => scep.parseCertRep(good, { recipientKey: clientKey.privateKey, expectedRecipientNonce: Buffer.alloc(16, 8) }), /recipientNonce/)
    t.throws(() => scep.parseCertRep(good, { recipientKey: raKey }), /decrypt/, 'another key cannot open it')
    // Flip a byte inside the eContent (the pkcsPKIEnvelope): messageDigest no longer matches.
    const goodEnvelope = scep.parsePkiMessage(good).content!
    const tampered = Buffer.from(good)
    const at = tampered.indexOf(goodEnvelope) + goodEnvelope.length - 5
    tampered.writeUInt8(tampered.readUInt8(at) ^ 0xff, at)
    t.throws(() => scep.parseCertRep(tampered, { recipientKey: clientKey.privateKey }), /messageDigest does not match/)
    t.throws(
      () =>
        scep.parseCertRep(
          scep.buildCertRep({
            pkiStatus: 'SUCCESS',
            transactionId: 'x',
            recipientNonce: Buffer.alloc(16),
            envelope: encryptTo(certsOnly([issued]), selfSigned, 'aes128'),
            signerCertificateDer: raDer,
            signerKey: raKey,
            corruptSignature: true,
          }),
          { recipientKey: clientKey.privateKey },
        ),
      /signature does not verify/,
    )
    const request = scep.buildPkiOperation({ csrDer, recipientCertificateDer: raDer, signerCertificateDer: selfSigned, signerKey: clientKey.privateKey })
    t.throws(() => scep.parseCertRep(request.der, { recipientKey: clientKey.privateKey }), /expected a CertRep/)

    const failure = scep.buildCertRep({
      pkiStatus: 'FAILURE',
      failInfo: 'badRequest',
      transactionId: 'tx-4',
      recipientNonce: Buffer.alloc(16, 1),
      signerCertificateDer: raDer,
      signerKey: raKey,
      digest: 'sha1',
    })
    t.equal(
      openssl(['cms', '-verify', '-inform', 'DER', '-noverify', '-binary', '-content', '/dev/null'], failure).status,
      0,
      'OpenSSL verifies a content-less CertRep over empty content',
    )
    const failed = scep.parseCertRep(failure, { recipientKey: clientKey.privateKey, trustedSignerCertificates: [raDer] })
    t.equal(failed.pkiStatus, 'FAILURE')
    t.equal(failed.failInfo, 'badRequest')
    t.equal(failed.digest, 'sha1')
    t.same(failed.certificates, [])
    t.equal(failed.contentEncryption, undefined)

    const pending = scep.parseCertRep(
      scep.buildCertRep({
        pkiStatus: 'PENDING',
        transactionId: 'tx-5',
        recipientNonce: Buffer.alloc(16, 2),
        signerCertificateDer: caDer,
        signerKey: createPrivateKey(readFileSync(file('ca.key'))),
      }),
      {
        recipientKey: clientKey.privateKey,
      },
    )
    t.equal(pending.pkiStatus, 'PENDING')
    t.ok(pending.signerCertificateDer.equals(caDer))
  })

  t.test('GetCACert answers', async (t) => {
    const single = scep.parseCaCertResponse(caDer, 'application/x-x509-ca-cert')
    t.ok(single.ca.equals(caDer) && single.recipient.equals(caDer))
    for (const order of [
      [caDer, raDer],
      [raDer, caDer],
    ]) {
      const chain = scep.parseCaCertResponse(certsOnly(order), 'application/x-x509-ca-ra-cert; charset=binary')
      t.ok(chain.ca.equals(caDer), 'the CA is the cA certificate')
      t.ok(chain.recipient.equals(raDer), 'the recipient is the RA')
      t.equal(chain.all.length, 2)
    }
    const mine = scep.parseCertsOnly(scep.buildCertsOnly([caDer, raDer]))
    t.equal(mine.length, 2)
    t.match(opensslOk(['pkcs7', '-inform', 'DER', '-print_certs', '-noout'], scep.buildCertsOnly([caDer, raDer])).toString(), /SCEP test RA/)
    t.throws(() => scep.parseCaCertResponse(caDer, 'text/plain'))
    t.same(scep.parseCaCaps(Buffer.from('AES\r\nSHA-256\n\nPOSTPKIOperation\n')), ['AES', 'SHA-256', 'POSTPKIOperation'])
  })

  t.test('the fastify inject and fetch transports', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.addContentTypeParser('application/x-pki-message', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
    app.get('/scep', async (request, reply) => reply.type('text/plain').send(`GET ${(request.query as Record<string, string>)['operation']}`))
    app.post('/scep', async (request, reply) => reply.type('application/x-pki-message').send(Buffer.concat([Buffer.from('echo:'), request.body as Buffer])))
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    const port = typeof address === 'object' && address ? address.port : 0
    for (const http of [scep.injectScepHttp(app), scep.fetchScepHttp(`http://127.0.0.1:${port}`)]) {
      const caps = await http({ method: 'GET', url: '/scep?operation=GetCACaps' })
      t.same(
        { status: caps.status, body: caps.body.toString(), type: caps.contentType?.split(';')[0] },
        { status: 200, body: 'GET GetCACaps', type: 'text/plain' },
      )
      const echo = await http({
        method: 'POST',
        url: '/scep?operation=PKIOperation',
        body: Buffer.from([1, 2, 3]),
        headers: { 'content-type': 'application/x-pki-message' },
      })
      t.same(echo.body, Buffer.concat([Buffer.from('echo:'), Buffer.from([1, 2, 3])]))
      t.equal(echo.contentType, 'application/x-pki-message')
    }
  })

  t.test('scepEnroll against a fake server', async (t) => {
    interface Seen {
      method: string
      messageType: scep.ScepMessageType
      encryption: scep.ScepEncryption
      digest: string
      signer: Buffer
    }
    let caps = 'AES\nSHA-256\nPOSTPKIOperation\nRenewal\nSCEPStandard\n'
    let pendingFirst = false
    const seen: Seen[] = []
    const pendingRequests = new Map<string, Buffer>()

    const answer = (body: Buffer, contentType: string) => ({ status: 200, body, contentType })
    const http: scep.ScepHttp = async (request) => {
      const url = new URL(request.url, 'http://scep.test')
      if (url.pathname !== '/scep') return { status: 404, body: Buffer.alloc(0), contentType: undefined }
      const operation = url.searchParams.get('operation')
      if (operation === 'GetCACaps') return answer(Buffer.from(caps), 'text/plain')
      if (operation === 'GetCACert') return answer(certsOnly([caDer, raDer]), 'application/x-x509-ca-ra-cert')
      if (operation !== 'PKIOperation') return { status: 400, body: Buffer.from('bad operation'), contentType: 'text/plain' }
      const der = request.method === 'POST' ? request.body! : Buffer.from(url.searchParams.get('message')!, 'base64')
      if (request.method === 'POST') t.equal(request.headers?.['content-type'], 'application/x-pki-message')
      const message = scep.parsePkiMessage(der)
      const opened = scep.openEnvelope(message.content!, raKey, raDer)
      seen.push({
        method: request.method,
        messageType: message.messageType,
        encryption: opened.encryption,
        digest: message.digest,
        signer: message.signerCertificateDer,
      })
      let csr = opened.content
      if (message.messageType === 'CertPoll') csr = pendingRequests.get(message.transactionId)!
      const reply = {
        transactionId: message.transactionId,
        recipientNonce: message.senderNonce!,
        signerCertificateDer: raDer,
        signerKey: raKey,
        digest: message.digest as scep.ScepDigest,
      }
      if (pendingFirst && message.messageType !== 'CertPoll') {
        pendingRequests.set(message.transactionId, csr)
        return answer(scep.buildCertRep({ ...reply, pkiStatus: 'PENDING' }), 'application/x-pki-message')
      }
      const envelope = encryptTo(certsOnly([issue(csr), caDer]), message.signerCertificateDer, opened.encryption)
      return answer(scep.buildCertRep({ ...reply, pkiStatus: 'SUCCESS', envelope, certificates: [raDer, caDer] }), 'application/x-pki-message')
    }

    const first = await scep.scepEnroll(http, { subject, challenge: 'sekr1t-challenge' })
    t.equal(first.certRep.pkiStatus, 'SUCCESS')
    t.same(seen.at(-1), { method: 'POST', messageType: 'PKCSReq', encryption: 'aes128', digest: 'sha256', signer: first.signerCertificateDer })
    t.equal(
      new X509Certificate(first.signerCertificateDer).issuer,
      new X509Certificate(first.signerCertificateDer).subject,
      'signed with a self-signed certificate',
    )
    const issued = new X509Certificate(first.certificateDer!)
    t.ok(issued.publicKey.equals(first.key.publicKey))
    t.ok(issued.checkIssued(new X509Certificate(caDer)))
    t.equal(issued.subject, 'O=Orchard tests\nCN=device-1')
    t.ok(first.caCertificateDer.equals(caDer))
    t.ok(first.recipientCertificateDer.equals(raDer))
    t.equal(first.status, 200)
    t.ok(first.capabilities.includes('SCEPStandard'))

    caps = 'DES3\nSHA-1\n'
    const legacyClient = await scep.scepEnroll(http, { subject: { commonName: 'old-device' } })
    t.same(seen.at(-1), { method: 'GET', messageType: 'PKCSReq', encryption: 'des3', digest: 'sha1', signer: legacyClient.signerCertificateDer })
    t.equal(legacyClient.certRep.contentEncryption, 'des3')

    caps = 'SCEPStandard\nRenewal\n'
    const renewed = await scep.scepEnroll(http, { subject, renewWith: { certificateDer: first.certificateDer!, key: first.key.privateKey }, encryption: 'des' })
    t.same(seen.at(-1), { method: 'POST', messageType: 'RenewalReq', encryption: 'des', digest: 'sha256', signer: first.certificateDer })
    t.ok(renewed.signerCertificateDer.equals(first.certificateDer!))
    t.notOk(renewed.key.publicKey.equals(first.key.publicKey), 'a new key')
    t.ok(new X509Certificate(renewed.certificateDer!).publicKey.equals(renewed.key.publicKey))

    pendingFirst = true
    const notPolled = await scep.scepEnroll(http, { subject })
    t.equal(notPolled.certRep.pkiStatus, 'PENDING')
    t.equal(notPolled.certificateDer, undefined)
    const polled = await scep.scepEnroll(http, { subject, transport: 'get', poll: { attempts: 2, intervalMs: 1 } })
    t.equal(polled.certRep.pkiStatus, 'SUCCESS')
    t.equal(seen.at(-1)?.messageType, 'CertPoll')
    t.equal(polled.transactionId, scep.defaultTransactionId(polled.csrDer))

    await t.rejects(scep.scepEnroll(http, { subject, path: '/nowhere' }), { name: 'ScepHttpError', status: 404 })
  })
}
