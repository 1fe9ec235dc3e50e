// `node dist/src/cli/init.js [--tls-dir DIR] [--name HOST ...]`: what a deployment needs before
// its first start, created once and kept: the master key file (ORCHARD_SECRET_KEY_FILE, when
// ORCHARD_SECRET_KEYS is unset) and, with --tls-dir, a local CA and server certificate for the
// TLS proxy. Run before every start (Docker Compose's init service, systemd's ExecStartPre): what
// exists is never replaced. The first owner API key is the server's to make (it needs the database).
// Exit codes: 0 done, 1 failed, 2 usage or configuration error.
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError, loadConfig } from '../config.js'
import { createKeyFile, secretKeyFileOf } from '../db/secret-key-file.js'
import { ensureLocalTls } from '../ops/local-tls.js'
import type { CliStreams } from './api-keys.js'

export const initUsage = `Usage: orchard-init [--tls-dir DIR] [--name HOST ...]

Creates what is missing, keeps what exists:
  the master key file      ORCHARD_SECRET_KEY_FILE (or <data-dir>/secret.key with the embedded
                           database), unless ORCHARD_SECRET_KEYS is set;
  --tls-dir DIR            a local CA (ca.pem) and a server certificate (server.pem, server-key.pem)
                           for the TLS proxy, named after ORCHARD_PUBLIC_URL's host, localhost,
                           127.0.0.1 and every --name. Replace server.pem and server-key.pem with a
                           real certificate for production: they are then left alone.`

export async function runInit(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: CliStreams): Promise<number> {
  let tlsDir: string | null = null
  const names: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = argv[i + 1]
    if ((arg === '--tls-dir' || arg === '--name') && value !== undefined && !value.startsWith('--')) {
      if (arg === '--tls-dir') tlsDir = resolve(value)
      else names.push(value)
      i++
    } else {
      io.stderr.write(`${arg === '--help' || arg === '-h' ? '' : `orchard-init: unexpected argument ${arg}\n`}${initUsage}\n`)
      return arg === '--help' || arg === '-h' ? 0 : 2
    }
  }
  let config
  try {
    config = loadConfig(env, [])
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    io.stderr.write(`orchard-init: invalid configuration: ${error.message}\n`)
    return 2
  }
  const keyFile = secretKeyFileOf(config)
  if (keyFile === null) {
    io.stdout.write(
      config.secretKeys.length > 0 ? 'master key: ORCHARD_SECRET_KEYS is set\n' : 'master key: none (set ORCHARD_SECRET_KEY_FILE or ORCHARD_SECRET_KEYS)\n',
    )
  } else {
    io.stdout.write(`master key: ${createKeyFile(keyFile) ? 'created' : 'kept'} ${keyFile}\n`)
  }
  if (tlsDir !== null) {
    const host = new URL(config.publicUrl).hostname.replace(/^\[(.*)\]$/, '$1')
    const allNames = [...new Set([host, ...names, 'localhost', '127.0.0.1'])]
    const created = await ensureLocalTls(tlsDir, allNames)
    io.stdout.write(created ? `TLS: created a local CA and a certificate for ${allNames.join(', ')} in ${tlsDir}\n` : `TLS: kept ${tlsDir}/server.pem\n`)
  }
  return 0
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runInit(process.argv.slice(2), process.env, { stdout: process.stdout, stderr: process.stderr }).catch((error: unknown) => {
    process.stderr.write(`orchard-init: ${(error as Error).message}\n`)
    return 1
  })
}
