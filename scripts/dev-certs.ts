// `npm run certs:dev [-- --out DIR --name HOST ...]`: a local CA and a server certificate
// signed by it, for trying Orchard over HTTPS on this machine. Nothing here is secret to a
// deployment: production certificates come from a real CA (or the TLS proxy in front).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { isIP } from 'node:net'
import { certificateToPem, createCertificate, generateKeyPair, privateKeyToPem } from '../src/crypto/certificates.js'

const args = process.argv.slice(2)
let out = 'certs/dev'
const names = ['localhost', '127.0.0.1', '::1']
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out' && args[i + 1]) out = args[++i]!
  else if (args[i] === '--name' && args[i + 1]) names.push(args[++i]!)
  else {
    console.error(`usage: npm run certs:dev -- [--out DIR] [--name HOST ...]   (unknown: ${args[i]})`)
    process.exit(2)
  }
}

const dir = resolve(out)
mkdirSync(dir, { recursive: true })

const caKeys = await generateKeyPair('ec-p256')
const ca = await createCertificate({
  subject: { commonName: 'Orchard development CA', organization: 'Orchard (development only)' },
  publicKey: caKeys.publicKey,
  selfSignKey: caKeys.privateKey,
  validDays: 825,
  usage: 'ca',
})
const serverKeys = await generateKeyPair('ec-p256')
const server = await createCertificate({
  subject: { commonName: names[0]!, organization: 'Orchard (development only)' },
  publicKey: serverKeys.publicKey,
  issuer: { certificate: ca, privateKey: caKeys.privateKey },
  validDays: 397,
  usage: 'server',
  dnsNames: names.filter((n) => isIP(n) === 0),
  ipAddresses: names.filter((n) => isIP(n) !== 0),
})

const files: Array<[string, string, number]> = [
  ['ca.pem', certificateToPem(ca), 0o644],
  ['ca-key.pem', await privateKeyToPem(caKeys.privateKey), 0o600],
  ['server.pem', certificateToPem(server), 0o644],
  ['server-key.pem', await privateKeyToPem(serverKeys.privateKey), 0o600],
]
for (const [file, content, mode] of files) {
  writeFileSync(resolve(dir, file), content)
  chmodSync(resolve(dir, file), mode)
}
console.log(`Wrote ${files.map(([f]) => f).join(', ')} to ${dir} (names: ${names.join(', ')}).`)
console.log(`Start with TLS:  ORCHARD_TLS_CERT_FILE=${out}/server.pem ORCHARD_TLS_KEY_FILE=${out}/server-key.pem npm start`)
console.log(`Then:            curl --cacert ${out}/ca.pem https://localhost:8080/healthz`)
