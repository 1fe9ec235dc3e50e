// µs per Mdm-Signature verification: our DER walk + node:crypto against pkijs
// (ContentInfo.fromBER + SignedData + verify) on the same inputs.
// Run: npx tsx scripts/bench-signature.ts [iterations]
import { KeyObject, sign, verify, webcrypto } from 'node:crypto'
import * as pkijs from 'pkijs'
import { createCertificate, generateKeyPair, type KeyAlgorithm } from '../src/crypto/certificates.js'
import { verifyMdmSignature } from '../src/crypto/mdm-signature.js'
import { signDetached, type SignDetachedOptions } from '../test/helpers/cms-signer.js'

const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto })
const iterations = Number(process.argv[2] ?? 1000)

// A check-in body of realistic size.
const body = Buffer.from(
  `<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>MessageType</key><string>TokenUpdate</string>` +
    `<key>PushMagic</key><string>${'A'.repeat(36)}</string><key>Token</key><data>${'B'.repeat(44)}</data>` +
    `<key>Topic</key><string>com.apple.mgmt.External.${'0'.repeat(36)}</string><key>UDID</key><string>${'1'.repeat(25)}</string></dict></plist>\n`,
)

/** µs per call: the best mean of 5 rounds (other load only ever adds time). A synchronous `run` is not awaited. */
async function measure(run: () => unknown): Promise<number> {
  let best = Infinity
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) {
      const result = run()
      if (result instanceof Promise) await result
    }
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / iterations)
  }
  return best
}

async function pkijsVerify(header: string): Promise<void> {
  const contentInfo = pkijs.ContentInfo.fromBER(Buffer.from(header, 'base64'))
  const signedData = new pkijs.SignedData({ schema: contentInfo.content })
  if (!(await signedData.verify({ signer: 0, data: new Uint8Array(body).buffer, checkChain: false }, engine))) throw new Error('pkijs refused')
}

const caKeys = await generateKeyPair('ec-p256')
const ca = await createCertificate({
  subject: { commonName: 'Bench CA' },
  publicKey: caKeys.publicKey,
  selfSignKey: caKeys.privateKey,
  validDays: 1,
  usage: 'ca',
})

const cases: Array<[KeyAlgorithm, SignDetachedOptions]> = [
  ['rsa-2048', { digest: 'SHA-1', encoding: 'apple-ber' }],
  ['rsa-2048', { digest: 'SHA-256', encoding: 'apple-ber' }],
  ['ec-p256', { digest: 'SHA-256', encoding: 'apple-ber' }],
]

console.log(`best of 5 rounds of ${iterations} verifications, Node ${process.version}, signed attributes, Apple-shaped BER\n`)
console.log('signer              header  ours µs  pkijs µs  speed-up  (node:crypto verify alone µs)')
for (const [algorithm, options] of cases) {
  const keys = await generateKeyPair(algorithm)
  const certificate = await createCertificate({
    subject: { commonName: `bench ${algorithm}` },
    publicKey: keys.publicKey,
    issuer: { certificate: ca, privateKey: caKeys.privateKey },
    validDays: 1,
    usage: 'client',
  })
  const header = await signDetached(body, { certificateDer: Buffer.from(certificate.toSchema().toBER(false)), privateKey: keys.privateKey }, options)
  verifyMdmSignature(header, body)
  await pkijsVerify(header)
  const ours = await measure(() => verifyMdmSignature(header, body))
  const theirs = await measure(() => pkijsVerify(header))
  // The floor: one node:crypto verify over signed-attributes-sized data, key already imported.
  const hash = options.digest === 'SHA-1' ? 'sha1' : 'sha256'
  const data = Buffer.alloc(200, 1)
  const dsa = algorithm === 'ec-p256' ? ({ dsaEncoding: 'der' } as const) : {}
  const signature = sign(hash, data, { key: KeyObject.from(keys.privateKey), ...dsa })
  const publicKey = KeyObject.from(keys.publicKey)
  const floor = await measure(() => verify(hash, data, { key: publicKey, ...dsa }, signature))
  const label = `${algorithm} ${options.digest}`.padEnd(18)
  console.log(
    `${label} ${String(header.length).padStart(7)} ${ours.toFixed(1).padStart(8)} ${theirs.toFixed(1).padStart(9)} ${(theirs / ours).toFixed(0).padStart(8)}x  (${floor.toFixed(1)})`,
  )
}
