// `npm run certs:dev [-- --out DIR --name HOST ...]`: a local CA and a server certificate
// signed by it, for trying Orchard over HTTPS on this machine. Nothing here is secret to a
// deployment: production certificates come from a real CA (or the TLS proxy in front).
import { resolve } from 'node:path'
import { ensureLocalTls } from '../src/ops/local-tls.js'

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
await ensureLocalTls(dir, names, { replace: true })
console.log(`Wrote ca.pem, ca-key.pem, server.pem, server-key.pem to ${dir} (names: ${names.join(', ')}).`)
console.log(`Start with TLS:  ORCHARD_TLS_CERT_FILE=${out}/server.pem ORCHARD_TLS_KEY_FILE=${out}/server-key.pem npm start`)
console.log(`Then:            curl --cacert ${out}/ca.pem https://localhost:8080/healthz`)
