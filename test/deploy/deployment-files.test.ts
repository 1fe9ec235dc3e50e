// docker-compose.yml and deploy/ hold together: no Docker engine runs here, so what `docker
// compose up` would do is checked by structure (the HA smoke test runs the nginx configuration
// for real). Every variable they set is one Orchard knows; the header nginx forwards is the one
// Orchard reads; the key file and the certificates live on volumes the services share.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { configOptions } from '../../src/config.js'
import { repoRoot } from '../helpers/server-process.js'

const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8')
const knownVariables = new Set(configOptions.map((option) => option.env))

interface ComposeService {
  build?: string
  image?: string
  command?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  ports?: string[]
  network_mode?: string
  depends_on?: Record<string, { condition: string }>
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> }
const nginxConf = read('deploy/nginx/orchard.conf')
const mountOf = (service: ComposeService, target: string) => service.volumes?.map((volume) => volume.split(':')).find(([, path]) => path === target)?.[0]

t.test('docker compose: Orchard enrolls behind nginx with what init created', async (t) => {
  const { init, orchard, nginx } = compose.services
  t.ok(init && orchard && nginx && compose.services['postgres'], 'postgres, init, orchard and nginx')
  const env = orchard!.environment!
  for (const name of Object.keys(env)) t.ok(knownVariables.has(name), `${name} is an Orchard setting`)
  t.match(env['ORCHARD_PUBLIC_URL'], /^https:\/\//, 'an https public URL: enrollment needs one')
  t.equal(env['ORCHARD_HOST'], '127.0.0.1', 'only nginx, in the same network namespace, reaches Orchard')
  t.equal(nginx!.network_mode, 'service:orchard')
  t.match(nginxConf, /^ {4}server 127\.0\.0\.1:8080 /m, "nginx's upstream is Orchard's port in that namespace")

  // The master key: one file on a volume init and orchard share.
  const keyFile = env['ORCHARD_SECRET_KEY_FILE']!
  t.equal(init!.environment!['ORCHARD_SECRET_KEY_FILE'], keyFile, 'init creates the key file Orchard reads')
  t.equal(mountOf(init!, '/var/lib/orchard'), mountOf(orchard!, '/var/lib/orchard'), 'on a volume both mount')
  t.ok(keyFile.startsWith('/var/lib/orchard/'))
  t.notOk(env['ORCHARD_API_KEYS'], 'no API keys set: the first start prints an owner key')

  // TLS: init writes the local CA and certificate where nginx reads them.
  const tlsDir = init!.command![init!.command!.indexOf('--tls-dir') + 1]!
  t.same(init!.command!.slice(0, 2), ['node', 'dist/src/cli/init.js'])
  t.ok(existsSync(join(repoRoot, 'src/cli/init.ts')))
  t.equal(mountOf(init!, tlsDir), mountOf(nginx!, tlsDir), 'the certificates volume is shared with nginx')
  for (const directive of ['ssl_certificate', 'ssl_certificate_key']) {
    t.match(nginxConf, new RegExp(`^ {4}${directive} +${tlsDir}/server(-key)?\\.pem;$`, 'm'), `${directive} in ${tlsDir}`)
  }
  t.equal(mountOf(nginx!, '/etc/nginx/conf.d/default.conf'), './deploy/nginx/orchard.conf')
  t.same(orchard!.depends_on, { postgres: { condition: 'service_healthy' }, init: { condition: 'service_completed_successfully' } })
  t.same(orchard!.ports, ['8443:443'])
  t.match(env['ORCHARD_PUBLIC_URL'], /:8443$/, 'the public URL names the published port')

  // The device certificate: nginx sets the header Orchard trusts, from the TLS session only.
  const header = env['ORCHARD_CLIENT_CERT_HEADER']!
  t.match(nginxConf, new RegExp(`^ +proxy_set_header ${header} \\$ssl_client_escaped_cert;$`, 'm'))
  t.match(nginxConf, /^ {4}ssl_verify_client optional_no_ca;$/m)
})

t.test('without Docker: the environment template and the systemd unit name real settings and files', async (t) => {
  const template = read('deploy/orchard.env.example')
  const variables = [...template.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((match) => match[1]!)
  t.ok(variables.length >= 6, `${variables.length} variables`)
  for (const name of variables) t.ok(knownVariables.has(name), `${name} is an Orchard setting`)
  t.match(template, /^ORCHARD_PUBLIC_URL=https:\/\//m)
  t.match(template, /^ORCHARD_CLIENT_CERT_HEADER=X-Client-Cert$/m)
  t.match(nginxConf, /proxy_set_header X-Client-Cert /)

  const unit = read('deploy/systemd/orchard.service')
  t.match(unit, /^EnvironmentFile=\/etc\/orchard\/orchard\.env$/m)
  for (const [, script] of unit.matchAll(/^Exec\S+=\/usr\/bin\/node .*?(dist\/src\/\S+)\.js/gm)) {
    t.ok(existsSync(join(repoRoot, script!.replace(/^dist\//, '') + '.ts')), `${script}.js is built from the repository`)
  }
  t.match(unit, /^ExecStartPre=.*init\.js --tls-dir \/etc\/orchard\/tls$/m, 'init runs before every start')
  t.match(unit, /^ReadWritePaths=.*\/etc\/orchard\/tls/m, 'and may write the certificates')
})
