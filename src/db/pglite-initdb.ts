// A new embedded data directory is created (initdb) in a short-lived child process, not in the
// server. PGlite's initdb instantiates a second WASM module and unpacks its file-system bundle:
// measured here, PGlite.create on a new directory takes the process from 45 to ~800 MB RSS
// (630 MB of it "external"), and closing the instance gives little of it back to the system
// (RSS 440 MB after reopening in the same process). Opening an existing directory costs
// ~290 MB. The server then only ever opens an existing directory; the child's peak is paid
// once, on first start, and ends with the child.
//
// Run as a program (`node pglite-initdb.js <directory>`), it creates the directory's database
// with the same owner-only file modes as the server (PrivateNodeFS) and exits.
import { spawn } from 'node:child_process'
import { existsSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import { PrivateNodeFS } from './private-files.js'

/** Whether PGlite would run initdb for this directory (it has no cluster yet). */
export function needsInitdb(directory: string): boolean {
  return !existsSync(join(directory, 'PG_VERSION'))
}

// Node flags the child must not repeat: a debugger port is taken by the parent, and a CPU
// profile of initdb is not the server's.
const parentOnlyFlag = /^--(inspect|cpu-prof|heap-prof|diagnostic-dir)/

/** Creates the cluster in `directory` in a child process; rejects with its error output. */
export function initdbInChild(directory: string): Promise<void> {
  const self = fileURLToPath(import.meta.url) // .ts under tsx (tests), .js when built
  const execArgv = process.execArgv.filter((flag) => !parentOnlyFlag.test(flag))
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...execArgv, self, directory], { stdio: ['ignore', 'ignore', 'pipe'] })
    let errorOutput = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (errorOutput.length < 4_000) errorOutput += chunk
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (code === 0) resolve()
      // The child's first line is its error's message (the stack follows).
      else reject(new Error(`initdb (child process) ended with ${signal ?? `code ${code}`}: ${errorOutput.trim().split('\n')[0] || 'no output'}`))
    })
  })
}

async function initdb(directory: string): Promise<void> {
  const pglite = await PGlite.create({ dataDir: directory, fs: new PrivateNodeFS(directory) })
  await pglite.close()
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const directory = process.argv[2]
  if (!directory) {
    process.stderr.write('usage: pglite-initdb <directory>\n')
    process.exit(2)
  }
  initdb(directory).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error)}\n`)
    process.exit(1)
  })
}
