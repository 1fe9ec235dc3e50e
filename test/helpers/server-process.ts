// Runs the real server entry point (src/main.ts) as a child process, as `npm start` would.
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

export interface ServerProcess {
  child: ChildProcess
  /** Stops reading log lines (benchmarks: the output is drained, not parsed). */
  discardOutput(): void
  /** Resolves with the first JSON log line whose msg matches. */
  waitForLog(pattern: RegExp): Promise<Record<string, unknown>>
  /** Resolves with the exit code. */
  exited: Promise<number | null>
  stderr(): string
  /** Every log line read so far. */
  logs(): Array<Record<string, unknown>>
}

export function spawnOrchard(script: 'src/main.ts' | 'src/migrate.ts', args: string[], env: Record<string, string> = {}): ServerProcess {
  return spawnServer(['--import', 'tsx', script, ...args], env)
}

/** Runs `node <nodeArgs>` in the repository with a clean environment plus `env`. */
export function spawnServer(nodeArgs: string[], env: Record<string, string> = {}): ServerProcess {
  const child = spawn(process.execPath, nodeArgs, {
    cwd: repoRoot,
    env: { PATH: process.env['PATH'] ?? '', ORCHARD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: Array<Record<string, unknown>> = []
  const waiters: Array<{ pattern: RegExp; resolve: (line: Record<string, unknown>) => void }> = []
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const lines = createInterface({ input: child.stdout })
  lines.on('line', (text) => {
    let line: Record<string, unknown>
    try {
      line = JSON.parse(text) as Record<string, unknown>
    } catch {
      line = { msg: text }
    }
    logs.push(line)
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(String(line['msg']))) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(line)
      }
    }
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    child,
    exited,
    discardOutput() {
      lines.close()
      child.stdout.resume()
    },
    stderr: () => stderr,
    logs: () => [...logs],
    waitForLog(pattern) {
      const seen = logs.find((line) => pattern.test(String(line['msg'])))
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        waiters.push({ pattern, resolve })
        void exited.then((code) => reject(new Error(`server exited (${code}) before logging ${pattern}; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`)))
      })
    },
  }
}
