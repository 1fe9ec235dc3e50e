import { createRequire } from 'node:module'
import { pino, type Logger } from 'pino'
import type { LogLevel } from './config.js'

export interface LoggerOptions {
  level: LogLevel
  /** Human-readable output (when stdout is a terminal and pino-pretty is installed). */
  pretty: boolean
}

// Secrets never reach the log, whatever a caller passes in.
const redact = {
  paths: ['authorization', 'headers.authorization', '*.authorization', 'api_key', 'password', '*.password', 'private_key', 'push_token'],
  censor: '[redacted]',
}

export function createLogger(options: LoggerOptions): Logger {
  const base = { level: options.level, redact, base: { service: 'orchard' } }
  if (options.pretty && prettyAvailable()) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } })
  }
  // Asynchronous writes: under load lines are batched into fewer write() calls instead of
  // one blocking syscall per line. What is buffered is flushed when the process exits.
  const destination = pino.destination({ dest: 1, sync: false })
  process.once('exit', () => {
    try {
      destination.flushSync()
    } catch {
      // nothing more can be done while exiting
    }
  })
  return pino(base, destination)
}

function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty')
    return true
  } catch {
    return false // production images install without devDependencies
  }
}
