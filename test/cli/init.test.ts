// orchard-init: the master key file and the local TLS certificates, created once, then kept.
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runInit } from '../../src/cli/init.js'

const streams = () => {
  const out = { stdout: '', stderr: '' }
  return { out, io: { stdout: { write: (s: string) => (out.stdout += s) }, stderr: { write: (s: string) => (out.stderr += s) } } }
}

t.test('creates the master key file and a local CA for the proxy, then keeps both', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'orchard-init-'))
  const env = {
    DATABASE_URL: 'postgres://x@127.0.0.1/y',
    ORCHARD_SECRET_KEY_FILE: join(dir, 'keys', 'secret.key'),
    ORCHARD_PUBLIC_URL: 'https://mdm.example.org',
  }
  const first = streams()
  t.equal(await runInit(['--tls-dir', join(dir, 'tls'), '--name', 'mdm.internal'], env, first.io), 0, first.out.stderr)
  t.match(first.out.stdout, /master key: created .*secret\.key/)
  t.match(first.out.stdout, /TLS: created a local CA and a certificate for mdm\.example\.org, mdm\.internal, localhost, 127\.0\.0\.1/)
  const key = readFileSync(env.ORCHARD_SECRET_KEY_FILE, 'utf8')
  t.match(key, /^[0-9a-f]{64}\n$/)
  t.equal(statSync(join(dir, 'tls', 'server-key.pem')).mode & 0o777, 0o600, 'private keys are owner-only')
  const server = new X509Certificate(readFileSync(join(dir, 'tls', 'server.pem')))
  const ca = new X509Certificate(readFileSync(join(dir, 'tls', 'ca.pem')))
  t.ok(server.verify(ca.publicKey), 'the server certificate is signed by the local CA')
  t.match(server.subjectAltName, /DNS:mdm\.example\.org.*DNS:mdm\.internal.*DNS:localhost.*IP Address:127\.0\.0\.1/)

  // A real certificate put in place, and the key, survive every later run.
  writeFileSync(join(dir, 'tls', 'server.pem'), 'real certificate')
  const again = streams()
  t.equal(await runInit(['--tls-dir', join(dir, 'tls')], env, again.io), 0)
  t.match(again.out.stdout, /master key: kept/)
  t.match(again.out.stdout, /TLS: kept/)
  t.equal(readFileSync(env.ORCHARD_SECRET_KEY_FILE, 'utf8'), key)
  t.equal(readFileSync(join(dir, 'tls', 'server.pem'), 'utf8'), 'real certificate')
})

t.test('configured keys need no file; wrong arguments and settings are usage errors', async (t) => {
  const configured = streams()
  t.equal(await runInit([], { DATABASE_URL: 'postgres://x@127.0.0.1/y', ORCHARD_SECRET_KEYS: 'a'.repeat(64) }, configured.io), 0)
  t.equal(configured.out.stdout, 'master key: ORCHARD_SECRET_KEYS is set\n')
  const none = streams()
  t.equal(await runInit([], { DATABASE_URL: 'postgres://x@127.0.0.1/y' }, none.io), 0)
  t.match(none.out.stdout, /master key: none \(set ORCHARD_SECRET_KEY_FILE/)
  const unknown = streams()
  t.equal(await runInit(['--tls'], {}, unknown.io), 2)
  t.match(unknown.out.stderr, /unexpected argument --tls\nUsage: orchard-init/)
  const bad = streams()
  t.equal(await runInit([], { ORCHARD_PUBLIC_URL: 'not a url' }, bad.io), 2)
  t.match(bad.out.stderr, /^orchard-init: invalid configuration: ORCHARD_PUBLIC_URL/)
})
