// Runs the orchard CLI in-process (runOrchardCli) with an injected world: argv, environment
// (a config directory of its own, never the user's), captured stdout and stderr, stdin and
// the TTY flag, and a sleep that does not sleep. `liveOrchard` starts the real app on loopback.
import { mkdtempSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { runOrchardCli } from '../../src/cli/orchard.js'
import { setupMdm, testApiKey, type MdmFixture } from './mdm-fixture.js'

export interface CliRun {
  code: number
  stdout: string
  stderr: string
  /** The waits the CLI asked for between polls (ms). */
  sleeps: number[]
}

export interface CliRunOptions {
  env?: Record<string, string | undefined>
  /** A person at a terminal. */
  tty?: boolean
  /** What the person types (prompts read one line). */
  stdin?: string
  pollIntervalMs?: number
  /** What a wait between polls does (default: nothing, it returns at once). */
  waitBetweenPolls?: () => Promise<void>
}

/** A fresh HOME and XDG_CONFIG_HOME, so no test reads or writes a real config file. */
export function isolatedHome(): Record<string, string> {
  const home = mkdtempSync(join(tmpdir(), 'orchard-cli-home-'))
  return { HOME: home, XDG_CONFIG_HOME: join(home, '.config') }
}

export async function runCli(argv: string[], options: CliRunOptions = {}): Promise<CliRun> {
  let stdout = ''
  let stderr = ''
  const sleeps: number[] = []
  const code = await runOrchardCli(argv, {
    env: options.env ?? isolatedHome(),
    io: {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
      isTTY: options.tty === true,
    },
    ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
    sleep: async (ms) => {
      sleeps.push(ms)
      await options.waitBetweenPolls?.()
    },
  })
  return { code, stdout, stderr, sleeps }
}

export interface LiveOrchard {
  fixture: MdmFixture
  url: string
  env: Record<string, string>
  cli(argv: string[], options?: Omit<CliRunOptions, 'env'> & { env?: Record<string, string | undefined> }): Promise<CliRun>
}

/** The real app (setupMdm) listening on 127.0.0.1, and the CLI pointed at it with the fixture's key. */
export async function liveOrchard(t: { teardown(fn: () => unknown): void }, env: Record<string, string> = {}): Promise<LiveOrchard> {
  const fixture = await setupMdm(t, env)
  await fixture.app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(fixture.app.server.address() as AddressInfo).port}`
  const cliEnv = { ...isolatedHome(), ORCHARD_URL: url, ORCHARD_TOKEN: testApiKey }
  return {
    fixture,
    url,
    env: cliEnv,
    cli: (argv, options = {}) => runCli(argv, { ...options, env: { ...cliEnv, ...options.env } }),
  }
}
